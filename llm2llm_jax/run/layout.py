"""Where a run's files live in its run directory (config.workdir), and reading back what an iteration wrote.

config.json           the config snapshot (API keys stay in the environment)
data/                 seed.jsonl, test.jsonl
shards/               each iteration's training set, a tfds array_record dataset (data/shards.py)
iter_XXXX/            train.json, checkpoints/, predictions_{seed,test}.jsonl, augment.jsonl,
                      augment_stats.json, metrics.json
teacher_cache/        one file per request: a rerun never pays twice
teacher_spend.json    what the run has paid its teacher, over every invocation
teacher_batches/      batch jobs in flight
run.lock              while a run works here
metrics.jsonl, report.md, report.png, tensorboard/, dataset/ (the final training set and its data card)
"""

from __future__ import annotations

import os

from llm2llm_jax.common import files
from llm2llm_jax.common.files import read_json
from llm2llm_jax.run.results import Fit, fit_names, read_fit, write_fit


class RunDirectory:
    """dev: the run has a dev split (data/dev.jsonl, iter_XXXX/predictions_dev.jsonl)."""

    def __init__(self, workdir: str, dev: bool = False):
        self.root = files.absolute(workdir)
        self.has_dev = dev

    def path(self, *parts) -> str:
        return os.path.join(self.root, *parts)

    def iter_path(self, i: int, *parts) -> str:
        return self.path(f"iter_{i:04d}", *parts)

    def fit_paths(self, i: int) -> list[str]:
        return [self.iter_path(i, name) for name in fit_names(self.has_dev)]

    def fit_result(self, i: int) -> Fit:
        """Iteration i's fine-tune + evaluation, read back."""
        return read_fit(lambda name: self.iter_path(i, name), self.has_dev)

    def write_fit(self, i: int, fit: Fit) -> None:
        write_fit(lambda name: self.iter_path(i, name), fit)

    def train_info(self, i: int) -> dict:
        return read_json(self.iter_path(i, "train.json"))

    def model_of(self, i: int) -> int:
        """The iteration whose fine-tune is iteration i's model (itself, or the one whose result it
        reused)."""
        return self.train_info(i).get("reused_from", i)

    def metrics(self, i: int) -> dict:
        return read_json(self.iter_path(i, "metrics.json"))

    def has_metrics(self, i: int) -> bool:
        return files.exists(self.iter_path(i, "metrics.json"))
