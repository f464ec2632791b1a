"""Paired differences over seeds (archlab.stats): against scipy's paired t-test and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from archlab.stats import HELPS, HURTS, UNCLEAR, paired_difference


def test_hand_checked_interval() -> None:
    # Differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); the t table's 97.5% point at 2 degrees
    # of freedom is 4.303, so the interval is 2 +- 2.484, which holds 0.
    p = paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0], higher_is_better=True)
    assert p.n == 3 and p.diff_mean == pytest.approx(2.0)
    half = 4.303 / np.sqrt(3)
    assert p.diff_ci == pytest.approx((2.0 - half, 2.0 + half), abs=1e-3)
    assert p.verdict == UNCLEAR
    # Two pairs, differences 1 and 3: se 1, t(0.975, 1) = 12.706.
    p2 = paired_difference([1.0, 3.0], [0.0, 0.0], higher_is_better=True)
    assert p2.diff_ci == pytest.approx((2.0 - 12.706, 2.0 + 12.706), abs=1e-3)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_matches_scipy_paired_t_test(n: int) -> None:
    rng = np.random.default_rng(n)
    base = rng.normal(0.9, 0.02, n)
    treated = base + rng.normal(0.01, 0.01, n)
    p = paired_difference(treated, base, higher_is_better=True)
    ci = stats.ttest_rel(treated, base).confidence_interval(0.95)
    assert p.diff_ci == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert p.diff_mean == pytest.approx(float(np.mean(treated - base)), rel=1e-12)
    se = np.std(treated - base, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.975, n - 1) * se
    assert p.diff_ci[1] - p.diff_ci[0] == pytest.approx(2 * half, rel=1e-12)
    # 90% is narrower than 95%, about the same centre.
    p90 = paired_difference(treated, base, higher_is_better=True, confidence=0.9)
    assert p90.diff_ci[1] - p90.diff_ci[0] < p.diff_ci[1] - p.diff_ci[0]


def test_verdict_reads_the_metric_direction() -> None:
    base = [0.90, 0.91, 0.92]
    up = [0.93, 0.95, 0.95]  # differences 0.03, 0.04, 0.03: interval above 0
    assert paired_difference(up, base, higher_is_better=True).verdict == HELPS
    assert paired_difference(up, base, higher_is_better=False).verdict == HURTS  # e.g. WMAE up
    assert paired_difference(base, up, higher_is_better=False).verdict == HELPS
    assert paired_difference(base, up, higher_is_better=True).verdict == HURTS


def test_constant_differences_have_a_zero_width_interval() -> None:
    p = paired_difference([1.5, 2.5, 3.5], [1.0, 2.0, 3.0], higher_is_better=True)
    assert p.diff_ci == pytest.approx((0.5, 0.5)) and p.verdict == HELPS
    same = paired_difference([1.0, 2.0], [1.0, 2.0], higher_is_better=True)
    assert same.diff_ci == (0.0, 0.0) and same.verdict == UNCLEAR


@pytest.mark.parametrize(
    ("treated", "baseline", "match"),
    [
        ([1.0], [0.0], ">= 2 pairs"),
        ([1.0, 2.0], [0.0], "equal 1-d shapes"),
        ([1.0, float("nan")], [0.0, 0.0], "non-finite"),
    ],
)
def test_bad_samples(treated: list[float], baseline: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_difference(treated, baseline, higher_is_better=True)
