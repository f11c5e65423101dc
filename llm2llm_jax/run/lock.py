"""The run directory's lock, one writer at a time (a lease naming its holder), and the guarded start of a run.

The lock is a file created exclusively (`run.lock`: host, pid, start time and a heartbeat; on an object store,
an upload with the precondition that no object of that name exists). Its holder rewrites the heartbeat every
`HEARTBEAT_SECONDS` while it runs. A second run on the same directory finds it and refuses at once, naming the
holder. A lock is taken over, with a note naming the old holder, when its process no longer runs on this host
(kill -9) or, from any host, when its heartbeat is older than `STALE_AFTER_SECONDS`: a VM recreated after a
preemption has another host name, and "rerun the same command" must still work there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.disk_faults import reporting_disk_faults
from llm2llm_jax.common.errors import RunError
from llm2llm_jax.config.snapshot import check_snapshot, write_snapshot
from llm2llm_jax.run.stages import on_main

LOCK_NAME = "run.lock"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 600.0  # ten missed heartbeats and more: the holder is gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkdirLock:
    """Exclusive use of a run directory by one process (process 0 of a multi-process run)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_NAME)
        self.held = False
        self.read_only = False  # the directory cannot be written: a finished run can still be read
        self.me = None  # what this process writes into the lock
        self.note = ""  # what happened to a stale lock, for the log
        self._stop = threading.Event()
        self._beat = None  # the heartbeat thread while the lock is held

    def _holder(self) -> dict:
        try:
            return files.read_json(self.path)
        except (OSError, ValueError):
            return {}  # being written right now, or unreadable: treated as held by an unknown process

    def acquire(self) -> None:
        self.me = me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "heartbeat": time.time(),
        }
        for _ in range(3):
            try:
                created = files.create_exclusive(self.path, json.dumps(me).encode("utf-8"))
            except OSError as e:
                if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    self.read_only = True  # nothing can change it through this path; writes report themselves
                    return
                raise
            if created:
                self.held = True
                self._start_heartbeat()
                return
            holder = self._holder()
            gone = self._gone(holder)
            if gone:
                self.note = (
                    f"took over the lock of an earlier run (pid {holder.get('pid')} on {holder.get('host')}, "
                    f"started {holder.get('started', '?')}) that {gone}"
                )
                files.remove(self.path)
                continue
            raise RunError(self._refusal(holder))
        raise RunError(self._refusal(self._holder()))

    def _gone(self, holder: dict) -> str:
        """Why the lock's holder has surely stopped ('' when it may be running): its process is gone from
        this host, or its heartbeat stopped more than STALE_AFTER_SECONDS ago."""
        pid = holder.get("pid")
        if holder.get("host") == self.me["host"] and isinstance(pid, int) and not _alive(pid):
            return "is no longer running"
        beat = holder.get("heartbeat")
        if isinstance(beat, (int, float)) and time.time() - beat > STALE_AFTER_SECONDS:
            return f"stopped its heartbeat {(time.time() - beat) / 60:.0f} minutes ago"
        return ""

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        """Rewrite the lock's heartbeat while it is held and still ours (a run that lost it stops writing)."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            holder = self._holder()
            if {k: holder.get(k) for k in ("host", "pid", "started")} != {
                k: self.me[k] for k in ("host", "pid", "started")
            }:
                return
            self.me = dict(self.me, heartbeat=time.time())
            with contextlib.suppress(OSError):  # a full disk, a lost connection: the run's writes report it
                files.write_json(self.path, self.me)

    def _refusal(self, holder: dict) -> str:
        if not holder:
            who = "another run"
        else:
            who = (
                f"another run (pid {holder.get('pid')} on {holder.get('host')}, "
                f"started {holder.get('started')})"
            )
        return (
            f"{self.workdir} is in use by {who}. Wait for it to finish or stop it, or choose another "
            f"--config.workdir; a lock whose heartbeat stops is taken over after "
            f"{STALE_AFTER_SECONDS / 60:.0f} minutes, or delete {self.path} once that run is known to be "
            f"gone."
        )

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if this process made it (also when interrupted between
        making it and noting so)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self.held or (self.me is not None and self._holder() == self.me):
            files.remove(self.path)
        self.held = False


@contextlib.contextmanager
def locked_run_directory(
    workdir: str, config, preflight: Callable[[], None], is_main: bool
) -> Iterator[WorkdirLock]:
    """Lock the run directory, check it belongs to this config, run `preflight` (on process 0), and write the
    config snapshot when it is new or changed; the block runs with the lock held and disk faults reported as
    one line. A start that fails before the first stage output leaves the directory as it was."""
    created = is_main and not files.exists(workdir)
    lock = WorkdirLock(workdir)
    try:
        with reporting_disk_faults("the run's files", workdir):
            on_main(lambda: (files.makedirs(workdir), lock.acquire()))
            if lock.note:
                say(lock.note)
            new_identity = check_snapshot(config, workdir, ignore=(LOCK_NAME,))
            on_main(preflight)
            if new_identity and is_main and not lock.read_only:
                write_snapshot(config, workdir)
            yield lock
    finally:
        lock.release()
        if created:
            files.remove_empty_dir(workdir)
