"""The strategy interface of the augmentation methods: which examples an iteration grows from (`choose`,
`parents`) and how new ones are made (`candidates`), then kept by the iteration's filter (`augment`).

A method is one `Augmenter` subclass in its own module, registered by name in `augment/methods.py`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

from llm2llm_jax.augment.verify import verify
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.teacher.filters import AugmentationFilter
from llm2llm_jax.teacher.prompts import worked_example_inputs

PARENTS = ("wrong", "all")  # augment.parents


@dataclasses.dataclass
class Context:
    """What a strategy may use: the task, the config, the seed set, (lazily) the teacher backend, and the dev
    split, which no new example may copy."""

    task: Task
    config: object
    seed_set: Sequence[dict]
    teacher: Callable[[], object]
    say: Callable[[str], None] = print
    judge: Callable[[], object] = None  # the backend that verifies new examples (filters.verify='judge')
    dev_set: Sequence[dict] = ()


class Augmenter:
    """One way to grow the training set after an iteration's evaluation.

    What a run asks of a method, it asks these attributes: `augments` (False: one iteration of plain
    fine-tuning), `uses_teacher` (the run reaches the teacher before any work, and estimates its use), and for
    the comparison job `baseline` (the method the others are paired against), `sets_budget` (its parents per
    iteration cap the budgeted methods') and `budgeted` (capped under compare.equal_budget).
    """

    augments = True
    uses_teacher = False
    baseline = False
    sets_budget = False
    budgeted = False

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.per_example = ctx.config.teacher.per_example

    def choose(self, wrong: Sequence[dict], pool: Sequence[dict]) -> list[dict]:
        """The examples to grow from, given the candidate parents the student was evaluated on (`pool`: the
        seed set, or with augment.from_augmented the whole training set) and the ones it got wrong; with
        augment.parents='all', every candidate parent."""
        return list(pool) if self.ctx.config.augment.parents == "all" else list(wrong)

    def parents(self, i: int, wrong: Sequence[dict], pool: Sequence[dict]) -> list[dict]:
        """`choose`, then at most augment.max_parents[i] of them (a seeded random subset): a comparison gives
        the baselines the number of teacher requests LLM2LLM made at the same iteration."""
        chosen = self.choose(wrong, pool)
        cap = max_parents_at(self.ctx.config, i)
        if cap is not None and len(chosen) > cap:
            rng = random.Random(stable_seed(self.ctx.config.seed, "parents", i))
            keep = set(rng.sample(range(len(chosen)), cap))
            chosen = [ex for n, ex in enumerate(chosen) if n in keep]
        return chosen

    def expected_requests(self) -> list:
        """The teacher requests this method may send for the run's candidate parents, without the student's
        answers: what the teacher prepares for before the first round (none for a method without one)."""
        return []

    def candidates(self, i: int, chosen: Sequence[dict], predictions: dict) -> tuple[list[dict], dict]:
        """(candidate examples with `input`, `raw_output` and provenance, stats to record: `asked`, the number
        of new examples asked for, is the denominator of the yield)."""
        raise NotImplementedError

    def augment(self, i: int, chosen: Sequence[dict], predictions: dict, filt) -> tuple[list[dict], dict]:
        """(kept examples, stats): the candidates of iteration `i`, through the filter (and, with
        filters.verify='judge', the judge)."""
        cands, stats = self.candidates(i, chosen, predictions)
        kept, drops = filt.apply(cands)
        if stats.get("unparseable"):  # whole replies, counted beside the candidates' drop reasons
            drops = {"unparseable": stats["unparseable"], **drops}
        if self.uses_teacher and self.ctx.config.filters.verify == "judge" and kept:
            kept, stats["judge_requests"], drops["unverified"] = verify(self.ctx, i, kept, filt)
        return kept, {"requests": 0, **stats, "candidates": len(cands), "drops": drops}

    def _provenance(self, i: int, parent: dict, j: int, origin: str) -> dict:
        return {
            "id": f"it{i}-{parent['id']}-{j}",
            "origin": origin,
            "parent_id": parent["id"],
            "iteration": i + 1,
            "parent_label": parent["output"],
        }


def max_parents_at(config, i: int):
    """augment.max_parents ('14,4,4': a cap per iteration; '' none) at iteration i; an iteration past the list
    gets 0."""
    raw = str(config.augment.max_parents).strip()
    if not raw:
        return None
    caps = [int(v) for v in raw.split(",")]
    return caps[i] if i < len(caps) else 0


def make_filter(task: Task, config, train_set: Sequence[dict], test_set: Sequence[dict], dev_set=()):
    """The filter for one iteration's candidates, built from what that iteration trained on (the seed set and
    every example kept before), the prompt's worked example (weak teachers copy it), the test set and the dev
    split (neither may leak into training)."""
    return AugmentationFilter(
        task,
        [ex["input"] for ex in train_set] + worked_example_inputs(task),
        [ex["input"] for ex in test_set],
        rouge_threshold=config.filters.rouge_threshold,
        same_label=config.teacher.same_label,
        dev_inputs=[ex["input"] for ex in dev_set],
    )
