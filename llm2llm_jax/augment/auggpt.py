"""AugGPT, the paper's baseline: the teacher grows every seed example, right or wrong, with LLM2LLM's
prompts."""

from __future__ import annotations

from llm2llm_jax.augment.llm2llm import Llm2llm


class AugGpt(Llm2llm):
    """The same teacher prompts for every seed example, right or wrong."""

    sets_budget = False
    budgeted = True

    def choose(self, wrong, pool):
        return list(pool)
