"""How much does plain fine-tuning move with the batch order alone? One seed set, several shuffle seeds.

Runs the offline default config as `method=finetune` (one fine-tuning from the base weights, then
evaluation) on the seed set of `--seed`, once per `--shuffles` value, and prints test and seed-set
accuracy per run with their mean and standard deviation. This is the noise floor any gain of
LLM2LLM over fine-tuning has to clear.

  python benchmarks/finetune_variance.py [--seed 0] [--shuffles 0,1,2,3,4] [--workdir runs/shuffle] [overrides...]
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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffles", default="0,1,2,3,4")
    ap.add_argument("--workdir", default="runs/shuffle")
    args, overrides = ap.parse_known_args()
    results = []
    for shuffle in [int(s) for s in args.shuffles.split(",")]:
        workdir = os.path.join(args.workdir, f"seed{args.seed}-shuffle{shuffle}")
        cmd = [sys.executable, os.path.join(ROOT, "launch", "run.py"), "--config=configs/default.py",
               "--config.method=finetune", f"--config.seed={args.seed}", f"--config.train.shuffle_seed={shuffle}",
               f"--config.workdir={workdir}", "--config.progress=False", *overrides]
        print("running:", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        with open(os.path.join(ROOT, workdir, "metrics.jsonl")) as f:
            row = json.loads(f.readline())
        results.append((shuffle, row["test_accuracy"], row["seed_accuracy"]))
    print(f"\n{'shuffle':>7} {'test acc':>9} {'seed acc':>9}")
    for shuffle, test, seed in results:
        print(f"{shuffle:>7} {test:>9.1%} {seed:>9.1%}")
    tests, seeds = [r[1] for r in results], [r[2] for r in results]
    sd = statistics.stdev if len(results) > 1 else (lambda xs: 0.0)
    print(f"{'mean':>7} {statistics.mean(tests):>9.1%} {statistics.mean(seeds):>9.1%}   "
          f"(sd test {sd(tests):.1%}, seed {sd(seeds):.1%}; range test {min(tests):.1%}-{max(tests):.1%})")


if __name__ == "__main__":
    main()
