"""llm2llm_jax.common.allocator: the restart keeps PID and arguments, respects the user's choice, and makes a
freed large block come back without page faults."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from llm2llm_jax.common import allocator

pytestmark = pytest.mark.slow  # subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Prints its PID before the restart and, after it, the PID, the arguments, the tunables and the
# page faults taken by re-filling a 256 MB block that was just freed.
SCRIPT = textwrap.dedent("""
    import json, os, resource, sys
    import numpy as np
    # 4 KiB pages, like XLA buffers
    (getattr(np, "_core", None) or np.core).multiarray._set_madvise_hugepage(False)
    print("before", os.getpid(), flush=True)
    from llm2llm_jax.common.allocator import reexec_with_reusing_malloc
    reexec_with_reusing_malloc()
    block = np.ones(64 << 20, np.float32)  # 256 MB, far above glibc's largest mmap threshold
    del block
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(64 << 20, np.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
    state = [os.getpid(), sys.argv[1:], os.environ.get("GLIBC_TUNABLES"), faults]
    print("after", json.dumps(state), flush=True)
""")

needs_glibc = pytest.mark.skipif(
    not allocator.should_reexec({}), reason="CPU-only Linux hosts with glibc only"
)


def run_script(tmp_path, env_extra):
    path = tmp_path / "probe.py"
    path.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LLM2LLM_KEEP_MALLOC")}
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT
    out = subprocess.run(
        [sys.executable, str(path), "--flag=1", "x"], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    before = [line for line in out if line.startswith("before")]
    after = json.loads([line for line in out if line.startswith("after")][0].split(" ", 1)[1])
    return before, after


@needs_glibc
def test_restart_keeps_pid_and_args_and_reuses_freed_memory(tmp_path):
    before, after = run_script(tmp_path, {})
    assert len(before) == 2 and before[0] == before[1]  # the script ran twice, in one process
    pid, args, tunables, faults = after
    assert str(pid) == before[0].split()[1]
    assert args == ["--flag=1", "x"] and tunables == allocator.REUSING_MALLOC
    assert int(faults) < 1000  # 256 MB re-filled from the kept heap (a fresh mapping is ~65k faults)


@needs_glibc
def test_opt_out_keeps_glibc_default(tmp_path):
    before, after = run_script(tmp_path, {"LLM2LLM_KEEP_MALLOC": "1"})
    assert len(before) == 1
    _, _, tunables, faults = after
    assert tunables is None
    assert int(faults) > 60000  # glibc maps a fresh block and every page faults again


def test_users_own_tunables_win_and_accelerator_hosts_are_left_alone():
    assert not allocator.should_reexec({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, accelerator=False)
    assert not allocator.should_reexec({"LLM2LLM_KEEP_MALLOC": "1"}, accelerator=False)
    assert not allocator.should_reexec({}, accelerator=True)
