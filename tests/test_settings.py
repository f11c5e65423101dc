"""The run config: one set of defaults, every field checked before a run starts (one line naming the field
and the fix), and a custom task given on the command line."""

import dataclasses
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs.base import base_config
from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.common.sections import build
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.config.checks import validate
from llm2llm_jax.student.recipe import TrainHParams, hparams_from_config
from llm2llm_jax.teacher.base import TeacherSettings


def _config(tmp_path, **overrides):
    c = base_config()
    c.workdir = str(tmp_path / "run")
    c.model.source = "smollm2"
    c.data.source = "trec_offline"
    c.data.seed_count = 12
    c.train.batch_size = 8
    for key, value in overrides.items():
        node = c
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return c


def test_config_sections_take_the_dataclass_defaults():
    c = base_config()
    for f in dataclasses.fields(TrainHParams):
        if f.name not in ("max_length", "seed"):
            assert c.train[f.name] == f.default, f.name
    for f in dataclasses.fields(TeacherSettings):
        assert c.teacher[f.name] == f.default, f.name
    hp = hparams_from_config(c)
    assert hp == TrainHParams(max_length=c.data.max_length, seed=stable_seed(c.seed, "train"))
    c.train.shuffle_seed = 5
    assert hparams_from_config(c).seed == 5
    assert build(TeacherSettings, c.teacher) == TeacherSettings()


BAD = [
    (
        {"method": "magic"},
        "config.method='magic': choose one of ('finetune', 'llm2llm', 'auggpt', 'eda', 'pool')",
    ),
    ({"iterations": 0}, "config.iterations=0: run at least 1 iteration"),
    ({"task": "poetry"}, "config.task: unknown task 'poetry'"),
    (
        {"task": "custom"},
        "config.custom_task: field 'cue' is required (e.g. --config.custom_task.cue=Answer:)",
    ),
    ({"mesh": (3, -1, 1)}, "config.mesh=(3, -1, 1): mesh shape [3, -1, 1]: 8 devices do not divide by 3"),
    ({"model__source": "onnx"}, "config.model.source='onnx': choose one of"),
    ({"model__source": "hf"}, "config.model.path='': give the HF checkpoint directory or the .gguf file"),
    ({"model__kernels": "fast"}, "config.model.kernels='fast': choose one of"),
    ({"model__fused_attention": "flash"}, "config.model.fused_attention='flash': choose one of"),
    (
        {"model__fused_attention": "cudnn"},
        "config.model.fused_attention='cudnn' needs the xla kernels, but "
        "model.kernels='auto' runs the cpu kernels here",
    ),
    ({"data__source": "s3"}, "config.data.source='s3': choose one of"),
    ({"data__source": "file"}, "config.data.train_path='': give an existing JSONL, CSV or TSV file"),
    (
        {"data__source": "file", "data__train_path": "/nonexistent/train.jsonl"},
        "config.data.train_path='/nonexistent/train.jsonl': give an existing",
    ),
    ({"data__source": "tfds"}, "config.data.tfds_name='': name the tfds dataset"),
    (
        {"data__seed_count": 0, "data__seed_fraction": 0.0},
        "config.data.seed_fraction=0.0: use a fraction in (0, 1]",
    ),
    ({"data__max_length": 0}, "config.data.max_length=0"),
    ({"data__truncation": "cut"}, "config.data.truncation='cut': choose one of"),
    ({"train__batch_size": 0}, "config.train.batch_size=0: use a positive number"),
    (
        {"train__micro_batch_size": 3},
        "config.train.micro_batch_size=3: use 0 (no accumulation) or a divisor of train.batch_size=8",
    ),
    (
        {"train__batch_size": 12},
        "config.train.batch_size=12: the micro-batch must split evenly over the 8 "
        "data-parallel devices of mesh (1, 8, 1); use a multiple of 8",
    ),
    (
        {"train__batch_size": 16, "train__micro_batch_size": 4},
        "config.train.micro_batch_size=4: the micro-batch",
    ),
    ({"train__epochs": 0}, "config.train.epochs=0"),
    ({"train__epoch_selection": "early"}, "config.train.epoch_selection='early': choose one of"),
    (
        {"train__epoch_selection": "dev_loss"},
        "config.train.epoch_selection='dev_loss': 'dev_loss' measures each epoch on the dev split; set "
        "data.dev_count",
    ),
    ({"train__patience": -1}, "config.train.patience=-1: give a count of epochs"),
    ({"train__row_widths": -1}, "config.train.row_widths=-1: give a count of batch widths per fine-tune"),
    ({"eval__batch_size": 0}, "config.eval.batch_size=0"),
    (
        {"teacher__kind": "pool"},
        "config.teacher.kind='pool': the real-rows diagnostic is now a method; set config.method=pool",
    ),
    ({"teacher__kind": "claude"}, "config.teacher.kind='claude': choose one of"),
    ({"teacher__kind": "scripted"}, "config.teacher.kind='scripted': choose one of"),  # a test double
    ({"teacher__per_example": 0}, "config.teacher.per_example=0"),
    ({"teacher__max_empty_rounds": 0}, "config.teacher.max_empty_rounds=0"),
    (
        {"teacher__kind": "local", "teacher__model": "/nonexistent/teacher.gguf"},
        "config.teacher.model='/nonexistent/teacher.gguf': name the student ('' or 'student'), an offline "
        "model (smollm2, gemma3_270m), a .gguf file or an HF model directory that exists",
    ),
]


@pytest.mark.multi_device
@pytest.mark.parametrize(
    "overrides,expected",
    BAD,
    ids=[",".join(f"{k}={v}" for k, v in o.items()).replace(" ", "") for o, _ in BAD],
)
def test_each_bad_field_is_one_line_that_names_it_and_the_fix(tmp_path, overrides, expected):
    import jax

    config = _config(tmp_path, **overrides)
    with pytest.raises(ConfigError) as err:
        validate(config, jax.devices())
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)
    assert not os.path.exists(config.workdir)  # nothing written


@pytest.mark.multi_device
def test_a_good_config_passes_and_the_teacher_is_not_checked_without_augmentation(tmp_path):
    import jax

    from configs import default

    validate(default.get_config(), jax.devices())  # the offline default as shipped
    validate(_config(tmp_path), jax.devices())
    validate(_config(tmp_path, method="finetune", teacher__kind="claude"), jax.devices())
    validate(_config(tmp_path, method="eda", teacher__kind="claude"), jax.devices())


def test_a_custom_task_from_the_command_line(monkeypatch):
    """--config.task=custom --config.custom_task.labels=a,b,c --config.custom_task.cue=Intent: builds the
    task."""
    from absl import flags
    from ml_collections import config_flags

    from llm2llm_jax.data.tasks import get_task

    argv = [
        "run.py",
        f"--config={os.path.join(ROOT, 'configs', 'default.py')}",
        "--config.task=custom",
        "--config.custom_task.labels=greet, bye,thanks",
        "--config.custom_task.cue=Intent:",
        "--config.custom_task.verbalizers=hello,goodbye,thank you",
        "--config.data.source=file",
    ]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags defines the override flags it finds in sys.argv
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", "configs/default.py", flag_values=fv, lock_config=True)
    fv(argv)
    config = fv.config
    task = get_task(config.task, config.custom_task.to_dict())
    assert task.labels == ("greet", "bye", "thanks") and task.verbalizers == ("hello", "goodbye", "thank you")
    assert task.cue == "Intent:" and task.prompt({"input": "hi there"}).endswith("Intent:")
    assert task.parse(" goodbye") == "bye"


def test_train_init_is_checked_by_the_run_before_any_work(tmp_path):
    """The run's own section fields are the run package's: a bad one is refused before anything is written."""
    from llm2llm_jax.run.controller import Llm2llmRun

    config = _config(tmp_path, train__init="continue")
    with pytest.raises(
        ConfigError, match=r"^config.train.init='continue': choose one of \('base', 'previous'\)$"
    ):
        Llm2llmRun(config)
    assert not os.path.exists(config.workdir)


@pytest.mark.multi_device
def test_a_key_pasted_into_an_env_field_is_refused_without_showing_it(tmp_path):
    import jax

    from llm2llm_jax.config.checks import looks_like_a_key

    for key in (
        "sk-proj-abc123XYZ",
        "AIzaSyD4x1234567890abcdefghijklmnopq",
        "0f3c9a7e5b2d4c6a8e0f1a2b3c4d5e6f",
    ):
        assert looks_like_a_key(key), key
        config = _config(tmp_path, teacher__kind="openai", teacher__api_key_env=key)
        with pytest.raises(ConfigError) as err:
            validate(config, jax.devices())
        message = str(err.value)
        assert message.startswith("config.teacher.api_key_env holds what looks like a key itself")
        assert key not in message and key[:6] not in message and "\n" not in message
        assert not os.path.exists(config.workdir)  # config.json never written with it
    for name in ("", "OPENAI_API_KEY", "MY_VLLM_KEY_2", "together_api_key"):
        assert not looks_like_a_key(name), name
    validate(_config(tmp_path, teacher__kind="openai", teacher__api_key_env="MY_VLLM_KEY_2"), jax.devices())
