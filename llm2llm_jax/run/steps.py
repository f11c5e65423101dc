"""The steps of a run as resumable stages (run/stages.py): its data, each iteration's training shard, its
fine-tune and evaluation (or their reuse), its augmentation, and its metrics row. The controller says in which
order they happen; each function here says where its output lives and how it is computed."""

from __future__ import annotations

from collections.abc import Callable

from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.files import read_json, read_jsonl, write_json, write_jsonl
from llm2llm_jax.data import shards
from llm2llm_jax.data.sources import seed_and_test_sets
from llm2llm_jax.run import results
from llm2llm_jax.run.hooks import Hook
from llm2llm_jax.run.layout import RunDirectory
from llm2llm_jax.run.stages import run_stage


def data(run_dir: RunDirectory, config, task) -> tuple[list[dict], list[dict]]:
    """(seed set, test set): data/seed.jsonl and data/test.jsonl."""
    seed_file, test_file = run_dir.path("data", "seed.jsonl"), run_dir.path("data", "test.jsonl")

    def compute():
        seed_set, test, dropped = seed_and_test_sets(config.data, task, config.seed)
        if dropped:
            say(f"dropped {dropped} seed examples that duplicate test examples")
        return seed_set, test

    return run_stage(
        "data",
        [seed_file, test_file],
        compute,
        lambda value: (write_jsonl(test_file, value[1]), write_jsonl(seed_file, value[0])),
        lambda: (read_jsonl(seed_file), read_jsonl(test_file)),
    )


def shard(run_dir: RunDirectory, hooks: Hook, i: int, examples: Callable[[], list[dict]]) -> None:
    """Iteration i's training set, `examples()`, as its tfds shard."""
    shard_dir = run_dir.path("shards")

    def write(rows):
        with hooks.stage("writes"):
            shards.write_iteration(shard_dir, i, rows)

    run_stage(f"shard-{i}", lambda: shards.is_written(shard_dir, i), examples, write, lambda: None)


def fit_and_evaluate(run, i: int, train_set, pool, test_eval) -> tuple[dict, list[dict], list[dict]]:
    """(train info, predictions on the candidate parents `pool`, test predictions) of iteration i: its
    fine-tune and evaluation (run.train, run.evaluate), or the result of an earlier iteration, or of another
    run, that trained on the same data with the same settings. The parents' predictions go to
    predictions_seed.jsonl."""
    shared = run.config.shared_results if run.init.shares_results else ""

    def compute():
        key = results.result_key(
            run.config, train_set, run.student.weights_id() + run.init.key_suffix(i, run.dir)
        )
        reused = results.reused(key, run.dir, i, shared)
        if reused is not None:
            return reused
        start = run.init.describe_start(i, run.dir)
        say(f"iteration {i}: fine-tuning from {start} on {len(train_set)} examples")
        params, info = run.train(i, train_set)
        test_preds = run.evaluate(params, test_eval, f"iter {i} eval test")
        value = dict(info, result_key=key), run.evaluate(params, pool, f"iter {i} eval seed"), test_preds
        results.share(shared if run.is_main else "", key, value, source=f"{run.workdir} iteration {i}")
        return value

    result = run_stage(
        f"fit-{i}",
        run.dir.fit_paths(i),
        compute,
        lambda value: results.write_fit(run.dir, i, value),
        lambda: run.dir.fit_result(i),
        collective=True,
    )
    if run.is_main and not run.config.train.keep_checkpoints:
        needed = run.init.model_needed_after(i, run.dir)  # the checkpoint a later fine-tune starts from
        for j in range(i + 1):
            if j != needed:
                files.rmtree(run.dir.iter_path(j, "checkpoints"))
    return result


def augment(run_dir: RunDirectory, i: int, make: Callable[[], tuple[list[dict], dict]]):
    """(kept examples, stats) of iteration i's augmentation, `make()`: augment.jsonl and
    augment_stats.json."""
    aug_file, stats_file = run_dir.iter_path(i, "augment.jsonl"), run_dir.iter_path(i, "augment_stats.json")
    return run_stage(
        f"augment-{i}",
        [aug_file, stats_file],
        make,
        lambda value: (write_json(stats_file, value[1]), write_jsonl(aug_file, value[0])),
        lambda: (read_jsonl(aug_file), read_json(stats_file)),
    )


def iteration(
    run_dir: RunDirectory, i: int, finished: Callable[[], bool], compute: Callable[[], dict]
) -> dict:
    """Iteration i's metrics row, computed (the whole iteration) unless `finished()`: metrics.json."""
    return run_stage(
        f"iteration-{i}",
        finished,
        compute,
        lambda m: write_json(run_dir.iter_path(i, "metrics.json"), m),
        lambda: run_dir.metrics(i),
        collective=True,
    )
