"""benchmarks/accelerator_check.sh --cpu-dry-run: every step of the GPU check runs on CPU with tiny sizes and
leaves its figures; the targets are read from the figures the way a GPU run's would be.

The dry run takes about three minutes of benchmark-harness code, so it runs only with `pytest
--run-gpu-dry-run`; `accelerator_check.sh --prepare` runs it first, so a broken check is found before a GPU
session is spent."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


@pytest.mark.gpu_dry_run
def test_cpu_dry_run_runs_every_step(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "accelerator_check.sh"), "--cpu-dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "accelerator_check.json").read_text())
    log = (tmp_path / "accelerator_check.log").read_text()
    assert report["mode"] == "cpu-dry-run" and report["device"]["backend"] == "cpu"
    assert report["device"]["jax_bf16_matmul_tflops"] > 0 and report["device"]["torch_bf16_matmul_tflops"] > 0
    steps = report["steps"]
    assert list(steps) == [
        "components",
        "train_llama_1b",
        "default_run",
        "default_run_warm",
        "train_llama_1b_no_flags",
        "decode",
        "tests",
        "train_llama_7b_lora",
    ]
    assert all(step["status"] == "ok" for step in steps.values()), steps
    assert "1 passed" in log or "passed" in log
    parts = steps["components"]["figures"]
    assert set(parts["attention"]) == {"off", "xla", "blocked"}
    assert all(row["ms"] > 0 and row["compile_s"] > 0 for row in parts["attention"].values())
    assert parts["head_loss"]["ms"] > 0 and parts["optimizer"]["ms"] > 0
    (one_b,) = steps["train_llama_1b"]["figures"]
    assert set(one_b["kernels"]) == {"xla", "xla+blocked", "xla+fused"}
    for name in ("train_llama_1b", "train_llama_1b_no_flags", "train_llama_7b_lora"):
        (row,) = steps[name]["figures"]
        assert row["precision"] == "bf16" and row["torch"]["tokens_per_s"] > 0
        assert all(
            0 < r["mfu"] < 1 and r["compile_s"] > 0 and r["pipelined_ms"] > 0 for r in row["kernels"].values()
        )
    assert steps["train_llama_7b_lora"]["figures"][0]["lora_rank"] == 4
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in log  # the flags the steps ran with, printed
    (dec,) = steps["decode"]["figures"]
    assert set(dec["batches"]) == {"1", "2"} and dec["batches"]["2"]["kernels"]["xla"]["tokens_per_s"] > 0
    assert len(steps["default_run"]["figures"]["test_accuracy"]) == 1
    cold, warm = (
        sum(c for c, _ in steps[n]["figures"]["compile_log_seconds"].values())
        for n in ("default_run", "default_run_warm")
    )
    assert cold > 0 and warm <= cold
    assert any(line.startswith("train step >= 1B") for line in report["targets"])
    assert any(line.startswith("XLA's GPU flags") for line in report["targets"])


def test_targets_are_read_from_the_figures():
    from accelerator_check import targets

    def report(mfu, vs_torch, decode_ratio, seconds):
        return {
            "steps": {
                "train_llama_1b": {
                    "figures": [
                        {
                            "kernels": {
                                "xla": {"mfu": mfu, "vs_torch": vs_torch},
                                "xla+cudnn": {"mfu": mfu / 2, "vs_torch": 9.0},
                            }
                        }
                    ]
                },
                "decode": {
                    "figures": [{"batches": {"32": {"kernels": {"xla": {"vs_transformers": decode_ratio}}}}}]
                },
                "default_run": {"status": "ok", "seconds": seconds},
            }
        }

    met = targets(report(0.55, 1.4, 2.5, 50))
    assert len(met) == 3 and all(line.endswith(": met") for line in met), met
    assert "kernels=xla:" in met[0]  # the row with the best MFU is the one judged
    missed = targets(report(0.35, 1.4, 1.9, 75))
    assert all(line.endswith("NOT met") for line in missed), missed
    assert targets({"steps": {}}) == []


def test_a_step_cut_short_keeps_its_printed_rows(tmp_path):
    from accelerator_check import Check

    check = Check(str(tmp_path), budget=60, dry=True)
    script = "import time; print('[bf16] row one', flush=True); print('noise', flush=True); time.sleep(30)"
    check.step("slow", 2, [sys.executable, "-c", script], json_out=False)
    entry = json.loads((tmp_path / "accelerator_check.json").read_text())["steps"]["slow"]
    assert entry["status"] == "timed out after 2 s" and entry["seconds"] < 20
    assert entry["printed"] == ["[bf16] row one"]
    check.step("quick", 10, [sys.executable, "-c", "print('[x] done')"], json_out=False)
    assert check.report["steps"]["quick"]["status"] == "ok"
