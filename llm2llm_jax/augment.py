"""Augmentation methods as strategies: which seed examples an iteration grows from, and how new ones are made.

An `Augmenter` picks seed examples (`choose`) and turns them into candidate examples (`candidates`); the
run's `AugmentationFilter` then keeps the clean, new ones. `config.method` names the strategy:

    llm2llm  the seed examples the student got wrong -> teacher (the paper's method; config.augment
             switches to every seed example, or lets kept examples be parents too: the paper's ablations)
    auggpt   every seed example -> teacher, same prompts and budget rules (the paper's AugGPT baseline)
    eda      every seed example -> word-level edits, no teacher (the paper's EDA baseline)
    pool     the wrong seed examples -> real training rows of the same class (a diagnostic: a perfect
             teacher, which separates the method's ceiling on this student from the teacher's quality)

`finetune` has no augmenter: one iteration of plain fine-tuning. A new method is one subclass and one
line in AUGMENTERS.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Sequence

from llm2llm_jax.settings import stable_seed
from llm2llm_jax.tasks import Task


@dataclasses.dataclass
class Context:
    """What a strategy may use: the task, the config, the seed set and (lazily) the teacher backend."""

    task: Task
    config: object
    seed_set: Sequence[dict]
    teacher: Callable[[], object]
    say: Callable[[str], None] = print


class Augmenter:
    """One way to grow the training set after an iteration's evaluation."""

    uses_teacher = False

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

    def candidates(self, i: int, chosen: Sequence[dict], predictions: dict) -> tuple[list[dict], dict]:
        """(candidate examples with `input`, `raw_output` and provenance, stats to record)."""
        raise NotImplementedError

    def augment(self, i: int, chosen: Sequence[dict], predictions: dict, filt) -> tuple[list[dict], dict]:
        """(kept examples, stats): the candidates of iteration `i`, through the filter."""
        cands, stats = self.candidates(i, chosen, predictions)
        kept, drops = filt.apply(cands)
        if stats.get("unparseable"):  # whole replies, counted beside the candidates' drop reasons
            drops = {"unparseable": stats["unparseable"], **drops}
        return kept, {"requests": 0, **stats, "candidates": len(cands), "drops": drops}

    def _provenance(self, i: int, parent: dict, j: int, origin: str) -> dict:
        return {"id": f"it{i}-{parent['id']}-{j}", "origin": origin, "parent_id": parent["id"], "iteration": i + 1,
                "parent_label": parent["output"]}


class Llm2llm(Augmenter):
    """The teacher writes `per_example` new examples from each chosen seed example and the student's answer."""

    uses_teacher = True

    def candidates(self, i, chosen, predictions):
        from llm2llm_jax.teacher.backends import TeacherRequest
        from llm2llm_jax.teacher.prompts import build_messages, parse_examples

        c, k = self.ctx.config, self.per_example
        requests = []
        for ex in chosen:
            system, turns = build_messages(self.ctx.task, ex, predictions.get(ex["id"], {}).get("generation", ""), k,
                                           same_label=c.teacher.same_label)
            requests.append(TeacherRequest(system=system, turns=turns,
                                           seed=stable_seed(c.seed, "teacher", i, ex["id"])))
        backend = self.ctx.teacher()
        self.ctx.say(f"iteration {i}: asking the {backend.kind} teacher for {k} new example(s) from each of "
                     f"{len(requests)} seed examples")
        replies = backend.complete_many(requests)
        cands, unparseable = [], []
        for ex, reply in zip(chosen, replies):
            parsed = parse_examples(reply, self.ctx.task)[:k]
            if not parsed:
                unparseable.append(reply)
            for j, cand in enumerate(parsed):
                cands.append({**cand, **self._provenance(i, ex, j, "teacher")})
        if unparseable:
            sample = " ".join(unparseable[0].split())[:160]
            self.ctx.say(f"iteration {i}: warning: {len(unparseable)} of {len(replies)} teacher replies held no "
                         f"numbered Input/Output items and were dropped as unparseable (first: {sample!r}); a "
                         f"stronger teacher.model, or a lower teacher.temperature, usually follows the format")
        return cands, {"requests": len(requests), "unparseable": len(unparseable),
                       "unparseable_sample": [r[:500] for r in unparseable[:3]]}  # spend: the run's ledger


class AugGpt(Llm2llm):
    """The same teacher prompts for every seed example, right or wrong."""

    def choose(self, wrong, pool):
        return list(pool)


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

    def choose(self, wrong, pool):
        return list(pool)

    def candidates(self, i, chosen, predictions):
        rng = random.Random(stable_seed(self.ctx.config.seed, "eda", i))
        cands = []
        for ex in chosen:
            for j in range(self.per_example):
                prov = self._provenance(i, ex, j, "eda")
                del prov["parent_label"]
                cands.append({"input": eda_edit(ex["input"], rng), "raw_output": self.ctx.task.target(ex).strip(),
                              **prov})
        return cands, {}


class Pool(Augmenter):
    """For each wrong seed example, `per_example` real labelled training rows of its class from outside the
    seed set (the test set is held out by the source)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self._rows = None  # unused training rows by label (one group when the task has no labels)

    def _key(self, example: dict):
        return example["output"] if self.ctx.task.is_classification else None

    def candidates(self, i, chosen, predictions):
        from llm2llm_jax.data import load_source

        if self._rows is None:
            train, _ = load_source(self.ctx.config.data, self.ctx.task)
            seed_inputs = {ex["input"] for ex in self.ctx.seed_set}
            self._rows = {}
            for row in train:
                if row["input"] not in seed_inputs:
                    self._rows.setdefault(self._key(row), []).append(row)
        rng = random.Random(stable_seed(self.ctx.config.seed, "pool", i))
        cands = []
        for ex in chosen:
            same = self._rows.get(self._key(ex), [])
            for j, row in enumerate(rng.sample(same, min(self.per_example, len(same)))):
                cands.append({"input": row["input"], "raw_output": self.ctx.task.target(row).strip(),
                              **self._provenance(i, ex, j, "pool")})
        return cands, {}


def max_parents_at(config, i: int):
    """augment.max_parents ('14,4,4': a cap per iteration; '' none) at iteration i; an iteration past the list
    gets 0."""
    raw = str(config.augment.max_parents).strip()
    if not raw:
        return None
    caps = [int(v) for v in raw.split(",")]
    return caps[i] if i < len(caps) else 0


AUGMENTERS = {"llm2llm": Llm2llm, "auggpt": AugGpt, "eda": Eda, "pool": Pool}
METHODS = ("finetune",) + tuple(AUGMENTERS)


def make_filter(task: Task, config, train_set: Sequence[dict], test_set: Sequence[dict]):
    """The filter for one iteration's candidates, built from what that iteration trained on (the seed set and
    every example kept before), the prompt's worked example (weak teachers copy it) and the test set."""
    from llm2llm_jax.teacher.filters import AugmentationFilter
    from llm2llm_jax.teacher.prompts import worked_example_inputs

    return AugmentationFilter(task, [ex["input"] for ex in train_set] + worked_example_inputs(task),
                              [ex["input"] for ex in test_set], rouge_threshold=config.filters.rouge_threshold,
                              same_label=config.teacher.same_label)
