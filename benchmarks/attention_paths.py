"""Training attention written three ways, timed in one process: what the model trains with
(`_attend_rows`: causal query blocks, each block's keys only, as batched row-major matmuls), the
same matmuls over all keys in one block (`_attend_block`, as decoding runs it over the cache), and
the plain way to write it: two einsums over [B, T, kv_heads, D] keys and values (`einsum_attention`).

One trainer of the SmolLM2-135M architecture (random init, batch 8 x 256, half the tokens
targets, AdamW with clipping) is compiled per form and their steps take turns (the order rotates
every round), so this shared machine's slow spells hit all alike. Prints each form's median step,
and against the first form the ratio of the medians and the median of the per-round ratios.

  python benchmarks/attention_paths.py [--layers 30 --rounds 8 --precision bf16]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import SMOLLM2, jax_step, random_batch  # noqa: E402

from llm2llm_jax.allocator import malloc_setting, reexec_with_reusing_malloc  # noqa: E402
from llm2llm_jax.model import llama  # noqa: E402
from llm2llm_jax.model.config import LlamaConfig  # noqa: E402
from llm2llm_jax.train import host_params  # noqa: E402


def einsum_attention(q, k, v, mask, dtype):
    """GQA attention as einsums over q [B, T, h, D], k, v [B, S, kvh, D]; returns [B, T, kvh, g, D] f32."""
    b, t, h, d = q.shape
    kvh = k.shape[2]
    qg = q.reshape(b, t, kvh, h // kvh, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) / math.sqrt(d)
    scores = jnp.where(mask[:, None, None, :, :], scores, llama.MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
    return jnp.einsum("bkgts,bskd->btkgd", probs, v, preferred_element_type=jnp.float32)


def one_block(q, k, v, mask, dtype):
    """`_attend_block` over all keys at once, as decoding calls it on the cache."""
    return llama._attend_block(q, llama._keys_by_head(k), llama._values_by_head(v), mask, dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--precision", default="bf16", choices=["f32", "bf16"])
    args = ap.parse_args()

    batch = random_batch(8, 256, 128)
    cfg = LlamaConfig(**dict(SMOLLM2, num_hidden_layers=args.layers), scan_layers=False,
                      dtype="bfloat16" if args.precision == "bf16" else "float32")
    params = host_params(llama.init_params(cfg, jax.random.PRNGKey(0)))

    steps = {}
    rows = llama._attend_rows
    forms = (("causal blocks (_attend_rows)", rows), ("one block (_attend_block)", one_block),
             ("einsums (einsum_attention)", einsum_attention))
    for name, attend in forms:
        llama._attend_rows = attend  # what Attention calls when there is no cache; read when the step is traced
        steps[name] = jax_step(cfg, params, batch)
        steps[name]()  # compile now, while this form is in place
    llama._attend_rows = rows

    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    print(f"SmolLM2-135M architecture, {args.layers} layers, {args.precision}, batch 8 x 256, "
          f"{args.rounds} rounds; {malloc_setting()}")
    (first, t_first), *others = times.items()
    print(f"  {first:30s} median step {statistics.median(t_first) * 1e3:7.0f} ms")
    for name, t in others:
        per_round = [y / x for x, y in zip(t_first, t)]
        print(f"  {name:30s} median step {statistics.median(t) * 1e3:7.0f} ms: "
              f"{statistics.median(t) / statistics.median(t_first):.3f}x the first (ratio of medians), "
              f"{statistics.median(per_round):.3f}x (median of per-round ratios, "
              f"{min(per_round):.3f}-{max(per_round):.3f})")


if __name__ == "__main__":
    reexec_with_reusing_malloc()
    main()
