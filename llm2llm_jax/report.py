"""A run's outputs for people: metrics.jsonl, report.md (a table) and report.png (accuracies and train size)."""

from __future__ import annotations

import os
from typing import Sequence

from llm2llm_jax.files import atomic_open, write_jsonl


def write_outputs(workdir: str, rows: Sequence[dict], config) -> None:
    """metrics.jsonl (one row per finished iteration) and the report."""
    write_jsonl(os.path.join(workdir, "metrics.jsonl"), rows)
    write_report(workdir, rows, config)


def write_report(workdir: str, rows: Sequence[dict], config) -> None:
    """report.md (a table) and report.png (seed accuracy, test accuracy and train size per iteration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [f"# LLM2LLM run: task {config.task}, method {config.method}", "",
             "| iteration | train size | seed accuracy | test accuracy | seed wrong | new examples | note |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        note = "; ".join(filter(None, [f"reused iteration {r['reused_from']}'s result" if "reused_from" in r else "",
                                       f"stopped: {r['stopped']}" if r.get("stopped") else ""]))
        lines.append(f"| {r['iteration']} | {r['train_size']} | {r['seed_accuracy']:.2%} | {r['test_accuracy']:.2%} | "
                     f"{r['seed_wrong']} | {r.get('new_examples', 0)} | {note} |")
    if rows:
        gain = rows[-1]["test_accuracy"] - rows[0]["test_accuracy"]
        lines += ["", f"Test accuracy gain over iteration 0 (plain fine-tuning on the seed set): {gain:+.2%}"]
    with atomic_open(os.path.join(workdir, "report.md")) as f:
        f.write("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(7, 4))
    its = [r["iteration"] for r in rows]
    ax.plot(its, [100 * r["seed_accuracy"] for r in rows], "o-", label="seed accuracy")
    ax.plot(its, [100 * r["test_accuracy"] for r in rows], "s-", label="test accuracy")
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
    with atomic_open(os.path.join(workdir, "report.png"), "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
