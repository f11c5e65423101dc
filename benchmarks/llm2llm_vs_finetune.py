"""Does LLM2LLM beat plain fine-tuning? The offline default config over several sampling seeds.

Each seed draws its own seed set; iteration 0 of an LLM2LLM run *is* plain fine-tuning on that seed
set (same data, same steps, from the base weights), so each run yields both numbers. Prints the
per-seed table and mean +- standard deviation of test accuracy.

  python benchmarks/llm2llm_vs_finetune.py [--seeds 0,1,2] [--iterations 4] [--workdir runs/compare] [overrides...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--workdir", default="runs/compare")
    args, overrides = ap.parse_known_args()
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        workdir = os.path.join(args.workdir, f"seed{seed}")
        cmd = [sys.executable, os.path.join(ROOT, "launch", "run.py"), "--config=configs/default.py",
               f"--config.seed={seed}", f"--config.workdir={workdir}", f"--config.iterations={args.iterations}",
               "--config.progress=False", *overrides]
        print("running:", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        with open(os.path.join(ROOT, workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        results.append((seed, rows[0]["test_accuracy"], rows[-1]["test_accuracy"], rows[-1]["train_size"]))
    print(f"\n{'seed':>4} {'fine-tune':>10} {'LLM2LLM':>8} {'gain':>7} {'final train size':>17}")
    for seed, ft, ll, size in results:
        print(f"{seed:>4} {ft:>10.1%} {ll:>8.1%} {ll - ft:>+7.1%} {size:>17}")
    fts, lls = [r[1] for r in results], [r[2] for r in results]
    sd = statistics.stdev if len(results) > 1 else (lambda xs: 0.0)
    print(f"mean {statistics.mean(fts):>10.1%} {statistics.mean(lls):>8.1%} "
          f"{statistics.mean(lls) - statistics.mean(fts):>+7.1%}   (sd fine-tune {sd(fts):.1%}, LLM2LLM {sd(lls):.1%})")


if __name__ == "__main__":
    main()
