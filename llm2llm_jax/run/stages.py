"""The one way a run's stage is done: agree it is missing, compute, write atomically on process 0, read back.

A stage whose output exists is skipped, so a run killed at any point continues from its last completed
stage when the same command is run again, and a finished iteration is read back rather than replayed.
With several JAX processes, process 0 decides whether the output exists (every process must take the
same branch: collectives inside `compute` have to match), only process 0 writes, and every process
reads the result after the barrier from the shared run directory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import jax

from llm2llm_jax.common import files, parallel
from llm2llm_jax.common.disk_faults import reporting_disk_faults
from llm2llm_jax.common.errors import RunError, UserError

T = TypeVar("T")


def agree(flag: bool) -> bool:
    """Process 0's answer, so that every process takes the same branch."""
    return bool(parallel.broadcast_json(bool(flag)))


def run_stage(
    name: str,
    done: Sequence[str] | Callable[[], bool],
    compute: Callable[[], T],
    write: Callable[[T], None],
    read: Callable[[], T],
    collective: bool = False,
) -> T:
    """Run one stage unless its output exists; return its output as read back from disk.

    done: the files the stage writes (all must exist), or a function that says whether it is complete.
    compute: makes the output; on every process when `collective` (it runs jitted work on the mesh),
      otherwise on process 0 only (e.g. teacher calls, which must be bought once).
    write: writes the output atomically (files.write_json / write_jsonl / shards.write_iteration).
    """
    is_done = done if callable(done) else (lambda: all(files.exists(p) for p in done))
    if agree(not is_done()):
        main = jax.process_index() == 0
        if collective or main:
            value = compute()
            if main:
                with reporting_disk_faults(f"the output of stage {name}"):
                    write(value)
        parallel.barrier(name)
    return read()


def on_main(check: Callable[[], None]) -> None:
    """Run `check` on process 0 only; a UserError it raises is raised on every process (with the same
    line), so that no process is left waiting at a barrier for one that stopped."""
    message = ""
    if jax.process_index() == 0:
        try:
            check()
        except UserError as e:
            if jax.process_count() == 1:
                raise
            message = str(e)
    message = parallel.broadcast_json(message)
    if message:
        raise RunError(message)
