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
    judge: Callable[[], object] = None  # the backend that verifies new examples (filters.verify='judge')


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
            kept, stats["judge_requests"], drops["unverified"] = self._verify(i, kept, filt)
        return kept, {"requests": 0, **stats, "candidates": len(cands), "drops": drops}

    def _verify(self, i: int, kept: list[dict], filt) -> tuple[list[dict], int, int]:
        """(the examples the judge agrees with, judge requests, how many it disagreed with). The judge answers
        each input on its own: its class without the one intended (classification), or a solution whose final
        number must equal the example's (numeric tasks). An input it rejects no longer counts as kept for
        deduplication."""
        from llm2llm_jax.teacher.backends import TeacherRequest
        from llm2llm_jax.teacher.prompts import judge_messages, judge_schema, parse_judgement

        task, c = self.ctx.task, self.ctx.config
        judge = self.ctx.judge()
        requests = []
        for ex in kept:
            seed = stable_seed(c.seed, "judge", i, ex["id"])
            plain = TeacherRequest(*judge_messages(task, ex["input"]), seed=seed)
            requests.append(TeacherRequest(*judge_messages(task, ex["input"], structured=True), seed=seed,
                                           schema=judge_schema(task), plain=plain) if judge.structured else plain)
        self.ctx.say(f"iteration {i}: asking the {judge.kind} judge ({judge.settings.model}) about {len(kept)} new "
                     f"example(s)")
        verdicts = judge.complete_many(requests)
        agreed = []
        for ex, verdict in zip(kept, verdicts):
            if parse_judgement(verdict, task) == task.gold(ex):
                agreed.append(ex)
            else:
                filt.forget(ex["input"])
        return agreed, len(requests), len(kept) - len(agreed)

    def _provenance(self, i: int, parent: dict, j: int, origin: str) -> dict:
        return {"id": f"it{i}-{parent['id']}-{j}", "origin": origin, "parent_id": parent["id"], "iteration": i + 1,
                "parent_label": parent["output"]}


class Llm2llm(Augmenter):
    """The teacher writes `per_example` new examples from each chosen seed example (and the student's answer, in
    example mode), in `teacher.requests_per_example` separate requests, each with its own sampling seed."""

    uses_teacher = True

    def _request(self, parent: dict, answer: str, k: int, mode: str, structured: bool, seed: int):
        from llm2llm_jax.teacher.backends import TeacherRequest
        from llm2llm_jax.teacher.prompts import build_messages, reply_schema

        task, same_label = self.ctx.task, self.ctx.config.teacher.same_label
        plain = TeacherRequest(*build_messages(task, parent, answer, k, same_label, mode), seed=seed)
        if not structured:
            return plain
        return TeacherRequest(*build_messages(task, parent, answer, k, same_label, mode, structured=True), seed=seed,
                              schema=reply_schema(task, mode), plain=plain)

    def candidates(self, i, chosen, predictions):
        from llm2llm_jax.teacher.prompts import parse_reply, resolve_mode

        c, task = self.ctx.config, self.ctx.task
        mode = resolve_mode(c.teacher.mode, task)
        n_requests = c.teacher.requests_per_example
        k = -(-self.per_example // n_requests)  # examples asked per request
        backend = self.ctx.teacher()
        requests, parents = [], []
        for ex in chosen:
            answer = predictions.get(ex["id"], {}).get("generation", "")
            for r in range(n_requests):
                # the first request's seed is the one a single request per example has always had
                seed = stable_seed(c.seed, "teacher", i, ex["id"], *((r,) if r else ()))
                requests.append(self._request(ex, answer, k, mode, backend.structured, seed))
                parents.append(ex)
        self.ctx.say(f"iteration {i}: asking the {backend.kind} teacher ({mode}) for {k} new example(s) in each of "
                     f"{len(requests)} requests ({n_requests} per seed example, {len(chosen)} seed examples)")
        replies = backend.complete_many(requests)
        cands, unparseable, made = [], [], {}
        for ex, reply in zip(parents, replies):
            parsed = parse_reply(reply, task, mode, multiline="\n" in ex["input"])[:k]
            if not parsed:
                unparseable.append(reply)
            for cand in parsed:
                j = made[ex["id"]] = made.get(ex["id"], -1) + 1
                if mode == "label_conditioned":  # the class is the parent's, by construction
                    cand["raw_output"] = task.verbalize(ex["output"])
                cands.append({**cand, **self._provenance(i, ex, j, "teacher")})
        if unparseable:
            sample = " ".join(unparseable[0].split())[:160]
            what = "numbered items" if mode == "label_conditioned" else "numbered Input/Output items"
            self.ctx.say(f"iteration {i}: warning: {len(unparseable)} of {len(replies)} teacher replies held no "
                         f"{what} and were dropped as unparseable (first: {sample!r}); a stronger teacher.model, or "
                         f"a lower teacher.temperature, usually follows the format")
        return cands, {"requests": len(requests), "asked": len(requests) * k, "mode": mode,
                       "unparseable": len(unparseable),
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
        return cands, {"asked": len(chosen) * self.per_example}


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
        return cands, {"asked": len(chosen) * self.per_example}


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


def estimate_teacher_use(ctx: Context, iterations: int) -> dict:
    """The most a run can ask of its teacher: every candidate parent wrong in every round that augments (the
    llm2llm case; auggpt asks about all of them anyway), `requests_per_example` requests each, the judge once per
    new example asked for. Input tokens: the requests for every seed example, counted by the backend (exactly
    where it can: the local tokenizer, Gemini's countTokens) on the first and scaled by length for the rest."""
    c = ctx.config
    rounds = max(0, iterations - 1)
    if c.method not in ("llm2llm", "auggpt") or not rounds or not ctx.seed_set:
        return {}
    method = AUGMENTERS[c.method](ctx)
    backend = ctx.teacher()
    from llm2llm_jax.teacher.prompts import resolve_mode

    mode = resolve_mode(c.teacher.mode, ctx.task)
    k = -(-method.per_example // c.teacher.requests_per_example)
    sample = [method._request(ex, "", k, mode, backend.structured, 0) for ex in ctx.seed_set]
    first, how = backend.count_input_tokens(backend.form(sample[0]))
    per_char = first / max(1, len(backend.form(sample[0]).prompt_text()))
    per_round = sum(len(backend.form(r).prompt_text()) for r in sample) * per_char * c.teacher.requests_per_example
    requests = len(ctx.seed_set) * c.teacher.requests_per_example * rounds
    input_tokens = per_round * rounds
    output_tokens = requests * backend.settings.max_output_tokens
    judged = requests * k if c.filters.verify == "judge" else 0
    if judged:  # a judge request is short: an input and the class list
        input_tokens += judged * 0.5 * first
        output_tokens += judged * backend.settings.max_output_tokens
    s = backend.settings
    cost = (input_tokens * s.price_input + output_tokens * s.price_output) / 1e6
    return {"requests": requests + judged, "judge_requests": judged, "input_tokens": int(input_tokens),
            "output_tokens": int(output_tokens), "cost_usd": round(cost, 4) if s.price_input or s.price_output
            else None, "counted": how, "rounds": rounds, "paid": backend.kind in ("gemini", "openai")}


def describe_estimate(est: dict, seeds: int) -> str:
    cost = (f", at most ${est['cost_usd']:.4f} at the configured prices" if est.get("cost_usd") is not None
            else " (set teacher.price_input and teacher.price_output, USD per million tokens, for a cost)"
            if est.get("paid") else "")
    judge = f", {est['judge_requests']} of them the judge's" if est.get("judge_requests") else ""
    return (f"teacher estimate, at most (every one of the {seeds} seed examples wrong in each of {est['rounds']} "
            f"rounds): {est['requests']} requests{judge}, about {est['input_tokens']:,} input tokens "
            f"({est['counted']}) and at most {est['output_tokens']:,} output tokens{cost}")
