"""The XLA flags the launcher sets on NVIDIA GPUs (`config.gpu_xla_flags`), decided before JAX starts.

XLA reads XLA_FLAGS once, when its first backend starts, so the launcher decides from what it can see
without starting one: a CUDA device node and JAX's CUDA plugin. On any other machine nothing is set.
A flag the user already put in XLA_FLAGS is left as they set it.
"""

from __future__ import annotations

import importlib.util
import os

CHOICES = ("auto", "on", "off")

# The flags the JAX GPU guides recommend for transformer training on one node.
GPU_XLA_FLAGS = (
    # schedule independent work (and any collectives) to overlap the matmuls instead of in program order
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    # every matmul on cuBLAS: the Triton GEMM emitter adds autotuning time to each compile
    "--xla_gpu_enable_triton_gemm=false",
    # autotune GEMMs without re-initialising buffers or checking each candidate's result: faster compiles
    "--xla_gpu_autotune_level=2",
)
CUDA_PLUGINS = ("jax_cuda13_plugin", "jax_cuda12_plugin")


def nvidia_gpu_visible(dev: str = "/dev") -> bool:
    """A CUDA device node exists and JAX has a CUDA plugin to drive it."""
    if not os.path.exists(os.path.join(dev, "nvidiactl")):
        return False
    return any(importlib.util.find_spec(name) is not None for name in CUDA_PLUGINS)


def with_gpu_flags(xla_flags: str, choice: str, on_gpu: bool) -> str:
    """XLA_FLAGS with `GPU_XLA_FLAGS` added when `choice` is "on", or "auto" on an NVIDIA GPU; a flag
    already named in `xla_flags` keeps the user's value."""
    if choice not in CHOICES:
        raise ValueError(f"gpu_xla_flags={choice!r}: choose one of {CHOICES}")
    if choice == "off" or (choice == "auto" and not on_gpu):
        return xla_flags
    named = {flag.split("=", 1)[0] for flag in xla_flags.split()}
    added = [flag for flag in GPU_XLA_FLAGS if flag.split("=", 1)[0] not in named]
    return " ".join([xla_flags, *added]).strip()
