"""Smoke job: load the student (default: SmolLM2-135M-Instruct from its GGUF) and complete prompts.

python launch/run.py --config=configs/smoke.py [--config.model.source=hf --config.model.path=...]
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.job = "smoke"
    c.compile_cache_dir = "auto"  # as in configs/base.py
    c.model = ml_collections.ConfigDict()
    c.model.source = "smollm2"  # smollm2 | hf | gguf
    c.model.path = ""
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.model.kernels = "auto"  # as in configs/base.py
    c.smoke = ml_collections.ConfigDict()
    c.smoke.prompts = (
        "What is the capital of France? Answer in one sentence.",
        "Write one sentence about the sea.",
    )
    c.smoke.max_new_tokens = 40
    c.smoke.use_chat_template = True
    return c
