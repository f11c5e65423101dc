"""Stopping a run from outside: SIGTERM (what a preempted VM's processes get, and what schedulers send) is
handled as Ctrl-C is. Either unwinds the run: every finished stage is already on disk, a write in progress is
abandoned whole (files are written under a temporary name and renamed into place), and the run directory's
lock is released on the way out; the launcher then prints one line and exits with a status of its own."""

from __future__ import annotations

import contextlib
import signal

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread, where Ctrl-C's KeyboardInterrupt would be."""


# While a block of `sigterm_noted` runs: whether one is open, and whether a SIGTERM came during it.
_noting = {"open": False, "noted": False}


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    if _noting["open"]:
        _noting["noted"] = True
        return
    raise Terminated()


def stop_on_signals() -> None:
    """From now on SIGTERM raises `Terminated` and SIGINT `KeyboardInterrupt` in the main thread (call this
    from the main thread). SIGINT is set explicitly because a process started in the background by a shell
    inherits it ignored, and `kill -INT` should still stop such a run cleanly. A second SIGTERM while the run
    unwinds ends the process at once, as SIGTERM would have without this."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def sigterm_noted(when: bool = True):
    """Within the block a SIGTERM is noted instead of raised, so that its owner can stop where it is safe to
    (a fine-tune: after its current step, with a checkpoint of it); yields a function that says whether one
    came. `Terminated` is raised when the block ends, unless it ends by an exception of its own. With `when`
    false, or where `stop_on_signals` was not called, SIGTERM does what it did before."""
    if not when:
        yield lambda: False
        return
    outer = dict(_noting)
    _noting.update(open=True, noted=False)
    try:
        yield lambda: _noting["noted"]
    finally:
        noted = _noting["noted"]
        _noting.update(outer)
    if noted:
        raise Terminated()


def stop_message(stop: KeyboardInterrupt) -> tuple[str, int]:
    """(the one line to print, the exit status) for a run stopped by Ctrl-C or SIGTERM."""
    if isinstance(stop, Terminated):
        return (
            "stopped by SIGTERM (a preempted machine or a scheduler); what finished is saved and the run "
            "directory's lock is released: rerun the same command to continue",
            EXIT_TERMINATED,
        )
    return "interrupted; rerun the same command to continue", EXIT_INTERRUPTED
