"""Does LLM2LLM beat plain fine-tuning? The offline default config over several sampling seeds.

Each seed draws its own seed set; iteration 0 of an LLM2LLM run *is* plain fine-tuning on that seed
set (same data, same steps, from the base weights), so each run yields both numbers. Prints the
per-seed table and mean +- standard deviation of test accuracy.

  python benchmarks/llm2llm_vs_finetune.py [--seeds 0,1,2] [--iterations 4] [--workdir runs/compare] [overrides...]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import mean_sd, run_offline_default  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--workdir", default="runs/compare")
    args, overrides = ap.parse_known_args()
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        rows = run_offline_default(os.path.join(args.workdir, f"seed{seed}"), f"--config.seed={seed}",
                                   f"--config.iterations={args.iterations}", *overrides)
        results.append((seed, rows[0]["test_accuracy"], rows[-1]["test_accuracy"], rows[-1]["train_size"]))
    print(f"\n{'seed':>4} {'fine-tune':>10} {'LLM2LLM':>8} {'gain':>7} {'final train size':>17}")
    for seed, ft, ll, size in results:
        print(f"{seed:>4} {ft:>10.1%} {ll:>8.1%} {ll - ft:>+7.1%} {size:>17}")
    (ft_mean, ft_sd), (ll_mean, ll_sd) = mean_sd(r[1] for r in results), mean_sd(r[2] for r in results)
    print(f"mean {ft_mean:>10.1%} {ll_mean:>8.1%} {ll_mean - ft_mean:>+7.1%}   "
          f"(sd fine-tune {ft_sd:.1%}, LLM2LLM {ll_sd:.1%})")


if __name__ == "__main__":
    main()
