"""The run's best student so far, kept for the export: one copy of its weights in `kept_student/`, replaced
when a better iteration arrives (run/selection.py says which is better)."""

from __future__ import annotations

from llm2llm_jax.run.layout import RunDirectory
from llm2llm_jax.run.results import Fit
from llm2llm_jax.run.selection import dev_accuracy, improves
from llm2llm_jax.student import kept

KEPT_DIR = "kept_student"


class StudentKeeper:
    def __init__(self, run_dir: RunDirectory):
        self.run_dir = run_dir
        self.directory = run_dir.path(KEPT_DIR)

    def offer(self, i: int, params, fit: Fit) -> None:
        """Iteration i's fine-tuned weights, kept when the selection rule prefers them to every earlier
        iteration's (before the iteration's results are written, so a killed run keeps them on its rerun)."""
        earlier = [self.run_dir.metrics(j) for j in range(i)]
        accuracy = dev_accuracy(fit.dev) if fit.dev is not None else None
        if improves(earlier, accuracy):
            kept.keep(self.directory, i, params)

    def step(self) -> int | None:
        return kept.kept_step(self.directory)
