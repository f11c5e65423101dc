"""FLOP counts of the model's work (training steps, prefill and decoding) and the device's peak.

A run adds up the FLOPs of what it computed (padding included: the hardware multiplies it too) and divides
by its device's peak (the datasheet's on an accelerator, the measured rate of one large matmul as the cpu
kernels multiply on a CPU), so that its summary can put a FLOP-bound time beside each measured stage. Counts
are of the matmuls (the seven projections, the vocabulary head where logits are read, attention's two
products); norms, rotary and softmax are left out.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from llm2llm_jax.model import kernels


def matmul_params(cfg) -> tuple[int, int]:
    """(weights of the seven projections over all layers, weights of the vocabulary head): the
    multiply-adds per token of a forward pass, attention aside."""
    h, i, v, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    return L * (h * q + 2 * h * kv + q * h + 3 * h * i), h * v


def attention_flops_per_token(cfg, context: float) -> float:
    """QK^T and PV over `context` earlier positions, in every layer (2 FLOPs per multiply-add)."""
    return cfg.num_hidden_layers * 2 * 2 * context * cfg.num_attention_heads * cfg.head_dim


def train_flops_per_token(cfg, seq_len: int, head_fraction: float = 1.0, frozen: bool = False) -> float:
    """Forward + backward FLOPs per token (6 x matmul params, causal attention halved), with the
    vocabulary projection run on `head_fraction` of the tokens (1.0: all of them). frozen: the weights
    get no gradient (LoRA), so 4 x matmul params; the adapters' own FLOPs are not counted."""
    layer_params, head_params = matmul_params(cfg)
    return (4 if frozen else 6) * (
        layer_params + head_fraction * head_params
    ) + 3 * attention_flops_per_token(cfg, seq_len / 2)


def forward_flops(cfg, rows: int, width: int, logits_per_row: int, context_before: int = 0) -> float:
    """A forward pass over [rows, width] new tokens that follow `context_before` cached ones, with logits
    computed at `logits_per_row` positions per row."""
    layer_params, head_params = matmul_params(cfg)
    attention = attention_flops_per_token(cfg, context_before + width / 2)
    return rows * (width * (2 * layer_params + attention) + logits_per_row * 2 * head_params)


def train_step_flops(cfg, rows: int, width: int, targets_per_row: int, prefix: int = 0) -> float:
    """One optimizer step over a [rows, width] batch whose logits are read at `targets_per_row` positions:
    forward and backward, the weights' gradients skipped when they are frozen (LoRA); with a shared `prefix`,
    that prefix computed once (one row, one logit) before the rows, which attend to it too."""

    def fwd_bwd(n_rows, n_width, logits_per_row, context_before):
        layer_params, head_params = matmul_params(cfg)
        weights = 2 if cfg.lora_rank else 3  # forward, the activations' gradient (and the weights')
        attention = attention_flops_per_token(cfg, context_before + n_width / 2)
        return n_rows * (
            n_width * (weights * 2 * layer_params + 3 * attention)
            + logits_per_row * weights * 2 * head_params
        )

    shared = fwd_bwd(1, prefix, 1, 0) if prefix else 0.0
    return shared + fwd_bwd(rows, width, targets_per_row, prefix)


def decode_flops(cfg, rows: int, width: int, steps: int, prefix: int = 0) -> float:
    """A [rows, width] prefill (logits at the last position) and `steps` single-token steps after it; with a
    shared `prefix`, that prefix read once (one row) before the rows' own tokens."""
    shared = forward_flops(cfg, 1, prefix, 1) if prefix else 0.0
    return (
        shared
        + forward_flops(cfg, rows, width, 1, prefix)
        + sum(forward_flops(cfg, rows, 1, 1, prefix + width + s) for s in range(steps))
    )


# Dense bf16 matmul peaks from the datasheets (FLOP/s), by a lowercase piece of JAX's device_kind, first match
# first: what an accelerator's MFU is quoted against. CPUs have no such figure; their measured rate stands in.
DATASHEET_BF16_PEAKS = (
    ("h100 pcie", 756e12),
    ("h100", 989e12),  # SXM
    ("h200", 989e12),
    ("a100", 312e12),
    ("tpu v4", 275e12),
    ("tpu v5 lite", 197e12),  # v5e
    ("tpu v5e", 197e12),
    ("tpu v5", 459e12),  # v5p
    ("tpu v6 lite", 918e12),  # v6e
    ("tpu v6e", 918e12),
)


def datasheet_peak(device_kind: str) -> float | None:
    """The datasheet's dense bf16 FLOP/s of a device kind ('NVIDIA H100 80GB HBM3', 'TPU v5 lite'), or None
    where the table has none (CPUs, unlisted cards)."""
    kind = device_kind.lower()
    return next((peak for name, peak in DATASHEET_BF16_PEAKS if name in kind), None)


def matmul_rate(
    n: int = 2048, repeats: int = 15, dtype: str = "float32", fastest: bool = False, product=jnp.matmul
) -> float:
    """FLOP/s of a jitted n x n `product(a, b)` on the default device (jnp.matmul: its output in the inputs'
    dtype, as PyTorch's is), after three warm-up runs: the median of `repeats` runs, or with `fastest` the
    fastest. On an accelerator the median is the GEMM rate beside the datasheet peak (use n = 8192: smaller
    products do not fill the card); on a CPU the fastest stands in for the peak (a busy neighbour slows some
    runs, and a peak below what the run's own matmuls reach would put them above 100%)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(product)
    times = wall_seconds(lambda: f(a, b).block_until_ready(), repeats, warmup=3)
    return 2 * n**3 / (min(times) if fastest else statistics.median(times))


def wall_seconds(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of `repeats` calls of fn() after `warmup` untimed ones (fn must block until done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs after `warmup` runs (fn must block until done)."""
    return statistics.median(wall_seconds(fn, repeats, warmup))


def device_matmul_rate(dtype: str) -> float:
    """`matmul_rate` sized for the default device: on a CPU 2048, the fastest of 10 (about a second), of the
    product the cpu kernels run (`kernels.cpu_matmul`: f32 accumulation and result); on an accelerator 8192,
    the median of 10, its output in `dtype`.

    XLA:CPU runs a bf16 product with an f32 result on its bf16 kernels (AMX or AVX512-BF16 where the CPU has
    them), but converts the operands of one with a bf16 result to f32 for its f32 kernel, several times
    slower: timed that way the peak would be below what the model's own matmuls reach.
    """
    if jax.devices()[0].platform == "cpu":
        return matmul_rate(n=2048, repeats=10, dtype=dtype, fastest=True, product=kernels.cpu_matmul)
    return matmul_rate(n=8192, repeats=10, dtype=dtype)


def device_flops(dtype: str) -> dict:
    """What a run stores about its device's speed, measured while it works (a finished run summarised
    later must not re-measure on whatever the machine is doing then): the device kind, the dtype, the
    measured matmul rate and the datasheet peak where the kind has one."""
    kind = jax.devices()[0].device_kind
    out = {"device": kind, "dtype": dtype, "matmul_per_s": float(f"{device_matmul_rate(dtype):.4g}")}
    peak = datasheet_peak(kind)
    if peak:
        out["datasheet_per_s"] = peak
    return out
