"""A second family offline: Gemma 3 270M (base, a GGUF joined from four PyPI part wheels) as the student and
SmolLM2-135M-Instruct as its teacher, on the offline default's TREC task and recipe.

  python launch/run.py --config=configs/gemma3.py
  python launch/run.py --config=configs/default.py --config.teacher.model=gemma3_270m   # the other way round
"""

from configs.default import get_config as default_config


def get_config():
    c = default_config()
    c.workdir = "runs/gemma3"
    c.model.source = "gemma3_270m"
    # the paper's rate: at the default's 1e-4 Gemma overfits 60 examples and its fine-tunes swing (README)
    c.train.learning_rate = 2e-5
    if c.teacher.kind == "local":
        c.teacher.model = "smollm2"  # a teacher that is not the student, as in the paper
    return c
