"""What a run prints: status lines on process 0, progress bars that stay out of log files, and libraries'
log records this project answers for itself kept out.

On a terminal a progress bar is tqdm's. When stderr is a file or a pipe (a TPU VM's log, CI), carriage-
return redraws would pile up into one enormous line, so the bar prints a plain line when it starts,
at most once a minute while it runs, and when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator


def say(msg: str) -> None:
    """One status line on stderr, from process 0 only."""
    import jax

    if jax.process_index() == 0:
        print(f"[llm2llm] {msg}", file=sys.stderr, flush=True)


class _Drop(logging.Filter):
    def __init__(self, drop: Callable[[logging.LogRecord], bool]):
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.drop(record)


@contextlib.contextmanager
def without_log_records(drop: Callable[[logging.LogRecord], bool], *logger_names: str) -> Iterator[None]:
    """While the block runs, the records logged to these loggers ("" is the root) for which `drop` is true are
    not emitted. (A logger's filters see only the records logged to it by name, not its children's.)"""
    quiet, loggers = _Drop(drop), [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


class LogProgress:
    """The tqdm calls this project makes (update, set_postfix, close), written as occasional plain lines."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, every_s: float = 60.0):
        self.total, self.desc, self.unit, self.n, self.every_s = total, desc, unit, initial, every_s
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self._line("started")

    def _line(self, state: str) -> None:
        elapsed = "" if state == "started" else f", {time.monotonic() - self.started:.0f} s"
        print(
            f"[llm2llm] {self.desc}: {self.n}/{self.total} {self.unit} {state}{elapsed}{self.postfix}",
            file=sys.stderr,
            flush=True,
        )

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self._line("running")

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        self._line("done")


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it", initial: int = 0):
    """A tqdm bar on a terminal, `LogProgress` otherwise; a silent tqdm when `enabled` is false."""
    from tqdm.auto import tqdm

    if enabled and not sys.stderr.isatty():
        return LogProgress(total, desc, unit, initial)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled, leave=False)
