"""Weight import/export: HF safetensors directories (streamed tensor by tensor) and GGUF files.

Params are returned as nested dicts of numpy arrays in the Flax layout of `llama.LlamaForCausalLM`
(kernels are [in, out]; with scan_layers the 30 decoder layers are stacked on a leading axis).
Each target array is allocated once and filled one checkpoint tensor at a time, so converting a
large checkpoint never holds two copies of it in host memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

import ml_dtypes
import numpy as np

from llm2llm_jax.common import files
from llm2llm_jax.common.console import progress_bar
from llm2llm_jax.common.errors import UserError
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.gguf_reader import MappedGGUF

NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
FLOAT_DTYPES = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
# Tensors some checkpoints carry that hold nothing we need (RoPE buffers are recomputed).
IGNORED_TENSORS = re.compile(r".*rotary_emb\.inv_freq$")


class WeightError(UserError, ValueError):
    """A checkpoint whose tensors do not fit the model they are meant for."""


# ---------------------------------------------------------------------------- name mapping
_TOP_MAP = {
    "model.embed_tokens.weight": (("embed_tokens", "embedding"), False),
    "model.norm.weight": (("norm", "weight"), False),
    "lm_head.weight": (("lm_head", "kernel"), True),
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
# Multimodal Gemma 3 checkpoints keep the language model under one of these prefixes, beside a vision
# tower this package does not run.
_LANGUAGE_MODEL_PREFIXES = (
    ("model.language_model.", "model."),
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
)
_VISION_TENSORS = re.compile(r"^(model\.)?(vision_tower|multi_modal_projector)\.")


def layer_tensors(cfg: LlamaConfig) -> dict:
    """HF name inside one decoder layer -> (Flax path inside the layer, transposed?, Flax shape), for the
    config's family."""
    h, i, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * d, cfg.num_key_value_heads * d
    fam = cfg.traits
    out = {}
    for name, shape in (("q_proj", (h, q)), ("k_proj", (h, kv)), ("v_proj", (h, kv)), ("o_proj", (q, h))):
        out[f"self_attn.{name}.weight"] = (("self_attn", name, "kernel"), True, shape)
        if fam.attention_bias and name != "o_proj":
            out[f"self_attn.{name}.bias"] = (("self_attn", name, "bias"), False, (shape[1],))
    if fam.qk_norm:
        for name in ("q_norm", "k_norm"):
            out[f"self_attn.{name}.weight"] = (("self_attn", name, "weight"), False, (d,))
    for name, shape in (("gate_proj", (h, i)), ("up_proj", (h, i)), ("down_proj", (i, h))):
        out[f"mlp.{name}.weight"] = (("mlp", name, "kernel"), True, shape)
    norms = ["input_layernorm", "post_attention_layernorm"]
    if fam.sandwich_norms:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for name in norms:
        out[f"{name}.weight"] = ((name, "weight"), False, (h,))
    return out


def layer_param_shapes(cfg: LlamaConfig) -> dict:
    """Flax-layout shape of each per-layer param, keyed by its path inside the layer."""
    return {path: shape for path, _, shape in layer_tensors(cfg).values()}


def top_param_shapes(cfg: LlamaConfig) -> dict:
    shapes = {
        ("embed_tokens", "embedding"): (cfg.vocab_size, cfg.hidden_size),
        ("norm", "weight"): (cfg.hidden_size,),
    }
    if not cfg.tie_word_embeddings:
        shapes[("lm_head", "kernel")] = (cfg.hidden_size, cfg.vocab_size)
    return shapes


def hf_names(cfg: LlamaConfig) -> list[str]:
    """Every tensor name an HF checkpoint for `cfg` holds."""
    names = [n for n in _TOP_MAP if n != "lm_head.weight" or not cfg.tie_word_embeddings]
    for layer in range(cfg.num_hidden_layers):
        names += [f"model.layers.{layer}.{suffix}" for suffix in layer_tensors(cfg)]
    return names


def language_model_name(hf_name: str) -> str | None:
    """The name a text-only checkpoint gives this tensor; None for a multimodal checkpoint's vision parts."""
    if _VISION_TENSORS.match(hf_name):
        return None
    for prefix, replacement in _LANGUAGE_MODEL_PREFIXES:
        if hf_name.startswith(prefix):
            return replacement + hf_name[len(prefix) :]
    return hf_name


class ParamBuilder:
    """Preallocated Flax param tree that checkpoint tensors are written into one at a time."""

    def __init__(self, cfg: LlamaConfig):
        self.cfg = cfg
        self.dtype = NP_DTYPES[cfg.param_dtype]
        self.layer_tensors = layer_tensors(cfg)
        self.layer_shapes = layer_param_shapes(cfg)
        self.top_shapes = top_param_shapes(cfg)
        n = cfg.num_hidden_layers
        # Stacked [L, ...] arrays; split per layer at the end when scan_layers is off (views, no copy).
        self.stacked = {p: np.zeros((n,) + s, self.dtype) for p, s in self.layer_shapes.items()}
        self.top = {p: np.zeros(s, self.dtype) for p, s in self.top_shapes.items()}
        self.filled: set = set()

    def put(self, hf_name: str, value: np.ndarray, source: str) -> None:
        """Store one HF-layout tensor (transposing kernels), checking shape and dtype."""
        if IGNORED_TENSORS.match(hf_name):
            return
        hf_name = language_model_name(hf_name)
        if hf_name is None:
            return
        m = _LAYER_RE.match(hf_name)
        if m:
            layer, suffix = int(m.group(1)), m.group(2)
            if suffix not in self.layer_tensors or layer >= self.cfg.num_hidden_layers:
                raise WeightError(
                    f"{source}: unexpected tensor '{hf_name}' for a {self.cfg.num_hidden_layers}-layer "
                    f"{self.cfg.family} model"
                )
            path, transpose, target_shape = self.layer_tensors[suffix]
        elif hf_name in _TOP_MAP and (hf_name != "lm_head.weight" or not self.cfg.tie_word_embeddings):
            path, transpose = _TOP_MAP[hf_name]
            layer, target_shape = None, self.top_shapes[path]
        elif hf_name == "lm_head.weight":
            return  # tied checkpoints sometimes store a copy of the embedding; ignore it
        else:
            raise WeightError(
                f"{source}: unexpected tensor '{hf_name}'; not part of a {self.cfg.family} checkpoint"
            )
        if value.dtype.type not in FLOAT_DTYPES:
            raise WeightError(f"{source}: tensor '{hf_name}' has dtype {value.dtype}; expected a float type")
        expected_hf_shape = target_shape[::-1] if transpose else target_shape
        if tuple(value.shape) != tuple(expected_hf_shape):
            raise WeightError(
                f"{source}: tensor '{hf_name}' has shape {tuple(value.shape)}, expected "
                f"{tuple(expected_hf_shape)} for this config"
            )
        value = value.T if transpose else value
        if layer is None:
            self.top[path][...] = value.astype(self.dtype)
        else:
            self.stacked[path][layer] = value.astype(self.dtype)
        self.filled.add(hf_name)

    def finish(self, source: str) -> dict:
        missing = [n for n in hf_names(self.cfg) if n not in self.filled]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise WeightError(f"{source}: checkpoint is missing tensor(s) {missing[:5]}{more}")
        params: dict = {}
        for path, arr in self.top.items():
            _set(params, path, arr)
        if self.cfg.scan_layers:
            for path, arr in self.stacked.items():
                _set(params, ("layers",) + path, arr)
        else:
            for layer in range(self.cfg.num_hidden_layers):
                for path, arr in self.stacked.items():
                    _set(params, (f"layers_{layer}",) + path, arr[layer])
        return params


def _set(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def iter_hf_tensors(params: dict, cfg: LlamaConfig) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (HF name, HF-layout numpy array) for every tensor, one at a time."""
    for hf_name, (path, transpose) in _TOP_MAP.items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = np.asarray(_get(params, path))
        yield hf_name, (arr.T if transpose else arr)
    for layer in range(cfg.num_hidden_layers):
        for suffix, (path, transpose, _) in layer_tensors(cfg).items():
            if cfg.scan_layers:
                arr = np.asarray(_get(params, ("layers",) + path)[layer])
            else:
                arr = np.asarray(_get(params, (f"layers_{layer}",) + path))
            yield f"model.layers.{layer}.{suffix}", (arr.T if transpose else arr)


# ---------------------------------------------------------------------------- HF directory
def _safetensors_files(model_dir: str) -> list[str]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise WeightError(
                f"{index}: not a valid safetensors index (needs a 'weight_map' object): {e}"
            ) from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not os.path.exists(os.path.join(model_dir, name)):
                raise WeightError(f"{index}: names shard '{name}', which is not in {model_dir}")
        return [os.path.join(model_dir, n) for n in files]
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    raise WeightError(
        f"{model_dir}: no model.safetensors or model.safetensors.index.json found "
        f"(only safetensors checkpoints are supported; convert .bin files with transformers first)"
    )


def load_hf_checkpoint(model_dir: str, progress: bool = False, **runtime) -> tuple[LlamaConfig, dict]:
    """Read an HF Llama directory into (config, params), streaming tensor by tensor."""
    from safetensors import SafetensorError, safe_open

    if not os.path.isdir(model_dir):
        raise WeightError(f"{model_dir}: not a directory; expected an HF model directory with config.json")
    cfg = LlamaConfig.from_hf_file(os.path.join(model_dir, "config.json"), **runtime)
    builder = ParamBuilder(cfg)
    files = _safetensors_files(model_dir)
    bar = _progress(total=len(hf_names(cfg)), desc="importing tensors", enabled=progress)
    for path in files:
        try:
            with safe_open(path, framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                    builder.put(name, f.get_tensor(name), source=path)
                    bar.update(1)
        except SafetensorError as e:
            raise WeightError(f"{path}: unreadable safetensors file ({e})") from None
    bar.close()
    return cfg, builder.finish(model_dir)


def save_hf_checkpoint(
    params: dict,
    cfg: LlamaConfig,
    out_dir: str,
    dtype: str | None = None,
    max_shard_bytes: int = 2 * 1024**3,
    extra_files: dict | None = None,
) -> str:
    """Write params as an HF directory transformers loads. Refuses to overwrite; writes atomically."""
    from safetensors.numpy import save_file

    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir):
        raise WeightError(f"{out_dir}: already exists; choose a new export directory or remove it first")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    np_dtype = NP_DTYPES[dtype or cfg.param_dtype]
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        shard_names: list[list[str]] = []  # tensor names per written shard
        current: dict = {}
        current_bytes, total_bytes = 0, 0

        def flush():
            save_file(
                current, os.path.join(tmp, f"shard-{len(shard_names)}.safetensors"), metadata={"format": "pt"}
            )
            shard_names.append(list(current))
            current.clear()

        for name, arr in iter_hf_tensors(params, cfg):
            arr = np.ascontiguousarray(arr.astype(np_dtype))
            if current and current_bytes + arr.nbytes > max_shard_bytes:
                flush()  # only one shard's tensors are ever held in memory
                current_bytes = 0
            current[name] = arr
            current_bytes += arr.nbytes
            total_bytes += arr.nbytes
        flush()

        n = len(shard_names)
        if n == 1:
            os.rename(os.path.join(tmp, "shard-0.safetensors"), os.path.join(tmp, "model.safetensors"))
        else:
            weight_map = {}
            for idx, names in enumerate(shard_names):
                file_name = f"model-{idx + 1:05d}-of-{n:05d}.safetensors"
                os.rename(os.path.join(tmp, f"shard-{idx}.safetensors"), os.path.join(tmp, file_name))
                weight_map.update(dict.fromkeys(names, file_name))
            with open(os.path.join(tmp, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
                json.dump({"metadata": {"total_size": total_bytes}, "weight_map": weight_map}, f, indent=2)
        hf_cfg = cfg.replace(param_dtype=dtype or cfg.param_dtype).to_hf_dict()
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(hf_cfg, f, indent=2)
        for name, content in (extra_files or {}).items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(content)
        files.usual_permissions(tmp)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# ---------------------------------------------------------------------------- GGUF
_GGUF_LAYER = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
# Four norms per layer (a family with sandwich norms): llama.cpp calls the pre-MLP norm ffn_norm
_GGUF_SANDWICH_LAYER = dict(
    _GGUF_LAYER,
    **{
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "ffn_norm.weight": "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
)
_GGUF_TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_GGUF_LAYER_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


def gguf_to_hf_name(name: str, sandwich_norms: bool = False) -> str | None:
    if name in _GGUF_TOP:
        return _GGUF_TOP[name]
    layer_map = _GGUF_SANDWICH_LAYER if sandwich_norms else _GGUF_LAYER
    m = _GGUF_LAYER_RE.match(name)
    if m and m.group(2) in layer_map:
        return f"model.layers.{m.group(1)}.{layer_map[m.group(2)]}"
    return None


def hf_to_gguf_name(hf_name: str, sandwich_norms: bool = False) -> str:
    """The GGUF name llama.cpp gives an HF tensor name; the inverse of `gguf_to_hf_name`."""
    for gguf_name, name in _GGUF_TOP.items():
        if name == hf_name:
            return gguf_name
    index, rest = _LAYER_RE.match(hf_name).groups()
    layer_map = _GGUF_SANDWICH_LAYER if sandwich_norms else _GGUF_LAYER
    return f"blk.{index}." + next(g for g, name in layer_map.items() if name == rest)


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved RoPE pairs back to rotate-half halves)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's permutation (rotate-half layout to interleaved); the inverse of `unpermute_qk`."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf_metadata(reader) -> dict:
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.split(".")[-1] in (
            "tokens",
            "token_type",
            "merges",
            "scores",
        ):
            continue  # large arrays; the tokenizer is built by transformers
        try:
            meta[key] = field.contents()
        except Exception:  # noqa: BLE001 - exotic field types we do not need
            continue
    return meta


def open_gguf(path: str):
    """A GGUFReader (`MappedGGUF`) with errors that name the file (missing, not GGUF, truncated)."""
    if not os.path.exists(path):
        raise WeightError(f"{path}: GGUF file not found")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise WeightError(f"{path}: cannot read ({e.strerror})") from None
    if magic != b"GGUF":
        raise WeightError(f"{path}: not a GGUF file (magic bytes {magic!r}, expected b'GGUF')")
    try:
        reader = MappedGGUF(path)
    except Exception as e:  # gguf raises ValueError/IndexError/struct errors on short files
        raise WeightError(
            f"{path}: truncated or corrupt GGUF ({type(e).__name__}: {e}); download it again"
        ) from None
    size = os.path.getsize(path)
    for t in reader.tensors:
        end = t.data_offset + t.n_bytes
        if end > size or t.data.size * t.data.itemsize != t.n_bytes:
            raise WeightError(
                f"{path}: truncated GGUF: tensor '{t.name}' needs bytes up to {end} but the file has "
                f"{size}; download it again"
            )
    return reader


def load_gguf_checkpoint(path: str, progress: bool = False, **runtime) -> tuple[LlamaConfig, dict]:
    """Read a GGUF of a supported family (any quantization gguf can dequantize) into (config, params) in
    f32."""
    from gguf.quants import dequantize

    reader = open_gguf(path)
    names = {t.name for t in reader.tensors}
    embd = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embd is None:
        raise WeightError(f"{path}: GGUF has no 'token_embd.weight' tensor; not a decoder language model")
    meta = read_gguf_metadata(reader)
    cfg = LlamaConfig.from_gguf_metadata(
        meta, source=path, vocab_size=int(embd.shape[-1]), tied="output.weight" not in names, **runtime
    )
    builder = ParamBuilder(cfg)
    bar = _progress(total=len(reader.tensors), desc="dequantizing GGUF", enabled=progress)
    for t in reader.tensors:
        hf_name = gguf_to_hf_name(t.name, sandwich_norms=cfg.traits.sandwich_norms)
        if hf_name is None:
            if t.name.startswith("rope_freqs"):
                raise WeightError(f"{path}: tensor '{t.name}' (stored RoPE frequencies) is not supported")
            raise WeightError(f"{path}: unexpected tensor '{t.name}' in a {cfg.family} GGUF")
        try:
            w = dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise WeightError(
                f"{path}: tensor '{t.name}' uses {t.tensor_type.name}, which gguf cannot dequantize"
            ) from None
        w = np.asarray(w, np.float32).reshape(tuple(int(x) for x in reversed(t.shape)))
        if cfg.traits.gguf_permuted_qk and hf_name.endswith("q_proj.weight"):
            w = unpermute_qk(w, cfg.num_attention_heads)
        elif cfg.traits.gguf_permuted_qk and hf_name.endswith("k_proj.weight"):
            w = unpermute_qk(w, cfg.num_key_value_heads)
        elif cfg.traits.norm_plus_one and hf_name.endswith("norm.weight"):
            w = w - 1.0  # llama.cpp stores these norms' weights with the 1 of (1 + weight) added
        builder.put(hf_name, w, source=f"{path} [{t.name}]")
        bar.update(1)
    bar.close()
    return cfg, builder.finish(path)


def _progress(total: int, desc: str, enabled: bool):
    return progress_bar(total, desc, enabled, unit="tensor")
