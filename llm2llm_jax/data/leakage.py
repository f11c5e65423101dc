"""Test-set leakage: texts equal or nearly equal to a test example."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence


def normalize_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _ngrams(words: Sequence[str], n: int) -> set:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class LeakageChecker:
    """Flags texts equal or nearly equal to a test example.

    Exact: the normalised texts match. Near: at least `overlap` of the candidate's word n-grams occur
    in one single test example (and the two are of comparable length), which catches light edits
    of a test question while leaving texts that merely share a phrase alone. An index from n-gram to
    the test examples holding it finds every example sharing one, so the decisions are those of
    comparing with each test example in turn, at the cost of the few that share something.
    """

    def __init__(self, test_texts: Iterable[str], n: int = 3, overlap: float = 0.7):
        self.n, self.overlap = n, overlap
        self.exact = set()
        self.grams: list[set] = []
        self.index: dict = defaultdict(set)
        for i, text in enumerate(test_texts):
            norm = normalize_text(text)
            self.exact.add(norm)
            grams = _ngrams(norm.split(), n)
            self.grams.append(grams)
            for g in grams:
                self.index[g].add(i)

    def check(self, text: str) -> str | None:
        """None if clean, else 'exact' or 'ngram'."""
        norm = normalize_text(text)
        if norm in self.exact:
            return "exact"
        grams = _ngrams(norm.split(), self.n)
        if not grams:
            return None
        hits = Counter(i for g in grams for i in self.index.get(g, ()))
        for i, shared in hits.items():  # every test example sharing an n-gram, not only the closest few
            similar_size = min(len(grams), len(self.grams[i])) >= 0.5 * max(len(grams), len(self.grams[i]))
            if shared / len(grams) >= self.overlap and similar_size:
                return "ngram"
        return None

    def filter(self, examples: Sequence[dict]) -> tuple[list[dict], dict]:
        """(kept examples, report {'exact': n, 'ngram': n, 'dropped_ids': [...]})."""
        kept, report = [], {"exact": 0, "ngram": 0, "dropped_ids": []}
        for ex in examples:
            reason = self.check(ex["input"])
            if reason:
                report[reason] += 1
                report["dropped_ids"].append(ex.get("id", ""))
            else:
                kept.append(ex)
        return kept, report
