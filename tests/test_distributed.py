"""Two local processes joined by jax.distributed run LLM2LLM iterations and agree; only process 0 pays the
teacher."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import TEST_JIT_CACHE

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


def _comparable(metrics: str) -> list:
    """A run's metrics without the FLOPs it computed (a resumed run computes fewer) or measured."""
    return [{k: v for k, v in row.items() if not k.endswith("flops")} for row in json.loads(metrics)]


def _run_two(command_for, timeout=900):
    """Processes 0 and 1 of one jax.distributed run (one CPU device each), `python *command_for(pid, port)`;
    [(returncode, stdout, stderr)] once both have ended."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {
        "PYTHONPATH": os.path.dirname(HERE),
        "LLM2LLM_TEST_JIT_CACHE": TEST_JIT_CACHE,  # the harness reuses what the runs before it compiled
    }
    procs = [
        subprocess.Popen(
            [sys.executable, *command_for(pid, port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, stdout, stderr) for p, (stdout, stderr) in zip(procs, outputs)]


def _two_processes(workdir, term_process=None):
    """Run distributed_harness.py as processes 0 and 1 of one run; [(returncode, parsed stdout, stderr)]."""

    def command(pid, port):
        term = ["term"] if pid == term_process else []
        return [os.path.join(HERE, "distributed_harness.py"), str(workdir), str(pid), str(port), *term]

    results = _run_two(command)
    return [(status, _parse(stdout), stderr) for status, stdout, stderr in results]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two") / "run"
    results = _two_processes(workdir)
    for status, _, stderr in results:
        assert status == 0, stderr[-3000:]
    return workdir, [out for _, out, _ in results]


def test_two_processes_agree_and_only_process_0_calls_the_teacher(two_process_run):
    _, outs = two_process_run
    assert int(outs[0]["TEACHER_CALLS"]) > 0 and int(outs[1]["TEACHER_CALLS"]) == 0
    assert outs[0]["DATA"] == outs[1]["DATA"]
    assert outs[0]["METRICS"] == outs[1]["METRICS"]


def test_a_sigterm_to_one_process_stops_both_at_one_checkpointed_step_and_the_rerun_equals_the_run(
    two_process_run, tmp_path
):
    """A preemption notice that reaches one host of a pod in the middle of a fine-tune: process 1 gets
    SIGTERM after iteration 1's first step; at the next step where the processes compare notes (where the
    loop fetches its metrics: every FETCH_EVERY steps, 2 in the harness) both checkpoint that step together,
    say how to continue in one line and exit 143 (JAX's own preemption notifier, which would swallow the
    signal, is kept off). Rerun, both resume at that step, and the run ends as the uninterrupted one did."""
    reference_dir, reference = two_process_run
    workdir = tmp_path / "run"
    for status, _, stderr in _two_processes(workdir, term_process=1):
        assert status == 143, stderr[-3000:]
        assert stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM") and "Traceback" not in stderr
    assert not (workdir / "run.lock").exists()
    resumed = _two_processes(workdir)
    for status, out, stderr in resumed:
        assert status == 0, stderr[-3000:]
        assert _comparable(out["METRICS"]) == _comparable(reference[0]["METRICS"])
        assert out["DATA"] == reference[0]["DATA"]
    assert "iteration 1: resuming training at step 2/" in resumed[0][2]
    for i in range(2):
        assert (workdir / f"iter_{i:04d}" / "predictions_test.jsonl").read_text() == (
            reference_dir / f"iter_{i:04d}" / "predictions_test.jsonl"
        ).read_text()


_FIT_PROCESS = """
import os, signal, sys
import jax
import numpy as np

jax.config.update("jax_cpu_collectives_implementation", "gloo")
from llm2llm_jax.common import parallel, stopping
from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.student import train
from llm2llm_jax.student.batching import Example
from llm2llm_jax.student.recipe import TrainHParams

pid, port, directory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
stopping.stop_on_signals()
parallel.maybe_initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
rs = np.random.RandomState(0)
examples = [Example(prompt_ids=list(rs.randint(3, 256, 6)), target_ids=[5, 6, 2]) for _ in range(20)]
cfg = tiny_config()
hp = TrainHParams(batch_size=4, epochs=1, seq_multiple=16)
trainer = train.Trainer(cfg, hp, parallel.make_mesh(), 5, checkpoint_dir=directory)
trainer.init_state(train.host_params(init_params(cfg, jax.random.PRNGKey(0))))
original_step, steps = trainer.step, []

def step(batch):
    steps.append(batch)
    out = original_step(batch)
    if pid == 1 and len(steps) == 5:  # the last step, past the last one where the processes compare notes
        os.kill(os.getpid(), signal.SIGTERM)
    return out

trainer.step = step
train.FETCH_EVERY = 4
try:
    trainer.fit(examples, progress=False)
    print("FINISHED")
except stopping.Terminated:
    print("STOPPED", trainer.checkpoints.latest_step(), len(trainer.history))
"""


def test_a_sigterm_after_the_last_agreed_step_stops_every_process_at_the_fine_tunes_end(tmp_path):
    """Process 1 gets SIGTERM in the last of 5 steps, after step 4 where the processes last compared notes
    (the loop fetches every FETCH_EVERY = 4 steps in the script): they compare once more as the fine-tune
    ends, and both save step 5 and stop, instead of process 1 alone stopping while process 0 goes on to the
    run's next collective."""
    checkpoints = str(tmp_path / "ckpt")
    for status, stdout, stderr in _run_two(
        lambda pid, port: ["-c", _FIT_PROCESS, str(pid), str(port), checkpoints], timeout=300
    ):
        assert status == 0, stderr[-3000:]
        assert stdout.strip().splitlines()[-1] == "STOPPED 5 5", stderr[-3000:]


_SIGTERM_AFTER_JOINING = """
import os, signal, sys, time
from llm2llm_jax.common import parallel, stopping

stopping.stop_on_signals()
parallel.maybe_initialize_distributed(f"127.0.0.1:{sys.argv[1]}", num_processes=1, process_id=0)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    print("not stopped")
except stopping.Terminated:
    print("stopped")
"""


def test_sigterm_still_stops_a_run_after_it_joins_its_processes():
    """jax.distributed.initialize would install JAX's preemption notifier over the run's SIGTERM handler
    (common/stopping.py): the signal would be swallowed and a pod's run would go on until killed."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    proc = subprocess.run(
        [sys.executable, "-c", _SIGTERM_AFTER_JOINING, str(_free_port())],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.stdout.strip() == "stopped", proc.stderr[-3000:]


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
    results = _run_two(lambda pid, port: ["-c", _POLICY_PROCESS, str(pid), str(port)], timeout=300)
    for status, stdout, stderr in results:
        assert status == 0, stderr[-3000:]
        assert "DUE [True, False, True, False]" in stdout
