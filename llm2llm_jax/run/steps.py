"""The steps of a run as resumable stages (run/stages.py): its data, each iteration's training shard, its
fine-tune and evaluation (or their reuse), its augmentation, and its metrics row. The controller says in which
order they happen; each function here says where its output lives and how it is computed."""

from __future__ import annotations

from collections.abc import Callable

from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.files import read_json, read_jsonl, write_json, write_jsonl
from llm2llm_jax.data import shards
from llm2llm_jax.data.sources import RunData, run_data
from llm2llm_jax.run import results
from llm2llm_jax.run.hooks import Hook
from llm2llm_jax.run.layout import RunDirectory
from llm2llm_jax.run.results import Fit
from llm2llm_jax.run.stages import run_stage


def data(run_dir: RunDirectory, config, task) -> RunData:
    """The seed set, the dev split and the test set: data/seed.jsonl, data/dev.jsonl (with a dev split) and
    data/test.jsonl."""
    names = ["seed", "test"] + (["dev"] if run_dir.has_dev else [])
    paths = {name: run_dir.path("data", f"{name}.jsonl") for name in names}

    def compute():
        value = run_data(config.data, task, config.seed)
        say_data(value)
        return value

    def write(value):
        write_json(run_dir.path("data", "stats.json"), data_stats(value))
        for name in reversed(names):  # seed.jsonl, which the data stage's resume checks first, last
            write_jsonl(paths[name], getattr(value, name))

    def read():
        dev = read_jsonl(paths["dev"]) if run_dir.has_dev else []
        return RunData(read_jsonl(paths["seed"]), dev, read_jsonl(paths["test"]))

    return run_stage("data", list(paths.values()), compute, write, read)


def say_data(value: RunData) -> None:
    """The data stage's counts, one line each: repeated rows in the pool, the seed set, the dev split."""
    repeats, lines = value.duplicates
    if repeats:
        say(
            f"the training pool repeats {repeats} rows exactly (first at lines or rows "
            f"{', '.join(map(str, lines))}); the seed set takes each input once"
        )
    aside = value.seed_replaced
    say(
        f"seed set: {len(value.seed)} examples"
        + (f" ({aside} set aside as duplicates of test examples or of each other)" if aside else "")
    )
    if value.dev:
        say(
            f"dev split: {len(value.dev)} examples from the training pool ({value.dev_leaks} rows left "
            f"out as duplicates of test or seed examples)"
        )


def data_stats(value: RunData) -> dict:
    """data/stats.json: every count the data stage reported."""
    repeats, lines = value.duplicates
    return {
        "seed": len(value.seed),
        "seed_set_aside": value.seed_replaced,
        "dev": len(value.dev),
        "dev_left_out": value.dev_leaks,
        "test": len(value.test),
        "pool_repeated_rows": repeats,
        "pool_repeated_first": lines,
    }


def shard(run_dir: RunDirectory, hooks: Hook, i: int, examples: Callable[[], list[dict]]) -> None:
    """Iteration i's training set, `examples()`, as its tfds shard."""
    shard_dir = run_dir.path("shards")

    def write(rows):
        with hooks.stage("writes"):
            shards.write_iteration(shard_dir, i, rows)

    run_stage(f"shard-{i}", lambda: shards.is_written(shard_dir, i), examples, write, lambda: None)


def fit_and_evaluate(run, i: int, train_set, pool, test_eval, dev) -> Fit:
    """Iteration i's fine-tune and its evaluation on the candidate parents `pool`, the test set and the dev
    set (run.train, run.evaluate), or the result of an earlier iteration, or of another run, that trained on
    the same data with the same settings."""
    shared = run.config.shared_results if run.init.shares_results else ""

    def compute():
        key = results.result_key(
            run.config, train_set, run.student.weights_id() + run.init.key_suffix(i, run.dir)
        )
        reused = results.reused(key, run.dir, i, shared)
        if reused is not None:
            return reused
        fit = _fine_tune(run, i, train_set, pool, test_eval, dev, key)
        results.share(shared if run.is_main else "", key, fit, source=f"{run.workdir} iteration {i}")
        return fit

    result = run_stage(
        f"fit-{i}",
        run.dir.fit_paths(i),
        compute,
        lambda fit: run.dir.write_fit(i, fit),
        lambda: run.dir.fit_result(i),
        collective=True,
    )
    if run.is_main and not run.config.train.keep_checkpoints:
        _prune_checkpoints(run, i)
    return result


def _fine_tune(run, i: int, train_set, pool, test_eval, dev, key: str) -> Fit:
    """Train, evaluate (test, dev, parents), and offer a better student than any before to the keeper, before
    the iteration's results are written."""
    say(f"iteration {i}: fine-tuning from {run.init.describe_start(i, run.dir)} on {len(train_set)} examples")
    params, info = run.train(i, train_set)
    test_preds = run.evaluate(params, test_eval, f"iter {i} eval test")
    dev_preds = run.evaluate(params, dev, f"iter {i} eval dev") if run.dir.has_dev else None
    parents = run.evaluate(params, pool, f"iter {i} eval seed")
    fit = results.Fit(dict(info, result_key=key), parents, test_preds, dev_preds)
    if run.keeper is not None:
        run.keeper.offer(i, params, fit)
    return fit


def _prune_checkpoints(run, i: int) -> None:
    """Remove the training checkpoints of iterations up to i, but for the one a later fine-tune starts
    from."""
    needed = run.init.model_needed_after(i, run.dir)
    for j in range(i + 1):
        if j != needed:
            files.rmtree(run.dir.iter_path(j, "checkpoints"))


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
