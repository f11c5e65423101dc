"""Observers of a run: what attaches to the controller without growing it (stage timing, TensorBoard, progress
lines). A hook overrides the events it cares about; `Hooks` passes every event to each hook in order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator


class Hook:
    """The events a run reports. Every method does nothing unless a hook overrides it."""

    @contextlib.contextmanager
    def stage(self, kind: str) -> Iterator[None]:
        """A block of work of one kind (run/timing.py's KINDS: load, fine-tune, evaluation, teacher,
        writes)."""
        yield

    def computed(self, kind: str, flops: float) -> None:
        """The FLOPs that work of `kind` computed."""

    def started(self, run) -> None:
        """The run's data and method are ready and iteration 0 has not begun (a resumed run skips this)."""

    def fine_tune_step(self, i: int, step: int, metrics: dict) -> None:
        """One optimizer step of iteration i's fine-tune."""

    def evaluated(self, i: int, metrics: dict) -> None:
        """Iteration i's student is fine-tuned and evaluated: `metrics` holds its accuracies."""

    def augmented(self, i: int, metrics: dict) -> None:
        """Iteration i's new examples are made and filtered: `metrics` holds the teacher's yield."""

    def iteration_done(self, metrics: dict) -> None:
        """Iteration `metrics['iteration']` is complete; a hook may add fields before the row is written."""

    def close(self) -> None:
        """The run ends (also when it fails)."""


class Hooks(Hook):
    """Several hooks as one."""

    def __init__(self, hooks: Iterable[Hook] = ()):
        self.hooks = list(hooks)

    def add(self, hook: Hook) -> None:
        self.hooks.append(hook)

    @contextlib.contextmanager
    def stage(self, kind: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook.stage(kind))
            yield

    def computed(self, kind, flops):
        for hook in self.hooks:
            hook.computed(kind, flops)

    def started(self, run):
        for hook in self.hooks:
            hook.started(run)

    def fine_tune_step(self, i, step, metrics):
        for hook in self.hooks:
            hook.fine_tune_step(i, step, metrics)

    def evaluated(self, i, metrics):
        for hook in self.hooks:
            hook.evaluated(i, metrics)

    def augmented(self, i, metrics):
        for hook in self.hooks:
            hook.augmented(i, metrics)

    def iteration_done(self, metrics):
        for hook in self.hooks:
            hook.iteration_done(metrics)

    def close(self):
        for hook in self.hooks:
            hook.close()
