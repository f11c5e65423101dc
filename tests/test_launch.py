"""launch/run.py: the smoke job completes a prompt with the real SmolLM2; --help and bad flags are useful."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "launch/run.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_smoke_job_completes_a_prompt():
    proc = _run("--config=configs/default.py", "--config.smoke.max_new_tokens=12",
                "--config.smoke.prompts=('What is the capital of France?',)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout


def test_help_and_bad_override():
    proc = _run("--help")  # absl exits 1 after printing help; the text is what matters
    assert "Usage:" in proc.stdout and "--config.FIELD=VALUE" in proc.stdout
    proc = _run("--config=configs/default.py", "--config.no_such_field=1")
    assert proc.returncode != 0 and "no_such_field" in proc.stderr
    proc = _run("--config=configs/default.py", "--config.job=train_everything")
    assert proc.returncode != 0 and "train_everything" in proc.stderr
