"""Disk faults reported as one line: a full, read-only or forbidden disk names the file and says how to
continue.

orbax, tfds and tensorstore wrap the OSError of a failed write in their own errors and log it from several
threads; `reporting_disk_faults` finds the fault in the chain, drops the echoes, and raises one `DiskError`.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import re
import sys
from collections.abc import Iterator

from llm2llm_jax.common.console import without_log_records
from llm2llm_jax.common.errors import RunError

# Disk faults the user fixes outside the program: full disk, quota, read-only mount, permissions.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class DiskError(RunError):
    """A write the run needs failed for a reason outside the program (full, read-only, no permission)."""


# tensorstore (orbax's array writer) reports an OS error inside its message: ... "PATH" ...
# [os_error_code='28']
_TENSORSTORE_OS_ERROR = re.compile(r"\[os_error_code='(\d+)'\]")
_TENSORSTORE_PATH = re.compile(r'Failed writing: "([^"]+)"|local file "([^"]+)"')


def disk_error(error: BaseException) -> OSError | None:
    """The disk fault in `error`'s chain of causes (orbax, tfds and tensorstore wrap them), as an OSError; or
    None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return error
        code = _TENSORSTORE_OS_ERROR.search(str(error))
        if code and int(code.group(1)) in DISK_ERRNOS:
            path = _TENSORSTORE_PATH.search(str(error))
            return OSError(
                int(code.group(1)),
                os.strerror(int(code.group(1))),
                (path.group(1) or path.group(2)) if path else None,
            )
        error = error.__cause__ or error.__context__
    return None


_FAULT_TEXT = re.compile(
    r"os_error_code='(28|122|30|13|1)'|No space left on device|Disk quota exceeded|"
    r"Read-only file system|Permission denied"
)


def _about_a_disk_fault(record: logging.LogRecord) -> bool:
    """A log record about a disk fault (orbax logs each failed write with its traceback, from several
    threads): the fault is reported once, as the DiskError line."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += str(record.exc_info[1])
    return bool(_FAULT_TEXT.search(text))


class _QuietUnraisable:
    """An unraisable-exception hook that drops the echoes of a disk fault: orbax's abandoned writes fail
    again, in tensorstore's threads and when collected ("Event loop is closed", the same ENOSPC); anything
    else is passed on."""

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
    reports it); after a fault the hook stays (see `collect_abandoned_writes`).
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
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only",
        }.get(fault.errno, "permission denied")
        raise DiskError(
            f"cannot write {what} to {path}: {reason}. Everything written before is kept; free space "
            f"or fix the permissions, then rerun the same command to continue."
        ) from None
    finally:
        if fault is None:
            sys.unraisablehook = previous_hook


def collect_abandoned_writes() -> None:
    """After a disk fault: orbax leaves the failed checkpoint's other writes pending, each failing with the
    same fault when it is collected; collect them now, quietly, rather than at exit, where each would print a
    traceback. Call it once the error is handled (while the exception lives, its frames keep those writes
    alive). One quiet hook stays for the rest of the process: writes still running in tensorstore's threads
    finish after the collection and echo then, onto an event loop that is already closed."""
    gc.collect()
    hook = sys.unraisablehook
    while isinstance(hook, _QuietUnraisable):
        hook = hook.previous
    sys.unraisablehook = _QuietUnraisable(hook)
