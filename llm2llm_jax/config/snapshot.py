"""A run's identity: the config snapshot in its run directory (`config.json`), what may change when a run is
resumed, and which fields decide a fine-tune's result (the key under which it is reused).

API keys never reach the snapshot: they are read from the environment only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from llm2llm_jax.common import files
from llm2llm_jax.common.errors import RunError
from llm2llm_jax.common.files import read_json, write_json

# Config fields that may change between a run and its resumption without changing its results.
RESUMABLE_FIELDS = (
    "iterations",
    "workdir",
    "teacher.concurrency",
    "teacher.timeout",
    "teacher.max_calls",
    "teacher.max_tokens",
    "teacher.max_attempts",
    "teacher.initial_delay",
    "teacher.max_delay",
    "teacher.max_server_delay",
    "teacher.max_empty_rounds",
    "teacher.price_input",
    "teacher.price_output",
    "teacher.batch",
    "teacher.batch_poll_seconds",
    "progress",
    "compile_cache_dir",
    "gpu_xla_flags",
    "compare",
    "shared_results",
    "tensorboard",
    "export",
)
# Fields added after runs were made: an older run's snapshot lacks them, and it ran as if they had these
# values, so a config that sets them so is the same run.
ADDED_FIELDS = {
    "custom_task.description": "",
    "custom_task.class_meanings": "",
    "custom_task.file": "",
    "teacher.mode": "example",
    "teacher.requests_per_example": 1,
    "teacher.structured": False,
    "teacher.batch": False,
    "teacher.batch_poll_seconds": None,
    "filters.verify": "none",
    "filters.judge_model": "",
    "train.share_prefix": False,
    "train.prefix_multiple": None,
    "data.prompt_format": "plain",
    "data.dev_count": 0,
    "data.dev_fraction": 0.0,
    "train.epoch_selection": "fixed",
    "train.patience": 2,
}
# Result fields added since results were first reused: at these values a result's key is what it was before
# they existed, so runs and shared results made earlier are still found.
KEY_NEUTRAL = {
    "data.dev_count": 0,
    "data.dev_fraction": 0.0,
    "train.epoch_selection": "fixed",
    "train.patience": 2,
}
# Fields (sections or single fields) that decide what a fine-tune + evaluation computes (the key under which
# its result is reused); from_augmented decides which examples besides the seed set are evaluated.
RESULT_FIELDS = (
    "seed",
    "task",
    "custom_task",
    "mesh",
    "model",
    "data",
    "train",
    "eval",
    "augment.from_augmented",
)
RESULT_IGNORES = ("train.checkpoint_every", "train.checkpoint_minutes", "train.keep_checkpoints")


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def snapshot(config) -> dict:
    """The config as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def result_fields(config) -> dict:
    """The flattened config fields that decide a fine-tune + evaluation's result."""
    flat = flatten(snapshot(config))
    return {
        k: v
        for k, v in sorted(flat.items())
        if any(k == f or k.startswith(f + ".") for f in RESULT_FIELDS)
        and k not in RESULT_IGNORES
        and not (k in KEY_NEUTRAL and v == KEY_NEUTRAL[k])
    }


def check_snapshot(config, workdir: str, ignore: Sequence[str] = ()) -> bool:
    """Refuse a run directory made with another config (fields outside RESUMABLE_FIELDS), or one that holds
    files (other than `ignore`: the run's lock) but no config; True when this config's snapshot still has to
    be written (new run, or changed resumable fields), so an unchanged run directory is only read."""
    target = os.path.join(workdir, "config.json")
    new = snapshot(config)
    if not files.exists(target):
        found = [n for n in files.listdir(workdir) if n not in ignore and not n.startswith(".")]
        if found:
            raise RunError(
                f"{workdir} holds {', '.join(found[:5])}{' ...' if len(found) > 5 else ''} but no "
                f"config.json, so it cannot be resumed or checked against this config. Choose an empty "
                f"or new --config.workdir (or move those files away)."
            )
        return True
    old, flat = flatten(read_json(target)), flatten(new)
    for key, value in ADDED_FIELDS.items():  # an older snapshot: the field had this value before it existed
        if key not in old and key in flat and (value is None or flat[key] == value):
            old[key] = flat[key]
    differing = {k for k in set(old) | set(flat) if old.get(k) != flat.get(k)}
    changed = sorted(
        k for k in differing if not any(k == f or k.startswith(f + ".") for f in RESUMABLE_FIELDS)
    )
    if changed:
        shown = "; ".join(f"{k}: {flat.get(k)!r} here, {old.get(k)!r} in the run" for k in changed[:6])
        raise RunError(
            f"{workdir} holds a run with another config ({shown}{'; ...' if len(changed) > 6 else ''}). "
            f"Resume it with the run's values (--config.KEY=VALUE), or choose another --config.workdir."
        )
    return bool(differing - {"workdir"})  # a copied or moved run directory is the same run


def write_snapshot(config, workdir: str) -> None:
    write_json(os.path.join(workdir, "config.json"), snapshot(config))
