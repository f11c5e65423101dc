"""Plain fine-tuning, the baseline every method is paired against: one iteration on the seed set, nothing
added."""

from __future__ import annotations

from llm2llm_jax.augment.base import Augmenter


class Finetune(Augmenter):
    """Iteration 0 alone: the student fine-tuned on the seed set."""

    augments = False
    baseline = True
