"""Which iteration's student a run delivers: the best by dev accuracy (ties: the earlier), or, without a dev
split, the last. Only dev figures are read: the test set never chooses anything."""

from __future__ import annotations

from collections.abc import Sequence


def dev_accuracy(rows: Sequence[dict]) -> float:
    """The accuracy of dev prediction rows."""
    return sum(r["correct"] for r in rows) / max(1, len(rows))


def select(rows: Sequence[dict]) -> tuple[int, str]:
    """(the selected iteration, why) from a run's metrics rows."""
    scored = [(r["dev_accuracy"], r["iteration"]) for r in rows if "dev_accuracy" in r]
    if not scored:
        return rows[-1]["iteration"], "the last iteration (no dev split: data.dev_count is 0)"
    best = max(acc for acc, _ in scored)
    first = min(i for acc, i in scored if acc == best)
    tied = [i for acc, i in scored if acc == best and i != first]
    count = next(r["dev_count"] for r in rows if r["iteration"] == first)
    why = f"the best dev accuracy, {best:.1%} of {count} dev examples"
    if tied:
        why += f" (tied with iteration {', '.join(map(str, tied))}: the earlier is kept)"
    return first, why


def improves(earlier: Sequence[dict], accuracy: float | None) -> bool:
    """Whether a new iteration with this dev accuracy (None: no dev split) would be selected over the
    `earlier` rows: strictly better than all of them, or, without a dev split, simply later."""
    if accuracy is None:
        return True
    return all(accuracy > r.get("dev_accuracy", -1.0) for r in earlier)
