"""What JAX compiled in this process: each XLA compilation by program and what it was compiled for (the shapes
a caller names with `compiled_for`), and the seconds the run spent on compiling: its own tracing, lowering
and compilation, and its waits for a compilation run in the background (`compile_in_background`); and the
programs compiled ahead of their first call (`compile_ahead`).

JAX reports each tracing, lowering and backend compilation through `jax.monitoring`; a listener adds them up.
A background compilation is logged by program, but its seconds count only as long as the run waits for it
(`waited`): it overlaps the run's other work, so a stage's own time stays its wall time less its compilation.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future

import jax
import numpy as np

# Tracing a function, lowering it to StableHLO, and XLA's compilation (or its load from the persistent cache).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

_seconds = 0.0
_compiled: list[tuple[str, float]] = []  # (program, seconds) of each XLA compilation or cache load
_lock = threading.Lock()
_background = threading.local()  # .active in the threads `compile_in_background` starts
_purpose = threading.local()  # .text: what this thread's compilations are for (`compiled_for`)


def _on_event(event: str, duration: float, fun_name: str = "", **_) -> None:
    global _seconds
    if event in COMPILE_EVENTS:
        with _lock:
            if not getattr(_background, "active", False):
                _seconds += duration
            if event == COMPILE_EVENTS[-1]:
                text = getattr(_purpose, "text", "")
                _compiled.append((f"{fun_name or '?'} [{text}]" if text else fun_name or "?", duration))


jax.monitoring.register_event_duration_secs_listener(_on_event)


@contextlib.contextmanager
def compiled_for(text: str):
    """Log the compilations this thread makes inside as 'program [text]': `text` names what they are
    specific to (a batch's shape), so that a run's log says why a program was compiled again."""
    outer = getattr(_purpose, "text", "")
    _purpose.text = text
    try:
        yield
    finally:
        _purpose.text = outer


def compile_seconds() -> float:
    """Seconds spent compiling so far, outside the background's threads, or waiting for them."""
    return _seconds


def compiled_mark() -> int:
    """A mark for `compiled_since`: the compilations so far."""
    with _lock:
        return len(_compiled)


def compiled_since(mark: int) -> tuple[int, dict]:
    """(a new mark, {program: [compilations, seconds]}) of the XLA compilations since `mark` (0: since the
    process started), most seconds first."""
    with _lock:
        new, mark = _compiled[mark:], len(_compiled)
    log: dict = {}
    for name, seconds in new:
        count, total = log.get(name, (0, 0.0))
        log[name] = (count + 1, total + seconds)
    ordered = sorted(log.items(), key=lambda kv: -kv[1][1])
    return mark, {name: [count, round(total, 2)] for name, (count, total) in ordered}


def compile_in_background(compile_fn, purpose: str = "") -> Future:
    """Run `compile_fn()` (a lowering and compilation) in a thread; its Future. Not a daemon thread: a process
    that ends while one compiles (a run that failed or was stopped before it needed the program) waits for
    it, since Python stops daemon threads at exit and one stopped inside XLA's C++ code aborts the process
    ("terminate called after throwing an instance of ...") after the run's own last words. `purpose`: what
    the program is compiled for (`compiled_for`)."""
    future: Future = Future()

    def run():
        _background.active = True
        try:
            with compiled_for(purpose):
                future.set_result(compile_fn())
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=run, name="compile").start()
    return future


def waited(future: Future):
    """The result of a background compilation; the seconds spent waiting for it count as compiling."""
    global _seconds
    start = time.perf_counter()
    try:
        return future.result()
    finally:
        with _lock:
            _seconds += time.perf_counter() - start


# Programs compiled ahead of their first call, by what each is specific to (`compile_ahead`).
_ahead: dict = {}


def compile_ahead(key, compile_fn, purpose: str = "") -> None:
    """Start `compile_fn()` in the background unless a program for `key` is compiled or compiling already;
    `purpose`: what it is compiled for, as `compiled_for` logs it."""
    if key not in _ahead:
        _ahead[key] = compile_in_background(compile_fn, purpose)


def compiled_ahead(key):
    """The program compiled ahead for `key` (waiting for it if need be), or None."""
    future = _ahead.get(key)
    return None if future is None else waited(future)


def signature(tree) -> tuple:
    """What a program compiled for a tree of arrays is specific to: the tree's structure and each array's
    shape, dtype and sharding (a spec written shorter than its array's rank is the same sharding, so it is
    padded here)."""

    def sharding(x):
        s = getattr(x, "sharding", None)
        if isinstance(s, jax.sharding.NamedSharding):
            spec = tuple(s.spec) + (None,) * (len(x.shape) - len(s.spec))
            return s.mesh, spec, s.memory_kind
        return s

    leaves, structure = jax.tree.flatten(tree)
    return structure, tuple((tuple(x.shape), np.dtype(x.dtype), sharding(x)) for x in leaves)
