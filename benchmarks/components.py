"""The train step's parts timed apart, to find where a step's time goes: one layer's attention forward and
backward through each training path, the AdamW update of the whole model, and the vocabulary head with the
loss.

Each part is compiled first (its compile seconds printed apart), then timed: the median of --repeats
blocking calls. Attention paths (`model.fused_attention`): `off` (two einsums, the whole score matrix),
`xla` (jax.nn.dot_product_attention's XLA implementation by sequence lengths), `cudnn` (its cuDNN one, on
a GPU), `blocked` (causal query blocks, flash-style backward). Their rate counts causal attention's FLOPs
(half the square) forward and backward, whatever a path really computes.

  python benchmarks/components.py [--model llama-3.2-1b --batch 8 --seq 1024 --targets 512 --repeats 10
                                   --attention off,xla,blocked --json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_SHAPES, datasheet_peak, median_seconds, on_gpu

from llm2llm_jax.model import attention, kernels
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import abstract_params
from llm2llm_jax.student.recipe import TrainHParams, at_learning_rate, make_optimizer
from llm2llm_jax.student.step import target_nll


def compiled(fn, *args):
    """(fn compiled for args, seconds to lower and compile it)."""
    start = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    return exe, time.perf_counter() - start


def timed(name: str, fn, args, repeats: int, flops: float, peak: float) -> dict:
    """Compile `fn` for `args`, time it; prints and returns the row."""
    exe, compile_s = compiled(fn, *args)
    seconds = median_seconds(lambda: jax.block_until_ready(exe(*args)), repeats=repeats, warmup=1)
    row = {"compile_s": round(compile_s, 2), "ms": seconds * 1e3, "tflops": flops / seconds / 1e12}
    if peak:
        row["of_peak"] = flops / seconds / peak
    print(
        f"[components] {name:28s} compile {compile_s:6.1f} s  {seconds * 1e3:9.2f} ms  "
        f"{row['tflops']:7.2f} TFLOP/s" + (f"  ({row['of_peak']:.0%} of peak)" if peak else ""),
        flush=True,
    )
    return row


def attention_rows(cfg: LlamaConfig, batch: int, seq: int, paths, repeats: int, peak: float) -> dict:
    """One layer's training attention, forward and backward, per path."""
    h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    dt = jnp.bfloat16
    q, k, v = (jax.random.normal(key, (batch, seq, n, d), dt) for key, n in zip(keys, (h, kvh, kvh)))
    lengths = jnp.full((batch,), seq, jnp.int32) - jnp.arange(batch, dtype=jnp.int32) * (seq // (4 * batch))
    valid = jnp.arange(seq)[None, :] < lengths[:, None]  # right padding, as training batches have
    dense = jnp.tril(jnp.ones((seq, seq), bool))[None] & valid[:, None, :]
    mask = attention.AttentionMask(dense, valid, None, lengths)
    weights = jax.random.normal(keys[3], (batch, seq, kvh, h // kvh, d), dt)
    flops = 3 * 4 * batch * h * d * seq * seq / 2  # causal: half the square; backward twice the forward
    rows = {}
    for path in paths:
        ks = kernels.XlaKernels(path)

        def loss(q, k, v, ks=ks):
            return jnp.sum(ks.attend(q, k, v, mask, dt).astype(jnp.float32) * weights)

        try:
            rows[path] = timed(
                f"attention {path}", jax.grad(loss, argnums=(0, 1, 2)), (q, k, v), repeats, flops, peak
            )
        except Exception as e:  # noqa: BLE001 - one path failing (cuDNN shape limits) must not end the rest
            rows[path] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            print(f"[components] attention {path}: {rows[path]['error']}", flush=True)
    return rows


def optimizer_row(cfg: LlamaConfig, repeats: int, peak: float) -> dict:
    """AdamW with clipping over the whole model's f32 parameters, as the train step applies it."""
    shapes = jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, abstract_params(cfg))
    params = jax.tree.map(lambda s: jnp.full(s.shape, 0.01, jnp.float32), shapes)
    grads = jax.tree.map(lambda p: p * 0.1, params)
    opt = make_optimizer(TrainHParams(max_grad_norm=1.0))
    state = opt.init(params)

    def update(params, grads, state):
        updates, state = opt.update(grads, state, params)
        return jax.tree.map(jnp.add, params, at_learning_rate(updates, 1e-5)), state

    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return timed("adamw update", update, (params, grads, state), repeats, 12.0 * n, 0.0)


def head_row(cfg: LlamaConfig, batch: int, targets: int, repeats: int, peak: float) -> dict:
    """The tied vocabulary head on the target positions and the loss, forward and backward."""
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.normal(keys[0], (batch, targets, cfg.hidden_size), jnp.bfloat16)
    table = jax.random.normal(keys[1], (cfg.vocab_size, cfg.hidden_size), jnp.float32) * 0.02
    ids = jax.random.randint(keys[2], (batch, targets), 0, cfg.vocab_size)

    def loss(x, table):
        logits = jnp.einsum("bte,ve->btv", x, table.astype(jnp.bfloat16)).astype(jnp.float32)
        total, count = target_nll(logits, ids, jnp.ones_like(ids))
        return total / count

    flops = 3 * 2 * batch * targets * cfg.hidden_size * cfg.vocab_size
    return timed("head + loss", jax.grad(loss, argnums=(0, 1)), (x, table), repeats, flops, peak)


def main() -> None:
    gpu = on_gpu()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.2-1b", choices=sorted(MODEL_SHAPES) + ["tiny"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--targets", type=int, default=0, help="head positions per row (default seq / 2)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--attention", default="off,xla,cudnn,blocked" if gpu else "off,xla,blocked")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    if args.model == "tiny":
        from llm2llm_jax.model.config import tiny_config

        cfg = tiny_config(kernels="xla", dtype="bfloat16")
    else:
        cfg = LlamaConfig(**MODEL_SHAPES[args.model], kernels="xla", dtype="bfloat16")
    peak = datasheet_peak(jax.devices()[0].device_kind) or 0.0
    print(
        f"{args.model} shapes, bf16, batch {args.batch} x {args.seq}; {jax.devices()[0].device_kind}"
        + (f", datasheet peak {peak / 1e12:.0f} TFLOP/s" if peak else ""),
        flush=True,
    )
    figures = {
        "model": args.model,
        "batch": args.batch,
        "seq": args.seq,
        "device": jax.devices()[0].device_kind,
    }

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)

    figures["attention"] = attention_rows(
        cfg, args.batch, args.seq, args.attention.split(","), args.repeats, peak
    )
    save()
    figures["head_loss"] = head_row(cfg, args.batch, args.targets or args.seq // 2, args.repeats, peak)
    save()
    figures["optimizer"] = optimizer_row(cfg, args.repeats, peak)
    save()


if __name__ == "__main__":
    main()
