"""Training attention written two ways, paired in one process: batched row-major matmuls
(`_attend_rows`, what the model trains with) vs the einsums that decoding uses (`_attend_cached`).

Two trainers of the SmolLM2-135M architecture (random init, batch 8 x 256, half the tokens
targets, AdamW with clipping) are compiled, one per attention form, and their steps alternate
(the order flips every round), so this shared machine's slow spells hit both alike. Prints each
form's median step, the ratio of the medians and the median of the per-round ratios.

  python benchmarks/attention_paths.py [--layers 30 --rounds 8 --precision bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import SMOLLM2, jax_step, random_batch  # noqa: E402

from llm2llm_jax.allocator import malloc_setting, reexec_with_reusing_malloc  # noqa: E402
from llm2llm_jax.model import llama  # noqa: E402
from llm2llm_jax.model.config import LlamaConfig  # noqa: E402
from llm2llm_jax.train import host_params  # noqa: E402


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
    for name, attend in (("rows (_attend_rows)", rows), ("einsums (_attend_cached)", llama._attend_cached)):
        llama._attend_rows = attend  # what Attention calls when there is no cache; read when the step is traced
        steps[name] = jax_step(cfg, params, batch)
        steps[name]()  # compile now, while this form is in place
    llama._attend_rows = rows

    times = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    (a, ta), (b, tb) = times.items()
    print(f"SmolLM2-135M architecture, {args.layers} layers, {args.precision}, batch 8 x 256, "
          f"{args.rounds} alternated rounds; {malloc_setting()}")
    for name, t in times.items():
        print(f"  {name:26s} median step {statistics.median(t) * 1e3:7.0f} ms")
    per_round = [y / x for x, y in zip(ta, tb)]
    print(f"  einsums / rows: {statistics.median(tb) / statistics.median(ta):.3f}x (ratio of medians), "
          f"{statistics.median(per_round):.3f}x (median of per-round ratios, {min(per_round):.3f}-{max(per_round):.3f})")


if __name__ == "__main__":
    reexec_with_reusing_malloc()
    main()
