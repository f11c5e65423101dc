"""launch/run.py: the smoke job completes a prompt with the real SmolLM2; --help and bad flags are useful."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "launch/run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_smoke_job_completes_a_prompt(tmp_path):
    proc = _run(
        "--config=configs/smoke.py",
        "--config.smoke.max_new_tokens=12",
        "--config.smoke.prompts=('What is the capital of France?',)",
        f"--config.compile_cache_dir={tmp_path / 'xla'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout
    assert any(
        name.startswith("jit_generate") for name in os.listdir(tmp_path / "xla")
    )  # kept for the next run


def test_help_and_bad_override():
    proc = _run("--help")  # absl exits 1 after printing help; the text is what matters
    assert "Usage:" in proc.stdout and "--config.FIELD=VALUE" in proc.stdout
    proc = _run("--config=configs/default.py", "--config.train.bach_size=16")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --config.train.bach_size=16: the config has no field 'bach_size'; did you mean 'batch_size'?"
    ]
    proc = _run("--config=configs/default.py", "--config.job=train_everything")
    assert proc.returncode != 0 and "train_everything" in proc.stderr


def test_malformed_config_and_bad_values_say_what_to_do(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n    pass\n")
    proc = _run(f"--config={broken}")
    assert proc.returncode == 2 and "broken.py" in proc.stderr and "SyntaxError" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _run("--config=configs/default.py", "--config.iterations=many")
    assert proc.returncode == 2 and "iterations" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("--config=configs/default.py", "--config.method=magic", f"--config.workdir={tmp_path / 'w'}")
    assert proc.returncode == 2 and "config.method='magic'" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(
        "--config=configs/default.py", "--config.model.kernels=fast", f"--config.workdir={tmp_path / 'k'}"
    )
    assert proc.returncode == 2 and "model.kernels" in proc.stderr and "'fast'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_api_key_and_offline_tfds_are_explained(tmp_path):
    env_free = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = subprocess.run(
        [
            sys.executable,
            "launch/run.py",
            "--config=configs/trec.py",
            f"--config.workdir={tmp_path / 'w'}",
            "--config.data.source=trec_offline",
            "--config.model.source=smollm2",
            "--config.data.seed_count=6",
            "--config.iterations=2",
            "--config.teacher.kind=gemini",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env_free,
    )
    assert proc.returncode == 2 and "GEMINI_API_KEY" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "w").exists()  # the key is missing: found before anything is written
    # The paper config's data: the hub is out of reach (offline mode here skips the client's retries, which
    # test_data.py runs); the teacher is not needed to reach the data stage.
    proc = subprocess.run(
        [
            sys.executable,
            "launch/run.py",
            "--config=configs/sst2.py",
            "--config.method=finetune",
            f"--config.workdir={tmp_path / 'x'}",
            f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(env_free, HF_HUB_OFFLINE="1"),
    )
    assert (
        proc.returncode == 2 and "huggingface:glue/sst2" in proc.stderr and "supply the data" in proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
