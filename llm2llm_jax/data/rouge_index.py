"""Near-duplicate search by ROUGE-L: which kept text, if any, a new text is too close to, through an index.

ROUGE-L F between two token lists of lengths m and n is 2 * LCS / (m + n), and the longest common
subsequence is at most the number of tokens the two share (counting repeats). So a text of m tokens can
only pass a threshold t against texts that share at least about t / (2 - t) * m of its tokens, and by
the prefix-filtering argument of set-similarity joins it then shares one of its first few tokens in any
fixed global order: m - that overlap + 1 of them. The index keeps each text under those first tokens
(rarest first, by their frequency in the texts it was built from); a query scores with `rouge_score` only
the few texts found under its own first tokens that also pass the length and shared-token bounds. The
decisions are those of scoring against every kept text (tests compare the two on thousands of texts);
the cost per query stays nearly flat as the kept set grows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from rouge_score import rouge_scorer, tokenizers

# Slack for the bounds: rouge_score computes F in floating point, so a pair whose exact F equals the
# threshold may still score a hair above it; the bounds admit it and the real score decides.
_SLACK = 1e-6


class RougeIndex:
    """Texts kept so far; `is_duplicate(text)` says whether ROUGE-L F of `text` with one of them exceeds
    `threshold` (as `RougeScorer(['rougeL']).score(kept, text)` with no stemming would say)."""

    def __init__(self, threshold: float, texts: Iterable[str] = ()):
        self.threshold = threshold
        self.tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=self.tokenizer)
        texts = list(texts)
        tokens = [self.tokenizer.tokenize(t) for t in texts]
        # The global order: rarer first, by frequency in the texts the index starts from. It never
        # changes afterwards (any fixed order is correct; this one keeps the lists under each token short).
        self.frequency = Counter(tok for toks in tokens for tok in set(toks))
        self.docs: list[tuple[str, Counter, int] | None] = []  # (text, token counts, length); None: forgotten
        self.by_text: dict[str, list[int]] = defaultdict(list)
        self.postings: dict[tuple, list[int]] = defaultdict(list)
        for text, toks in zip(texts, tokens):
            self._add(text, toks)

    def add(self, text: str) -> None:
        """Keep `text`: later queries too close to it are duplicates."""
        self._add(text, self.tokenizer.tokenize(text))

    def remove(self, text: str) -> None:
        """Undo the latest `add(text)` still in the index (nothing if there is none)."""
        ids = self.by_text.get(text)
        if ids:
            self.docs[ids.pop()] = None

    def is_duplicate(self, text: str) -> bool:
        if self.threshold <= 0 or self.threshold >= 1 + _SLACK:
            return self._any(text, range(len(self.docs)))  # no useful bound: score against everything
        toks = self.tokenizer.tokenize(text)
        if not toks:
            return False  # ROUGE-L of an empty token list is 0 against anything
        m, counts, seen = len(toks), Counter(toks), set()
        low, high = self._length_range(m)
        for key in self._prefix(toks):
            for d in self.postings.get(key, ()):
                if d in seen:
                    continue
                seen.add(d)
                doc = self.docs[d]
                if doc is None or not low <= doc[2] <= high:
                    continue
                if sum((counts & doc[1]).values()) < self._pair_overlap(m, doc[2]):
                    continue
                if self._score(doc[0], text):
                    return True
        return False

    # -- bounds
    def _ratio(self) -> float:
        t = min(self.threshold - _SLACK, 1.0)
        return t / (2 - t)

    def _min_overlap(self, m: int) -> int:
        """Tokens a text of m tokens shares with any text it could be a duplicate of, at least."""
        return max(1, math.ceil(self._ratio() * m - _SLACK))

    def _pair_overlap(self, m: int, n: int) -> int:
        return math.ceil((self.threshold - _SLACK) * (m + n) / 2 - _SLACK)

    def _length_range(self, m: int) -> tuple[float, float]:
        r = self._ratio()
        return r * m - _SLACK, m / r + _SLACK

    def _prefix(self, toks: list[str]) -> list[tuple]:
        """The text's first tokens in the global order, each repeat its own element ((token, k): its k-th
        occurrence), as the prefix argument over word multisets takes them."""
        seen: Counter = Counter()
        keyed = []
        for tok in toks:
            keyed.append((self.frequency.get(tok, 0), tok, seen[tok]))
            seen[tok] += 1
        keyed.sort()
        return [(tok, k) for _, tok, k in keyed[: len(toks) - self._min_overlap(len(toks)) + 1]]

    # -- storage and scoring
    def _add(self, text: str, toks: list[str]) -> None:
        d = len(self.docs)
        self.docs.append((text, Counter(toks), len(toks)))
        self.by_text[text].append(d)
        if toks and 0 < self.threshold < 1 + _SLACK:
            for key in self._prefix(toks):
                self.postings[key].append(d)

    def _score(self, kept: str, text: str) -> bool:
        return self.scorer.score(kept, text)["rougeL"].fmeasure > self.threshold

    def _any(self, text: str, ids: Iterable[int]) -> bool:
        return any(self.docs[d] is not None and self._score(self.docs[d][0], text) for d in ids)
