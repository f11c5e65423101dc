"""Offline default: SmolLM2-135M-Instruct from its PyPI-shipped GGUF, on this machine's CPU.

Until the LLM2LLM loop lands this runs the smoke job: load the model and complete a prompt.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.job = "smoke"
    c.seed = 0
    c.model = ml_collections.ConfigDict()
    c.model.source = "smollm2"  # smollm2 | hf | gguf
    c.model.path = ""
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.smoke = ml_collections.ConfigDict()
    c.smoke.prompts = ("What is the capital of France? Answer in one sentence.",
                       "Classify the question type (ABBR, DESC, ENTY, HUM, LOC, NUM): Who wrote Hamlet?")
    c.smoke.max_new_tokens = 40
    c.smoke.use_chat_template = True
    return c
