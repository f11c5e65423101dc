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


_POLICY_PROCESS = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from llm2llm_jax.common import parallel
from llm2llm_jax.student.checkpoint_policy import CheckpointPolicy

pid, port = int(sys.argv[1]), int(sys.argv[2])
parallel.maybe_initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
now = [0.0]
CheckpointPolicy.clock = staticmethod(lambda: now[0])
policy = CheckpointPolicy(every=1, minutes=1.0)
# Each process's own clock says something else at each step; only process 0's may count.
answers = []
for step, (seconds_0, seconds_1) in enumerate([(120.0, 0.0), (0.0, 120.0), (120.0, 120.0), (0.0, 0.0)], 1):
    now[0] = policy.last + (seconds_0 if pid == 0 else seconds_1)
    answers.append(policy.due(step))
print("DUE", answers)
"""


def test_every_process_checkpoints_when_process_0_says_its_minutes_have_passed(tmp_path):
    """Processes whose clocks disagree about the minutes since the last checkpoint all follow process 0, so
    all of them save at the same steps (a checkpoint is a collective write)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.path.dirname(HERE)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _POLICY_PROCESS, str(pid), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        assert "DUE [True, False, True, False]" in stdout
