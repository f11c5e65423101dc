"""The indexed near-duplicate searches decide as the exhaustive ones do: ROUGE-L deduplication
(data/rouge_index.py, through the augmentation filter) and the n-gram test-leakage check (data/leakage.py)."""

import functools
import random

import pytest
from rouge_score import rouge_scorer, tokenizers

from llm2llm_jax.data.leakage import LeakageChecker, _ngrams, normalize_text
from llm2llm_jax.data.rouge_index import RougeIndex
from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.teacher.filters import AugmentationFilter

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
TOKENIZER = tokenizers.DefaultTokenizer(use_stemmer=False)


def texts(n: int, seed: int = 0) -> list[str]:
    """Short questions over a small Zipf vocabulary, and many near copies of them: words changed, dropped,
    repeated or swapped, case and punctuation changed, accents and text with no ASCII word at all, so that
    many pairs sit right around any threshold."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    out: list[str] = []
    while len(out) < n:
        if not out or rng.random() < 0.3:
            words = rng.choices(vocab, weights=weights, k=rng.randint(1, 40))
            out.append(" ".join(words))
            continue
        words = rng.choice(out).split() or ["x"]
        kind = rng.randrange(7)
        if kind == 0:
            words[rng.randrange(len(words))] = rng.choice(vocab)
        elif kind == 1 and len(words) > 1:
            del words[rng.randrange(len(words))]
        elif kind == 2:
            words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        elif kind == 3 and len(words) > 1:
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        elif kind == 4:
            words = [w.upper() if rng.random() < 0.5 else w + "," for w in words]
        elif kind == 5:
            words.append(rng.choice(["café", "naïve", "日本語", "?", "..."]))
        else:
            words = rng.choice([["日本語"], ["?!"], []]) + words[: rng.randint(0, len(words))]
        out.append(" ".join(words))
    return out


@functools.cache
def token_count(text: str) -> int:
    return len(TOKENIZER.tokenize(text))


def exhaustive_duplicate(kept: list[str], text: str, threshold: float) -> bool:
    """The reference: ROUGE-L against every kept text. Only pairs whose lengths alone keep F at or below
    the threshold are skipped (F = 2 LCS / (m + n) <= 2 min(m, n) / (m + n)), to keep the test quick."""
    m = token_count(text)
    for other in kept:
        n = token_count(other)
        if m + n and 2 * min(m, n) / (m + n) < threshold - 1e-9:
            continue
        if SCORER.score(other, text)["rougeL"].fmeasure > threshold:
            return True
    return False


@pytest.mark.parametrize(
    "threshold, count",
    [pytest.param(0.95, 2500, marks=pytest.mark.slow), (0.95, 700), (0.8, 700), (0.5, 500)],
)
def test_index_decides_as_scoring_every_kept_text(threshold, count):
    pool = texts(count, seed=int(threshold * 100))
    start, rest = pool[:200], pool[200:]
    index, kept = RougeIndex(threshold, start), list(start)
    decisions, reference = [], []
    for n, text in enumerate(rest):
        reference.append(exhaustive_duplicate(kept, text, threshold))
        decisions.append(index.is_duplicate(text))
        if not reference[-1]:
            index.add(text)
            kept.append(text)
        if n % 97 == 0 and len(kept) > 200:  # now and then one is dropped again (as the judge does)
            gone = kept.pop()
            index.remove(gone)
    assert decisions == reference
    assert 0.1 < sum(reference) / len(rest) < 0.9  # both kinds of decision, many of each


def test_index_scores_few_kept_texts_per_query():
    """The point of the index: a query looks at a few kept texts, not all of them."""
    pool = texts(3000, seed=3)
    index = RougeIndex(0.95, pool)
    scored = []
    original = index._score
    index._score = lambda kept, text: scored.append(kept) or original(kept, text)
    for text in texts(200, seed=4):
        index.is_duplicate(text)
    assert len(scored) < 200 * 30  # exhaustive: 200 * 3000


def test_filter_drops_duplicates_as_before():
    trec = TASKS["trec"]
    seed = ["What is the capital of France ?", "Who wrote the novel War and Peace in the year 1869 ?"]
    filt = AugmentationFilter(trec, seed, [])
    near = "who wrote the novel war and peace in the year 1869 ??"  # case and punctuation only
    new = "What is the capital of Peru ?"
    assert filt.check({"input": near, "raw_output": trec.verbalize("HUM")}) == (None, "duplicate")
    assert filt.check({"input": new, "raw_output": trec.verbalize("LOC")})[1] is None
    assert filt.check({"input": new, "raw_output": trec.verbalize("LOC")}) == (
        None,
        "duplicate",
    )  # kept: now a duplicate
    filt.forget(new)
    assert filt.check({"input": new, "raw_output": trec.verbalize("LOC")})[1] is None


def exhaustive_leak(tests: list[str], text: str, n: int = 3, overlap: float = 0.7) -> str | None:
    """The reference: the leakage rule applied to each test example in turn."""
    norm = normalize_text(text)
    if norm in {normalize_text(t) for t in tests}:
        return "exact"
    grams = _ngrams(norm.split(), n)
    if not grams:
        return None
    for t in tests:
        other = _ngrams(normalize_text(t).split(), n)
        similar_size = min(len(grams), len(other)) >= 0.5 * max(len(grams), len(other))
        if len(grams & other) / len(grams) >= overlap and similar_size:
            return "ngram"
    return None


def test_leakage_index_decides_as_checking_every_test_example():
    pool = texts(2500, seed=7)
    tests, candidates = pool[:500], pool[500:]
    checker = LeakageChecker(tests)
    found = [checker.check(t) for t in candidates]
    assert found == [exhaustive_leak(tests, t) for t in candidates]
    assert found.count("ngram") > 50 and found.count("exact") > 20 and found.count(None) > 500


def test_the_scale_benchmark_runs_the_real_controller(tmp_path):
    """benchmarks/controller_scale.py at a tiny size: every stage timed, the scripted teacher's verbatim
    copies dropped as duplicates, its new questions kept."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "scale.json"
    cmd = [sys.executable, "benchmarks/controller_scale.py", "--sizes", "120", "--test", "40"]
    proc = subprocess.run(
        [*cmd, "--iterations", "2", "--json", str(out)], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "120 seed examples: whole run" in proc.stdout and "ms/cand" in proc.stdout
    first = json.loads(out.read_text())[0]["iterations"][0]
    row = first["row"]
    assert row["teacher_requests"] == 36 and row["candidates"] == 4 * 36 == first["dedup_candidates"]
    assert row["drops"]["duplicate"] >= 36 and 36 <= row["new_examples"] < 4 * 36
    assert all(first[stage] > 0 for stage in ("filtering", "dedup", "shards", "augment"))
