"""A run's outputs for people: metrics.jsonl, report.md (a table) and report.png (accuracies and train size).

Each file is rewritten only when its content changes, so summarising a finished run writes nothing. Regenerate
the report of any run directory, a read-only copy included, into another directory with

    python -m llm2llm_jax.run.report RUN_DIR [OUT_DIR]
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence

from llm2llm_jax.common import files
from llm2llm_jax.common.files import write_if_changed
from llm2llm_jax.run.metrics import describe_epochs
from llm2llm_jax.run.selection import select
from llm2llm_jax.teacher.budget import describe_spend, read_spend


def write_outputs(workdir: str, rows: Sequence[dict], config, out_dir: str = "") -> None:
    """metrics.jsonl (one row per finished iteration) and the report, in `out_dir` (default: the run's)."""
    out_dir = out_dir or workdir
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_if_changed(os.path.join(out_dir, "metrics.jsonl"), lines.encode("utf-8"))
    write_report(out_dir, rows, config, spend=read_spend(workdir))


def read_rows(workdir: str) -> list[dict]:
    """The metrics of the run's finished iterations, in order."""
    rows = []
    while files.exists(path := os.path.join(workdir, f"iter_{len(rows):04d}", "metrics.json")):
        rows.append(files.read_json(path))
    return rows


def write_report(workdir: str, rows: Sequence[dict], config, spend: dict | None = None) -> None:
    """report.md (a table) and report.png (seed accuracy, test accuracy and train size per iteration)."""
    lines = [f"# LLM2LLM run: task {config.task}, method {config.method}", "", *_table(rows)]
    asked = sum(r.get("asked", 0) for r in rows)
    if asked:
        kept = sum(r.get("new_examples", 0) for r in rows if "asked" in r)
        lines += [
            "",
            f"Teacher yield over the run: {kept} kept of {asked} new examples asked for "
            f"({kept / asked:.0%}).",
        ]
    if rows:
        gain = rows[-1]["test_accuracy"] - rows[0]["test_accuracy"]
        lines += [
            "",
            f"Test accuracy gain over iteration 0 (plain fine-tuning on the seed set): {gain:+.2%}. "
            "The interval is Wilson's for one run on this test set: it says how much the test set's "
            "size leaves open, not how much another seed set or batch order would move the result "
            "(`python launch/compare.py` measures that).",
        ]
        lines += _classes(rows[-1])
        selected, why = select(rows)
        lines += ["", f"Selected student: iteration {selected}, {why}; the test set chose nothing."]
    if spend:
        lines += ["", f"Teacher spend over the whole run: {describe_spend(spend)}."]
    write_if_changed(os.path.join(workdir, "report.md"), ("\n".join(lines) + "\n").encode("utf-8"))
    write_if_changed(os.path.join(workdir, "report.png"), _plot(rows, config))


def _table(rows: Sequence[dict]) -> list[str]:
    """One line per iteration: sizes, accuracies with the test interval, the teacher's counts and yield."""
    dev = any("dev_accuracy" in r for r in rows)
    lines = [
        "| iteration | train size | seed accuracy | test accuracy [95% CI] | "
        + ("dev accuracy [95% CI] | " if dev else "")
        + "seed wrong | teacher requests | examples asked | parsed | kept | yield | dropped | note |",
        "| ---: | ---: | ---: | --- | "
        + ("--- | " if dev else "")
        + "---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        note = "; ".join(
            filter(
                None,
                [
                    f"reused iteration {r['reused_from']}'s result" if "reused_from" in r else "",
                    f"reused the result of {r['shared_from']}" if "shared_from" in r else "",
                    describe_epochs(r) if "kept_epoch" in r else "",
                    f"stopped: {r['stopped']}" if r.get("stopped") else "",
                ],
            )
        )
        interval = (
            f" [{r['test_accuracy_low']:.1%}, {r['test_accuracy_high']:.1%}]"
            if "test_accuracy_low" in r
            else ""
        )
        dropped = ", ".join(f"{k} {v}" for k, v in r.get("drops", {}).items() if v)
        judged = f" (+{r['judge_requests']} judge)" if r.get("judge_requests") else ""
        yielded = f"{r['teacher_yield']:.0%}" if "teacher_yield" in r else ""
        lines.append(
            f"| {r['iteration']} | {r['train_size']} | {r['seed_accuracy']:.2%} | "
            f"{r['test_accuracy']:.2%}{interval} | {_dev_cell(r) if dev else ''}{r['seed_wrong']} | "
            f"{r.get('teacher_requests', '')}{judged} | "
            f"{r.get('asked', '')} | {r.get('candidates', '')} | {r.get('new_examples', 0)} | {yielded} | "
            f"{dropped} | {note} |"
        )
    return lines


def _dev_cell(r: dict) -> str:
    if "dev_accuracy" not in r:
        return " | "
    return f"{r['dev_accuracy']:.2%} [{r['dev_accuracy_low']:.1%}, {r['dev_accuracy_high']:.1%}] | "


def _plot(rows: Sequence[dict], config) -> bytes:
    """Seed and test accuracy (with the test interval) and the training set's size per iteration, as PNG
    bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    its = [r["iteration"] for r in rows]
    ax.plot(its, [100 * r["seed_accuracy"] for r in rows], "o-", label="seed accuracy")
    test = [100 * r["test_accuracy"] for r in rows]
    if all("test_accuracy_low" in r for r in rows):
        below = [t - 100 * r["test_accuracy_low"] for t, r in zip(test, rows)]
        above = [100 * r["test_accuracy_high"] - t for t, r in zip(test, rows)]
        ax.errorbar(its, test, yerr=[below, above], fmt="s-", capsize=3, label="test accuracy (95% Wilson)")
    else:
        ax.plot(its, test, "s-", label="test accuracy")
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy (%)")
    ax2 = ax.twinx()
    ax2.bar(its, [r["train_size"] for r in rows], alpha=0.2, color="gray", label="train size")
    ax2.set_ylabel("training examples")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(its)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right")
    ax.set_title(f"LLM2LLM on {config.task} ({config.method})")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return png.getvalue()


def _classes(row: dict) -> list[str]:
    """Per-class test accuracy and the confusion matrix of one iteration (classification tasks)."""
    if "test_confusion" not in row:
        return []
    confusion = row["test_confusion"]
    predicted = list(confusion) + sorted({p for c in confusion.values() for p in c} - set(confusion))
    lines = [
        "",
        f"## Iteration {row['iteration']} on the test set, per class",
        "",
        "| gold \\ predicted | " + " | ".join(predicted) + " | examples | accuracy |",
        "| --- | " + " | ".join("---:" for _ in predicted) + " | ---: | ---: |",
    ]
    for gold, cells in confusion.items():
        acc = row["test_per_class"][gold]["accuracy"]
        lines.append(
            f"| {gold} | "
            + " | ".join(str(cells.get(p, 0)) for p in predicted)
            + f" | {sum(cells.values())} | {'' if acc is None else f'{acc:.1%}'} |"
        )
    return lines


def main(argv: Sequence[str]) -> int:
    """Regenerate RUN_DIR's metrics.jsonl and report into OUT_DIR (default RUN_DIR) from its finished
    iterations."""
    import ml_collections

    if len(argv) not in (2, 3):
        print("usage: python -m llm2llm_jax.run.report RUN_DIR [OUT_DIR]", file=sys.stderr)
        return 2
    workdir, out_dir = argv[1], argv[2] if len(argv) == 3 else argv[1]
    config_path = os.path.join(workdir, "config.json")
    if not files.exists(config_path):
        print(f"error: {workdir} is not a run directory (no config.json)", file=sys.stderr)
        return 2
    config = ml_collections.ConfigDict(files.read_json(config_path))
    rows = read_rows(workdir)
    try:
        files.makedirs(out_dir)
        write_outputs(workdir, rows, config, out_dir=out_dir)
    except OSError as e:
        print(
            f"error: cannot write the report to {e.filename or out_dir}: {e.strerror}; give a writable "
            "OUT_DIR",
            file=sys.stderr,
        )
        return 2
    print(f"{len(rows)} iteration(s); report: {os.path.join(out_dir, 'report.md')} and report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
