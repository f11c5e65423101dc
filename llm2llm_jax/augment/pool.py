"""`pool`, a diagnostic: a perfect teacher stands in, adding unused labelled training rows of each failed
example's class, which separates the method's ceiling on this student from the teacher's quality."""

from __future__ import annotations

import random

from llm2llm_jax.augment.base import Augmenter
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.data.sources import load_source


class Pool(Augmenter):
    """For each wrong seed example, `per_example` real labelled training rows of its class from outside the
    seed set (the test set is held out by the source)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self._rows = None  # unused training rows by label (one group when the task has no labels)

    def _key(self, example: dict):
        return example["output"] if self.ctx.task.is_classification else None

    def candidates(self, i, chosen, predictions):
        if self._rows is None:
            train, _ = load_source(self.ctx.config.data, self.ctx.task)
            seed_inputs = {
                ex["input"] for ex in (*self.ctx.seed_set, *self.ctx.dev_set)
            }  # never the dev split
            self._rows = {}
            for row in train:
                if row["input"] not in seed_inputs:
                    self._rows.setdefault(self._key(row), []).append(row)
        rng = random.Random(stable_seed(self.ctx.config.seed, "pool", i))
        cands = []
        for ex in chosen:
            same = self._rows.get(self._key(ex), [])
            for j, row in enumerate(rng.sample(same, min(self.per_example, len(same)))):
                cands.append(
                    {
                        "input": row["input"],
                        "raw_output": self.ctx.task.target(row).strip(),
                        **self._provenance(i, ex, j, "pool"),
                    }
                )
        return cands, {"asked": len(chosen) * self.per_example}
