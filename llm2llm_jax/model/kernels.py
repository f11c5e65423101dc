"""Hardware-specific implementations behind `LlamaConfig.kernels`: the matmul, attention with and without the
KV cache, and the cache's layout.

Two sets with one interface (`Kernels`), so the model (`llama.py`) never asks what it runs on:

  xla  plain jnp / einsum with automatic differentiation. Matmuls return the compute dtype (TPUs and
       GPUs accumulate bf16 products in f32 inside the matmul unit), so the backward matmuls stay in
       bf16 too; the KV cache is kept in the compute dtype; XLA chooses every physical layout. Training
       attention (`LlamaConfig.fused_attention`): "off" builds the whole score matrix; "xla" / "cudnn"
       go through `jax.nn.dot_product_attention` with that implementation, by sequence lengths when the
       batch is right-padded (cuDNN then never reads a mask); "blocked" is attention.py's
       `blocked_attention`, causal query blocks with a flash-style backward; "auto" is chosen per
       device kind (`hardware.resolve_attention`).
  cpu  shaped for XLA:CPU's matmul kernels: a matmul with a hand-written backward, bf16 operands laid
       out row-major, training attention in causal query blocks of batched row-major matmuls, and a KV
       cache kept in f32 in the operand layouts of the two attention products.

Which set, training attention and compute dtype a model gets on its devices is `hardware.py`'s to decide;
`LlamaConfig.with_kernels_for` applies its choices once, when a model is built for a mesh, and
`for_config` here hands the model the set they name.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.experimental.layout import Layout, with_layout_constraint

from llm2llm_jax.model.attention import MASK_VALUE, AttentionMask, blocked_attention, causal_blocks
from llm2llm_jax.model.hardware import FUSED_ATTENTION, KernelError

Array = jax.Array


def for_config(cfg) -> Kernels:
    """The kernel set a config names (already resolved: 'xla' or 'cpu')."""
    if cfg.kernels == "cpu":
        return CpuKernels()
    if cfg.kernels == "xla" and cfg.fused_attention != "auto":
        return XlaKernels(cfg.fused_attention)
    raise KernelError(
        f"kernels={cfg.kernels!r}, fused_attention={cfg.fused_attention!r} must be resolved for the devices "
        "first (LlamaConfig.with_kernels_for)"
    )


class Kernels:
    """One kernel set. Shapes: q [B, T, heads, D]; k, v [B, S, kv_heads, D]; mask an `AttentionMask`;
    attention returns [B, T, kv_heads, group, D] in f32 or the compute dtype."""

    name = ""

    def matmul(self, a: Array, b: Array) -> Array:
        """a [..., m, k] @ b [..., k, n], or a [..., k] @ a weight b [k, n], multiplied in a's dtype (b, a
        weight as stored, is cast to it) and accumulated in f32; the result is f32 or a's dtype (callers
        cast it to what they need)."""
        raise NotImplementedError

    def tied_head(self, x: Array, embedding: Array) -> Array:
        """x [..., embed] @ embedding [vocab, embed]^T, the table as stored, multiplied in x's dtype: the
        vocabulary head of a tied model."""
        raise NotImplementedError

    def attend(self, q: Array, k: Array, v: Array, mask: AttentionMask, dtype) -> Array:
        """Causal attention without a cache (training, scoring): T == S."""
        raise NotImplementedError

    def init_cache(self, cfg, batch: int, max_len: int, dtype=None) -> dict:
        """{'k', 'v'}: an empty cache for `batch` rows and `max_len` slots, stacked [layers, ...] when the
        layers are scanned and a tuple of per-layer arrays when they are unrolled (so that XLA updates
        each in place instead of copying the stack). dtype None: this set's default."""
        k_shape, v_shape = self.cache_shapes(batch, cfg.num_key_value_heads, cfg.head_dim, max_len)
        dtype = self.cache_dtype(cfg) if dtype is None else dtype
        layers = cfg.num_hidden_layers
        if cfg.scan_layers:
            return {"k": jnp.zeros((layers,) + k_shape, dtype), "v": jnp.zeros((layers,) + v_shape, dtype)}
        return {
            "k": tuple(jnp.zeros(k_shape, dtype) for _ in range(layers)),
            "v": tuple(jnp.zeros(v_shape, dtype) for _ in range(layers)),
        }

    def cache_shapes(self, batch: int, kv_heads: int, head_dim: int, slots: int) -> tuple[tuple, tuple]:
        raise NotImplementedError

    def cache_dtype(self, cfg):
        raise NotImplementedError

    def attend_cached(
        self, q: Array, k: Array, v: Array, layer_cache: dict, index: Array, mask: Array
    ) -> tuple[Array, dict]:
        """Write this step's k, v at slots [index, index + T) of one layer's cache and attend over the
        whole cache (mask [B, T, slots], dense); returns (attention output, the updated layer cache)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- xla
def einsum_attention(q, k, v, mask, dtype, kv_layout: str = "bskd"):
    """GQA softmax attention as two einsums: q [B, T, h, D] over keys and values laid out as `kv_layout`
    ('bskd': [B, S, kvh, D]; 'bksd': [B, kvh, S, D]); returns [B, T, kvh, g, D] in `dtype`.

    The scores come out of the matmul in the operands' dtype and the softmax runs in f32, as
    transformers does; the probabilities are cast back to `dtype` for the second product."""
    b, t, h, d = q.shape
    kvh = k.shape[kv_layout.index("k")]
    qg = q.reshape(b, t, kvh, h // kvh, d)
    scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", qg, k).astype(jnp.float32) / math.sqrt(d)
    scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
    return jnp.einsum(f"bkgts,{kv_layout}->btkgd", probs, v)


def fused_attention(q, k, v, mask: AttentionMask, implementation: str):
    """`jax.nn.dot_product_attention` with the causal flag (cuDNN then skips the masked blocks); returns
    [B, T, kvh, g, D] in q's dtype.

    A right-padded batch with no window, or a window known when tracing, goes by sequence lengths, so
    no mask or bias exists and cuDNN's backward computes no bias gradient; any other batch (left
    padding, a window chosen per layer inside a scanned stack) passes the dense mask."""
    b, t, h, d = q.shape
    kvh = k.shape[2]
    static_window = mask.window is None or isinstance(mask.window, int)
    if mask.lengths is not None and static_window:
        window = None if mask.window is None else (mask.window - 1, 0)
        lengths = mask.lengths.astype(jnp.int32)
        out = jax.nn.dot_product_attention(
            q,
            k,
            v,
            is_causal=True,
            query_seq_lengths=lengths,
            key_value_seq_lengths=lengths,
            local_window_size=window,
            implementation=implementation,
        )
    else:
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask.dense[:, None], is_causal=True, implementation=implementation
        )
    return out.reshape(b, t, kvh, h // kvh, d)


class XlaKernels(Kernels):
    """Plain jnp/einsum, automatic differentiation, the cache [B, kvh, S, D] in the compute dtype."""

    name = "xla"

    def __init__(self, fused: str = "off"):
        # 'auto' is resolved for the devices first (`hardware.resolve_attention`)
        if fused not in FUSED_ATTENTION[1:]:
            raise KernelError(f"model.fused_attention={fused!r}: choose one of {FUSED_ATTENTION[1:]}")
        self.fused = fused

    def matmul(self, a, b):
        return jnp.matmul(a, b.astype(a.dtype))

    def tied_head(self, x, embedding):
        return jnp.einsum("...e,ve->...v", x, embedding.astype(x.dtype))

    def attend(self, q, k, v, mask, dtype):
        if self.fused == "blocked":
            return blocked_attention(q, k, v, mask, dtype)
        if self.fused != "off":
            return fused_attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), mask, self.fused)
        return einsum_attention(q, k, v, mask.dense, dtype)

    def cache_shapes(self, batch, kv_heads, head_dim, slots):
        shape = (batch, kv_heads, slots, head_dim)  # heads before slots: the batch dims of both products lead
        return shape, shape

    def cache_dtype(self, cfg):
        return cfg.jnp_dtype

    def attend_cached(self, q, k, v, layer_cache, index, mask):
        dtype = layer_cache["k"].dtype
        new = {
            name: jax.lax.dynamic_update_slice(
                layer_cache[name], x.transpose(0, 2, 1, 3).astype(dtype), (0, 0, index, 0)
            )
            for name, x in (("k", k), ("v", v))
        }
        return einsum_attention(q.astype(dtype), new["k"], new["v"], mask, dtype, kv_layout="bksd"), new


# ---------------------------------------------------------------------------- cpu
@jax.custom_vjp
def cpu_matmul(a, b):
    """a [..., m, k] @ b [..., k, n] (batched) or a [..., k] @ b [k, n] (a weight shared by every
    leading axis of a), in a's dtype with f32 accumulation and a hand-written backward (`_cpu_matmul_bwd`).

    b is cast to a's dtype here, so a weight is passed as it is stored (f32 master weights under bf16
    compute): its gradient is summed in f32 and returned in b's dtype, not rounded through a's on the way.
    """
    return jnp.matmul(a, row_major(b.astype(a.dtype)), preferred_element_type=jnp.float32)


def _cpu_matmul_fwd(a, b):
    return cpu_matmul(a, b), (a, b)


def _cpu_matmul_bwd(res, ct):
    """da = ct @ b^T (or (b @ ct^T)^T when a is bf16 and has few rows) and db = a^T @ ct, each a plain
    row-major matmul.

    Left to autodiff, XLA:CPU transposes the [tokens, 1536] MLP cotangent inside the fused SiLU
    backward, a slow strided loop; transposing the [tokens, 576] input instead is cheaper. For bf16
    operands the cotangent is cast down so both backward matmuls stay on the bf16 kernels, and the
    transposed operands are laid out row-major first (`row_major`).
    """
    a, b = res
    if b.ndim == 2 and a.ndim > 2:  # a shared weight: every leading axis of a and ct folds into rows
        da, db = _cpu_matmul_bwd((a.reshape(-1, a.shape[-1]), b), ct.reshape(-1, ct.shape[-1]))
        return da.reshape(a.shape), db
    ct = ct.astype(a.dtype)
    if _transpose_the_activations(a, b):
        # da^T = b @ ct^T: the weight as stored on the left, only the smaller [rows, ...] arrays transposed
        da_t = jnp.matmul(row_major(b.astype(a.dtype)), row_major(ct.T), preferred_element_type=jnp.float32)
        da = laid_out_row_major(da_t).T
    else:
        bt = row_major(jnp.swapaxes(b.astype(a.dtype), -1, -2))
        da = jnp.matmul(ct, bt, preferred_element_type=jnp.float32)
    db = jnp.matmul(row_major(jnp.swapaxes(a, -1, -2)), ct, preferred_element_type=jnp.float32)
    # db is row-major even where b was a transposed view (the tied head's table): transposed, XLA would
    # ask the bf16 matmul for a column-major result, which it cannot write
    return da.astype(a.dtype), laid_out_row_major(db).astype(b.dtype)


cpu_matmul.defvjp(_cpu_matmul_fwd, _cpu_matmul_bwd)


def _transpose_the_activations(a: Array, b: Array) -> bool:
    """Whether da = ct @ b^T is cheaper as (b @ ct^T)^T for a bf16 a [m, k] and a weight b [k, n], by the
    bytes of the transposed copies: the weight's [n, k] (read as stored, written in a's dtype) against
    ct^T's [n, m] and da^T's [k, m] (an f32 product written back in a's dtype). A fine-tune's few hundred
    rows are fewer than a weight's sides, so its backward then transposes activations, not every weight."""
    if a.dtype != jnp.bfloat16 or a.ndim != 2 or b.ndim != 2:
        return False  # f32 matmuls take transposed operands as they are; batched ones keep one form
    (m, k), n, size = a.shape, b.shape[1], a.dtype.itemsize
    weight_copy = k * n * (b.dtype.itemsize + size)
    activation_copies = m * n * 2 * size + k * m * (4 + size)
    return activation_copies < weight_copy


def row_major(a: Array) -> Array:
    """`a` with a row-major physical layout when it is a bf16 matmul operand; unchanged otherwise.

    XLA:CPU runs a bf16 matmul on its bf16 kernels only when both operands are row-major [m, k] and
    [k, n]; given a transposed operand (every backward matmul) it converts both to f32 and runs the
    f32 kernel at about half the speed. Materialising the transpose costs one copy of the operand.
    """
    if a.dtype != jnp.bfloat16:
        return a
    return laid_out_row_major(a)


def laid_out_row_major(a: Array) -> Array:
    """`a` with a row-major physical layout, whatever its dtype: for a bf16 matmul's f32 result that is
    transposed next, which XLA would otherwise fold into the matmul as a column-major output that its bf16
    kernels do not write."""
    return with_layout_constraint(a, Layout(major_to_minor=tuple(range(a.ndim))))


# The most rows `tied_head_by_table` serves: beyond them the transposes of its [vocab, rows] products
# cost more than one transposed copy of the table.
HEAD_BY_TABLE_ROWS = 192


@jax.custom_vjp
def tied_head_by_table(x, table):
    """x [n, embed] (bf16) @ table [vocab, embed]^T as table @ x^T: the table, as stored, is the left
    operand of every product, so neither direction copies it transposed; only the [n, vocab] products
    are. Returns [n, vocab] f32; the table's gradient comes back in its own dtype, summed in f32."""
    products = jnp.matmul(table.astype(x.dtype), row_major(x.T), preferred_element_type=jnp.float32)
    return laid_out_row_major(products).T


def _tied_head_by_table_fwd(x, table):
    return tied_head_by_table(x, table), (x, table)


def _tied_head_by_table_bwd(res, ct):
    x, table = res
    ct = row_major(ct.astype(x.dtype))
    dx = jnp.matmul(ct, table.astype(x.dtype), preferred_element_type=jnp.float32)
    dtable = jnp.matmul(row_major(ct.T), x, preferred_element_type=jnp.float32)
    return laid_out_row_major(dx).astype(x.dtype), laid_out_row_major(dtable).astype(table.dtype)


tied_head_by_table.defvjp(_tied_head_by_table_fwd, _tied_head_by_table_bwd)


def cpu_tied_head(x, table):
    """The tied vocabulary head on XLA:CPU, x [..., embed] in the compute dtype, the table as stored.

    A bf16 product needs the table as a row-major [embed, vocab] right operand, a transposed copy of the
    whole table in the forward and another in the backward, each several times dearer than the product
    itself when a fine-tune's step or a decoding step needs only a few dozen rows of logits; up to
    `HEAD_BY_TABLE_ROWS` rows the table is the left operand instead (`tied_head_by_table`)."""
    rows = math.prod(x.shape[:-1])
    if x.dtype == jnp.bfloat16 and rows <= HEAD_BY_TABLE_ROWS:
        flat = tied_head_by_table(x.reshape(rows, x.shape[-1]), table)
        return flat.reshape(*x.shape[:-1], table.shape[0])
    return cpu_matmul(x, table.T)


# [B, S, kvh, D] keys and values -> the right operands of q @ k^T and p @ v per kv head, the layout
# `attend_block` and the cpu KV cache use: keys [B, kvh, D, S], values [B, kvh, S, D].
KEYS_BY_HEAD, VALUES_BY_HEAD = (0, 2, 3, 1), (0, 2, 1, 3)


def keys_by_head(k):
    """Keys [B, S, kvh, D] as [B, kvh, D, S], row-major (`KEYS_BY_HEAD`)."""
    return row_major(k.transpose(KEYS_BY_HEAD))


def values_by_head(v):
    """Values [B, S, kvh, D] as [B, kvh, S, D], row-major (`VALUES_BY_HEAD`)."""
    return row_major(v.transpose(VALUES_BY_HEAD))


def attend_block(q, kt, vs, mask, dtype):
    """GQA attention of q [B, T, h, D] over keys kt [B, kvh, D, S] and values vs [B, kvh, S, D] (the
    layouts of `keys_by_head`, `values_by_head` and the cpu KV cache) as batched row-major matmuls;
    returns [B, T, kvh, g, D] f32.

    Each kv head's query group is laid out as one [g * T, D] block per row, so both products are
    plain [m, k] @ [k, n] matmuls (`cpu_matmul`) in the forward and the backward. Written as einsums
    over [B, S, kvh, D] keys and values, XLA:CPU ran them with transposed operands (f32 kernels under
    bf16) and added a transposing copy of the scores (of the whole cache, in decoding).
    """
    b, t, h, d = q.shape
    kvh, s = kt.shape[1], kt.shape[3]
    g = h // kvh
    qg = row_major(q.reshape(b, t, kvh, g, d).transpose(0, 2, 3, 1, 4)).reshape(b, kvh, g * t, d)
    scores = cpu_matmul(qg, kt).reshape(b, kvh, g, t, s) / math.sqrt(d)
    scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype).reshape(b, kvh, g * t, s)
    return cpu_matmul(probs, vs).reshape(b, kvh, g, t, d).transpose(0, 3, 1, 2, 4)


def attend_rows(q, k, v, mask, dtype):
    """Causal GQA attention without a cache: q [B, T, h, D] over k, v [B, T, kvh, D] with `mask` [B, T, T]
    causal and padding; returns [B, T, kvh, g, D] f32.

    The queries are split into blocks (`causal_blocks`) and block [t0, t1) attends keys [0, t1) only,
    the causal mask hiding the rest: at 4 to 8 blocks that skips 37% to 44% of the scores, their
    softmax and both products, forward and backward. Every real query row gets the same output, so
    every loss over real positions gets the same gradient; a row that is all padding averages
    uniformly over fewer keys, and no real position ever reads it.
    """
    assert q.shape[1] == k.shape[1], "attend_rows is self-attention over the same T positions"
    outs = [
        attend_block(
            q[:, t0:t1], keys_by_head(k[:, :t1]), values_by_head(v[:, :t1]), mask[:, t0:t1, :t1], dtype
        )
        for t0, t1 in causal_blocks(q.shape[1])
    ]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


class CpuKernels(Kernels):
    """Shaped for XLA:CPU: hand-written matmul backward, row-major bf16 operands, causal query blocks,
    the cache in f32 as keys [B, kvh, D, S] and values [B, kvh, S, D]."""

    name = "cpu"

    def matmul(self, a, b):
        return cpu_matmul(a, b)

    def tied_head(self, x, embedding):
        return cpu_tied_head(x, embedding)

    def attend(self, q, k, v, mask, dtype):
        return attend_rows(q, k, v, mask.dense, dtype)

    def cache_shapes(self, batch, kv_heads, head_dim, slots):
        return (batch, kv_heads, head_dim, slots), (batch, kv_heads, slots, head_dim)

    def cache_dtype(self, cfg):
        # f32 even under bf16 compute: XLA:CPU has no bf16 dynamic-update-slice and would convert the
        # whole bf16 cache to f32 and back at every step, to write one slot.
        return jnp.float32

    def attend_cached(self, q, k, v, layer_cache, index, mask):
        dtype = layer_cache["k"].dtype
        ck = jax.lax.dynamic_update_slice(
            layer_cache["k"], k.transpose(KEYS_BY_HEAD).astype(dtype), (0, 0, 0, index)
        )
        cv = jax.lax.dynamic_update_slice(
            layer_cache["v"], v.transpose(VALUES_BY_HEAD).astype(dtype), (0, 0, index, 0)
        )
        return attend_block(q.astype(dtype), ck, cv, mask, dtype), {"k": ck, "v": cv}
