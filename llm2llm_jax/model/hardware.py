"""What a model runs with on its devices: the kernel set (`kernels.py`), the training attention and the
compute dtype, each chosen here for "auto" and checked for an explicit choice.

Decided on the host from the devices' platform, kind and compute capability (and, for the dtype, the CPU's
instruction flags), never inside traced code; `LlamaConfig.with_kernels_for` applies the choices once, when
a model is built for a mesh, and the config checks call them before a run starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm2llm_jax.common.errors import UserError

KERNEL_SETS = ("auto", "xla", "cpu")
FUSED_ATTENTION = ("auto", "off", "xla", "cudnn", "blocked")


class KernelError(UserError, ValueError):
    """A kernel choice that the devices or the config cannot run."""


def resolve_kernels(choice: str, devices: Sequence, fused_attention: str = "off") -> str:
    """The kernel set ('xla' or 'cpu') for `choice` on `devices`: 'auto' is 'cpu' when every device is a
    CPU and 'xla' otherwise. Raises when a choice cannot run there."""
    if choice not in KERNEL_SETS:
        raise KernelError(f"model.kernels={choice!r}: choose one of {KERNEL_SETS}")
    platforms = {d.platform for d in devices}
    name = choice
    if choice == "auto":
        name = "cpu" if platforms == {"cpu"} else "xla"
    if fused_attention not in ("auto", "off") and name == "cpu":
        raise KernelError(
            f"model.fused_attention={fused_attention!r} needs the xla kernels, but model.kernels="
            f"{choice!r} runs the cpu kernels here (devices: {sorted(platforms)}); set "
            f"model.kernels=xla or model.fused_attention=off"
        )
    if fused_attention == "cudnn" and platforms != {"gpu"}:
        raise KernelError(
            f"model.fused_attention='cudnn' runs on NVIDIA GPUs only, but the devices here are "
            f"{sorted(platforms)}; use model.fused_attention=xla or off"
        )
    return name


def resolve_attention(
    choice: str, kernel_set: str, devices: Sequence, dtype: str, head_dim: int, windows_static: bool
) -> str:
    """The training attention for `choice` under the resolved `kernel_set`. 'auto' is, by device kind:

    - the cpu kernels' own attention ('off': they attend in causal blocks already);
    - on NVIDIA GPUs, 'cudnn' when cuDNN's flash attention takes the model (a bf16 or f16 compute dtype,
      a head dim that is a multiple of 8 and at most 128, or 256 from Hopper on) and every layer's window
      is known when tracing (`windows_static`: else cuDNN would be handed a dense mask and compute its
      bias gradient); else 'blocked', which never builds the whole score matrix either;
    - elsewhere (TPUs) XLA's einsums ('off'): no measurement has chosen another path there yet.

    Why these: docs/performance.md, "On a GPU" (cuDNN's was the fastest path measured on an H100, and the
    einsums kept every layer's score matrices until the card ran out of memory)."""
    if choice != "auto":
        return choice
    if kernel_set == "cpu":
        return "off"
    if {d.platform for d in devices} != {"gpu"}:
        return "off"
    nvidia = all("nvidia" in str(getattr(d, "device_kind", "")).lower() for d in devices)
    most_head_dim = 256 if min(_compute_capability(d) for d in devices) >= (9, 0) else 128
    takes = dtype in ("bfloat16", "float16") and head_dim % 8 == 0 and head_dim <= most_head_dim
    return "cudnn" if nvidia and takes and windows_static else "blocked"


def _compute_capability(device) -> tuple[int, ...]:
    """A CUDA device's compute capability ("9.0" -> (9, 0)); (0,) when it does not say."""
    try:
        return tuple(int(x) for x in str(device.compute_capability).split("."))
    except (AttributeError, ValueError):
        return (0,)


COMPUTE_DTYPES = ("auto", "bfloat16", "float32")
NATIVE_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 AVX512-BF16 and AMX; Arm's BF16 extension


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this host's CPU multiplies bf16 in hardware. Without it XLA:CPU emulates bf16 matmuls, which
    then run slower than f32 ones (benchmarks/train_step.py measures both)."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:  # no /proc (macOS, Windows): assume emulation, f32 is the safe choice
        return False
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & NATIVE_BF16_CPU_FLAGS)


def resolve_dtype(choice: str, devices: Sequence) -> str:
    """The compute dtype for `choice` on `devices`: 'auto' is bfloat16 on TPUs and GPUs and on CPUs that
    multiply bf16 natively, float32 on CPUs that would emulate it."""
    if choice not in COMPUTE_DTYPES:
        raise KernelError(f"model.dtype={choice!r}: choose one of {COMPUTE_DTYPES}")
    if choice != "auto":
        return choice
    if {d.platform for d in devices} == {"cpu"} and not cpu_has_native_bf16():
        return "float32"
    return "bfloat16"
