"""The statistics a comparison reports: intervals for one accuracy and for a mean over seeds, and paired
tests.

All of them come from scipy; this module only fixes which interval and test each figure uses, and
what a degenerate input (one seed, identical runs) gives, so every report computes them the same way.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

CONFIDENCE = 0.95


def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of `correct` out of `total` (one run on one test set)."""
    from scipy.stats import binomtest

    if total <= 0:
        return (0.0, 1.0)
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and Student-t interval of the mean, over n values (seeds)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """One value has no spread: sd 0 and an unknown interval (NaN at both ends)."""
    from scipy import stats

    x = [float(v) for v in values]
    if not x:
        raise ValueError("summarize needs at least one value")
    mean = sum(x) / len(x)
    if len(x) == 1:
        return Summary(1, mean, 0.0, math.nan, math.nan)
    sd = statistics.stdev(x)
    if sd < 1e-12:
        return Summary(len(x), mean, 0.0, mean, mean)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return Summary(len(x), mean, sd, float(ci.low), float(ci.high))


@dataclasses.dataclass(frozen=True)
class Paired:
    """`a - b` per seed, its summary, and the two-sided p-values of the paired t test and the Wilcoxon
    signed-rank test (NaN where a test cannot be computed: under two pairs, or every difference zero)."""

    differences: tuple
    summary: Summary
    t: float
    t_p: float
    wilcoxon_p: float

    def as_dict(self) -> dict:
        return {
            "differences": list(self.differences),
            **{f"diff_{k}": v for k, v in self.summary.as_dict().items()},
            "t": self.t,
            "t_p": self.t_p,
            "wilcoxon_p": self.wilcoxon_p,
        }


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Paired:
    """Compare two methods run on the same seed sets, pair by pair."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired needs one value of each method per seed, got {len(a)} and {len(b)}")
    diffs = tuple(round(float(x) - float(y), 12) for x, y in zip(a, b))  # 0.7 - 0.6 == 0.8 - 0.7
    summary = summarize(diffs, confidence)
    t = t_p = w_p = math.nan
    if len(diffs) >= 2 and any(d != 0 for d in diffs):
        if summary.sd > 0:
            res = stats.ttest_rel(a, b)
            t, t_p = float(res.statistic), float(res.pvalue)
        w_p = float(stats.wilcoxon(diffs).pvalue)
    return Paired(diffs, summary, t, t_p, w_p)
