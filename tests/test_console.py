"""A normal run's output stays readable: no tfds or transformers noise, and progress bars that write a few
plain lines (not carriage-return redraws) when stderr is a log file."""

import io
import logging
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NO_TORCH = """
import importlib.util, sys
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: (
    None if name.split(".")[0] == "torch" else find_spec(name, *a, **k)
)
sys.modules["torch"] = None
import llm2llm_jax
from llm2llm_jax.model.loading import load_gguf_tokenizer
import transformers
print("imported")
"""


@pytest.mark.slow  # a subprocess
def test_no_pytorch_advice_from_transformers_where_torch_is_missing():
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]
    assert "PyTorch was not found" not in proc.stderr


def test_writing_a_shard_logs_no_tfds_variant_warning(tmp_path, caplog):
    from llm2llm_jax.data import shards

    rows = [
        {
            "id": "s0",
            "input": "What is a kea ?",
            "output": "ENTY",
            "origin": "seed",
            "parent_id": "",
            "iteration": 0,
        }
    ]
    with caplog.at_level(logging.INFO, logger="absl"):
        shards.write_iteration(str(tmp_path), 0, rows)
        assert shards.is_written(str(tmp_path), 0)
    assert not [r for r in caplog.records if "Variant folder" in r.getMessage()]


def test_progress_in_a_log_file_is_a_few_plain_lines(monkeypatch):
    from llm2llm_jax.common import console

    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    bar = console.progress_bar(500, "iter 0 train", unit="step")
    for _ in range(500):
        bar.update(1)
    bar.set_postfix(loss="0.1234")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("[llm2llm] iter 0 train: 0/500 step started")
    assert lines[1].startswith("[llm2llm] iter 0 train: 500/500 step done") and lines[1].endswith(
        "loss 0.1234"
    )
    quiet = console.progress_bar(5, "off", enabled=False)
    quiet.update(5)
    quiet.close()
    assert len(log.getvalue().splitlines()) == 2
