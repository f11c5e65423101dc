"""What the fine-tuning loop costs beyond its steps: time per step of `Trainer.fit` minus the step alone.

A small Llama (random weights, one device) trains for --steps steps through `fit`, twice side by side in
this process: as the loop used to run (the learning rate evaluated on the device before each step and
waited for, the metrics fetched after every step) and as it runs now (every rate evaluated before
training, each batch placed a step ahead, metrics fetched every FETCH_EVERY steps). The step alone is the
same compiled step called back to back on one placed batch. Prints the median of --repeats fits each,
the overhead per step of each loop, and their difference.

  python benchmarks/loop_overhead.py [--steps 64 --repeats 3 --hidden 256 --layers 4 --batch 8 --seq 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_seconds

from llm2llm_jax.common import parallel
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.student import train
from llm2llm_jax.student.batching import Example
from llm2llm_jax.student.recipe import TrainHParams, learning_rate_schedule
from llm2llm_jax.student.train import Trainer, host_params


def old_step(trainer: Trainer, schedule):
    """The step as the loop used to take it: the schedule evaluated eagerly and waited for, first."""
    real = trainer.step

    def step(batch):
        trainer.rates[trainer.steps_done] = np.float32(schedule(jnp.int32(trainer.steps_done)))
        return real(batch)

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()

    cfg = LlamaConfig(
        vocab_size=4096,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 4,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4 * args.seq,
    )
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    rs = np.random.RandomState(0)
    # Every example the same length: one batch shape, one compilation, so only the loop differs.
    examples = [
        Example(list(rs.randint(3, 4096, args.seq - 8)), list(rs.randint(3, 4096, 8)))
        for _ in range(args.batch * args.steps)
    ]
    hp = TrainHParams(batch_size=args.batch, epochs=1, seq_multiple=args.seq, max_length=args.seq)
    mesh = parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1])

    def fit_seconds(old: bool) -> float:
        train.FETCH_EVERY = 1 if old else 16
        trainer = Trainer(cfg, hp, mesh, total_steps=args.steps)
        trainer.init_state(params)
        if old:
            trainer.step = old_step(trainer, learning_rate_schedule(hp, args.steps))
        trainer.fit(examples[: args.batch * 2], progress=False)  # compile outside the timing
        trainer.init_state(params)
        trainer.steps_done = 0
        start = time.perf_counter()
        trainer.fit(examples, progress=False)
        jax.block_until_ready(trainer.state)
        return (time.perf_counter() - start) / args.steps

    trainer = Trainer(cfg, hp, mesh, total_steps=10**6)
    trainer.init_state(params)
    batch = trainer.place_batch(next(iter(train.make_batches(examples, hp, np.random.default_rng(0)))))
    alone = median_seconds(lambda: jax.block_until_ready(trainer.step(batch)), repeats=args.steps, warmup=2)
    old = sorted(fit_seconds(True) for _ in range(args.repeats))[args.repeats // 2]
    new = sorted(fit_seconds(False) for _ in range(args.repeats))[args.repeats // 2]
    print(
        f"{args.layers} layers x {args.hidden}, batch {args.batch} x {args.seq}, {args.steps} steps, "
        f"median of {args.repeats} fits; device {jax.devices()[0].device_kind}"
    )
    print(f"step alone               {alone * 1e3:8.2f} ms")
    for name, seconds in (("loop as it was", old), ("loop now", new)):
        print(f"{name:24s} {seconds * 1e3:8.2f} ms per step, overhead {(seconds - alone) * 1e3:7.2f} ms")
    print(f"loop now minus loop as it was: {(new - old) * 1e3:+.2f} ms per step")


if __name__ == "__main__":
    main()
