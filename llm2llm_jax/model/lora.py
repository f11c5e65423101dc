"""LoRA parameter trees: which leaves are adapters, the trainable/frozen split, fresh adapters, merging.

The adapters themselves are `LoRADense` in llama.py; these helpers work on the params dict only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import abstract_params


def is_lora_path(path: tuple) -> bool:
    return path[-1] in ("lora_a", "lora_b")


def split_trainable(params: dict, cfg: LlamaConfig) -> tuple[dict, dict]:
    """(trainable, frozen): everything is trainable for full fine-tuning; only adapters with LoRA."""
    if not cfg.lora_rank:
        return params, {}
    flat = traverse_util.flatten_dict(params)
    trainable = {k: v for k, v in flat.items() if is_lora_path(k)}
    frozen = {k: v for k, v in flat.items() if not is_lora_path(k)}
    if not trainable:
        raise ValueError("lora_rank > 0 but the params hold no lora_a/lora_b; call add_lora_params first")
    return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def combine(trainable: dict, frozen: dict) -> dict:
    if not frozen:
        return trainable
    flat = traverse_util.flatten_dict(frozen)
    flat.update(traverse_util.flatten_dict(trainable))
    return traverse_util.unflatten_dict(flat)


def add_lora_params(params: dict, cfg: LlamaConfig, rng: jax.Array) -> dict:
    """Base params plus fresh adapters (lora_a ~ N(0, 1/rank), lora_b = 0: the model starts unchanged)."""
    if not cfg.lora_rank:
        return params
    flat = traverse_util.flatten_dict(params)
    shapes = traverse_util.flatten_dict(nn.meta.unbox(abstract_params(cfg)))
    lora_keys = sorted(k for k in shapes if is_lora_path(k))
    rngs = jax.random.split(rng, len(lora_keys))
    dtype = cfg.jnp_param_dtype
    for key, r in zip(lora_keys, rngs):
        shape = shapes[key].shape
        if key[-1] == "lora_a":
            flat[key] = np.asarray(jax.random.normal(r, shape, jnp.float32) / cfg.lora_rank).astype(dtype)
        else:
            flat[key] = np.zeros(shape, dtype)
    return traverse_util.unflatten_dict(flat)


def merge_lora(params: dict, cfg: LlamaConfig) -> tuple[dict, LlamaConfig]:
    """Fold adapters into the kernels (W + A @ B * alpha / rank) and drop them: plain Llama params."""
    if not cfg.lora_rank:
        return params, cfg
    flat = traverse_util.flatten_dict(params)
    out = {k: v for k, v in flat.items() if not is_lora_path(k)}
    scale = cfg.lora_alpha / cfg.lora_rank
    for key in flat:
        if key[-1] == "lora_a":
            module = key[:-1]
            a = np.asarray(flat[key], np.float32)
            b = np.asarray(flat[module + ("lora_b",)], np.float32)
            kernel = np.asarray(flat[module + ("kernel",)])
            delta = np.matmul(a, b) * scale  # stacked [L, in, r] @ [L, r, out] works too
            out[module + ("kernel",)] = (kernel.astype(np.float32) + delta).astype(kernel.dtype)
    return traverse_util.unflatten_dict(out), cfg.replace(lora_rank=0)
