"""When a fine-tune writes a mid-training checkpoint: at a multiple of `every` steps, once `minutes` have
passed since the fine-tune began or since its last checkpoint.

A checkpoint costs about as much whatever the fine-tune's length (the whole state goes to disk), and what it
saves is the time since the last one: a step count alone checkpoints a one-minute fine-tune several times
and a 7B one far too often. Every process of a multi-host run must save at the same step, and their clocks
differ, so process 0 decides and the others follow.
"""

from __future__ import annotations

import time

from llm2llm_jax.common import parallel


class CheckpointPolicy:
    """`due(step)` after each step; `saved()` when a checkpoint was written. every 0: never; minutes 0: at
    every multiple of `every`."""

    clock = staticmethod(time.monotonic)  # seconds; tests set their own

    def __init__(self, every: int, minutes: float):
        self.every, self.seconds = every, 60.0 * minutes
        self.last = self.clock()

    def due(self, step: int) -> bool:
        """Whether to checkpoint after `step`; a collective on a multi-host run where `minutes` is set, so
        every process calls it after the same steps."""
        if not self.every or step % self.every:
            return False
        if not self.seconds:
            return True
        return parallel.broadcast_json(self.clock() - self.last >= self.seconds)

    def saved(self) -> None:
        self.last = self.clock()
