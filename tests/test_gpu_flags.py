"""The XLA flags the launcher sets on NVIDIA GPUs: when they are added, that a user's own flags win, that
XLA knows every one of them (it aborts on an unknown flag), and the launcher's line saying so."""

import os
import subprocess
import sys

import pytest

from llm2llm_jax.common import gpu_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flags_are_added_on_a_gpu_or_when_asked_and_the_users_own_win():
    ours = " ".join(gpu_flags.GPU_XLA_FLAGS)
    assert gpu_flags.with_gpu_flags("", "auto", on_gpu=False) == ""
    assert gpu_flags.with_gpu_flags("--xla_dump_to=/tmp/d", "auto", on_gpu=False) == "--xla_dump_to=/tmp/d"
    assert gpu_flags.with_gpu_flags("", "auto", on_gpu=True) == ours
    assert gpu_flags.with_gpu_flags("", "on", on_gpu=False) == ours
    assert gpu_flags.with_gpu_flags("", "off", on_gpu=True) == ""
    mine = "--xla_gpu_enable_triton_gemm=true --xla_dump_to=/tmp/d"
    merged = gpu_flags.with_gpu_flags(mine, "auto", on_gpu=True).split()
    assert merged[:2] == mine.split() and "--xla_gpu_enable_triton_gemm=false" not in merged
    assert len(merged) == 2 + len(gpu_flags.GPU_XLA_FLAGS) - 1
    with pytest.raises(ValueError, match="gpu_xla_flags='yes'"):
        gpu_flags.with_gpu_flags("", "yes", on_gpu=True)


def test_a_gpu_is_seen_by_its_device_node_and_jaxs_cuda_plugin(tmp_path, monkeypatch):
    assert not gpu_flags.nvidia_gpu_visible(str(tmp_path))  # no device node
    (tmp_path / "nvidiactl").write_text("")
    monkeypatch.setattr(gpu_flags, "CUDA_PLUGINS", ("no_such_plugin_here",))
    assert not gpu_flags.nvidia_gpu_visible(str(tmp_path))  # a node, but JAX could not drive it
    monkeypatch.setattr(gpu_flags, "CUDA_PLUGINS", ("no_such_plugin_here", "json"))
    assert gpu_flags.nvidia_gpu_visible(str(tmp_path))


def test_xla_knows_every_flag():
    """XLA parses every backend's flags at start-up, so a CPU run shows a misspelt GPU flag (it aborts)."""
    env = dict(os.environ, XLA_FLAGS=" ".join(gpu_flags.GPU_XLA_FLAGS), JAX_PLATFORMS="cpu")
    code = "import jax.numpy as jnp; print(float(jnp.ones(3).sum()))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "3.0", proc.stderr[-1000:]
    env["XLA_FLAGS"] += " --xla_gpu_no_such_flag=true"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "xla_gpu_no_such_flag" in proc.stderr


@pytest.mark.slow
def test_the_launcher_says_which_flags_it_set(tmp_path):
    def launch(*args):
        return subprocess.run(
            [sys.executable, "launch/run.py", "--config=configs/default.py", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
        )

    proc = launch("--config.gpu_xla_flags=maybe")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: config.gpu_xla_flags='maybe': choose one of ('auto', 'on', 'off')"
    ]
    # forced on this CPU machine: the line names the flags, and the job still runs (here it stops at a
    # bad method, after JAX has started with them)
    proc = launch("--config.gpu_xla_flags=on", "--config.method=magic", f"--config.workdir={tmp_path / 'w'}")
    assert f"XLA_FLAGS={' '.join(gpu_flags.GPU_XLA_FLAGS)} (config.gpu_xla_flags=on" in proc.stderr
    assert proc.returncode == 2 and "config.method='magic'" in proc.stderr
    proc = launch("--config.method=magic", f"--config.workdir={tmp_path / 'w'}")
    assert "XLA_FLAGS=" not in proc.stderr  # auto, and no GPU here
