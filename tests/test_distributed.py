"""Two local processes joined by jax.distributed run LLM2LLM iterations and agree; only process 0 pays the
teacher."""

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # subprocesses

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parse(out):
    found = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("TEACHER_CALLS", "DATA", "METRICS"):
            found[key] = rest
    return found


def test_two_processes_agree_and_only_process_0_calls_the_teacher(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device per process
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "distributed_harness.py"),
                str(tmp_path / "run"),
                str(pid),
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(_parse(stdout))
    assert int(outs[0]["TEACHER_CALLS"]) > 0 and int(outs[1]["TEACHER_CALLS"]) == 0
    assert outs[0]["DATA"] == outs[1]["DATA"]
    assert outs[0]["METRICS"] == outs[1]["METRICS"]
