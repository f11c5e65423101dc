"""Gemma-3-4B-it as the student on a TPU slice (its language model; the vision tower is skipped), trained
through its chat template, the paper's recipe otherwise.

  python launch/run.py --config=configs/gemma3_4b.py --config.model.path=/data/gemma-3-4b-it \
      --config.task=trec

Its train step compiles for 8 devices within 32 GiB per chip:

  python benchmarks/compile_7b.py --models gemma-3-4b
"""

from configs.paper import instruct_config


def get_config():
    return instruct_config("gemma3_4b", "/data/gemma-3-4b-it")
