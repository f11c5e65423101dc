"""Faults and misuse a user meets, one test per case: a busy or stale run directory, a start that fails, a
directory with results but no config, the teacher's budget over several invocations, an unreachable
teacher, replies that parse to nothing, a full disk, a finished run on read-only storage, Ctrl-C.

The controller runs with the stand-in student of oracle_run.py (no training), so these are quick; the
cases that need real training or a real process (kill -9 during evaluation, two runs at once, the
trained model's checkpoint) are in test_loop.py and test_train.py.
"""

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fake_servers import ScriptedServer
from oracle_run import OracleRun, _oracle_config, _oracle_teacher

from llm2llm_jax.common import (
    disk_faults,
    files,
)
from llm2llm_jax.common.errors import RunError, UserError
from llm2llm_jax.run import lock as rundir
from llm2llm_jax.run import report
from llm2llm_jax.teacher.budget import SPEND_FILE


@pytest.fixture(autouse=True)
def _usual_unraisable_hook():
    """A disk fault leaves its quiet hook for the launcher to lift after printing; lift it after each test."""
    yield
    disk_faults.collect_abandoned_writes()


def _comparable(rows):
    """Metrics without what depends on how much work this process did (time, and the FLOPs it computed)."""
    return [{k: v for k, v in r.items() if not k.endswith(("seconds", "flops"))} for r in rows]


def _tree(directory) -> dict:
    """Every file under `directory`: relative path -> (content, mtime in ns)."""
    out = {}
    for base, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def _write_lock(workdir, pid, host=None, heartbeat_age=None):
    if not files.is_remote(str(workdir)):
        os.makedirs(workdir, exist_ok=True)
    holder = {"host": host or socket.gethostname(), "pid": pid, "started": "2026-11-28 10:00:00"}
    if heartbeat_age is not None:
        holder["heartbeat"] = time.time() - heartbeat_age
    files.write_json(os.path.join(str(workdir), rundir.LOCK_NAME), holder)


# ---------------------------------------------------------------------------- one writer per run directory
def test_a_run_directory_in_use_is_refused_at_once_naming_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        config = _oracle_config(tmp_path, "run")
        _write_lock(config.workdir, holder.pid)
        teacher = _oracle_teacher(tmp_path / "run")
        with pytest.raises(RunError, match=rf"in use by another run \(pid {holder.pid} on .*Wait for it"):
            OracleRun(config, teacher).run()
        assert os.listdir(config.workdir) == [rundir.LOCK_NAME]  # nothing written, the holder's lock kept
        assert not teacher.seen
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    config = _oracle_config(tmp_path, "run")
    _write_lock(config.workdir, gone.pid)
    rows = OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    assert len(rows) == 3
    assert f"took over the lock of an earlier run (pid {gone.pid}" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(config.workdir, rundir.LOCK_NAME))  # released at the end


def test_a_live_lock_from_another_host_is_refused(tmp_path):
    """Without a heartbeat (an older run's lock) or with a recent one, another host's lock is refused."""
    config = _oracle_config(tmp_path, "run")
    for age in (None, rundir.STALE_AFTER_SECONDS - 60):
        _write_lock(config.workdir, 1, host="some-other-host", heartbeat_age=age)
        with pytest.raises(
            RunError, match=r"pid 1 on some-other-host.*taken over after 10 minutes.*run\.lock"
        ):
            OracleRun(config, _oracle_teacher(tmp_path / "run")).run()


def test_a_lock_whose_heartbeat_stopped_is_taken_over_from_another_host(tmp_path, capsys):
    """A VM recreated after a preemption has another host name: the old VM's lock, silent for longer than
    the stated timeout, is taken over with a note naming it, and the rerun completes."""
    config = _oracle_config(tmp_path, "run")
    _write_lock(config.workdir, 4242, host="preempted-vm", heartbeat_age=rundir.STALE_AFTER_SECONDS + 120)
    rows = OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    assert len(rows) == 3
    err = capsys.readouterr().err
    assert (
        "took over the lock of an earlier run (pid 4242 on preempted-vm, started 2026-11-28 10:00:00)" in err
    )
    assert "stopped its heartbeat 12 minutes ago" in err and "pid 4242 on preempted-vm" in err
    assert not os.path.exists(os.path.join(config.workdir, rundir.LOCK_NAME))


def test_the_holder_refreshes_its_heartbeat_until_it_releases(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "HEARTBEAT_SECONDS", 0.05)
    lock = rundir.WorkdirLock(str(tmp_path))
    lock.acquire()
    first = files.read_json(lock.path)["heartbeat"]
    deadline = time.time() + 10
    while files.read_json(lock.path)["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.02)
    beat = files.read_json(lock.path)
    assert beat["heartbeat"] > first and beat["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(lock.path) and lock._beat is None


# ---------------------------------------------------------------------------- the run's identity
def test_a_start_that_fails_leaves_the_workdir_as_it_found_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    config = _oracle_config(tmp_path, "run")
    config.teacher.kind = "gemini"
    with pytest.raises(UserError, match="needs an API key: set GEMINI_API_KEY"):
        OracleRun(config).run()
    assert not os.path.exists(config.workdir)  # no config.json, data or shards to block the corrected command
    os.makedirs(config.workdir)
    with pytest.raises(UserError, match="needs an API key"):
        OracleRun(config).run()
    assert os.listdir(config.workdir) == []


def test_a_workdir_with_outputs_but_no_config_is_refused(tmp_path):
    config = _oracle_config(tmp_path, "run")
    files.write_json(os.path.join(config.workdir, "iter_0000", "metrics.json"), {"iteration": 0})
    files.write_jsonl(os.path.join(config.workdir, "data", "seed.jsonl"), [{"input": "x", "output": "y"}])
    with pytest.raises(
        RunError, match=r"holds data, iter_0000 but no config.json.*empty or new --config.workdir"
    ):
        OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    assert not os.path.exists(os.path.join(config.workdir, "config.json"))


# ---------------------------------------------------------------------------- the teacher
def test_the_teacher_budget_caps_the_run_over_every_invocation(tmp_path):
    config = _oracle_config(tmp_path, "run")
    budget = dict(max_calls=4, price_input=1.0, price_output=2.0)
    config.teacher.update(budget)
    first = _oracle_teacher(tmp_path / "run", **budget)
    with pytest.raises(
        RunError,
        match=r"budget spent: 4 of 4 calls; this run has spent 4 calls, \d+ tokens"
        r".*\$0\.\d+.*rerun the same command with a larger budget",
    ):
        OracleRun(config, first).run()
    assert len(first.seen) == 4
    again = _oracle_teacher(tmp_path / "run", **budget)
    with pytest.raises(RunError, match="budget spent: 4 of 4 calls"):
        OracleRun(config, again).run()  # the same command again: nothing more is paid
    assert again.seen == []
    ledger = files.read_json(os.path.join(config.workdir, SPEND_FILE))
    assert ledger["calls"] == 4 and ledger["input_tokens"] > 0 and ledger["output_tokens"] > 0
    expected_cost = (ledger["input_tokens"] * 1.0 + ledger["output_tokens"] * 2.0) / 1e6
    assert ledger["cost_usd"] == pytest.approx(expected_cost)

    config.teacher.max_calls = budget["max_calls"] = 0  # a budget change is allowed on resume
    last = _oracle_teacher(tmp_path / "run", **budget)
    rows = OracleRun(config, last).run()
    assert len(rows) == 3 and len(last.seen) == 12 - 4
    assert files.read_json(os.path.join(config.workdir, SPEND_FILE))["calls"] == 12
    assert "Teacher spend over the whole run: 12 calls" in files.read_text(
        os.path.join(config.workdir, "report.md")
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_teacher_is_found_before_any_work_naming_its_url(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "k")
    config = _oracle_config(tmp_path, "run")
    config.teacher.kind = "openai"
    config.teacher.api_key_env = "FAKE_OPENAI_KEY"
    config.teacher.base_url = url = f"http://127.0.0.1:{_closed_port()}/v1"
    config.teacher.initial_delay = config.teacher.max_delay = 0.01  # (without the check: quick retries)
    run = OracleRun(config)
    with pytest.raises(UserError, match=rf"cannot reach the openai teacher at {url} \(ConnectError"):
        run.run()
    assert run.trained_on == [] and not os.path.exists(config.workdir)


@pytest.mark.parametrize("flavor", ["gemini", "openai"])
def test_a_teacher_that_rejects_the_model_or_key_is_found_before_any_work(tmp_path, monkeypatch, flavor):
    server = ScriptedServer(flavor)
    server.check_status = 404 if flavor == "gemini" else 401
    secret = "sk-test-never-written-7f3a9c"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    monkeypatch.setenv("FAKE_OPENAI_KEY", secret)
    try:
        config = _oracle_config(tmp_path, "run")
        config.teacher.kind = flavor
        config.teacher.model = "no-such-model"
        config.teacher.api_key_env = "FAKE_OPENAI_KEY"
        config.teacher.base_url = server.url + ("/v1" if flavor == "openai" else "")
        expected = (
            "refused a check of model 'no-such-model': HTTP 404"
            if flavor == "gemini"
            else "rejected the API key \\(HTTP 401\\)"
        )
        with pytest.raises(UserError, match=expected):
            OracleRun(config).run()
        assert len(server.checks) == 1 and not server.requests and not os.path.exists(config.workdir)
        server.check_status = 200  # a working teacher passes the same check and is then used
        # one rate-limited reply that says to wait 0 s: retried at once, and counted in the run's stats
        server.steps = [("status", 429, "0s" if flavor == "gemini" else "0")]
        OracleRun(config).run()
        assert len(server.checks) == 2 and len(server.requests) > 0
        stats = files.read_json(os.path.join(config.workdir, "iter_0000", "augment_stats.json"))
        assert stats["teacher_retries"] == 1 and stats["server_delayed"] == 1
        # the key went to the server, and into no file the runs wrote (config, logs, caches, reports)
        sent = server.requests[0]["headers"]
        assert secret in (sent.get("authorization", "") + sent.get("x-goog-api-key", ""))
        written = [os.path.join(d, f) for d, _, names in os.walk(tmp_path) for f in names]
        assert len(written) > 10
        for path in written:
            with open(path, "rb") as f:
                assert secret.encode() not in f.read(), path
    finally:
        server.close()


def test_replies_that_parse_to_nothing_are_counted_and_warned_about(tmp_path, capsys):
    config = _oracle_config(tmp_path, "run")
    config.iterations = 2
    rows = OracleRun(
        config, _oracle_teacher(tmp_path / "run", script=lambda r: "Sorry, I cannot help.")
    ).run()
    assert rows[0]["drops"]["unparseable"] == 6 and rows[0]["candidates"] == 0
    out = capsys.readouterr().err
    assert "warning: 6 of 6 teacher replies held no numbered Input/Output items" in out
    assert "Sorry, I cannot help." in out
    stats = files.read_json(os.path.join(config.workdir, "iter_0000", "augment_stats.json"))
    assert stats["unparseable_sample"][0] == "Sorry, I cannot help."


# ---------------------------------------------------------------------------- disk faults
def _reference_rows(tmp_path):
    config = _oracle_config(tmp_path, "reference")
    return _comparable(OracleRun(config, _oracle_teacher(tmp_path / "reference")).run())


def test_a_full_disk_is_one_line_naming_the_path_and_the_rerun_completes(tmp_path, monkeypatch):
    """A write that fails with ENOSPC (as the kernel reports it) while an iteration's augmentation is
    saved."""
    expected = _reference_rows(tmp_path)
    config = _oracle_config(tmp_path, "run")
    real_replace = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith(os.path.join("iter_0001", "augment.jsonl")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(disk_faults.DiskError) as failure:
        OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    line = str(failure.value)
    assert "\n" not in line and "cannot write the output of stage augment-1 to " in line
    assert os.path.join("iter_0001", "augment.jsonl") in line and "the disk is full" in line
    assert not [n for n in os.listdir(os.path.join(config.workdir, "iter_0001")) if n.startswith(".tmp-")]
    monkeypatch.setattr(os, "replace", real_replace)  # space freed
    assert _comparable(OracleRun(config, _oracle_teacher(tmp_path / "run")).run()) == expected


@contextlib.contextmanager
def _tmpfs(path, size):
    """A size-limited tmpfs at `path` (root with mount rights only; else the test is skipped)."""
    os.makedirs(path, exist_ok=True)
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a tmpfs needs root with mount rights (the ENOSPC test above runs everywhere)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_real_full_disk_mid_run_then_the_rerun_completes(tmp_path):
    """On a 2 MiB tmpfs, iteration 1's training fills the disk: the kernel's ENOSPC on the next write is one
    line naming the file; with the ballast removed, the same command finishes with the uninterrupted
    metrics."""
    expected = _reference_rows(tmp_path)
    with _tmpfs(tmp_path / "small", "2m") as disk:
        config = _oracle_config(tmp_path, "run")
        config.workdir = str(disk / "run")
        ballast = disk / "ballast"

        class FillsTheDisk(OracleRun):
            def train(self, i, train_set):
                if i == 1:
                    with contextlib.suppress(OSError), open(ballast, "wb") as f:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                return super().train(i, train_set)

        with pytest.raises(
            disk_faults.DiskError,
            match=r"cannot write the output of stage fit-1 to .*iter_0001.*"
            r"the disk is full\. Everything written before is kept",
        ):
            FillsTheDisk(config, _oracle_teacher(disk / "run")).run()
        os.remove(ballast)
        assert _comparable(OracleRun(config, _oracle_teacher(disk / "run")).run()) == expected


# ---------------------------------------------------------------------------- finished runs are only read
def test_summarising_a_finished_run_writes_nothing(tmp_path):
    config = _oracle_config(tmp_path, "run")
    rows = OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    before = _tree(config.workdir)
    time.sleep(0.01)
    again = OracleRun(config, _oracle_teacher(tmp_path / "run"))
    assert again.run() == rows and again.trained_on == []
    assert _tree(config.workdir) == before  # config.json, metrics and report untouched


def test_a_finished_run_on_read_only_storage_is_read_and_its_report_regenerated(tmp_path):
    config = _oracle_config(tmp_path, "run")
    rows = OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    with _tmpfs(tmp_path / "ro", "8m") as disk:
        shutil.copytree(config.workdir, disk / "run")
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
        config.workdir = str(disk / "run")
        assert OracleRun(config, _oracle_teacher(disk / "run")).run() == rows
        assert report.main(["report", str(disk / "run"), str(tmp_path / "out")]) == 0
        assert (tmp_path / "out" / "report.md").read_text() == (disk / "run" / "report.md").read_text()
        assert (tmp_path / "out" / "report.png").read_bytes() == (disk / "run" / "report.png").read_bytes()
        # an unfinished run on read-only storage: one line naming the file it could not write
        config.iterations = 4
        with pytest.raises(
            disk_faults.DiskError, match=r"cannot write .* to .*run.*: the file system is read-only"
        ):
            OracleRun(config, _oracle_teacher(disk / "run")).run()


# ---------------------------------------------------------------------------- Ctrl-C
@pytest.mark.slow  # a launcher process
@pytest.mark.parametrize(
    "sig,status,line",
    [
        (signal.SIGINT, 130, "interrupted; rerun the same command to continue"),
        (
            signal.SIGTERM,
            143,
            "stopped by SIGTERM (a preempted machine or a scheduler); what finished is saved and the run "
            "directory's lock is released: rerun the same command to continue",
        ),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_and_sigterm_say_how_to_continue_and_exit_with_their_status(tmp_path, sig, status, line):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "launch/run.py",
            "--config=configs/default.py",
            f"--config.workdir={workdir}",
            "--config.progress=false",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = workdir / rundir.LOCK_NAME
    deadline = time.time() + 300
    while not lock.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    assert err.strip().splitlines()[-1] == line
    assert "Traceback" not in err and not lock.exists()


def test_a_sigterm_inside_a_noting_block_is_raised_when_the_block_ends():
    """Inside `sigterm_noted` a SIGTERM is noted and the block goes on to its end, then `Terminated` is
    raised; an error of the block's own wins over it; outside the block, or in one told not to note, SIGTERM
    raises at once, and a second SIGTERM would end the process (the default action is back)."""
    import os

    from llm2llm_jax.common import stopping

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stopping.stop_on_signals()
        went_on = []
        with pytest.raises(stopping.Terminated), stopping.sigterm_noted() as terminated:
            assert not terminated()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs between bytecodes of the main thread
            went_on.append(terminated())
        assert went_on == [True]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

        stopping.stop_on_signals()
        with pytest.raises(ValueError), stopping.sigterm_noted():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            raise ValueError("the block's own error")

        stopping.stop_on_signals()
        with pytest.raises(stopping.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)

        stopping.stop_on_signals()  # a block that does not note: raised at once, inside it
        reached = []
        with pytest.raises(stopping.Terminated), stopping.sigterm_noted(when=False):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            reached.append(True)
        assert reached == []
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


# ---------------------------------------------------------------------------- checkpoints of a fine-tune
def _finetune(workdir, keep_trained, checkpoint_dir=None):
    import jax
    import loop_harness

    from llm2llm_jax.common import parallel
    from llm2llm_jax.data import tasks
    from llm2llm_jax.student.recipe import hparams_from_config
    from llm2llm_jax.student.train import finetune

    cfg, params, tok = loop_harness.tiny_student()
    config = loop_harness.small_config(
        str(workdir), epochs=2
    )  # 12 examples, batch 8: 2 steps an epoch, 4 in all
    config.train.checkpoint_every = 3
    seed = [{"id": str(n), "input": f"What is thing number {n} ?", "output": "DESC"} for n in range(12)]
    return finetune(
        cfg,
        params,
        tok,
        tasks.get_task("trec"),
        seed,
        hparams_from_config(config),
        parallel.make_mesh((1, -1, 1), jax.devices()[:1]),
        lora_seed=0,
        truncation="truncate_prompt",
        checkpoint_dir=str(checkpoint_dir or workdir / "ckpt"),
        checkpoint_every=3,
        keep_trained=keep_trained,
    )[1]


@pytest.mark.slow  # trains the tiny student
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_the_trained_model_is_checkpointed_only_when_kept_and_a_full_disk_there_is_one_line(tmp_path, capfd):
    """Mid-training checkpoints stay (preemption); the trained model's only with train.keep_checkpoints (a
    fine-tune resumed from it is in the GCS test below). Orbax on a full disk: one line, and nothing printed
    besides."""
    info = _finetune(tmp_path / "a", keep_trained=False)
    assert sorted(os.listdir(tmp_path / "a" / "ckpt")) == ["3"] and info["steps"] == 4
    kept = _finetune(tmp_path / "b", keep_trained=True)
    assert sorted(os.listdir(tmp_path / "b" / "ckpt")) == ["4"] and kept == info
    capfd.readouterr()
    with _tmpfs(tmp_path / "full", "64k") as disk, pytest.raises(disk_faults.DiskError) as failure:
        _finetune(tmp_path / "c", keep_trained=False, checkpoint_dir=disk / "ckpt")
    line = str(failure.value)
    del failure  # its frames hold orbax's abandoned writes
    disk_faults.collect_abandoned_writes()  # as the launcher does once it has printed the line
    assert "\n" not in line and line.startswith(f"cannot write a training checkpoint to {disk / 'ckpt'}")
    assert "the disk is full" in line
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]


# ---------------------------------------------------------------------------- run directories on GCS
@pytest.fixture(scope="module")
def gcs():
    """A local GCS (tests/gcs_emulator.py) with the bucket `bucket`; the clients find it through its
    variables."""
    import gcs_emulator

    with gcs_emulator.running("bucket") as url:
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
        yield url
        gcsfs.GCSFileSystem.clear_instance_cache()


def test_a_run_directory_on_gcs_equals_a_local_one_and_resumes_there(tmp_path, gcs):
    from etils import epath

    expected = _reference_rows(tmp_path)
    config = _oracle_config(tmp_path, "unused")
    config.workdir = "gs://bucket/runs/trec"
    first = _oracle_teacher(config.workdir)
    assert _comparable(OracleRun(config, first).run()) == expected
    run = epath.Path(config.workdir)
    for name in (
        "config.json",
        "metrics.jsonl",
        "report.md",
        "report.png",
        "teacher_spend.json",
        "data/seed.jsonl",
        "iter_0001/augment.jsonl",
        "shards/llm2llm_shards/iteration_0002/1.0.0/dataset_info.json",
    ):
        assert (run / name).exists(), name
    assert not (run / rundir.LOCK_NAME).exists()
    assert files.read_json(f"{config.workdir}/{SPEND_FILE}")["calls"] == len(first.seen) == 12
    again = _oracle_teacher(config.workdir)
    assert (
        _comparable(OracleRun(config, again).run()) == expected and again.seen == []
    )  # read back, not redone


def test_the_lock_on_gcs_is_an_exclusive_create(gcs):
    path = "gs://bucket/locks/run.lock"
    assert files.create_exclusive(path, b"first") and not files.create_exclusive(path, b"second")
    assert files.read_bytes(path) == b"first"
    files.write_json(path, {"host": "some-other-host", "pid": 1, "started": "2026-11-28 10:00:00"})
    with pytest.raises(RunError, match="in use by another run .pid 1 on some-other-host"):
        rundir.WorkdirLock("gs://bucket/locks").acquire()
    # the same host's lock after a preemption, silent past the timeout: taken over with a note
    _write_lock("gs://bucket/locks", 1, host="preempted-vm", heartbeat_age=rundir.STALE_AFTER_SECONDS + 60)
    lock = rundir.WorkdirLock("gs://bucket/locks")
    lock.acquire()
    assert lock.held and "pid 1 on preempted-vm" in lock.note and "stopped its heartbeat" in lock.note
    assert files.read_json(path)["pid"] == os.getpid()
    lock.release()
    assert not files.exists(path)


@pytest.mark.slow  # trains the tiny student
def test_orbax_checkpoints_of_a_fine_tune_on_gcs(tmp_path, gcs):
    """Mid-training and kept checkpoints written by orbax (through tensorstore) to gs://, and a fine-tune
    resumed from there reports what the first did."""
    from etils import epath

    info = _finetune(tmp_path / "a", keep_trained=True, checkpoint_dir="gs://bucket/ckpt")
    assert sorted(p.name for p in epath.Path("gs://bucket/ckpt").iterdir()) == ["4"]
    again = _finetune(tmp_path / "a", keep_trained=True, checkpoint_dir="gs://bucket/ckpt")
    assert again.pop("flops") == 0.0 and info.pop("flops") > 0  # restored, not trained again
    assert again == info
