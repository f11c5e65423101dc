"""The run config: one check of every field before any work starts, the module dataclasses built from its
sections (their defaults are the only defaults), derived seeds, and the run directory's config snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Callable, Sequence

from llm2llm_jax.errors import RunError
from llm2llm_jax import files
from llm2llm_jax.rundir import LOCK_NAME
from llm2llm_jax.files import read_json, write_json
from llm2llm_jax.model.config import ConfigError
from llm2llm_jax.model.loading import OFFLINE as OFFLINE_MODELS, source_of

# Config fields that may change between a run and its resumption without changing its results.
RESUMABLE_FIELDS = ("iterations", "workdir", "teacher.concurrency", "teacher.timeout", "teacher.max_calls",
                    "teacher.max_tokens", "teacher.max_attempts", "teacher.initial_delay", "teacher.max_delay",
                    "teacher.max_empty_rounds", "teacher.price_input", "teacher.price_output", "teacher.batch",
                    "teacher.batch_poll_seconds", "progress", "compile_cache_dir", "compare", "shared_results",
                    "tensorboard")
EVAL_MODES = ("generate", "score")
TRAIN_INITS = ("base", "previous")
AUGMENT_PARENTS = ("wrong", "all")
VERIFY_MODES = ("none", "judge")
# Fields added after runs were made: an older run's snapshot lacks them, and it ran as if they had these
# values, so a config that sets them so is the same run.
ADDED_FIELDS = {"teacher.mode": "example", "teacher.requests_per_example": 1, "teacher.structured": False,
                "teacher.batch": False, "teacher.batch_poll_seconds": None, "filters.verify": "none",
                "filters.judge_model": "", "train.share_prefix": False, "train.prefix_multiple": None,
                "data.prompt_format": "plain"}
# Fields (sections or single fields) that decide what a fine-tune + evaluation computes (the key under which
# its result is reused); from_augmented decides which examples besides the seed set are evaluated.
RESULT_FIELDS = ("seed", "task", "custom_task", "mesh", "model", "data", "train", "eval", "augment.from_augmented")
RESULT_IGNORES = ("train.checkpoint_every", "train.keep_checkpoints")


def defaults_of(cls, exclude=()) -> dict:
    """A dataclass's field defaults, for the config section that the dataclass is built from."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in exclude}


def build(cls, section, **fixed):
    """`cls` from the config section's fields of the same names, plus `fixed` ones that come from elsewhere."""
    names = {f.name for f in dataclasses.fields(cls)} - set(fixed)
    return cls(**{name: section[name] for name in names}, **fixed)


def stable_seed(*parts) -> int:
    """A seed derived from the run seed and a purpose (the same on every process and every rerun)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF


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
    return {k: v for k, v in sorted(flat.items())
            if any(k == f or k.startswith(f + ".") for f in RESULT_FIELDS) and k not in RESULT_IGNORES}


def check_snapshot(config, workdir: str) -> bool:
    """Refuse a run directory made with another config (fields outside RESUMABLE_FIELDS), or one that holds
    files but no config; True when this config's snapshot still has to be written (new run, or changed
    resumable fields), so an unchanged run directory is only read."""
    target = os.path.join(workdir, "config.json")
    new = snapshot(config)
    if not files.exists(target):
        found = [n for n in files.listdir(workdir) if n != LOCK_NAME and not n.startswith(".")]
        if found:
            raise RunError(f"{workdir} holds {', '.join(found[:5])}{' ...' if len(found) > 5 else ''} but no "
                           f"config.json, so it cannot be resumed or checked against this config. Choose an empty "
                           f"or new --config.workdir (or move those files away).")
        return True
    old, flat = flatten(read_json(target)), flatten(new)
    for key, value in ADDED_FIELDS.items():  # an older snapshot: the field had this value before it existed
        if key not in old and key in flat and (value is None or flat[key] == value):
            old[key] = flat[key]
    differing = {k for k in set(old) | set(flat) if old.get(k) != flat.get(k)}
    changed = sorted(k for k in differing if not any(k == f or k.startswith(f + ".") for f in RESUMABLE_FIELDS))
    if changed:
        raise RunError(f"{workdir} holds a run with another config (differs in {changed[:6]}). "
                       f"Resume it with the same config, or choose another --config.workdir.")
    return bool(differing - {"workdir"})  # a copied or moved run directory is the same run


def write_snapshot(config, workdir: str) -> None:
    write_json(os.path.join(workdir, "config.json"), snapshot(config))


# ---------------------------------------------------------------------------- validation
def _field(config, key: str) -> Any:
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _require(config, key: str, ok: Callable[[Any], bool], fix: str) -> None:
    value = _field(config, key)
    if not ok(value):
        raise ConfigError(f"config.{key}={value!r}: {fix}")


def validate(config, devices: Sequence, model_given: bool = False) -> None:
    """Every field a run depends on, before any weights are loaded or any file is written.

    Raises ConfigError naming the first bad field and the fix. devices: the ones the mesh is made of.
    model_given: the caller hands the run its model, so config.model's source and path are not read.
    """
    from llm2llm_jax import augment, data, parallel, tasks
    from llm2llm_jax.data import TRUNCATION_POLICIES
    from llm2llm_jax.model import kernels
    from llm2llm_jax.model.loading import SOURCES as MODEL_SOURCES
    from llm2llm_jax.teacher.backends import BACKENDS

    positive = lambda v: isinstance(v, int) and v > 0  # noqa: E731
    _require(config, "method", lambda v: v in augment.METHODS, f"choose one of {augment.METHODS}")
    _require(config, "iterations", positive, "run at least 1 iteration (iteration 0 is plain fine-tuning)")
    try:
        tasks.get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)
    except tasks.TaskError as e:
        field = "custom_task" if config.task == "custom" else "task"
        raise ConfigError(f"config.{field}: {e}") from None
    try:
        mesh = parallel.resolve_mesh_shape(tuple(config.mesh), len(devices))
    except parallel.ShardingError as e:
        raise ConfigError(f"config.mesh={tuple(config.mesh)}: {e}") from None

    if not model_given:
        _require(config, "model.source", lambda v: v in MODEL_SOURCES, f"choose one of {MODEL_SOURCES}")
    if not model_given and config.model.source not in OFFLINE_MODELS:
        _require(config, "model.path", bool, "give the HF checkpoint directory or the .gguf file")
    _require(config, "model.fused_attention", lambda v: v in kernels.FUSED_ATTENTION,
             f"choose one of {kernels.FUSED_ATTENTION}")
    try:  # the kernel and dtype choices against these devices, by the rules the model applies later
        kernels.resolve(config.model.kernels, devices, config.model.fused_attention)
        kernels.resolve_dtype(config.model.dtype, devices)
    except kernels.KernelError as e:
        raise ConfigError(f"config.{e}") from None  # its messages name the model.* field

    d = config.data
    _require(config, "data.source", lambda v: v in data.SOURCES, f"choose one of {data.SOURCES}")
    if d.source == "file":
        for key in ("data.train_path",) + (("data.test_path",) if d.test_path else ()):
            _require(config, key, lambda v: bool(v) and os.path.isfile(v),
                     "give an existing JSONL, CSV or TSV file (data.test_path may stay empty: "
                     "data.test_count rows are then held out)")
    if d.source == "tfds":
        _require(config, "data.tfds_name", bool, "name the tfds dataset (e.g. 'glue/sst2')")
    _require(config, "data.seed_count", lambda v: isinstance(v, int) and v >= 0, "use 0 (then data.seed_fraction "
             "applies) or a positive count")
    if not d.seed_count:
        _require(config, "data.seed_fraction", lambda v: 0 < v <= 1, "use a fraction in (0, 1], or set "
                 "data.seed_count")
    _require(config, "data.max_length", positive, "use the longest prompt + answer in tokens (e.g. 512)")
    _require(config, "data.truncation", lambda v: v in TRUNCATION_POLICIES, f"choose one of {TRUNCATION_POLICIES}")
    from llm2llm_jax.prompting import FORMATS as PROMPT_FORMATS

    _require(config, "data.prompt_format", lambda v: v in PROMPT_FORMATS, f"choose one of {PROMPT_FORMATS}")

    t = config.train
    _require(config, "train.batch_size", positive, "use a positive number of examples per optimizer step")
    _require(config, "train.micro_batch_size",
             lambda v: isinstance(v, int) and v >= 0 and (not v or t.batch_size % v == 0),
             f"use 0 (no accumulation) or a divisor of train.batch_size={t.batch_size}")
    _require(config, "train.epochs", positive, "train for at least 1 epoch")
    _require(config, "train.learning_rate", lambda v: v > 0, "use a positive learning rate (e.g. 2e-5)")
    rows = mesh[0] * mesh[1]  # the batch is split over the data and fsdp axes
    micro_key = "train.micro_batch_size" if t.micro_batch_size else "train.batch_size"
    _require(config, micro_key, lambda v: v % rows == 0,
             f"the micro-batch must split evenly over the {rows} data-parallel devices of mesh {mesh}; "
             f"use a multiple of {rows}")
    _require(config, "train.init", lambda v: v in TRAIN_INITS, f"choose one of {TRAIN_INITS}")
    _require(config, "augment.parents", lambda v: v in AUGMENT_PARENTS, f"choose one of {AUGMENT_PARENTS}")
    _require(config, "augment.from_augmented", lambda v: isinstance(v, bool), "use True or False")
    _require(config, "augment.max_parents", lambda v: re.fullmatch(r"\s*(\d+\s*(,\s*\d+\s*)*)?", str(v)),
             "give a cap per iteration as comma-separated counts (e.g. '14,4,4'), or '' for none")
    _require(config, "eval.batch_size", positive, "use a positive number of prompts per decode batch")
    _require(config, "eval.max_new_tokens", positive, "allow at least 1 generated token")
    _require(config, "eval.mode", lambda v: v in EVAL_MODES, f"choose one of {EVAL_MODES}")
    if config.eval.mode == "score":
        task = tasks.get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)
        _require(config, "eval.mode", lambda v: task.is_classification,
                 f"score mode ranks a classification task's labels, and task {task.name} has none; use 'generate'")

    if config.method != "finetune" and config.iterations > 1:
        if config.teacher.kind == "pool":
            raise ConfigError("config.teacher.kind='pool': the real-rows diagnostic is now a method; set "
                              "config.method=pool (and any teacher.kind)")
        if augment.AUGMENTERS[config.method].uses_teacher:
            _require(config, "teacher.kind", lambda v: v in BACKENDS, f"choose one of {sorted(BACKENDS)}")
        _require(config, "teacher.per_example", positive, "ask for at least 1 new example per seed example")
        _require(config, "teacher.max_empty_rounds", positive, "stop after at least 1 round that keeps nothing")
        _validate_teacher_asks(config)


def _local_model_exists(name) -> bool:
    if not isinstance(name, str):
        return False
    if name in ("", "student"):
        return True
    source, path = source_of(name)
    return source in OFFLINE_MODELS or (os.path.isfile(path) if source == "gguf" else os.path.isdir(path))


def _validate_teacher_asks(config) -> None:
    """What the teacher is asked for and how its answers are checked: mode, requests, structure, batch, judge."""
    from llm2llm_jax import tasks
    from llm2llm_jax.teacher.prompts import MODES

    task = tasks.get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)
    positive = lambda v: isinstance(v, int) and v > 0  # noqa: E731
    _require(config, "teacher.mode", lambda v: v in ("auto",) + MODES, f"choose one of {('auto',) + MODES}")
    if config.teacher.mode == "label_conditioned":
        _require(config, "teacher.mode", lambda v: task.is_classification,
                 f"label-conditioned generation attaches a class, and task {task.name} has none; use 'example' "
                 f"(or 'auto')")
    _require(config, "teacher.requests_per_example", positive, "send at least 1 request per seed example")
    _require(config, "teacher.requests_per_example", lambda v: v <= config.teacher.per_example,
             f"each request asks for at least one example: use at most teacher.per_example="
             f"{config.teacher.per_example}")
    for key in ("teacher.structured", "teacher.batch"):
        _require(config, key, lambda v: isinstance(v, bool), "use True or False")
    _require(config, "teacher.batch_poll_seconds", lambda v: v > 0, "poll a batch job every few seconds (e.g. 30)")
    if config.teacher.batch:
        _require(config, "teacher.batch", lambda v: config.teacher.kind in ("gemini", "openai"),
                 f"batch jobs are a gemini and openai API; teacher.kind={config.teacher.kind!r} answers directly, "
                 f"set teacher.batch=False")
    if config.teacher.kind == "local":
        _require(config, "teacher.model", _local_model_exists,
                 f"name the student ('' or 'student'), an offline model ({', '.join(OFFLINE_MODELS)}), a .gguf file "
                 f"or an HF model directory that exists")
    _require(config, "filters.verify", lambda v: v in VERIFY_MODES, f"choose one of {VERIFY_MODES}")
    _require(config, "filters.judge_model", lambda v: isinstance(v, str),
             "name the judge's model ('' = the teacher's), of the same teacher.kind")
