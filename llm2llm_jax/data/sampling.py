"""Splits and seed sampling: stratified by label, reproducible from a seed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from llm2llm_jax.data.tables import DataError


def _allocate(counts: Mapping[str, int], total: int) -> dict:
    """Largest-remainder allocation of `total` over groups proportional to `counts`."""
    n = sum(counts.values())
    exact = {k: total * c / n for k, c in counts.items()}
    alloc = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def stratified_sample(
    examples: Sequence[dict], count: int, seed: int, key: str | None = "output"
) -> list[int]:
    """Indices of `count` examples, label proportions kept (when key is set), reproducible from `seed`."""
    if not 0 < count <= len(examples):
        raise DataError(f"cannot sample {count} of {len(examples)} examples")
    rng = np.random.default_rng(seed)
    if key is None:
        return sorted(rng.choice(len(examples), count, replace=False).tolist())
    groups: dict = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex[key]].append(i)
    alloc = _allocate({k: len(v) for k, v in groups.items()}, count)
    chosen = []
    for label in sorted(groups):
        idx = groups[label]
        chosen += rng.choice(idx, alloc[label], replace=False).tolist() if alloc[label] else []
    return sorted(chosen)


def sample_seed(
    examples: Sequence[dict], seed: int, count: int = 0, fraction: float = 0.0, stratify: bool = True
) -> list[dict]:
    """The seed set: `count` examples (when > 0) or else `fraction` of them, stratified by label when
    asked."""
    if count <= 0 and not 0 < fraction <= 1:
        raise DataError(
            f"seed set size: give data.seed_count > 0 or 0 < data.seed_fraction <= 1 "
            f"(got {count}, {fraction})"
        )
    n = count or max(1, int(round(fraction * len(examples))))
    idx = stratified_sample(examples, n, seed, key="output" if stratify else None)
    out = []
    for i in idx:
        ex = dict(examples[i])
        ex.setdefault("id", f"ex-{i}")
        ex.update(origin="seed", parent_id="", iteration=0)
        out.append(ex)
    return out


def stratified_split(
    examples: Sequence[dict], test_count: int, seed: int, stratify: bool = True
) -> tuple[list[dict], list[dict]]:
    """(train, test): a held-out test split for sources that ship without one (offline TREC)."""
    test_idx = set(stratified_sample(examples, test_count, seed, key="output" if stratify else None))
    train = [ex for i, ex in enumerate(examples) if i not in test_idx]
    test = [ex for i, ex in enumerate(examples) if i in test_idx]
    return train, test


def shuffled(rows: Sequence[dict], seed: int) -> list[dict]:
    """The rows in an order drawn from `seed` (sources stored by class or by topic)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]
