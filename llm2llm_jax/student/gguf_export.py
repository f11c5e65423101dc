"""A student as one GGUF file in llama.cpp's layout for its family (f16, bf16 or q8_0 weights, norms in f32),
with its tokenizer: copied from the GGUF the student came from, or built from a byte-level BPE tokenizer.json.
This project's importer and transformers' GGUF loader both read it."""

from __future__ import annotations

import json

import numpy as np

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.lora import merge_lora
from llm2llm_jax.model.weights import hf_to_gguf_name, iter_hf_tensors, open_gguf, permute_qk
from llm2llm_jax.student.prompting import leading_special_ids

GGUF_TYPES = ("f16", "bf16", "q8_0")


class GGUFExportError(UserError, ValueError):
    """A student this exporter cannot write as GGUF; the message says what to use instead."""


def _tensor(w, name: str, arr: np.ndarray, gguf_type: str) -> None:
    import gguf

    if arr.ndim != 2:  # norms and biases stay f32, as llama.cpp keeps them
        w.add_tensor(name, np.ascontiguousarray(arr, np.float32))
    elif gguf_type == "f16":
        w.add_tensor(name, np.ascontiguousarray(arr, np.float16))
    else:
        qtype = {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[gguf_type]
        w.add_tensor(
            name, gguf.quants.quantize(np.ascontiguousarray(arr, np.float32), qtype), raw_dtype=qtype
        )


def _architecture(w, cfg: LlamaConfig, gguf_type: str) -> None:
    import gguf

    arch = cfg.traits.gguf_arch
    w.add_file_type(
        {
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "bf16": gguf.LlamaFileType.MOSTLY_BF16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[gguf_type]
    )
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_vocab_size(cfg.vocab_size)
    if cfg.rope_scaling_dict.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(cfg.rope_scaling_dict["factor"]))
    if any(cfg.sliding_layers):
        w.add_sliding_window(cfg.sliding_window)
    if cfg.traits.global_layer_every and cfg.layer_types:
        w.add_uint32(f"{arch}.attention.sliding_window_pattern", cfg.sliding_layers.index(False) + 1)
    if cfg.traits.local_rope_base and cfg.rope_local_theta:
        w.add_float32(f"{arch}.rope.freq_base_swa", float(cfg.rope_local_theta))


def _copy_tokenizer(w, source_gguf: str) -> None:
    """Every tokenizer.* field of the GGUF the student was loaded from."""
    import gguf

    reader = open_gguf(source_gguf)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub_type=sub)


def _build_tokenizer(w, tokenizer, cfg: LlamaConfig) -> None:
    """A byte-level BPE tokenizer (Llama 3, Qwen, SmolLM2 from an HF directory) as llama.cpp's gpt2 model."""
    import gguf

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise GGUFExportError(
            f"export.gguf: this student's tokenizer is {model.get('type')}, and only byte-level BPE "
            "tokenizers are built here; set export.gguf=False and convert student/ with llama.cpp's "
            "convert_hf_to_gguf.py"
        )
    vocab = tokenizer.get_vocab()
    tokens = [f"[PAD{i}]" for i in range(max(cfg.vocab_size, len(vocab)))]
    for text, index in vocab.items():
        tokens[index] = text
    special = set(tokenizer.all_special_ids)
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    for add, value in ((w.add_bos_token_id, cfg.bos_token_id), (w.add_pad_token_id, tokenizer.pad_token_id)):
        if value is not None:
            add(value)
    if cfg.eos_token_ids:
        w.add_eos_token_id(cfg.eos_token_ids[0])
    w.add_add_bos_token(bool(leading_special_ids(tokenizer)))
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)


def export_gguf(
    params, cfg: LlamaConfig, tokenizer, path: str, gguf_type: str, source_gguf: str | None, name: str
) -> None:
    """`params` (host arrays; LoRA merged here) as a GGUF file at `path`."""
    import gguf

    if cfg.rope_scaling_dict.get("rope_type") == "llama3":
        raise GGUFExportError(
            "export.gguf: llama3 RoPE scaling is stored by llama.cpp as a frequency tensor, which this "
            "exporter does not write; set export.gguf=False and convert student/ with llama.cpp's "
            "convert_hf_to_gguf.py"
        )
    merged, cfg = merge_lora(params, cfg)
    w = gguf.GGUFWriter(path, cfg.traits.gguf_arch)
    w.add_name(name)
    _architecture(w, cfg, gguf_type)
    if source_gguf:
        _copy_tokenizer(w, source_gguf)
    else:
        _build_tokenizer(w, tokenizer, cfg)
    for hf_name, arr in iter_hf_tensors(merged, cfg):
        arr = np.asarray(arr, np.float32)
        if cfg.traits.gguf_permuted_qk and hf_name.endswith("q_proj.weight"):
            arr = permute_qk(arr, cfg.num_attention_heads)
        elif cfg.traits.gguf_permuted_qk and hf_name.endswith("k_proj.weight"):
            arr = permute_qk(arr, cfg.num_key_value_heads)
        elif cfg.traits.norm_plus_one and hf_name.endswith("norm.weight"):
            arr = arr + 1.0  # llama.cpp stores these norms with the 1 of (1 + weight) added
        _tensor(w, hf_to_gguf_name(hf_name, cfg.traits.sandwich_norms), arr, gguf_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
