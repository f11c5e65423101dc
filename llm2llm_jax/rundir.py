"""The run directory's guards: one writer at a time (a lock file naming its holder), a run identity that is
written only when the run is about to produce output, and disk faults reported as one line.

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
import gc
import os
import re
import socket
import time
from typing import Iterator, Optional

from llm2llm_jax import files
from llm2llm_jax.errors import RunError

LOCK_NAME = "run.lock"
# Disk faults the user fixes outside the program: full disk, quota, read-only mount, permissions.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class DiskError(RunError):
    """A write the run needs failed for a reason outside the program (full, read-only, no permission)."""


# tensorstore (orbax's array writer) reports an OS error inside its message: ... "PATH" ... [os_error_code='28']
_TENSORSTORE_OS_ERROR = re.compile(r"\[os_error_code='(\d+)'\]")
_TENSORSTORE_PATH = re.compile(r'Failed writing: "([^"]+)"|local file "([^"]+)"')


def disk_error(error: BaseException) -> Optional[OSError]:
    """The disk fault in `error`'s chain of causes (orbax, tfds and tensorstore wrap them), as an OSError; or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return error
        code = _TENSORSTORE_OS_ERROR.search(str(error))
        if code and int(code.group(1)) in DISK_ERRNOS:
            path = _TENSORSTORE_PATH.search(str(error))
            return OSError(int(code.group(1)), os.strerror(int(code.group(1))),
                           (path.group(1) or path.group(2)) if path else None)
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def reporting_disk_faults(what: str, where: str = "") -> Iterator[None]:
    """Turn a disk fault while writing `what` under `where` into one DiskError line that names the path."""
    try:
        yield
    except DiskError:
        raise
    except Exception as e:  # noqa: BLE001 - any wrapper around an OSError (orbax, tfds, concurrent futures)
        fault = disk_error(e)
        if fault is None:
            raise
        # orbax leaves the failed checkpoint's other writes pending: finish them now, while the interpreter is
        # whole, rather than at exit, where each prints a traceback.
        gc.collect()
        path = fault.filename or where or "the run directory"
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only"}.get(fault.errno, "permission denied")
        raise DiskError(f"cannot write {what} to {path}: {reason}. Everything written before is kept; free space "
                        f"or fix the permissions, then rerun the same command to continue.") from None


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
        self.note = ""  # what happened to a stale lock, for the log

    def _holder(self) -> dict:
        try:
            return files.read_json(self.path)
        except (OSError, ValueError):
            return {}  # being written right now, or unreadable: treated as held by an unknown process

    def acquire(self) -> None:
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
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
            if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                self.note = (f"took over the lock of an earlier run (pid {holder['pid']}, started "
                             f"{holder.get('started', '?')}) that is no longer running")
                files.remove(self.path)
                continue
            raise RunError(self._refusal(holder))
        raise RunError(self._refusal(self._holder()))

    def _refusal(self, holder: dict) -> str:
        if not holder:
            who = "another run"
        else:
            who = f"another run (pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')})"
        return (f"{self.workdir} is in use by {who}. Wait for it to finish or stop it, or choose another "
                f"--config.workdir; if that run is gone (another machine), delete {self.path}.")

    def release(self) -> None:
        if self.held:
            files.remove(self.path)
            self.held = False
