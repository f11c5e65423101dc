"""Qwen2.5-7B-Instruct as the student on a TPU slice, trained through its chat template, the paper's recipe
otherwise.

  python launch/run.py --config=configs/qwen2_5_7b.py --config.model.path=/data/Qwen2.5-7B-Instruct \
      --config.task=trec

Its train step compiles for 8 devices within 32 GiB per chip:

  python benchmarks/compile_7b.py --models qwen2.5-7b
"""

from configs.paper import instruct_config


def get_config():
    return instruct_config("qwen2_5_7b", "/data/Qwen2.5-7B-Instruct")
