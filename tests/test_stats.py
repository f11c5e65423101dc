"""llm2llm_jax.run.stats against values worked out by hand from the textbook formulas (not by calling scipy
the same way the module does), and its degenerate cases."""

import math

import pytest

from llm2llm_jax.run import stats


def test_wilson_interval_matches_the_formula():
    # Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964
    z, k, n = 1.959963984540054, 8, 10
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = stats.wilson_interval(k, n)
    assert low == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-9)
    assert high == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-9)
    assert (low, high) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    assert stats.wilson_interval(0, 200)[0] == 0.0 and 0 < stats.wilson_interval(0, 200)[1] < 0.02
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_is_mean_sd_and_a_student_t_interval():
    s = stats.summarize([1, 2, 3, 4, 5])
    assert (s.n, s.mean, s.sd) == (5, 3.0, pytest.approx(math.sqrt(2.5)))
    t_975_4 = 2.7764451051977987  # Student t, 4 degrees of freedom
    assert (s.low, s.high) == pytest.approx(
        (3 - t_975_4 * math.sqrt(2.5 / 5), 3 + t_975_4 * math.sqrt(2.5 / 5))
    )
    one = stats.summarize([0.7])
    assert one.mean == 0.7 and one.sd == 0.0 and math.isnan(one.low) and math.isnan(one.high)
    same = stats.summarize([0.6, 0.6, 0.6])
    assert (same.low, same.high, same.sd) == (0.6, 0.6, 0.0)
    with pytest.raises(ValueError):
        stats.summarize([])


def test_paired_comparison_tests_the_differences():
    a, b = [0.72, 0.66, 0.75, 0.70, 0.78], [0.70, 0.67, 0.71, 0.70, 0.73]
    p = stats.paired(a, b)
    d = [0.02, -0.01, 0.04, 0.0, 0.05]
    assert p.differences == pytest.approx(tuple(d))
    mean = sum(d) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 4)
    assert p.summary.mean == pytest.approx(mean) and p.summary.sd == pytest.approx(sd)
    assert p.t == pytest.approx(mean / (sd / math.sqrt(5)))
    # t = 0.02 / (0.025495 / sqrt 5) = 1.7541; its two-sided p with 4 degrees of freedom
    assert p.t == pytest.approx(1.7541, abs=1e-4) and p.t_p == pytest.approx(0.1543, abs=5e-4)
    # Wilcoxon drops the zero difference; |d| ranks 1 (-0.01), 2, 3, 4: W- = 1 out of 2^4 = 16 sign patterns,
    # P(W <= 1) = 2/16 each side, two-sided 0.25
    assert p.wilcoxon_p == pytest.approx(0.25)
    row = p.as_dict()
    assert row["diff_mean"] == pytest.approx(mean) and row["diff_low"] < mean < row["diff_high"]


def test_paired_degenerate_cases():
    tie = stats.paired([0.5, 0.6], [0.5, 0.6])
    assert tie.summary.mean == 0.0 and math.isnan(tie.t_p) and math.isnan(tie.wilcoxon_p)
    single = stats.paired([0.7], [0.6])
    assert single.summary.mean == pytest.approx(0.1) and math.isnan(single.t_p)
    constant = stats.paired([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])  # the same gain on every seed: no t statistic
    assert constant.summary.low == pytest.approx(0.1) and math.isnan(constant.t) and constant.wilcoxon_p > 0
    with pytest.raises(ValueError, match="one value of each method per seed"):
        stats.paired([0.1, 0.2], [0.1])
