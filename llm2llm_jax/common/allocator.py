"""Host allocator settings that keep glibc malloc from handing freed memory back to the kernel.

XLA:CPU allocates each step's temporary buffers (about 1 GB per six SmolLM2 layers of a training
step) afresh on every execution, from its worker threads. glibc serves such large requests from
worker threads with mmap and returns them with munmap, so every step touches all of that memory
as new pages: about 1.2 million page faults and a fifth of the CPU time of a SmolLM2 training
step. PyTorch's CPU allocator goes through the same malloc and suffers alike.

The cure is three glibc tunables: one arena, no mmap for large blocks, and no trimming, so freed
blocks stay in the heap and the next step reuses them. Tunables are read when a process starts,
so `reexec_with_reusing_malloc` restarts the current command (same PID, same arguments) with them
set. It does nothing where glibc is not the C library, on hosts with a TPU or an NVIDIA GPU (step
buffers live in device memory there), when GLIBC_TUNABLES is already set (the user's own choice
wins, and the restarted process sees it set), or when LLM2LLM_KEEP_MALLOC=1.
The price is that the process never shrinks below its peak heap, which a training job reaches
anyway.
"""

from __future__ import annotations

import glob
import os
import platform
import sys

REUSING_MALLOC = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def has_accelerator() -> bool:
    """A TPU (/dev/accel*, or /dev/vfio/N on newer TPU VMs) or an NVIDIA GPU is attached."""
    return bool(
        glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*") or glob.glob("/dev/nvidia[0-9]*")
    )


def should_reexec(environ=os.environ, accelerator=None) -> bool:
    """Whether this process should restart itself with REUSING_MALLOC."""
    if environ.get("GLIBC_TUNABLES") is not None or environ.get("LLM2LLM_KEEP_MALLOC") == "1":
        return False
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        return False
    return not (has_accelerator() if accelerator is None else accelerator)


def reexec_with_reusing_malloc() -> None:
    """Restart `python <this script> <args>` with the tunables set; returns only if no restart is due.

    Call it first thing in a script's `__main__` block, before any heavy import: nothing done before
    it survives the restart.
    """
    if not should_reexec():
        return
    os.environ["GLIBC_TUNABLES"] = REUSING_MALLOC
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)


def malloc_setting() -> str:
    """One line for benchmark headers: which malloc behaviour this process runs with."""
    tunables = os.environ.get("GLIBC_TUNABLES")
    if tunables == REUSING_MALLOC:
        return "malloc: freed memory reused (llm2llm_jax.common.allocator)"
    return f"malloc: GLIBC_TUNABLES={tunables}" if tunables else "malloc: glibc default"
