"""A trained student in the formats the ecosystem loads: an HF model directory (safetensors, LoRA merged,
config.json of its family, tokenizer files with the chat template, generation_config.json) that transformers,
vLLM and TGI read, and, for LoRA students, the adapter alone as a PEFT directory.

Everything is written into a local directory given by the caller; the run publishes it into its run directory.
"""

from __future__ import annotations

import json
import os

import numpy as np

from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.lora import is_lora_path, merge_lora
from llm2llm_jax.model.weights import NP_DTYPES, save_hf_checkpoint

PEFT_DIR = "adapter"


def generation_config(cfg: LlamaConfig, tokenizer, max_new_tokens: int) -> dict:
    """Greedy decoding, as the run evaluated the student, with its special tokens."""
    eos = list(cfg.eos_token_ids) or ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    return {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
    }


def export_hf(
    params, cfg: LlamaConfig, tokenizer, out_dir: str, dtype: str = "", max_new_tokens: int = 8
) -> None:
    """`params` (host arrays; LoRA adapters merged here) as an HF model directory at `out_dir` (made here)."""
    merged, merged_cfg = merge_lora(params, cfg)
    gen = json.dumps(generation_config(cfg, tokenizer, max_new_tokens), indent=2) + "\n"
    save_hf_checkpoint(
        merged,
        merged_cfg,
        out_dir,
        dtype=dtype or cfg.param_dtype,
        extra_files={"generation_config.json": gen},
    )
    tokenizer.save_pretrained(out_dir)  # tokenizer.json, tokenizer_config.json, the chat template


def _peft_tensors(params, cfg: LlamaConfig, np_dtype):
    """(PEFT name, array) of every adapter: lora_A [rank, in], lora_B [out, rank] per layer and projection."""
    for layer in range(cfg.num_hidden_layers):
        tree = params["layers"] if cfg.scan_layers else params[f"layers_{layer}"]
        for group in ("self_attn", "mlp"):
            for name, leaves in tree[group].items():
                if not any(is_lora_path((k,)) for k in leaves):
                    continue
                a, b = (np.asarray(leaves[k]) for k in ("lora_a", "lora_b"))
                if cfg.scan_layers:
                    a, b = a[layer], b[layer]
                prefix = f"base_model.model.model.layers.{layer}.{group}.{name}"
                yield f"{prefix}.lora_A.weight", np.ascontiguousarray(a.T.astype(np_dtype))
                yield f"{prefix}.lora_B.weight", np.ascontiguousarray(b.T.astype(np_dtype))


def export_peft(params, cfg: LlamaConfig, out_dir: str, base_model: str, dtype: str = "") -> None:
    """The LoRA adapters alone as a PEFT directory (adapter_config.json, adapter_model.safetensors) that
    `PeftModel.from_pretrained(base, out_dir)` applies to the base model."""
    from safetensors.numpy import save_file

    os.makedirs(out_dir, exist_ok=True)
    tensors = dict(_peft_tensors(params, cfg, NP_DTYPES[dtype or cfg.param_dtype]))
    save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.lora_rank,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": 0.0,
        "target_modules": sorted(cfg.lora_targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
    }
    with open(os.path.join(out_dir, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
