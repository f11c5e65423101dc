"""Shared benchmark helpers: median timing, a matmul peak measured in-process, Llama FLOP counts, and
running the offline default config in a subprocess for the accuracy comparisons."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() (fn must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest_seconds(fn, repeats: int) -> float:
    """Fastest wall time of fn() over `repeats` runs after one warm-up (fn must block until done)."""
    fn()
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def matmul_peak_flops(n: int = 2048, repeats: int = 15, dtype: str = "float32") -> float:
    """FLOP/s of a jitted n x n matmul (f32 accumulation) on the default device, from its fastest of
    `repeats` runs (a peak, so that a noisy neighbour slows the measurement less): what MFU is quoted
    against."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
    return 2 * n**3 / fastest_seconds(lambda: f(a, b).block_until_ready(), repeats)


def torch_matmul_peak_flops(n: int = 2048, repeats: int = 15, dtype: str = "float32") -> float:
    """`matmul_peak_flops` for PyTorch's CPU matmul (MKL / oneDNN), same size, precision and timing."""
    import torch

    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n).to(tdtype), torch.randn(n, n).to(tdtype)
    return 2 * n**3 / fastest_seconds(lambda: torch.matmul(a, b), repeats)


def matmul_params(cfg) -> tuple[int, int]:
    """(weights of the seven projections over all layers, weights of the vocabulary head): the
    multiply-adds per token of a forward pass, attention aside."""
    h, i, v, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    return L * (h * q + 2 * h * kv + q * h + 3 * h * i), h * v


def train_flops_per_token(cfg, seq_len: int, head_fraction: float = 1.0) -> float:
    """Forward + backward FLOPs per token (6 x matmul params, causal attention halved), with the
    vocabulary projection run on `head_fraction` of the tokens (1.0: all of them)."""
    layer_params, head_params = matmul_params(cfg)
    q = cfg.num_attention_heads * cfg.head_dim
    attention = cfg.num_hidden_layers * 2 * 2 * seq_len * q / 2  # QK^T and PV, 2 flops per MAC, causal half
    return 6 * (layer_params + head_fraction * head_params) + 3 * attention


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_offline_default(workdir: str, *overrides: str) -> list[dict]:
    """Run `launch/run.py --config=configs/default.py` with these overrides (progress bars off) into
    `workdir`, as a user would; returns its metrics.jsonl rows, one per iteration."""
    cmd = [sys.executable, os.path.join(ROOT, "launch", "run.py"), "--config=configs/default.py",
           f"--config.workdir={workdir}", "--config.progress=False", *overrides]
    print("running:", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(os.path.join(ROOT, workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
