"""Splits and seed sampling: stratified by label, reproducible from a seed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

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
    examples: Sequence[dict],
    seed: int,
    count: int = 0,
    fraction: float = 0.0,
    stratify: bool = True,
    unusable: Callable[[dict], bool] | None = None,
    source: str = "the training pool",
) -> tuple[list[dict], int]:
    """(the seed set, how many examples were set aside as duplicates): `count` examples (when > 0) or else
    `fraction` of the usable ones (each input once, none `unusable`), stratified by label when asked.

    A count is the plain stratified draw; a drawn example that repeats one already in the set (the same
    input) or that `unusable` rejects (a duplicate of a test example) is replaced by another of its label
    drawn from the rest, so the set keeps its size and its label counts, and a draw that needed no
    replacement is the one it always was."""
    if count <= 0 and not 0 < fraction <= 1:
        raise DataError(
            f"config.data.seed_count={count}, seed_fraction={fraction}: give data.seed_count > 0 or "
            f"0 < data.seed_fraction <= 1"
        )
    bad = unusable or (lambda ex: False)
    key = "output" if stratify else None
    if count <= 0:
        first, usable = set(), []
        for i, ex in enumerate(examples):
            if ex["input"] not in first and not bad(ex):
                usable.append(i)
            first.add(ex["input"])
        n = max(1, int(round(fraction * len(usable))))
        drawn = stratified_sample([examples[i] for i in usable], n, seed, key=key)
        return _as_seed(examples, [usable[j] for j in drawn]), len(examples) - len(usable)
    n = count
    if n > len(examples):
        raise DataError(f"config.data.seed_count={n}: {source} has {len(examples)} examples; ask for fewer")
    idx = stratified_sample(examples, n, seed, key=key)
    rng = np.random.default_rng([seed, 1])  # the replacements' own stream: the first draw stays as it was
    taken, inputs, chosen, replaced = set(idx), set(), [], 0
    for i in idx:
        if examples[i]["input"] in inputs or bad(examples[i]):
            stand_in = _replacement(examples, i, key, taken, inputs, bad, rng)
            if stand_in is None:
                of_label = f" of label {examples[i][key]!r}" if key else ""
                raise DataError(
                    f"config.data.seed_count={n}: {source} has too few distinct examples{of_label} that are "
                    f"not duplicates of test or seed examples; ask for fewer"
                )
            i, replaced = stand_in, replaced + 1
        taken.add(i)
        inputs.add(examples[i]["input"])
        chosen.append(i)
    return _as_seed(examples, chosen), replaced


def _as_seed(examples: Sequence[dict], indices) -> list[dict]:
    """The examples at `indices`, in pool order, marked as the seed set (an id from the index if none)."""
    out = []
    for i in sorted(indices):
        ex = dict(examples[i])
        ex.setdefault("id", f"ex-{i}")
        ex.update(origin="seed", parent_id="", iteration=0)
        out.append(ex)
    return out


def _replacement(examples, i, key, taken, inputs, bad, rng) -> int | None:
    """An index to stand in for drawn example i: not drawn yet, of i's label (when stratified), a new input,
    and usable; drawn from those in a random order. None when there is none."""
    label = examples[i][key] if key else None
    for j in rng.permutation(len(examples)).tolist():
        ex = examples[j]
        if j in taken or (key and ex[key] != label) or ex["input"] in inputs or bad(ex):
            continue
        return j
    return None


def duplicate_lines(examples: Sequence[dict]) -> tuple[int, list]:
    """(how many rows repeat an earlier row exactly, the first few of them by line number or index)."""
    seen, repeats = set(), []
    for i, ex in enumerate(examples):
        row = (ex["input"], ex["output"])
        if row in seen:
            repeats.append(ex.get("source_line", i))
        seen.add(row)
    return len(repeats), repeats[:5]


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
