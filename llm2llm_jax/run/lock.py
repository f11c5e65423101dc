"""The run directory's lock, one writer at a time (a lock file naming its holder), and the guarded start of a
run.

The lock is a file created exclusively (`run.lock`: host, pid, start time; on an object store, an upload with
the precondition that no object of that name exists). A second run on the same
directory finds it and refuses at once, naming the holder; a lock left by a process that no longer runs
on this host (kill -9, a lost VM) is taken over with a note. A lock from another host cannot be checked
from here, so the message says how to remove it once that run is known to be gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator

from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.disk_faults import reporting_disk_faults
from llm2llm_jax.common.errors import RunError
from llm2llm_jax.config.snapshot import check_snapshot, write_snapshot
from llm2llm_jax.run.stages import on_main

LOCK_NAME = "run.lock"


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
                return
            holder = self._holder()
            if (
                holder.get("host") == me["host"]
                and isinstance(holder.get("pid"), int)
                and not _alive(holder["pid"])
            ):
                self.note = (
                    f"took over the lock of an earlier run (pid {holder['pid']}, started "
                    f"{holder.get('started', '?')}) that is no longer running"
                )
                files.remove(self.path)
                continue
            raise RunError(self._refusal(holder))
        raise RunError(self._refusal(self._holder()))

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
            f"--config.workdir; if that run is gone (another machine), delete {self.path}."
        )

    def release(self) -> None:
        """Remove the lock if this process made it (also when interrupted between making it and noting so)."""
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
