"""A run's data (`config.data`): the train pool and test set from the configured source, and the seed set and
the dev split drawn from the pool. `SOURCES` maps each `data.source` name to its loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.data import offline
from llm2llm_jax.data.leakage import LeakageChecker
from llm2llm_jax.data.sampling import (
    duplicate_lines,
    sample_seed,
    shuffled,
    stratified_sample,
    stratified_split,
)
from llm2llm_jax.data.tables import DataError, check_labels, read_table
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.data.tfds_source import load_tfds

Split = tuple[list[dict], list[dict]]


def _trec(d, task: Task) -> Split:
    return stratified_split(offline.load_trec(), d.test_count, seed=d.split_seed)


def _gsm8k(d, task: Task) -> Split:
    return stratified_split(offline.load_gsm8k_test(), d.test_count, seed=d.split_seed, stratify=False)


def _rotten_tomatoes(d, task: Task) -> Split:
    """Ordered by movie: the test split is shuffled, so data.test_limit is a fair sample."""
    train, test = stratified_split(offline.load_rotten_tomatoes(), d.test_count, seed=d.split_seed)
    return train, shuffled(test, d.split_seed)


def _newsgroups(d, task: Task) -> Split:
    """Its own test split, ordered by topic: shuffled."""
    return offline.load_newsgroups("train"), shuffled(offline.load_newsgroups("test"), d.split_seed)


def _files(d, task: Task) -> Split:
    """data.train_path (and data.test_path, or data.test_count rows held out) with the configured field
    mapping."""
    train = read_table(d.train_path, d.input_field, d.output_field, d.format)
    check_labels(train, task, d.train_path, d.output_field, d.input_field)
    if d.test_path:
        test = read_table(d.test_path, d.input_field, d.output_field, d.format)
        check_labels(test, task, d.test_path, d.output_field, d.input_field)
    else:
        train, test = stratified_split(
            train, d.test_count, seed=d.split_seed, stratify=task.is_classification
        )
    for prefix, rows in (("train", train), ("test", test)):
        for j, ex in enumerate(rows):
            ex.setdefault("id", f"{prefix}-{j}")
    return train, test


def _tfds(d, task: Task) -> Split:
    data_dir = d.tfds_data_dir or None
    train = load_tfds(d.tfds_name, d.tfds_train_split, d.input_field, d.output_field, data_dir)
    test = load_tfds(d.tfds_name, d.tfds_test_split, d.input_field, d.output_field, data_dir)
    check_labels(train, task, d.tfds_name, d.output_field, d.input_field)
    return train, test


SOURCES: dict[str, Callable[..., Split]] = {
    "trec_offline": _trec,
    "gsm8k_offline": _gsm8k,
    "rotten_tomatoes_offline": _rotten_tomatoes,
    "newsgroups_offline": _newsgroups,
    "file": _files,
    "tfds": _tfds,
}


def load_source(d, task: Task) -> Split:
    """(train pool, test set) from a `config.data` section; the test set is held out here when the source has
    none."""
    if d.source not in SOURCES:
        raise DataError(f"config.data.source={d.source!r}: choose one of {tuple(SOURCES)}")
    return SOURCES[d.source](d, task)


@dataclasses.dataclass
class RunData:
    """A run's examples: the seed set, the dev split (empty without one) and the test set, with how many
    examples the leakage checks kept out of the first two."""

    seed: list[dict]
    dev: list[dict]
    test: list[dict]
    seed_replaced: int = 0  # examples set aside from the seed draw: duplicates of test examples or each other
    dev_leaks: int = 0  # pool rows kept out of the dev draw as duplicates of test or seed examples
    duplicates: tuple = (0, [])  # rows of the pool that repeat an earlier row, and the first few lines


def has_dev(d) -> bool:
    """The `config.data` section asks for a dev split."""
    return bool(d.dev_count) or bool(d.dev_fraction)


def run_data(d, task: Task, seed: int) -> RunData:
    """The seed set, the dev split and the test set for a `config.data` section.

    The seed set is drawn as it always was (so runs with and without a dev split share their seed sets); the
    dev split is drawn from the rest of the pool after removing the rows that duplicate a test or a seed
    example, stratified by label for classification. Every example gets an id; line numbers are dropped.
    """
    train, test = load_source(d, task)
    leaks = LeakageChecker(ex["input"] for ex in test)
    seed_set, replaced = sample_seed(
        train,
        seed=seed,
        count=d.seed_count,
        fraction=d.seed_fraction,
        stratify=d.stratify,
        unusable=lambda ex: bool(leaks.check(ex["input"])),
        source=d.train_path if d.source == "file" else f"the {d.source} training pool",
    )
    for i, ex in enumerate(seed_set):
        ex["id"] = ex.get("id") or f"seed-{i}"
        ex.pop("source_line", None)
    test = [{k: v for k, v in ex.items() if k != "source_line"} for ex in test]
    dev, dev_leaks = _dev_split(d, task, train, seed_set, test, seed) if has_dev(d) else ([], 0)
    return RunData(seed_set, dev, test, replaced, dev_leaks, duplicate_lines(train))


def _dev_split(d, task: Task, train, seed_set, test, seed: int) -> tuple[list[dict], int]:
    seed_inputs = {ex["input"] for ex in seed_set}
    checker = LeakageChecker([ex["input"] for ex in test] + [ex["input"] for ex in seed_set])
    rest = [ex for ex in train if ex["input"] not in seed_inputs]
    pool = [ex for ex in rest if not checker.check(ex["input"])]
    count = d.dev_count or int(round(d.dev_fraction * len(pool)))
    if not 0 < count <= len(pool):
        raise DataError(
            f"config.data.dev_count={d.dev_count}, dev_fraction={d.dev_fraction}: a dev split of {count} "
            f"examples, but the training pool has {len(pool)} left beside the seed set; ask for fewer"
        )
    key = "output" if d.stratify and task.is_classification else None
    dev = []
    for n, i in enumerate(stratified_sample(pool, count, stable_seed(seed, "dev"), key=key)):
        ex = {k: v for k, v in pool[i].items() if k != "source_line"}
        ex["id"] = ex.get("id") or f"dev-{n}"
        dev.append(ex)
    return dev, len(rest) - len(pool)


def seed_and_test_sets(d, task: Task, seed: int) -> tuple[list[dict], list[dict], int]:
    """(seed set, test set, drawn seed examples replaced as duplicates): `run_data` without the dev split."""
    data = run_data(d, task, seed)
    return data.seed, data.test, data.seed_replaced
