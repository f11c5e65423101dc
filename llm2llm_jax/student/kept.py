"""One student's weights kept on disk (orbax, one step per iteration, one copy at a time): the run's best
fine-tune so far, restored for the export once the run ends."""

from __future__ import annotations

from llm2llm_jax.common import files
from llm2llm_jax.student import arrays_on_disk


def _manager(directory: str):
    return arrays_on_disk.manager(directory, max_to_keep=1, enable_async_checkpointing=False)


def kept_step(directory: str) -> int | None:
    """The iteration whose weights `directory` holds (None: nothing kept)."""
    if not files.exists(directory):
        return None
    manager = _manager(directory)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def keep(directory: str, step: int, params) -> None:
    """Replace what `directory` holds with `params` as `step` (collective; a step already there is kept: a
    rerun recomputes the same weights)."""
    manager = _manager(directory)
    try:
        if manager.latest_step() != step:
            manager.save(step, args=arrays_on_disk.save(params))
            manager.wait_until_finished()
    finally:
        manager.close()


def restore(directory: str, template):
    """The kept weights as host arrays shaped like `template` (numpy arrays of the params' structure)."""
    manager = _manager(directory)
    try:
        return manager.restore(manager.latest_step(), args=arrays_on_disk.restore(template))
    finally:
        manager.close()
