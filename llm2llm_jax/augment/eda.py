"""EDA, the paper's other baseline: word-level edits of every seed example, no teacher."""

from __future__ import annotations

import random

from llm2llm_jax.augment.base import Augmenter
from llm2llm_jax.common.seeds import stable_seed


def eda_edit(text: str, rng: random.Random, alpha: float = 0.1) -> str:
    """One EDA-style variant: random swap, deletion and insertion of words from the sentence itself.

    (EDA's synonym replacement needs WordNet, which is not available offline, so it is left out.)
    """
    words = text.split()
    if len(words) < 2:
        return text
    n = max(1, int(alpha * len(words)))
    op = rng.choice(("swap", "delete", "insert"))
    words = list(words)
    for _ in range(n):
        if op == "swap":
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        elif op == "delete" and len(words) > 2:
            words.pop(rng.randrange(len(words)))
        else:
            words.insert(rng.randrange(len(words) + 1), rng.choice(words))
    return " ".join(words)


class Eda(Augmenter):
    """`per_example` word-level edits of every seed example, keeping its label."""

    budgeted = True

    def choose(self, wrong, pool):
        return list(pool)

    def candidates(self, i, chosen, predictions):
        rng = random.Random(stable_seed(self.ctx.config.seed, "eda", i))
        cands = []
        for ex in chosen:
            for j in range(self.per_example):
                prov = self._provenance(i, ex, j, "eda")
                del prov["parent_label"]
                cands.append(
                    {
                        "input": eda_edit(ex["input"], rng),
                        "raw_output": self.ctx.task.target(ex).strip(),
                        **prov,
                    }
                )
        return cands, {"asked": len(chosen) * self.per_example}
