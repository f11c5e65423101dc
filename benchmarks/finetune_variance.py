"""How much does plain fine-tuning move with the batch order alone? One seed set, several shuffle seeds.

Runs the offline default config as `method=finetune` (one fine-tuning from the base weights, then
evaluation) on the seed set of `--seed`, once per `--shuffles` value, and prints test and seed-set
accuracy per run (with the dev accuracy, and the epoch kept when epochs are chosen by dev loss) with their
mean and standard deviation. This is the noise floor any gain of
LLM2LLM over fine-tuning has to clear.

  python benchmarks/finetune_variance.py [--seed 0] [--shuffles 0,1,2,3,4] [--workdir runs/shuffle] \
      [overrides...]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import mean_sd, run_offline_default


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffles", default="0,1,2,3,4")
    ap.add_argument("--workdir", default="runs/shuffle")
    args, overrides = ap.parse_known_args()
    results = []
    for shuffle in [int(s) for s in args.shuffles.split(",")]:
        row = run_offline_default(
            os.path.join(args.workdir, f"seed{args.seed}-shuffle{shuffle}"),
            "--config.method=finetune",
            f"--config.seed={args.seed}",
            f"--config.train.shuffle_seed={shuffle}",
            "--config.export.student=False",  # evidence, not a deliverable
            *overrides,
        )[0]
        results.append((shuffle, row["test_accuracy"], row["seed_accuracy"], row))
    print(f"\n{'shuffle':>7} {'test acc':>9} {'seed acc':>9} {'dev acc':>9} {'epoch kept':>10}")
    for shuffle, test, seed, row in results:
        dev = f"{row['dev_accuracy']:>9.1%}" if "dev_accuracy" in row else f"{'':>9}"
        kept = f"{row['kept_epoch']} of {row['epochs_run']}" if "kept_epoch" in row else ""
        print(f"{shuffle:>7} {test:>9.1%} {seed:>9.1%} {dev} {kept:>10}")
    tests = [r[1] for r in results]
    (test_mean, test_sd), (seed_mean, seed_sd) = mean_sd(tests), mean_sd(r[2] for r in results)
    print(
        f"{'mean':>7} {test_mean:>9.1%} {seed_mean:>9.1%}   "
        f"(sd test {test_sd:.1%}, seed {seed_sd:.1%}; range test {min(tests):.1%}-{max(tests):.1%})"
    )


if __name__ == "__main__":
    main()
