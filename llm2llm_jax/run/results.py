"""Reusing a fine-tune + evaluation: the key of what decides its result, the earlier iteration that has it,
and a store of results shared between runs.

An iteration whose training set, settings and base weights equal an earlier iteration's would compute
the same model and the same predictions (training is deterministic), so the controller reuses them. The
shared store (config.shared_results, set by the comparison job) holds one directory per key, so that the
runs of an experiment compute each seed's plain fine-tune once.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class Fit:
    """One fine-tune + evaluation: the fine-tune's info, and the predictions on the candidate parents, the
    test set and (with a dev split) the dev set."""

    info: dict
    parents: list[dict]
    test: list[dict]
    dev: list[dict] | None = None

    def files(self) -> dict:
        """What goes in which file, train.json (the one whose presence says the result is complete) last."""
        out = {"predictions_test.jsonl": self.test, "predictions_seed.jsonl": self.parents}
        if self.dev is not None:
            out["predictions_dev.jsonl"] = self.dev
        return out


def fit_names(dev: bool) -> list[str]:
    """The files of one fine-tune + evaluation (train.json first)."""
    return ["train.json", "predictions_seed.jsonl", "predictions_test.jsonl"] + (
        ["predictions_dev.jsonl"] if dev else []
    )


def read_fit(path: Callable[[str], str], dev: bool) -> Fit:
    """The Fit whose files are at path(name)."""
    dev_rows = read_jsonl(path("predictions_dev.jsonl")) if dev else None
    return Fit(
        read_json(path("train.json")),
        read_jsonl(path("predictions_seed.jsonl")),
        read_jsonl(path("predictions_test.jsonl")),
        dev_rows,
    )


def write_fit(path: Callable[[str], str], fit: Fit) -> None:
    for name, rows in fit.files().items():
        write_jsonl(path(name), rows)
    write_json(path("train.json"), fit.info)


def _shared(shared_dir: str, key: str, name: str) -> str:
    return os.path.join(shared_dir, key, name)


def has_shared(shared_dir: str, key: str) -> bool:
    """The store has a complete result for `key` (its train.json is written last)."""
    return exists(_shared(shared_dir, key, "train.json"))


def reused(key: str, run_dir, i: int, shared_dir: str = "") -> Fit | None:
    """Iteration i's result read from an earlier iteration with the same `key` (marked `reused_from`), or from
    the shared store `shared_dir` (marked `shared_from`); None when it has to be computed. Every process
    agrees."""
    earlier = parallel.broadcast_json(earlier_with(key, run_dir.iter_path, i))
    if earlier is not None:
        say(
            f"iteration {i}: same training data and settings as iteration {earlier}; reusing its fine-tuned "
            f"result (no training)"
        )
        fit = run_dir.fit_result(earlier)
        return dataclasses.replace(fit, info=dict(fit.info, reused_from=earlier))
    if shared_dir and parallel.broadcast_json(has_shared(shared_dir, key)):
        fit = read_fit(lambda name: _shared(shared_dir, key, name), run_dir.has_dev)
        source = fit.info.pop("source")
        say(
            f"iteration {i}: same training data and settings as {source}; reusing its fine-tuned result "
            f"(no training)"
        )
        return dataclasses.replace(fit, info=dict(fit.info, shared_from=source))
    return None


def share(shared_dir: str, key: str, fit: Fit, source: str) -> None:
    """Add a computed result to the shared store (nothing when there is none)."""
    if shared_dir:
        write_fit(
            lambda name: _shared(shared_dir, key, name),
            dataclasses.replace(fit, info=dict(fit.info, source=source)),
        )
