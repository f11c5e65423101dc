"""Every field a run depends on, checked before any weights are loaded or any file is written: each section's
own values, then the checks across sections. A bad field is one `ConfigError` line naming it and the fix.

The choices come from the registries that own them (methods, tasks, data sources, model sources and kernels,
prompt formats, teacher backends and what each can do), so a new entry there is accepted here without an edit.
The run's own section fields (`train.init`, `compare.*`) are checked by the run package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from llm2llm_jax.augment.base import PARENTS
from llm2llm_jax.augment.methods import METHODS
from llm2llm_jax.augment.verify import MODES as VERIFY_MODES
from llm2llm_jax.common import gpu_flags, parallel
from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.data.sources import SOURCES as DATA_SOURCES
from llm2llm_jax.data.sources import has_dev
from llm2llm_jax.data.tasks import Task, TaskError, task_from_config
from llm2llm_jax.model import hardware
from llm2llm_jax.model.loading import OFFLINE as OFFLINE_MODELS
from llm2llm_jax.model.loading import SOURCES as MODEL_SOURCES
from llm2llm_jax.student.batching import TRUNCATION_POLICIES
from llm2llm_jax.student.predict import EVAL_MODES
from llm2llm_jax.student.prompting import FORMATS as PROMPT_FORMATS
from llm2llm_jax.student.recipe import EPOCH_SELECTIONS
from llm2llm_jax.teacher.factory import BACKENDS
from llm2llm_jax.teacher.prompts import MODES as TEACHER_MODES


def _field(config, key: str) -> Any:
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def require(config, key: str, ok: Callable[[Any], bool], fix: str) -> None:
    """Raise `config.KEY=VALUE: FIX` unless ok(value)."""
    value = _field(config, key)
    if not ok(value):
        raise ConfigError(f"config.{key}={value!r}: {fix}")


def _positive(v) -> bool:
    return isinstance(v, int) and v > 0


def validate(config, devices: Sequence, model_given: bool = False, teacher_given=None) -> None:
    """Every field a run depends on, before any weights are loaded or any file is written.

    Raises ConfigError naming the first bad field and the fix. devices: the ones the mesh is made of.
    model_given: the caller hands the run its model, so config.model's source and path are not read.
    teacher_given: the backend the caller hands the run (tests), whose kind need not be registered.
    """
    _check_secret_names(config)
    task, mesh = _check_run(config, len(devices))
    _check_model(config, devices, model_given)
    _check_data(config)
    _check_train(config, mesh)
    _check_augment(config)
    _check_eval(config, task)
    _check_export(config)
    if METHODS[config.method].augments and config.iterations > 1:
        _check_teacher(config, task, type(teacher_given) if teacher_given is not None else None)
        _check_filters(config)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_PREFIXES = ("sk-", "AIza", "ya29.", "ghp_", "gsk_", "hf_", "xai-")


def looks_like_a_key(value: str) -> bool:
    """A `*_env` value that is a secret itself rather than the name of the variable holding one: not a
    variable name, a known key prefix, or a long mix of lower case and digits (variable names are short
    and upper case by custom)."""
    if not value:
        return False
    if not ENV_NAME.fullmatch(value) or value.startswith(KEY_PREFIXES):
        return True
    return len(value) >= 32 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def _env_fields(node, prefix: str = ""):
    for key, value in node.items():
        name = f"{prefix}{key}"
        if hasattr(value, "keys"):
            yield from _env_fields(value, name + ".")
        elif key.endswith("_env") and isinstance(value, str):
            yield name, value


def _check_secret_names(config) -> None:
    """Every `*_env` field names a variable; a key pasted there is refused without being echoed, before
    anything (config.json included) is written."""
    for name, value in _env_fields(config):
        if looks_like_a_key(value):
            raise ConfigError(
                f"config.{name} holds what looks like a key itself ({len(value)} characters, not shown), "
                f"not the name of an environment variable: export the key (export MY_KEY=...) and set "
                f"config.{name}=MY_KEY"
            )


def _check_run(config, device_count: int) -> tuple[Task, tuple]:
    """The method, the iterations, the task and the mesh: (the task, the mesh shape)."""
    require(config, "method", lambda v: v in METHODS, f"choose one of {tuple(METHODS)}")
    require(config, "iterations", _positive, "run at least 1 iteration (iteration 0 is plain fine-tuning)")
    require(config, "gpu_xla_flags", lambda v: v in gpu_flags.CHOICES, f"choose one of {gpu_flags.CHOICES}")
    try:
        task = task_from_config(config)
    except TaskError as e:
        field = "custom_task" if config.task == "custom" else "task"
        raise ConfigError(f"config.{field}: {e}") from None
    try:
        mesh = parallel.resolve_mesh_shape(tuple(config.mesh), device_count)
    except parallel.ShardingError as e:
        raise ConfigError(f"config.mesh={tuple(config.mesh)}: {e}") from None
    return task, mesh


def _check_model(config, devices: Sequence, model_given: bool) -> None:
    if not model_given:
        require(config, "model.source", lambda v: v in MODEL_SOURCES, f"choose one of {MODEL_SOURCES}")
    if not model_given and config.model.source not in OFFLINE_MODELS:
        require(config, "model.path", bool, "give the HF checkpoint directory or the .gguf file")
    require(
        config,
        "model.fused_attention",
        lambda v: v in hardware.FUSED_ATTENTION,
        f"choose one of {hardware.FUSED_ATTENTION}",
    )
    try:  # the kernel and dtype choices against these devices, by the rules the model applies later
        hardware.resolve_kernels(config.model.kernels, devices, config.model.fused_attention)
        hardware.resolve_dtype(config.model.dtype, devices)
    except hardware.KernelError as e:
        raise ConfigError(f"config.{e}") from None  # its messages name the model.* field


def _check_data(config) -> None:
    d = config.data
    require(config, "data.source", lambda v: v in DATA_SOURCES, f"choose one of {tuple(DATA_SOURCES)}")
    if d.source == "file":
        for key in ("data.train_path",) + (("data.test_path",) if d.test_path else ()):
            require(
                config,
                key,
                lambda v: bool(v) and os.path.isfile(v),
                "give an existing JSONL, CSV or TSV file (data.test_path may stay empty: "
                "data.test_count rows are then held out)",
            )
    if d.source == "tfds":
        require(config, "data.tfds_name", bool, "name the tfds dataset (e.g. 'glue/sst2')")
    require(
        config,
        "data.seed_count",
        lambda v: isinstance(v, int) and v >= 0,
        "use 0 (then data.seed_fraction applies) or a positive count",
    )
    if not d.seed_count:
        require(
            config,
            "data.seed_fraction",
            lambda v: 0 < v <= 1,
            "use a fraction in (0, 1], or set data.seed_count",
        )
    require(
        config,
        "data.dev_count",
        lambda v: isinstance(v, int) and v >= 0,
        "use 0 (then data.dev_fraction applies; 0.0 for no dev split) or a positive count",
    )
    require(config, "data.dev_fraction", lambda v: 0 <= v < 1, "use a fraction in [0, 1) (0.0: no dev split)")
    require(config, "data.max_length", _positive, "use the longest prompt + answer in tokens (e.g. 512)")
    require(
        config, "data.truncation", lambda v: v in TRUNCATION_POLICIES, f"choose one of {TRUNCATION_POLICIES}"
    )
    require(config, "data.prompt_format", lambda v: v in PROMPT_FORMATS, f"choose one of {PROMPT_FORMATS}")


def _check_train(config, mesh: tuple) -> None:
    """The recipe's own values, and the batch against the mesh it is split over."""
    t = config.train
    require(config, "train.batch_size", _positive, "use a positive number of examples per optimizer step")
    require(
        config,
        "train.micro_batch_size",
        lambda v: isinstance(v, int) and v >= 0 and (not v or t.batch_size % v == 0),
        f"use 0 (no accumulation) or a divisor of train.batch_size={t.batch_size}",
    )
    require(config, "train.epochs", _positive, "train for at least 1 epoch")
    require(
        config, "train.epoch_selection", lambda v: v in EPOCH_SELECTIONS, f"choose one of {EPOCH_SELECTIONS}"
    )
    require(
        config,
        "train.epoch_selection",
        lambda v: v != "dev_loss" or has_dev(config.data),
        "'dev_loss' measures each epoch on the dev split; set data.dev_count (e.g. 200) or use 'fixed'",
    )
    require(
        config,
        "train.patience",
        lambda v: isinstance(v, int) and v >= 0,
        "give a count of epochs (0: run every epoch)",
    )
    require(config, "train.learning_rate", lambda v: v > 0, "use a positive learning rate (e.g. 2e-5)")
    require(
        config,
        "train.checkpoint_every",
        lambda v: isinstance(v, int) and v >= 0,
        "give a count of steps between mid-training checkpoints (0: none)",
    )
    require(
        config,
        "train.checkpoint_minutes",
        lambda v: isinstance(v, (int, float)) and v >= 0,
        "give the minutes between mid-training checkpoints (0: every train.checkpoint_every steps)",
    )
    require(
        config,
        "train.row_widths",
        lambda v: isinstance(v, int) and v >= 0,
        "give a count of batch widths per fine-tune (0: each batch padded to its own longest row)",
    )
    rows = mesh[0] * mesh[1]  # the batch is split over the data and fsdp axes
    micro_key = "train.micro_batch_size" if t.micro_batch_size else "train.batch_size"
    require(
        config,
        micro_key,
        lambda v: v % rows == 0,
        f"the micro-batch must split evenly over the {rows} data-parallel devices of mesh {mesh}; "
        f"use a multiple of {rows}",
    )


def _check_augment(config) -> None:
    require(config, "augment.parents", lambda v: v in PARENTS, f"choose one of {PARENTS}")
    require(config, "augment.from_augmented", lambda v: isinstance(v, bool), "use True or False")
    require(
        config,
        "augment.max_parents",
        lambda v: re.fullmatch(r"\s*(\d+\s*(,\s*\d+\s*)*)?", str(v)),
        "give a cap per iteration as comma-separated counts (e.g. '14,4,4'), or '' for none",
    )


def _check_eval(config, task: Task) -> None:
    require(config, "eval.batch_size", _positive, "use a positive number of prompts per decode batch")
    require(config, "eval.max_new_tokens", _positive, "allow at least 1 generated token")
    require(config, "eval.mode", lambda v: v in EVAL_MODES, f"choose one of {EVAL_MODES}")
    if config.eval.mode == "score":
        require(
            config,
            "eval.mode",
            lambda v: task.is_classification,
            f"score mode ranks a classification task's labels, and task {task.name} has none; use 'generate'",
        )


def _check_teacher(config, task: Task, given: type = None) -> None:
    """How the teacher is reached (its kind, what that kind can do, its model) and what it is asked for."""
    if config.teacher.kind == "pool":
        raise ConfigError(
            "config.teacher.kind='pool': the real-rows diagnostic is now a method; set "
            "config.method=pool (and any teacher.kind)"
        )
    backend = given or BACKENDS.get(config.teacher.kind)
    if METHODS[config.method].uses_teacher and given is None:
        require(config, "teacher.kind", lambda v: v in BACKENDS, f"choose one of {sorted(BACKENDS)}")
    require(config, "teacher.per_example", _positive, "ask for at least 1 new example per seed example")
    require(config, "teacher.max_empty_rounds", _positive, "stop after at least 1 round that keeps nothing")
    require(
        config,
        "teacher.mode",
        lambda v: v in ("auto",) + TEACHER_MODES,
        f"choose one of {('auto',) + TEACHER_MODES}",
    )
    if config.teacher.mode == "label_conditioned":
        require(
            config,
            "teacher.mode",
            lambda v: task.is_classification,
            f"label-conditioned generation attaches a class, and task {task.name} has none; use 'example' "
            f"(or 'auto')",
        )
    require(config, "teacher.requests_per_example", _positive, "send at least 1 request per seed example")
    require(
        config,
        "teacher.requests_per_example",
        lambda v: v <= config.teacher.per_example,
        f"each request asks for at least one example: use at most teacher.per_example="
        f"{config.teacher.per_example}",
    )
    for key in ("teacher.structured", "teacher.batch"):
        require(config, key, lambda v: isinstance(v, bool), "use True or False")
    require(
        config, "teacher.batch_poll_seconds", lambda v: v > 0, "poll a batch job every few seconds (e.g. 30)"
    )
    if config.teacher.batch:
        batching = sorted(kind for kind, cls in BACKENDS.items() if cls.supports_batch)
        require(
            config,
            "teacher.batch",
            lambda v: backend is not None and backend.supports_batch,
            f"batch jobs are a {' and '.join(batching)} API; teacher.kind={config.teacher.kind!r} answers "
            f"directly, set teacher.batch=False",
        )
    if backend is not None:
        fix = backend.check_model(config.teacher.model)
        require(config, "teacher.model", lambda v: not fix, fix)


def _check_filters(config) -> None:
    require(config, "filters.verify", lambda v: v in VERIFY_MODES, f"choose one of {VERIFY_MODES}")
    require(
        config,
        "filters.judge_model",
        lambda v: isinstance(v, str),
        "name the judge's model ('' = the teacher's), of the same teacher.kind",
    )


EXPORT_DTYPES = ("", "float32", "bfloat16", "float16")
GGUF_TYPES = ("f16", "bf16", "q8_0")


def _check_export(config) -> None:
    for key in ("export.student", "export.gguf"):
        require(config, key, lambda v: isinstance(v, bool), "use True or False")
    require(config, "export.dtype", lambda v: v in EXPORT_DTYPES, f"choose one of {EXPORT_DTYPES}")
    require(config, "export.gguf_type", lambda v: v in GGUF_TYPES, f"choose one of {GGUF_TYPES}")
