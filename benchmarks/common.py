"""Shared benchmark helpers: model shapes, PyTorch's matmul rate beside JAX's (the FLOP counts, median timing,
JAX's rate and the datasheet peaks live in llm2llm_jax/student/flops.py), the PyTorch device, and running the
offline default config in a subprocess."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import jax

# Re-exported: the benchmarks count FLOPs and time the matmul rate the way the package does.
from llm2llm_jax.student.flops import (  # noqa: F401
    datasheet_peak,
    device_matmul_rate,
    matmul_params,
    matmul_rate,
    median_seconds,
    train_flops_per_token,
)

# Architectures the speed benchmarks time (random weights: speed does not depend on them).
MODEL_SHAPES = {
    "smollm2-135m": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "llama-3.2-1b": dict(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        bos_token_id=128000,
        eos_token_id=128001,
    ),
    "llama-2-7b": dict(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
    ),
    # The example configs' paper-sized instruct students (numbers from their config.json files).
    "qwen2.5-7b": dict(
        family="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=151645,
    ),
    "qwen3-8b": dict(
        family="qwen3",
        vocab_size=151936,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        rope_theta=1000000.0,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=151645,
    ),
    "llama-3.1-8b": dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        bos_token_id=128000,
        eos_token_id=(128001, 128008, 128009),
    ),
    "gemma-3-4b": dict(
        family="gemma3",
        vocab_size=262208,
        hidden_size=2560,
        intermediate_size=10240,
        num_hidden_layers=34,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        sliding_window=1024,
        layer_types=tuple("full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(34)),
        rope_theta=1000000.0,
        rope_scaling={"rope_type": "linear", "factor": 8.0},
        rope_local_theta=10000.0,
        query_pre_attn_scalar=256.0,
        tie_word_embeddings=True,
        max_position_embeddings=131072,
        rms_norm_eps=1e-6,
        bos_token_id=2,
        eos_token_id=(1, 106),
    ),
    # For dry runs of the benchmark code on CPU.
    "tiny": dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
    ),
}


def on_gpu() -> bool:
    """JAX runs on an NVIDIA GPU here (the benchmarks then time PyTorch on CUDA too)."""
    return jax.default_backend() == "gpu"


def torch_device() -> str:
    import torch

    return "cuda" if on_gpu() and torch.cuda.is_available() else "cpu"


def torch_sync() -> None:
    """Wait for PyTorch's queued GPU work (its CUDA calls return before the work is done)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def torch_matmul_rate(n: int = 2048, repeats: int = 15, dtype: str = "float32") -> float:
    """`matmul_rate` for PyTorch's matmul on `torch_device()` (MKL / oneDNN or cuBLAS), same size,
    precision and timing."""
    import torch

    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    device = torch_device()
    a, b = (torch.randn(n, n, device=device).to(tdtype) for _ in range(2))

    def run():
        torch.matmul(a, b)
        torch_sync()

    return 2 * n**3 / median_seconds(run, repeats, warmup=3)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_offline_default(workdir: str, *overrides: str) -> list[dict]:
    """Run `launch/run.py --config=configs/default.py` with these overrides (progress bars off) into
    `workdir`, as a user would; returns its metrics.jsonl rows, one per iteration."""
    cmd = [
        sys.executable,
        os.path.join(ROOT, "launch", "run.py"),
        "--config=configs/default.py",
        f"--config.workdir={workdir}",
        "--config.progress=False",
        *overrides,
    ]
    print("running:", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(os.path.join(ROOT, workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
