"""Reusing a fine-tune + evaluation: the key of what decides its result, and the earlier iteration that has it.

An iteration whose training set, settings and base weights equal an earlier iteration's would compute
the same model and the same predictions (training is deterministic), so the controller reuses them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from llm2llm_jax import settings
from llm2llm_jax.files import exists, read_json


def fingerprint(model) -> str:
    """A digest of a model handed in by the caller: its config and every weight."""
    cfg, params, _ = model
    h = hashlib.sha256(repr(cfg).encode())
    for leaf in jax.tree.leaves(params):
        h.update(np.asarray(jax.device_get(leaf)).tobytes())
    return h.hexdigest()[:24]


def result_key(config, train_set: Sequence[dict], weights_id: str) -> str:
    """The training examples (as the model sees them), the config fields that affect training and
    evaluation (settings.RESULT_FIELDS), and the base weights."""
    content = {"train": [[ex["input"], ex["output"]] for ex in train_set], "weights": weights_id,
               "config": settings.result_fields(config)}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def earlier_with(key: str, iter_path: Callable[..., str], i: int) -> Optional[int]:
    """The first iteration before `i` whose result (its train.json) has `key`."""
    for j in range(i):
        path = iter_path(j, "train.json")
        if exists(path) and read_json(path).get("result_key") == key:
            return j
    return None
