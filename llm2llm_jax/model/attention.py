"""Attention that does not depend on the kernel set: which keys each query may attend (`AttentionMask`),
the causal query blocks, and `blocked_attention`, a flash-style causal attention in plain jnp that any
backend runs (`model.fused_attention=blocked` in the `xla` set). The kernel sets themselves are kernels.py.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Large finite negative instead of -inf, so fully padded query rows give uniform (not NaN) weights.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


class AttentionMask(NamedTuple):
    """Which keys each query may attend, in the forms the kernels read.

    dense [B, T, S]: True where query t may attend key slot s (causal, padding and window together).
    valid [B, S]: the real key slots. window: a sliding layer's window (a query sees the `window` latest
    slots, itself included), an int or a traced int32 scalar; None for full attention. lengths [B]: each
    row's real tokens when the batch is right-padded (they come first), else None.
    """

    dense: Array
    valid: Array
    window: Any = None
    lengths: Array | None = None


def causal_blocks(t: int) -> list[tuple[int, int]]:
    """Query blocks [t0, t1) for `blocked_attention` and the `cpu` set's `attend_rows`: at most 8, at
    least 64 queries each (fewer, larger matmuls below that cost more than the masked work they skip)."""
    size = max(64, -(-t // 8))
    return [(t0, min(t0 + size, t)) for t0 in range(0, t, size)]


def blocked_attention(q, k, v, mask: AttentionMask, dtype):
    """Causal GQA self-attention in query blocks, flash-style: q [B, T, h, D] over k, v [B, T, kvh, D];
    returns [B, T, kvh, g, D] in `dtype`.

    Query block [t0, t1) attends key slots [lo, t1) only (lo > 0 when a window known at trace time
    starts later), so the masked half of the scores is never computed. Each block's softmax keeps f32
    statistics (row max and sum) and multiplies bf16 probabilities into the values before dividing;
    the forward saves only the output and each row's log-sum-exp, and the backward recomputes one
    block's scores at a time. Peak memory is one block's scores rather than the whole [T, T] square;
    the block mask is built from `mask.valid` and positions, so left and right padding both work."""
    reach = mask.window if isinstance(mask.window, int) else None  # None: unknown until run, or no window
    window = jnp.asarray(q.shape[1] if mask.window is None else mask.window, jnp.int32)
    return _blocked(q.astype(dtype), k.astype(dtype), v.astype(dtype), mask.valid, window, reach)


def _query_groups(q, kvh):
    """q [B, T, h, D] -> [B, kvh, g, T, D]: each kv head's query group."""
    b, t, h, d = q.shape
    return q.reshape(b, t, kvh, h // kvh, d).transpose(0, 2, 3, 1, 4)


def _block_spans(t: int, reach: int | None):
    """(t0, t1, lo) per query block: queries [t0, t1) read key slots [lo, t1)."""
    return [(t0, t1, 0 if reach is None else max(0, t0 - reach + 1)) for t0, t1 in causal_blocks(t)]


def _block_scores(qg, kh, valid, window, t0, t1, lo):
    """f32 scores of queries [t0, t1) over keys [lo, t1), masked: [B, kvh, g, t1 - t0, t1 - lo]."""
    d = qg.shape[-1]
    scores = jnp.einsum(
        "bkgtd,bksd->bkgts", qg[:, :, :, t0:t1], kh[:, :, lo:t1], preferred_element_type=jnp.float32
    ) / math.sqrt(d)
    q_pos, k_pos = jnp.arange(t0, t1)[:, None], jnp.arange(lo, t1)[None, :]
    allowed = (k_pos <= q_pos) & (q_pos - k_pos < window)
    allowed = allowed[None] & valid[:, None, lo:t1]
    return jnp.where(allowed[:, None, None], scores, MASK_VALUE)


def _blocked_forward(q, k, v, valid, window, reach):
    kvh = k.shape[2]
    qg, kh, vh = _query_groups(q, kvh), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    outs, lses = [], []
    for t0, t1, lo in _block_spans(q.shape[1], reach):
        scores = _block_scores(qg, kh, valid, window, t0, t1, lo)
        top = jnp.max(scores, axis=-1, keepdims=True)
        p = jnp.exp(scores - top)
        total = jnp.sum(p, axis=-1, keepdims=True)
        o = jnp.einsum(
            "bkgts,bksd->bkgtd", p.astype(q.dtype), vh[:, :, lo:t1], preferred_element_type=jnp.float32
        )
        outs.append(o / total)
        lses.append((top + jnp.log(total))[..., 0])
    out = jnp.concatenate(outs, axis=3)  # [B, kvh, g, T, D] f32
    return out.astype(q.dtype).transpose(0, 3, 1, 2, 4), jnp.concatenate(lses, axis=3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _blocked(q, k, v, valid, window, reach):
    return _blocked_forward(q, k, v, valid, window, reach)[0]


def _blocked_fwd(q, k, v, valid, window, reach):
    out, lse = _blocked_forward(q, k, v, valid, window, reach)
    return out, (q, k, v, valid, window, out, lse)


def _blocked_bwd(reach, res, d_out):
    """Per query block: p = exp(scores - lse), dv += p^T do, dp = do v^T, ds = p (dp - rowsum(do * out)),
    dq = ds k, dk += ds^T q (the softmax scale folded into ds)."""
    q, k, v, valid, window, out, lse = res
    kvh, d = k.shape[2], q.shape[-1]
    dtype = q.dtype
    qg, kh, vh = _query_groups(q, kvh), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    do = d_out.astype(dtype).transpose(0, 2, 3, 1, 4)  # [B, kvh, g, T, D]
    delta = jnp.sum(do.astype(jnp.float32) * out.transpose(0, 2, 3, 1, 4).astype(jnp.float32), axis=-1)
    dk = jnp.zeros(kh.shape, jnp.float32)
    dv = jnp.zeros(vh.shape, jnp.float32)
    dqs = []
    for t0, t1, lo in _block_spans(q.shape[1], reach):
        scores = _block_scores(qg, kh, valid, window, t0, t1, lo)
        p = jnp.exp(scores - lse[..., t0:t1, None])
        do_b = do[:, :, :, t0:t1]
        dv = dv.at[:, :, lo:t1].add(
            jnp.einsum("bkgts,bkgtd->bksd", p.astype(dtype), do_b, preferred_element_type=jnp.float32)
        )
        dp = jnp.einsum("bkgtd,bksd->bkgts", do_b, vh[:, :, lo:t1], preferred_element_type=jnp.float32)
        ds = (p * (dp - delta[..., t0:t1, None]) / math.sqrt(d)).astype(dtype)
        dqs.append(jnp.einsum("bkgts,bksd->bkgtd", ds, kh[:, :, lo:t1], preferred_element_type=jnp.float32))
        dk = dk.at[:, :, lo:t1].add(
            jnp.einsum("bkgts,bkgtd->bksd", ds, qg[:, :, :, t0:t1], preferred_element_type=jnp.float32)
        )
    b, t, h, _ = q.shape
    dq = jnp.concatenate(dqs, axis=3).transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)
    return (
        dq.astype(dtype),
        dk.transpose(0, 2, 1, 3).astype(dtype),
        dv.transpose(0, 2, 1, 3).astype(dtype),
        None,
        None,
    )


_blocked.defvjp(_blocked_fwd, _blocked_bwd)
