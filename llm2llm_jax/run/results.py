"""Reusing a fine-tune + evaluation: the key of what decides its result, the earlier iteration that has it,
and a store of results shared between runs.

An iteration whose training set, settings and base weights equal an earlier iteration's would compute
the same model and the same predictions (training is deterministic), so the controller reuses them. The
shared store (config.shared_results, set by the comparison job) holds one directory per key, so that the
runs of an experiment compute each seed's plain fine-tune once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from llm2llm_jax.common import parallel
from llm2llm_jax.common.console import say
from llm2llm_jax.common.files import exists, read_json, read_jsonl, write_json, write_jsonl
from llm2llm_jax.config.snapshot import result_fields


def fingerprint(model) -> str:
    """A digest of a model handed in by the caller: its config and every weight."""
    cfg, params, _ = model
    h = hashlib.sha256(repr(cfg).encode())
    for leaf in jax.tree.leaves(params):
        h.update(np.asarray(jax.device_get(leaf)).tobytes())
    return h.hexdigest()[:24]


def result_key(config, train_set: Sequence[dict], weights_id: str) -> str:
    """The training examples (as the model sees them), the config fields that affect training and
    evaluation (config/snapshot.py's RESULT_FIELDS), and the base weights."""
    content = {
        "train": [[ex["input"], ex["output"]] for ex in train_set],
        "weights": weights_id,
        "config": result_fields(config),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def earlier_with(key: str, iter_path: Callable[..., str], i: int) -> int | None:
    """The first iteration before `i` whose result (its train.json) has `key`."""
    for j in range(i):
        path = iter_path(j, "train.json")
        if exists(path) and read_json(path).get("result_key") == key:
            return j
    return None


def _shared(shared_dir: str, key: str, name: str) -> str:
    return os.path.join(shared_dir, key, name)


def has_shared(shared_dir: str, key: str) -> bool:
    """The store has a complete result for `key` (its train.json is written last)."""
    return exists(_shared(shared_dir, key, "train.json"))


def read_shared(shared_dir: str, key: str) -> tuple[dict, list[dict], list[dict]]:
    """(train info with the `source` that computed it, parent predictions, test predictions)."""
    return (
        read_json(_shared(shared_dir, key, "train.json")),
        read_jsonl(_shared(shared_dir, key, "predictions_seed.jsonl")),
        read_jsonl(_shared(shared_dir, key, "predictions_test.jsonl")),
    )


def write_shared(shared_dir: str, key: str, value: tuple, source: str) -> None:
    info, seed_preds, test_preds = value
    write_jsonl(_shared(shared_dir, key, "predictions_test.jsonl"), test_preds)
    write_jsonl(_shared(shared_dir, key, "predictions_seed.jsonl"), seed_preds)
    write_json(_shared(shared_dir, key, "train.json"), dict(info, source=source))


def reused(key: str, run_dir, i: int, shared_dir: str = "") -> tuple[dict, list[dict], list[dict]] | None:
    """Iteration i's result read from an earlier iteration with the same `key` (marked `reused_from`), or from
    the shared store `shared_dir` (marked `shared_from`); None when it has to be computed. Every process
    agrees."""
    earlier = parallel.broadcast_json(earlier_with(key, run_dir.iter_path, i))
    if earlier is not None:
        say(
            f"iteration {i}: same training data and settings as iteration {earlier}; reusing its fine-tuned "
            f"result (no training)"
        )
        info, seed_preds, test_preds = run_dir.fit_result(earlier)
        return dict(info, reused_from=earlier), seed_preds, test_preds
    if shared_dir and parallel.broadcast_json(has_shared(shared_dir, key)):
        info, seed_preds, test_preds = read_shared(shared_dir, key)
        say(
            f"iteration {i}: same training data and settings as {info['source']}; reusing its fine-tuned "
            f"result (no training)"
        )
        return dict(info, shared_from=info.pop("source")), seed_preds, test_preds
    return None


def share(shared_dir: str, key: str, value: tuple, source: str) -> None:
    """Add a computed result to the shared store (nothing when there is none)."""
    if shared_dir:
        write_shared(shared_dir, key, value, source)


def write_fit(run_dir, i: int, value: tuple) -> None:
    """Iteration i's fine-tune + evaluation into its directory, train.json (the stage's last file) last."""
    info, seed_preds, test_preds = value
    info_path, seed_path, test_path = run_dir.fit_paths(i)
    write_jsonl(test_path, test_preds)
    write_jsonl(seed_path, seed_preds)
    write_json(info_path, info)
