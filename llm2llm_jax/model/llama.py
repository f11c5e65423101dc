"""Flax Llama: RMSNorm, rotate-half RoPE, GQA attention with an optional KV cache, SwiGLU, scan + remat.

Every parameter carries logical axis names (see `parallel.py` for how they map onto a mesh):
  vocab, embed, q_heads, kv_heads, mlp, norm, and `layers` for the scanned stack.
Activations are constrained with act_batch / act_length / act_embed / act_heads / act_mlp.

Numerics follow transformers' LlamaForCausalLM exactly in f32: RMSNorm in f32 then cast,
cos/sin computed in f32, softmax in f32.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.layout import Layout, with_layout_constraint

from llm2llm_jax.model.config import LlamaConfig

Array = jax.Array

# Large finite negative instead of -inf, so fully padded query rows give uniform (not NaN) weights.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def _init(names, stddev=0.02):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev), names)


# ---------------------------------------------------------------------------- RoPE (pure)
def rope_inv_freq(cfg: LlamaConfig) -> np.ndarray:
    """Inverse frequencies for rotate-half RoPE, with `linear` or `llama3` scaling from the config."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    scaling = cfg.rope_scaling_dict
    rope_type = scaling.get("rope_type", "default")
    if rope_type == "linear":
        inv_freq = inv_freq / scaling["factor"]
    elif rope_type == "llama3":
        factor = scaling["factor"]
        low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
        old_ctx = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        # Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
        scaled = np.where(wavelen > old_ctx / low, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_ctx / high) & (wavelen <= old_ctx / low)
        inv_freq = np.where(medium, smoothed, scaled)
    return inv_freq.astype(np.float32)


def rope_cos_sin(positions: Array, inv_freq: np.ndarray) -> tuple[Array, Array]:
    """cos, sin of shape [B, T, head_dim] in f32 (the two halves repeat, HF layout)."""
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """x: [B, T, heads, D]. Rotate-half: x*cos + concat(-x2, x1)*sin."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin


# ---------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x):
        weight = self.param("weight", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                            (self.cfg.hidden_size,), self.cfg.jnp_param_dtype)
        in_dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.cfg.rms_norm_eps)
        return weight.astype(self.cfg.jnp_dtype) * x32.astype(in_dtype)


class LoRADense(nn.Module):
    """Bias-free Dense whose kernel is [in, out]; with cfg.lora_rank > 0 and this projection among
    cfg.lora_targets it adds (x @ lora_a @ lora_b) * alpha / rank. lora_b starts at zero, so the
    adapted model starts equal to the base model."""

    cfg: LlamaConfig
    features: int
    names: tuple
    f32_output: bool = False  # the LM head keeps f32 logits

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        kernel = self.param("kernel", _init(self.names), (x.shape[-1], self.features), cfg.jnp_param_dtype)
        x = x.astype(cfg.jnp_dtype)
        # Accumulate in f32 (the fast bf16 path on CPUs and what TPUs do), then return the compute dtype.
        y = _mm(x, kernel.astype(cfg.jnp_dtype))
        if cfg.lora_rank and self.name in cfg.lora_targets:
            r = cfg.lora_rank
            a = self.param("lora_a", _init((self.names[0], "lora_rank"), 1.0 / r), (x.shape[-1], r),
                           cfg.jnp_param_dtype)
            b = self.param("lora_b", nn.with_logical_partitioning(nn.initializers.zeros, ("lora_rank", self.names[1])),
                           (r, self.features), cfg.jnp_param_dtype)
            low = _mm(x, a.astype(cfg.jnp_dtype)).astype(cfg.jnp_dtype)
            y = y + _mm(low, b.astype(cfg.jnp_dtype)) * (cfg.lora_alpha / r)
        return y if self.f32_output else y.astype(cfg.jnp_dtype)


@jax.custom_vjp
def _mm(a, b):
    """a [..., m, k] @ b [..., k, n] (batched) or a [..., k] @ b [k, n] (a weight shared by every
    leading axis of a), with f32 accumulation and a hand-written backward (`_mm_bwd`)."""
    return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def _mm_fwd(a, b):
    return _mm(a, b), (a, b)


def _mm_bwd(res, ct):
    """da = ct @ b^T and db = a^T @ ct, each a plain row-major matmul.

    Left to autodiff, XLA:CPU transposes the [tokens, 1536] MLP cotangent inside the fused SiLU
    backward, a slow strided loop (about a fifth of the f32 step); transposing the [tokens, 576]
    input instead is cheaper. For bf16 operands the cotangent is cast down so both backward matmuls
    stay on the fast bf16 path of CPUs and TPUs, and on CPU the transposed operands are laid out
    row-major first (`_row_major`).
    """
    a, b = res
    if b.ndim == 2 and a.ndim > 2:  # a shared weight: every leading axis of a and ct folds into rows
        da, db = _mm_bwd((a.reshape(-1, a.shape[-1]), b), ct.reshape(-1, ct.shape[-1]))
        return da.reshape(a.shape), db
    ct = ct.astype(a.dtype)
    da = jnp.matmul(ct, _row_major(jnp.swapaxes(b, -1, -2)), preferred_element_type=jnp.float32)
    db = jnp.matmul(_row_major(jnp.swapaxes(a, -1, -2)), ct, preferred_element_type=jnp.float32)
    return da.astype(a.dtype), db.astype(b.dtype)


def _row_major(a: Array) -> Array:
    """`a` with a row-major physical layout, for a bf16 matmul operand on CPU; unchanged otherwise.

    XLA:CPU runs a bf16 matmul on its bf16 kernels only when both operands are row-major [m, k] and
    [k, n]; given a transposed operand (every backward matmul) it converts both to f32 and runs the
    f32 kernel at half the speed. Asking for the transpose to be materialised costs one copy of the
    operand and puts the matmul back on the bf16 kernel (about 1.9x faster for SmolLM2's shapes).
    TPUs and GPUs read transposed operands natively, so they keep XLA's own choice.
    """
    if a.dtype != jnp.bfloat16 or jax.default_backend() != "cpu":
        return a
    return with_layout_constraint(a, Layout(major_to_minor=tuple(range(a.ndim))))


_mm.defvjp(_mm_fwd, _mm_bwd)


def _dense(cfg: LlamaConfig, features: int, names, name: str):
    return LoRADense(cfg, features, tuple(names), name=name)


def _causal_blocks(t: int) -> list[tuple[int, int]]:
    """Query blocks [t0, t1) for `_attend_rows`: at most 8, at least 64 queries each (fewer, larger
    matmuls below that cost more than the masked work they skip)."""
    size = max(64, -(-t // 8))
    return [(t0, min(t0 + size, t)) for t0 in range(0, t, size)]


def _attend_rows(q, k, v, mask, dtype):
    """Causal GQA attention without a cache (training, scoring): q [B, T, h, D] over k, v [B, T, kvh, D]
    with `mask` [B, T, T] causal and padding; returns [B, T, kvh, g, D] f32.

    The queries are split into blocks (`_causal_blocks`) and block [t0, t1) attends keys [0, t1) only,
    the causal mask hiding the rest: at 4 to 8 blocks that skips 37% to 44% of the scores, their
    softmax and both products, forward and backward. Every real query row gets the same output, so
    every loss over real positions gets the same gradient; a row that is all padding averages
    uniformly over fewer keys, and no real position ever reads it.
    """
    assert q.shape[1] == k.shape[1], "_attend_rows is self-attention over the same T positions"
    outs = [_attend_block(q[:, t0:t1], _keys_by_head(k[:, :t1]), _values_by_head(v[:, :t1]), mask[:, t0:t1, :t1],
                          dtype) for t0, t1 in _causal_blocks(q.shape[1])]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


# [B, S, kvh, D] keys and values -> the right operands of q @ k^T and p @ v per kv head, the layout
# `_attend_block` and the KV cache use: keys [B, kvh, D, S], values [B, kvh, S, D].
_KEYS_BY_HEAD, _VALUES_BY_HEAD = (0, 2, 3, 1), (0, 2, 1, 3)


def _keys_by_head(k):
    """Keys [B, S, kvh, D] as [B, kvh, D, S], row-major (`_KEYS_BY_HEAD`)."""
    return _row_major(k.transpose(_KEYS_BY_HEAD))


def _values_by_head(v):
    """Values [B, S, kvh, D] as [B, kvh, S, D], row-major (`_VALUES_BY_HEAD`)."""
    return _row_major(v.transpose(_VALUES_BY_HEAD))


def _attend_block(q, kt, vs, mask, dtype):
    """GQA attention of q [B, T, h, D] over keys kt [B, kvh, D, S] and values vs [B, kvh, S, D] (the
    layouts of `_keys_by_head`, `_values_by_head` and the KV cache) as batched row-major matmuls;
    returns [B, T, kvh, g, D] f32.

    Each kv head's query group is laid out as one [g * T, D] block per row, so both products are
    plain [m, k] @ [k, n] matmuls (`_mm`) in the forward and the backward. Written as einsums over
    [B, S, kvh, D] keys and values, XLA:CPU ran them with transposed operands (f32 kernels under
    bf16) and added a transposing copy of the scores (of the whole cache, in decoding).
    `benchmarks/attention_paths.py` times both forms in one process.
    """
    b, t, h, d = q.shape
    kvh, s = kt.shape[1], kt.shape[3]
    g = h // kvh
    qg = _row_major(q.reshape(b, t, kvh, g, d).transpose(0, 2, 3, 1, 4)).reshape(b, kvh, g * t, d)
    scores = _mm(qg, kt).reshape(b, kvh, g, t, s) / math.sqrt(d)
    scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype).reshape(b, kvh, g * t, s)
    return _mm(probs, vs).reshape(b, kvh, g, t, d).transpose(0, 3, 1, 2, 4)


class Attention(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x, cos, sin, mask, layer_cache=None, cache_index=None):
        cfg = self.cfg
        b, t, _ = x.shape
        h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = _dense(cfg, h * d, ("embed", "q_heads"), "q_proj")(x).reshape(b, t, h, d)
        k = _dense(cfg, kvh * d, ("embed", "kv_heads"), "k_proj")(x).reshape(b, t, kvh, d)
        v = _dense(cfg, kvh * d, ("embed", "kv_heads"), "v_proj")(x).reshape(b, t, kvh, d)
        q = nn.with_logical_constraint(q, ("act_batch", "act_length", "act_heads", None))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        new_cache = None
        if layer_cache is None:
            out = _attend_rows(q, k, v, mask, cfg.jnp_dtype)
        else:
            # Write this step's keys/values at slots [cache_index, cache_index + t) and attend over the
            # whole cache, in the cache's dtype (f32 on CPU even under bf16 compute, see init_cache).
            cache_dtype = layer_cache["k"].dtype
            ck = jax.lax.dynamic_update_slice(layer_cache["k"], k.transpose(_KEYS_BY_HEAD).astype(cache_dtype),
                                              (0, 0, 0, cache_index))
            cv = jax.lax.dynamic_update_slice(layer_cache["v"], v.transpose(_VALUES_BY_HEAD).astype(cache_dtype),
                                              (0, 0, cache_index, 0))
            new_cache = {"k": ck, "v": cv}
            out = _attend_block(q.astype(cache_dtype), ck, cv, mask, cache_dtype)
        out = out.astype(cfg.jnp_dtype).reshape(b, t, h * d)
        out = _dense(cfg, cfg.hidden_size, ("q_heads", "embed"), "o_proj")(out)
        return out, new_cache


class MLP(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        gate = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "gate_proj")(x)
        up = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "up_proj")(x)
        act = nn.with_logical_constraint(nn.silu(gate) * up, ("act_batch", "act_length", "act_mlp"))
        return _dense(cfg, cfg.hidden_size, ("mlp", "embed"), "down_proj")(act)


class DecoderLayer(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache_index, layer_cache):
        x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
        attn_out, new_cache = Attention(self.cfg, name="self_attn")(
            RMSNorm(self.cfg, name="input_layernorm")(x), cos, sin, mask, layer_cache, cache_index)
        x = x + attn_out
        x = x + MLP(self.cfg, name="mlp")(RMSNorm(self.cfg, name="post_attention_layernorm")(x))
        return x, new_cache


def _remat_policy(name: str):
    return {
        "full": None,  # save nothing, recompute everything
        "dots": jax.checkpoint_policies.checkpoint_dots,
        "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    }[name]


class LlamaForCausalLM(nn.Module):
    """Llama causal LM. Call with input_ids [B, T]; returns (logits [B, T, V] f32, new_cache or None).

    attention_mask [B, T]: 1 for real tokens, 0 for padding (left padding for generation).
    positions [B, T]: RoPE positions; default is cumsum(attention_mask) - 1, which handles left padding.
    cache: from `init_cache`; when given, this call's tokens are written at cache["index"].
    logit_positions [B, K]: when given, logits only at these positions ([B, K, V]). Training needs
    them only where the next token is a target and decoding only at the last position, and the
    vocabulary projection is the model's largest matmul.
    """

    cfg: LlamaConfig

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, positions=None, cache=None, logit_positions=None):
        cfg = self.cfg
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = jnp.ones((b, t), jnp.int32)
        attention_mask = attention_mask.astype(bool)
        if positions is None:
            positions = jnp.maximum(jnp.cumsum(attention_mask, axis=-1) - 1, 0)
            if cache is not None:
                positions = positions + cache["next_position"][:, None]
        cos, sin = rope_cos_sin(positions, rope_inv_freq(cfg))

        if cache is None:
            causal = jnp.tril(jnp.ones((t, t), bool))
            mask = causal[None] & attention_mask[:, None, :]
            cache_index, layer_caches, new_valid = jnp.int32(0), None, None
        else:
            cache_index = cache["index"]
            new_valid = jax.lax.dynamic_update_slice(cache["valid"], attention_mask, (0, cache_index))
            s = new_valid.shape[1]
            query_slot = cache_index + jnp.arange(t)
            causal = jnp.arange(s)[None, :] <= query_slot[:, None]
            mask = causal[None] & new_valid[:, None, :]
            layer_caches = {"k": cache["k"], "v": cache["v"]}

        embed = nn.Embed(cfg.vocab_size, cfg.hidden_size, dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                         embedding_init=_init(("vocab", "embed")), name="embed_tokens")
        x = embed(input_ids)

        layer_cls = DecoderLayer
        if cfg.remat_policy != "none":
            layer_cls = nn.remat(DecoderLayer, policy=_remat_policy(cfg.remat_policy),
                                 prevent_cse=not cfg.scan_layers, static_argnums=())
        if cfg.scan_layers:
            stack = nn.scan(layer_cls, variable_axes={"params": 0}, split_rngs={"params": True},
                            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, 0),
                            length=cfg.num_hidden_layers, metadata_params={nn.PARTITION_NAME: "layers"})
            x, new_layer_caches = stack(cfg, name="layers")(x, cos, sin, mask, cache_index, layer_caches)
        else:
            # One buffer per layer (see init_cache): each is updated in place, never sliced or restacked.
            ks, vs = [], []
            for i in range(cfg.num_hidden_layers):
                lc = None if layer_caches is None else {"k": layer_caches["k"][i], "v": layer_caches["v"][i]}
                x, nc = layer_cls(cfg, name=f"layers_{i}")(x, cos, sin, mask, cache_index, lc)
                if nc is not None:
                    ks.append(nc["k"])
                    vs.append(nc["v"])
            new_layer_caches = {"k": tuple(ks), "v": tuple(vs)} if ks else None

        if logit_positions is not None:
            x = jnp.take_along_axis(x, logit_positions[:, :, None].astype(jnp.int32), axis=1)
        x = RMSNorm(cfg, name="norm")(x)
        if cfg.tie_word_embeddings:
            logits = _mm(x, _row_major(embed.embedding.astype(cfg.jnp_dtype).T))
        else:
            logits = LoRADense(cfg, cfg.vocab_size, ("embed", "vocab"), f32_output=True, name="lm_head")(x)
        logits = logits.astype(jnp.float32)

        new_cache = None
        if cache is not None:
            new_cache = {
                "k": new_layer_caches["k"], "v": new_layer_caches["v"], "valid": new_valid,
                "index": cache_index + t,
                "next_position": positions[:, -1] + 1,
            }
        return logits, new_cache


def init_cache(cfg: LlamaConfig, batch: int, max_len: int, dtype=None) -> dict:
    """An empty KV cache for `batch` rows and `max_len` slots (prompt plus new tokens).

    Keys are kept as [batch, kv_heads, head_dim, slots] and values as [batch, kv_heads, slots,
    head_dim]: the right operands of the two attention matmuls as they are (`_attend_block`), so a
    decode step reads the cache without transposing it. Stacked into one [layers, ...] array when
    the layers are scanned, a tuple of per-layer arrays when they are unrolled (so XLA updates each
    in place instead of copying the stack).

    dtype: by default the compute dtype, except f32 on CPU: XLA:CPU has no bf16 dynamic-update-slice
    and would convert the whole bf16 cache to f32 and back at every step, to write one slot.
    """
    if dtype is None:
        dtype = jnp.float32 if jax.default_backend() == "cpu" else cfg.jnp_dtype
    kvh, d, layers = cfg.num_key_value_heads, cfg.head_dim, cfg.num_hidden_layers
    k_shape, v_shape = (batch, kvh, d, max_len), (batch, kvh, max_len, d)
    if cfg.scan_layers:
        k, v = jnp.zeros((layers,) + k_shape, dtype), jnp.zeros((layers,) + v_shape, dtype)
    else:
        k = tuple(jnp.zeros(k_shape, dtype) for _ in range(layers))
        v = tuple(jnp.zeros(v_shape, dtype) for _ in range(layers))
    return {
        "k": k, "v": v,
        "valid": jnp.zeros((batch, max_len), bool),
        "index": jnp.int32(0),
        "next_position": jnp.zeros((batch,), jnp.int32),
    }


def init_params(cfg: LlamaConfig, rng: Any, seq_len: int = 8) -> dict:
    """Random params (unboxed plain arrays) for `cfg`."""
    model = LlamaForCausalLM(cfg)
    variables = model.init(rng, jnp.zeros((1, seq_len), jnp.int32))
    return nn.meta.unbox(variables["params"])


def abstract_params(cfg: LlamaConfig, seq_len: int = 8):
    """Boxed abstract params (shapes + logical axis names), no memory allocated."""
    model = LlamaForCausalLM(cfg)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, seq_len), jnp.int32)))
    return variables["params"]


@functools.partial(jax.jit, static_argnums=0)
def forward(cfg: LlamaConfig, params, input_ids, attention_mask=None):
    """Jitted logits for a batch (no cache)."""
    logits, _ = LlamaForCausalLM(cfg).apply({"params": params}, input_ids, attention_mask)
    return logits
