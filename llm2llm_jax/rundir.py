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
import gc
import json
import logging
import os
import re
import socket
import sys
import time
from typing import Iterator, Optional

from llm2llm_jax import files
from llm2llm_jax.console import without_log_records
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


_FAULT_TEXT = re.compile(r"os_error_code='(28|122|30|13|1)'|No space left on device|Disk quota exceeded|"
                         r"Read-only file system|Permission denied")


def _about_a_disk_fault(record: logging.LogRecord) -> bool:
    """A log record about a disk fault (orbax logs each failed write with its traceback, from several threads):
    the fault is reported once, as the DiskError line."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += str(record.exc_info[1])
    return bool(_FAULT_TEXT.search(text))


class _QuietUnraisable:
    """An unraisable-exception hook that drops the echoes of a disk fault: orbax's abandoned writes fail again, in
    tensorstore's threads and when collected ("Event loop is closed", the same ENOSPC); anything else is passed on."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, unraisable) -> None:
        text = str(unraisable.exc_value)
        if "Event loop is closed" not in text and not _FAULT_TEXT.search(text):
            self.previous(unraisable)


@contextlib.contextmanager
def reporting_disk_faults(what: str, where: str = "") -> Iterator[None]:
    """Turn a disk fault while writing `what` under `where` into one DiskError line that names the path.

    While the block runs, log records and unraisable exceptions about a disk fault are dropped (the line
    reports it); after a fault the hook stays until `collect_abandoned_writes`.
    """
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _QuietUnraisable(previous_hook)
    fault = None
    try:
        with without_log_records(_about_a_disk_fault, "absl", ""):
            yield
    except DiskError:
        fault = True
        raise
    except Exception as e:  # noqa: BLE001 - any wrapper around an OSError (orbax, tfds, concurrent futures)
        fault = disk_error(e)
        if fault is None:
            raise
        path = fault.filename or where or "the run directory"
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only"}.get(fault.errno, "permission denied")
        raise DiskError(f"cannot write {what} to {path}: {reason}. Everything written before is kept; free space "
                        f"or fix the permissions, then rerun the same command to continue.") from None
    finally:
        if fault is None:
            sys.unraisablehook = previous_hook


def collect_abandoned_writes() -> None:
    """After a disk fault: orbax leaves the failed checkpoint's other writes pending, each failing with the same
    fault when it is collected; collect them now, quietly, rather than at exit, where each would print a
    traceback, then put back the usual unraisable-exception hook. Call it once the error is handled (while the
    exception lives, its frames keep those writes alive)."""
    gc.collect()
    while isinstance(sys.unraisablehook, _QuietUnraisable):
        sys.unraisablehook = sys.unraisablehook.previous


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
        self.me = me = {"host": socket.gethostname(), "pid": os.getpid(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S")}
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
        """Remove the lock if this process made it (also when interrupted between making it and noting so)."""
        if self.held or (self.me is not None and self._holder() == self.me):
            files.remove(self.path)
        self.held = False
