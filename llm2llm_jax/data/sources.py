"""A run's data (`config.data`): the train pool and test set from the configured source, and the seed set
drawn from the pool. `SOURCES` maps each `data.source` name to its loader."""

from __future__ import annotations

from collections.abc import Callable

from llm2llm_jax.data import offline
from llm2llm_jax.data.leakage import LeakageChecker
from llm2llm_jax.data.sampling import sample_seed, shuffled, stratified_split
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
    check_labels(train, task, d.train_path)
    if d.test_path:
        test = read_table(d.test_path, d.input_field, d.output_field, d.format)
        check_labels(test, task, d.test_path)
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
    check_labels(train, task, d.tfds_name)
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


def seed_and_test_sets(d, task: Task, seed: int) -> tuple[list[dict], list[dict], int]:
    """(seed set, test set, seed examples dropped as duplicates of test examples) for a `config.data` section.

    Every seed example gets an id (`seed-N` when the source has none); line numbers are dropped.
    """
    train, test = load_source(d, task)
    seed_set = sample_seed(
        train, seed=seed, count=d.seed_count, fraction=d.seed_fraction, stratify=d.stratify
    )
    seed_set, leak = LeakageChecker(ex["input"] for ex in test).filter(seed_set)
    for i, ex in enumerate(seed_set):
        ex["id"] = ex.get("id") or f"seed-{i}"
        ex.pop("source_line", None)
    test = [{k: v for k, v in ex.items() if k != "source_line"} for ex in test]
    return seed_set, test, leak["exact"] + leak["ngram"]
