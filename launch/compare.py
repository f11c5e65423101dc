"""Compare methods over seeds: `python launch/run.py ... --config.job=compare`, as its own command.

  python launch/compare.py --config=configs/default.py \
      --config.compare.methods=finetune,llm2llm,auggpt,eda --config.compare.seeds=0,1,2,3,4 \
      --config.workdir=runs/compare

One run directory per (method, seed) under --config.workdir, each resumable like a single run; the
comparison (comparison.md, .json, .png) is written there at the end (llm2llm_jax/run/compare.py).
"""

import os
import runpy
import sys

if __name__ == "__main__":
    sys.argv.append("--config.job=compare")
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"), run_name="__main__")
