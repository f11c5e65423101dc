"""Where a run's time goes: wall seconds per kind of stage, with JAX's compilation inside them counted apart,
and the FLOPs each kind computed.

`llm2llm_jax/common/compilations.py` counts the run's compilation (a background one only while the run waits
for it), so a stage's own time is its wall time less the compilation that happened inside it. `StageTimer` is
the run's hook: every iteration's metrics carry its `stage_seconds` and `stage_flops`, the device's speed
they are to be read against (`device_flops`), and each program XLA compiled (or loaded from the persistent
cache), with what it was compiled for where its caller names it, how often and for how long
(`compile_log_seconds`).
"""

from __future__ import annotations

import contextlib
import time

import jax

from llm2llm_jax.common.compilations import compile_seconds, compiled_mark, compiled_since
from llm2llm_jax.model import hardware
from llm2llm_jax.run.hooks import Hook
from llm2llm_jax.student import flops

# The order a summary lists them in.
KINDS = ("load", "compile", "fine-tune", "evaluation", "teacher", "writes")


def merged_compiles(rows) -> dict:
    """Every iteration's `compile_log_seconds` added up per program, most seconds first."""
    log: dict = {}
    for r in rows:
        for name, (count, seconds) in r.get("compile_log_seconds", {}).items():
            c, s = log.get(name, (0, 0.0))
            log[name] = (c + count, s + seconds)
    return {k: list(v) for k, v in sorted(log.items(), key=lambda kv: -kv[1][1])}


def _program(name: str) -> tuple[str, str]:
    """('jit(step)', 'batch 8 x 24') from a logged 'jit(step) [batch 8 x 24]' (what it was compiled for)."""
    program, _, purpose = name.partition(" [")
    return program, purpose[:-1]


def describe_compiles(log: dict, top: int = 5) -> str:
    """'12 compilations, 61 s: jit(step) x4 31 s, jit(decode) x3 12 s, ...' (per program, whatever each was
    compiled for; the `top` costliest named)."""
    programs: dict = {}
    for name, (count, seconds) in log.items():
        program = _program(name)[0]
        c, s = programs.get(program, (0, 0.0))
        programs[program] = (c + count, s + seconds)
    ordered = sorted(programs.items(), key=lambda kv: -kv[1][1])
    total, seconds = sum(c for c, _ in programs.values()), sum(s for _, s in programs.values())
    named = ", ".join(f"{name} x{c} {s:.0f} s" for name, (c, s) in ordered[:top])
    return f"{total} compilations, {seconds:.0f} s: {named}" + (", ..." if len(ordered) > top else "")


def describe_purposes(log: dict, least_seconds: float = 1.0) -> list[str]:
    """One line per program compiled for named shapes (`compilations.compiled_for`) that took at least
    `least_seconds`: 'jit(step): batch 8 x 24 x1 31 s; batch 8 x 40 x1 29 s', what says why it compiled
    more than once."""
    purposes: dict = {}
    for name, (count, seconds) in log.items():
        program, purpose = _program(name)
        if purpose and seconds >= least_seconds:
            purposes.setdefault(program, []).append(f"{purpose} x{count} {seconds:.0f} s")
    return [f"{program}: {'; '.join(listed)}" for program, listed in purposes.items()]


class StageClock:
    """Adds up wall seconds per kind (one of KINDS); the compilation inside a timed block goes to 'compile',
    and a block timed inside another (the model loaded lazily by the first fine-tune) is taken out of the
    outer."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.flops: dict[
            str, float
        ] = {}  # what the timed work computed, per kind (llm2llm_jax/student/flops.py)
        self._open: list[list[float]] = []  # per open block: [seconds, compilation] of the blocks inside it

    @contextlib.contextmanager
    def timing(self, kind: str):
        start, compiled = time.perf_counter(), compile_seconds()
        self._open.append([0.0, 0.0])
        try:
            yield
        finally:
            inner, inner_compile = self._open.pop()
            elapsed, compile_inside = time.perf_counter() - start, compile_seconds() - compiled
            self._add(kind, elapsed - inner - (compile_inside - inner_compile))
            self._add("compile", compile_inside - inner_compile)
            if self._open:
                self._open[-1][0] += elapsed
                self._open[-1][1] += compile_inside

    def _add(self, kind: str, seconds: float) -> None:
        if seconds > 0:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def add_flops(self, kind: str, flops: float) -> None:
        if flops > 0:
            self.flops[kind] = self.flops.get(kind, 0.0) + flops

    def take_flops(self) -> dict:
        """The FLOPs so far per kind, in KINDS order, and start again from zero."""
        out = {k: float(f"{self.flops[k]:.4g}") for k in KINDS if k in self.flops}
        self.flops = {}
        return out

    def take(self) -> dict:
        """The seconds so far, rounded and in KINDS order, and start again from zero."""
        out = {k: round(self.seconds[k], 1) for k in KINDS if k in self.seconds}
        self.seconds = {}
        return out


class StageTimer(Hook):
    """The run's stage clock as a hook: each iteration's row gets the seconds and FLOPs of its stages (and of
    the data and first shard, before iteration 0), and, with `dtype` (config.model.dtype), the device's speed
    as `device_flops`: measured after each iteration's work (about a second), so that the summary of a
    finished run quotes the machine as it ran, and takes the median over iterations, which one busy moment
    on a shared machine does not move."""

    def __init__(self, dtype: str | None = None):
        self.clock = StageClock()
        self.dtype = dtype
        self.compiled_mark = compiled_mark()

    def stage(self, kind: str):
        return self.clock.timing(kind)

    def computed(self, kind: str, flops: float) -> None:
        self.clock.add_flops(kind, flops)

    def iteration_done(self, metrics: dict) -> None:
        metrics["stage_seconds"], metrics["stage_flops"] = self.clock.take(), self.clock.take_flops()
        self.compiled_mark, metrics["compile_log_seconds"] = compiled_since(self.compiled_mark)
        if self.dtype is not None and metrics["stage_flops"]:
            metrics["device_flops"] = flops.device_flops(hardware.resolve_dtype(self.dtype, jax.devices()))


def totals(rows, field: str) -> dict:
    """A per-kind field of every iteration's metrics ('stage_seconds', 'stage_flops') added up."""
    out: dict = {}
    for r in rows:
        for kind, value in r.get(field, {}).items():
            out[kind] = out.get(kind, 0.0) + value
    return out


def describe(seconds: dict) -> str:
    """'fine-tune 41 s, evaluation 12 s, ...' in KINDS order."""
    return ", ".join(f"{k} {seconds[k]:.0f} s" for k in KINDS if seconds.get(k))


def describe_bound(seconds: dict, flops: dict, rate: float) -> str:
    """'fine-tune 41 s measured, 12 s FLOP-bound (29%); ...': each kind's FLOPs at `rate` FLOP/s beside its
    measured seconds, in KINDS order."""
    parts = []
    for k in KINDS:
        if flops.get(k) and seconds.get(k):
            bound = flops[k] / rate
            parts.append(
                f"{k} {seconds[k]:.0f} s measured, {bound:.0f} s FLOP-bound ({bound / seconds[k]:.0%})"
            )
    return "; ".join(parts)
