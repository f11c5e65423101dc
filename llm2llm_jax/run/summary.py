"""The one-screen summary a finished run prints: accuracies per iteration, the teacher's spend, and where the
time went beside each stage's FLOP-bound time."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

import jax

from llm2llm_jax.common import files
from llm2llm_jax.model import hardware
from llm2llm_jax.run import timing
from llm2llm_jax.run.selection import select
from llm2llm_jax.student import flops
from llm2llm_jax.teacher.budget import describe_spend, read_spend


def print_summary(config, rows: Sequence[dict], minutes: float) -> None:
    workdir = files.absolute(config.workdir)
    print(f"\nLLM2LLM on {config.task} ({config.method}), run directory {workdir}")
    print("\n".join(iteration_table(rows)))
    if rows and rows[-1].get("stopped"):
        print(f"stopped early: {rows[-1]['stopped']}")
    spend = read_spend(workdir)
    if spend:
        print(f"teacher spend over the whole run: {describe_spend(spend)}")
    if rows:
        print(
            f"test accuracy {rows[0]['test_accuracy']:.1%} (plain fine-tuning, iteration 0) -> "
            f"{rows[-1]['test_accuracy']:.1%} after {len(rows)} iteration(s); {minutes:.1f} min"
        )
        selected, why = select(rows)
        print(f"selected student: iteration {selected}, {why}")
        student = os.path.join(workdir, "student")
        if files.exists(os.path.join(student, "README.md")):
            print(
                f"student: {student} ({files.size(student) / 1e6:,.0f} MB; its weights kept in "
                f"kept_student/, {files.size(os.path.join(workdir, 'kept_student')) / 1e6:,.0f} MB)"
            )
    print_time(config, rows)
    print(f"report: {os.path.join(workdir, 'report.md')} and report.png")


def iteration_table(rows: Sequence[dict]) -> list[str]:
    dev = any("dev_accuracy" in r for r in rows)
    epochs = any("kept_epoch" in r for r in rows)
    lines = [
        f"{'iter':>4} {'train size':>10} {'seed acc':>9} {'test acc':>9}"
        + (f" {'dev acc':>9}" if dev else "")
        + (f" {'epoch':>7}" if epochs else "")
        + f" {'new':>5}"
    ]
    for r in rows:
        note = (
            f"  (reused iteration {r['reused_from']})"
            if "reused_from" in r
            else f"  (reused {r['shared_from']})"
            if "shared_from" in r
            else ""
        )
        dev_cell = (f" {r['dev_accuracy']:>9.1%}" if "dev_accuracy" in r else f" {'':>9}") if dev else ""
        kept = f"{r['kept_epoch']}/{r['epochs_run']}" if "kept_epoch" in r else ""
        lines.append(
            f"{r['iteration']:>4} {r['train_size']:>10} {r['seed_accuracy']:>9.1%} "
            f"{r['test_accuracy']:>9.1%}{dev_cell}{f' {kept:>7}' if epochs else ''} "
            f"{r.get('new_examples', 0):>5}{note}"
        )
    return lines


def print_time(config, rows: Sequence[dict]) -> None:
    """Seconds per stage, and each stage's FLOPs at the device's peak beside them."""
    stage_seconds, stage_flops = timing.totals(rows, "stage_seconds"), timing.totals(rows, "stage_flops")
    if stage_seconds:
        print(f"where the iterations' time went: {timing.describe(stage_seconds)}")
    compiled = timing.merged_compiles(rows)
    if compiled:
        print(f"compiled: {timing.describe_compiles(compiled)}")
        for line in timing.describe_purposes(compiled):
            print(f"  {line}")
    if stage_flops:
        peak, against = device_peak(config, rows)
        print(f"against {against}: {timing.describe_bound(stage_seconds, stage_flops, peak)}")


def device_peak(config, rows: Sequence[dict]) -> tuple[float, str]:
    """(FLOP/s, what it is) that a run's FLOP-bound times are quoted against: the datasheet's bf16 peak on
    an accelerator it knows, else the matmul rate the run measured while it worked (the median over its
    iterations and processes); a run that predates storing it is measured now, and says so."""
    stored = [r["device_flops"] for r in rows if "device_flops" in r]
    if stored:
        speed, when = stored[-1], "measured during the run"
        rate = statistics.median(s["matmul_per_s"] for s in stored)
    else:
        speed = flops.device_flops(hardware.resolve_dtype(config.model.dtype, jax.devices()))
        rate, when = speed["matmul_per_s"], "measured now: the run did not store it"
    if speed.get("datasheet_per_s"):
        peak = speed["datasheet_per_s"]
        return peak, (
            f"{speed['device']}'s datasheet bf16 peak ({peak / 1e12:,.0f} TFLOP/s; its {speed['dtype']} "
            f"matmul {when}: {rate / 1e12:,.0f} TFLOP/s, {rate / peak:.0%} of it)"
        )
    return rate, f"this device's {speed['dtype']} matmul rate ({rate / 1e9:,.0f} GFLOP/s, {when})"
