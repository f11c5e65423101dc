"""TensorBoard scalars of a run, written as it goes: each fine-tune's loss per step, and per iteration the
accuracies (with their Wilson intervals), the training set's size and the teacher's yield.

`tensorboard --logdir RUN/tensorboard` shows one run per fine-tune (`iter_0000`, ...: its step metrics)
and `iterations` (step = iteration). Only process 0 writes, and only work computed in this invocation is
written (a resumed run continues its curves; summarising a finished run writes nothing). Writes go
through tensorboardX, which needs no TensorFlow; a run directory on GCS gets none (tensorboardX writes
local files), and the run says so once.
"""

from __future__ import annotations

import os

from llm2llm_jax.common import files
from llm2llm_jax.run.hooks import Hook


class RunBoard(Hook):
    def __init__(self, workdir: str, enabled: bool, say=print):
        self.root = os.path.join(workdir, "tensorboard")
        self.enabled = enabled and not files.is_remote(workdir)
        self._writers: dict = {}
        if enabled and files.is_remote(workdir):
            say(f"TensorBoard scalars are written for local run directories only; {workdir} gets none")

    def _writer(self, name: str):
        if name not in self._writers:
            from tensorboardX import SummaryWriter

            self._writers[name] = SummaryWriter(os.path.join(self.root, name), flush_secs=10)
        return self._writers[name]

    def fine_tune_step(self, iteration: int, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        w = self._writer(f"iter_{iteration:04d}")
        for k, v in metrics.items():
            if k != "epoch":
                w.add_scalar(f"fine-tune/{k}", v, step)

    def iteration_done(self, metrics: dict) -> None:
        """One finished iteration's metrics row."""
        if not self.enabled:
            return
        w, i = self._writer("iterations"), metrics["iteration"]
        for k in (
            "test_accuracy",
            "seed_accuracy",
            "train_size",
            "new_examples",
            "teacher_requests",
            "candidates",
            "asked",
            "teacher_yield",
            "judge_requests",
            "train_final_loss",
        ):
            if metrics.get(k) is not None:
                w.add_scalar(f"run/{k}", metrics[k], i)
        for k in (
            "test_accuracy_low",
            "test_accuracy_high",
            "dev_accuracy",
            "dev_accuracy_low",
            "dev_accuracy_high",
        ):
            if k in metrics:
                w.add_scalar(f"run/{k}", metrics[k], i)
        for reason, n in metrics.get("drops", {}).items():
            w.add_scalar(f"teacher_drops/{reason}", n, i)
        for kind, seconds in metrics.get("stage_seconds", {}).items():
            w.add_scalar(f"seconds/{kind}", seconds, i)
        w.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}
