"""7B-class train steps compiled (never run) for an 8-device mesh: per-device memory, and whether it fits.

The models: Llama-2-7B (the paper's) and the example configs' instruct students of each family (--models).

Lowers and compiles from abstract shapes only (nothing is allocated), on 8 simulated CPU devices,
then prints XLA's memory analysis per device for full fine-tuning and for LoRA. The model is built
with the `xla` kernels (--kernels), the set a TPU or GPU mesh resolves 'auto' to, so no CPU-only
layout copies are counted; the CPU compiler's buffer assignment stands in for the TPU's, so treat
the figures as estimates of a TPU compile.

  python benchmarks/compile_7b.py [--models llama-2-7b,qwen2.5-7b,qwen3-8b,llama-3.1-8b,gemma-3-4b \
      --mesh 1,8,1
                                   --micro-batch 8 --seq 1024 --targets 1024 --chip-gib 32 --kernels xla]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODEL_SHAPES

from llm2llm_jax.common import parallel
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.student.train import Trainer

MODELS = ("llama-2-7b", "qwen2.5-7b", "qwen3-8b", "llama-3.1-8b", "gemma-3-4b")
GIB = 1024**3


def analyse(name, cfg, hp, mesh, batch_shape, targets, chip_gib):
    trainer = Trainer(cfg, hp, mesh, total_steps=1000)
    state = trainer.abstract_state()
    compiled = trainer.lower_step(state, batch_shape, targets).compile()
    mem = compiled.memory_analysis()
    args, out, temp = mem.argument_size_in_bytes, mem.output_size_in_bytes, mem.temp_size_in_bytes
    alias = getattr(mem, "alias_size_in_bytes", 0)
    total = args + out - alias + temp + mem.generated_code_size_in_bytes
    verdict = "fits" if total <= chip_gib * GIB else "does NOT fit"
    print(
        f"{name:<40} params {cfg.num_params() / 1e9:.2f}B  per device: arguments {args / GIB:6.2f} GiB, "
        f"outputs {out / GIB:6.2f} GiB (aliased {alias / GIB:6.2f}), temporaries {temp / GIB:6.2f} GiB, "
        f"total {total / GIB:6.2f} GiB -> {verdict} a {chip_gib} GiB chip",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="llama-2-7b", help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--mesh", default="1,8,1", help="data,fsdp,tensor")
    ap.add_argument("--micro-batch", type=int, default=8, help="global rows per accumulation step")
    ap.add_argument(
        "--accum", type=int, default=16, help="accumulation steps (16 x 8 = the paper's batch 128)"
    )
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument(
        "--targets",
        type=int,
        default=0,
        help="target tokens per row (the LM head runs only there); default --seq, the worst case",
    )
    ap.add_argument("--chip-gib", type=float, default=32)
    ap.add_argument(
        "--kernels",
        default="xla",
        choices=["xla", "cpu"],
        help="kernel set (xla: what a TPU or GPU mesh runs; cpu: what this CPU would run)",
    )
    args = ap.parse_args()
    mesh = parallel.make_mesh([int(x) for x in args.mesh.split(",")])
    hp = TrainHParams(batch_size=args.micro_batch * args.accum, micro_batch_size=args.micro_batch)
    shape = (args.accum, args.micro_batch, args.seq)
    targets = args.targets or args.seq
    for name in args.models.split(","):
        if name not in MODELS:
            ap.error(f"--models: {name!r} is not one of {', '.join(MODELS)}")
        shape_cfg = MODEL_SHAPES[name]
        print(
            f"{name} train step, mesh (data, fsdp, tensor) = {tuple(mesh.devices.shape)}, batch {shape} "
            f"[accum, rows, tokens], {targets} targets per row, kernels={args.kernels}, jax {jax.__version__}"
        )
        full = LlamaConfig(
            **shape_cfg, param_dtype="float32", dtype="bfloat16", remat_policy="full", kernels=args.kernels
        )
        analyse(
            f"{name} full fine-tune (f32 params+Adam, bf16)", full, hp, mesh, shape, targets, args.chip_gib
        )
        lora = LlamaConfig(
            **shape_cfg,
            param_dtype="bfloat16",
            dtype="bfloat16",
            remat_policy="full",
            lora_rank=16,
            kernels=args.kernels,
        )
        analyse(f"{name} LoRA r=16 (bf16 frozen base)", lora, hp, mesh, shape, targets, args.chip_gib)


if __name__ == "__main__":
    main()
