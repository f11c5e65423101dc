"""What an iteration reports: its metrics row (accuracies with Wilson intervals, per-class counts, the
teacher's yield), the log lines that show it, and the rules that stop a run early."""

from __future__ import annotations

from collections.abc import Sequence

from llm2llm_jax.augment.base import max_parents_at
from llm2llm_jax.augment.estimate import describe_estimate, estimate_teacher_use
from llm2llm_jax.common.console import say
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.run.hooks import Hook
from llm2llm_jax.run.layout import RunDirectory
from llm2llm_jax.run.stats import wilson_interval


def accuracy_summary(
    task: Task, examples: Sequence[dict], rows: Sequence[dict], per_class: bool = True
) -> dict:
    """Counts behind an accuracy: correct of total with its 95% Wilson interval and, for classification, the
    accuracy per gold class and the confusion matrix ({gold: {predicted: count}}, 'none' for an answer that
    did not parse)."""
    correct = sum(r["correct"] for r in rows)
    low, high = wilson_interval(correct, len(rows))
    out = {
        "correct": correct,
        "count": len(rows),
        "accuracy_low": round(low, 6),
        "accuracy_high": round(high, 6),
    }
    if task.is_classification and per_class:
        gold = {ex["id"]: ex["output"] for ex in examples}
        confusion: dict = {label: {} for label in task.labels}
        for r in rows:
            cell = confusion[gold[r["id"]]]
            pred = r["prediction"] if r["prediction"] is not None else "none"
            cell[pred] = cell.get(pred, 0) + 1
        out["per_class"] = {
            label: {"count": sum(c.values()), "accuracy": (c.get(label, 0) / sum(c.values())) if c else None}
            for label, c in confusion.items()
        }
        out["confusion"] = confusion
    return out


def evaluation_row(i: int, method: str, train_set, data, wrong, task: Task, test_eval, fit) -> dict:
    """Iteration i's metrics once its student is evaluated: sizes, the seed accuracy (`wrong`: the seed
    examples it got wrong), the test accuracy with its Wilson interval, per class and the confusion matrix,
    the dev accuracy with its interval (with a dev split), and where its result came from."""
    summary = accuracy_summary(task, test_eval, fit.test)
    m = {
        "iteration": i,
        "method": method,
        "train_size": len(train_set),
        "seed_accuracy": 1 - len(wrong) / len(data.seed),
        "test_accuracy": summary["correct"] / max(1, summary["count"]),
        "test_accuracy_low": summary["accuracy_low"],
        "test_accuracy_high": summary["accuracy_high"],
        "test_count": summary["count"],
    }
    if fit.dev is not None:
        dev = accuracy_summary(task, data.dev, fit.dev, per_class=False)
        m.update(
            dev_accuracy=dev["correct"] / max(1, dev["count"]),
            dev_accuracy_low=dev["accuracy_low"],
            dev_accuracy_high=dev["accuracy_high"],
            dev_count=dev["count"],
        )
    if "kept_epoch" in fit.info:  # epochs chosen by dev loss (train.epoch_selection)
        m.update(
            epochs_run=fit.info["epochs_run"],
            kept_epoch=fit.info["kept_epoch"],
            kept_dev_loss=fit.info["dev_losses"][fit.info["kept_epoch"] - 1],
        )
    m.update(seed_wrong=len(wrong), train_final_loss=fit.info.get("final_loss"), new_examples=0)
    if "per_class" in summary:
        m["test_per_class"], m["test_confusion"] = summary["per_class"], summary["confusion"]
    for field in ("reused_from", "shared_from"):
        if field in fit.info:
            m[field] = fit.info[field]
    return m


def add_augmentation(m: dict, kept: Sequence[dict], parents: int, stats: dict) -> None:
    """The augmentation's counts in iteration metrics `m`: kept, parents, requests, parsed, drops and the
    yield."""
    m.update(
        new_examples=len(kept),
        parents=parents,
        teacher_requests=stats.get("requests", 0),
        candidates=stats.get("candidates", 0),
        drops=stats.get("drops", {}),
    )
    if "asked" in stats:
        m.update(asked=stats["asked"], teacher_yield=round(len(kept) / max(1, stats["asked"]), 4))
    if stats.get("judge_requests"):
        m["judge_requests"] = stats["judge_requests"]


def describe_yield(m: dict) -> str:
    """One iteration's teacher yield as a log line: kept of asked, requests, parsed, drops by reason."""
    dropped = ", ".join(f"{k} {v}" for k, v in m.get("drops", {}).items() if v) or "none"
    asked = (
        f" of {m['asked']} asked ({m['teacher_yield']:.0%} yield; {m.get('teacher_requests', 0)} requests, "
        f"{m.get('candidates', 0)} parsed)"
        if "asked" in m
        else f" of {m.get('candidates', 0)} new examples"
    )
    judge = f"; {m['judge_requests']} judge requests" if m.get("judge_requests") else ""
    return f"kept {m['new_examples']}{asked}{judge} (dropped: {dropped})"


def describe_epochs(m: dict) -> str:
    """Which epoch a fine-tune that chose its epochs by dev loss kept."""
    return f"kept epoch {m['kept_epoch']} of {m['epochs_run']} run (least dev loss, {m['kept_dev_loss']:.4f})"


def no_parents_reason(config, i: int, any_wrong: bool) -> str:
    """Why iteration i has no example to grow from (the run stops there)."""
    if max_parents_at(config, i) == 0 and any_wrong:
        return "augment.max_parents allows no parent at this iteration"
    return "no seed or kept example is wrong" if config.augment.from_augmented else "no seed example is wrong"


def stop_when_nothing_kept(run_dir: RunDirectory, config, kept: Sequence[dict], m: dict) -> None:
    """Stop after teacher.max_empty_rounds rounds in a row that kept nothing (m['stopped'] says so): more
    would retrain on the same data and ask the same teacher the same questions."""
    rows = [run_dir.metrics(j) for j in range(m["iteration"])] + [m]
    empty = next((n for n, r in enumerate(reversed(rows)) if r.get("new_examples")), len(rows))
    if not kept and empty >= config.teacher.max_empty_rounds:
        m["stopped"] = f"no new example kept in {empty} rounds in a row"
        say(
            f"iteration {m['iteration']}: stopping: {m['stopped']} (teacher.max_empty_rounds); more would "
            f"train on the same data. Use a stronger teacher (teacher.kind, teacher.model) or more examples "
            f"per request (teacher.per_example); {run_dir.iter_path(m['iteration'], 'augment_stats.json')} "
            "says what was dropped."
        )


class ProgressLines(Hook):
    """The lines a run prints as it goes: the teacher estimate, each iteration's accuracies and its yield."""

    def __init__(self, say, seed_size: int):
        self.say, self.seed_size = say, seed_size

    def started(self, run) -> None:
        estimate = estimate_teacher_use(run.augmenter.ctx, run.iterations)
        if estimate:
            self.say(describe_estimate(estimate, self.seed_size))

    def evaluated(self, i: int, m: dict) -> None:
        dev = f", dev accuracy {m['dev_accuracy']:.2%}" if "dev_accuracy" in m else ""
        if "kept_epoch" in m:
            self.say(f"iteration {i}: {describe_epochs(m)}")
        self.say(
            f"iteration {i}: test accuracy {m['test_accuracy']:.2%}{dev}, seed accuracy "
            f"{m['seed_accuracy']:.2%} ({m['seed_wrong']} of {self.seed_size} seed examples wrong), train "
            f"set {m['train_size']}"
        )

    def augmented(self, i: int, m: dict) -> None:
        self.say(f"iteration {i}: {describe_yield(m)}")
