"""Filters for teacher output: empty/runaway, label or final-answer validity, test leakage, ROUGE-L dedup.
(The judge's verification, filters.verify, runs after them: augment/verify.py; its drops are `unverified`.)

`AugmentationFilter` remembers every input it has kept (and the seed set), so deduplication is
against everything kept so far across iterations, as in the paper (ROUGE-L F > 0.95 is a duplicate),
through an index whose cost per candidate stays nearly flat as that set grows (data/rouge_index.py).
Every drop is counted by reason. With `same_label`, a classification candidate must carry the label of
the seed example it was made from (`parent_label`): a weak teacher's own label is often wrong, and
agreement with the label it was asked for is the cheapest check of both its question and its answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from llm2llm_jax.data.leakage import LeakageChecker
from llm2llm_jax.data.rouge_index import RougeIndex
from llm2llm_jax.data.sources import has_dev
from llm2llm_jax.data.tasks import Task, parse_number
from llm2llm_jax.teacher.prompts import resolve_mode

REASONS = ("empty", "runaway", "invalid_label", "label_mismatch", "no_final_answer", "test_leak", "duplicate")


class AugmentationFilter:
    def __init__(
        self,
        task: Task,
        seed_inputs: Iterable[str],
        test_inputs: Iterable[str],
        rouge_threshold: float = 0.95,
        max_input_chars: int = 2000,
        max_output_chars: int = 4000,
        same_label: bool = False,
        dev_inputs: Iterable[str] = (),
    ):
        self.task = task
        self.same_label = same_label and task.is_classification
        self.max_input_chars, self.max_output_chars = max_input_chars, max_output_chars
        self.leakage = LeakageChecker(test_inputs)
        dev_inputs = list(dev_inputs)
        self.dev_leakage = LeakageChecker(dev_inputs) if dev_inputs else None
        self.reasons = REASONS + (("dev_leak",) if dev_inputs else ())
        self.kept = RougeIndex(rouge_threshold, seed_inputs)  # everything kept, seed set included

    def remember(self, text: str) -> None:
        """Count `text` as kept: later candidates too close to it are duplicates."""
        self.kept.add(text)

    def forget(self, text: str) -> None:
        """Undo `remember(text)` (an example dropped after filtering, e.g. by the judge)."""
        self.kept.remove(text)

    def is_duplicate(self, text: str) -> bool:
        return self.kept.is_duplicate(text)

    def check(self, candidate: dict) -> tuple[dict | None, str | None]:
        """(clean example with `input` and `output`, None) or (None, drop reason)."""
        text, raw = candidate.get("input", "").strip(), candidate.get("raw_output", "").strip()
        if not text or not raw:
            return None, "empty"
        if len(text) > self.max_input_chars or len(raw) > self.max_output_chars:
            return None, "runaway"
        if self.task.is_classification:
            label = self.task.parse(raw)
            if label is None:
                return None, "invalid_label"
            if self.same_label and candidate.get("parent_label") not in (None, label):
                return None, "label_mismatch"
            output = label
        elif self.task.numeric:
            if "####" not in raw or parse_number(raw) is None:
                return None, "no_final_answer"
            output = raw
        else:
            output = raw
        if self.leakage.check(text):
            return None, "test_leak"
        if self.dev_leakage is not None and self.dev_leakage.check(text):
            return None, "dev_leak"
        if self.is_duplicate(text):
            return None, "duplicate"
        self.remember(text)
        return {"input": text, "output": output}, None

    def apply(self, candidates: Sequence[dict]) -> tuple[list[dict], dict]:
        """(kept examples with provenance copied from each candidate, drop counts by reason)."""
        kept, drops = [], Counter(dict.fromkeys(self.reasons, 0))
        for cand in candidates:
            clean, reason = self.check(cand)
            if reason:
                drops[reason] += 1
                continue
            clean.update({k: cand[k] for k in ("id", "origin", "parent_id", "iteration") if k in cand})
            kept.append(clean)
        return kept, dict(drops)


def applied_filters(task: Task, config) -> list[str]:
    """What every kept example has passed under this config (these filters, then the judge), in the order they
    are applied: the data card lists them."""
    mode = resolve_mode(config.teacher.mode, task)
    out = ["not empty", "not runaway"]
    if task.is_classification and mode == "label_conditioned":
        out.append("the parent's class, attached by construction (teacher.mode=label_conditioned)")
    elif task.is_classification:
        out.append("valid label")
        if config.teacher.same_label:
            out.append("label as asked (teacher.same_label)")
    elif task.numeric:
        out.append("has a final answer")
    out.append("not a test example")
    if has_dev(config.data):
        out.append("not a dev example")
    out.append("not a duplicate (ROUGE-L below filters.rouge_threshold)")
    if config.filters.verify == "judge":
        out.append("the judge gives the same answer (filters.verify=judge)")
    return out
