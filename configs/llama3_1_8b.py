"""Llama-3.1-8B-Instruct as the student on a TPU slice, trained through its chat template, the paper's recipe
otherwise.

  python launch/run.py --config=configs/llama3_1_8b.py --config.model.path=/data/Llama-3.1-8B-Instruct \
      --config.task=trec

Its train step compiles for 8 devices within 32 GiB per chip:

  python benchmarks/compile_7b.py --models llama-3.1-8b
"""

from configs.paper import instruct_config


def get_config():
    return instruct_config("llama3_1_8b", "/data/Llama-3.1-8B-Instruct")
