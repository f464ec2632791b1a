"""Paired comparisons over seeds: the mean difference, its Student-t interval and a verdict.

Pure functions over plain numbers. An ablation pairs each technique's seed k with the baseline's
seed k (the same split, initialization seed and batch order), so the seed-to-seed spread that
both share cancels in the difference; the interval is the paired t-test's (scipy.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

HELPS, HURTS, UNCLEAR = "helps", "hurts", "cannot tell apart"


@dataclass(frozen=True)
class PairedDiff:
    """``treated - baseline`` over ``n`` pairs: mean, confidence interval and what it says."""

    n: int
    diff_mean: float
    diff_ci: tuple[float, float]
    confidence: float
    verdict: str


def paired_difference(
    treated: Sequence[float],
    baseline: Sequence[float],
    *,
    higher_is_better: bool,
    confidence: float = 0.95,
) -> PairedDiff:
    """Mean of ``treated[i] - baseline[i]`` with a Student-t interval over the differences.

    The verdict is ``helps`` or ``hurts`` when the interval excludes 0 (the sign read with
    ``higher_is_better``), else ``cannot tell apart``. Differences that are all equal have a
    zero-width interval (no spread to estimate). Needs at least 2 finite pairs.
    """
    t = np.asarray(treated, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if t.ndim != 1 or t.shape != b.shape:
        raise ValueError(f"paired samples need equal 1-d shapes, got {t.shape} and {b.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}: must be in (0, 1)")
    d = t - b
    if not np.isfinite(d).all():
        raise ValueError(f"non-finite values in the pairs: {t.tolist()} vs {b.tolist()}")
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired interval needs >= 2 pairs, got {n}")
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / np.sqrt(n)
    if se == 0.0:  # scipy's interval is NaN at zero scale; every pair moved by exactly `mean`
        lo = hi = mean
    else:
        lo, hi = (float(x) for x in stats.t.interval(confidence, n - 1, loc=mean, scale=se))
    if lo > 0.0 or hi < 0.0:
        verdict = HELPS if (mean > 0.0) == higher_is_better else HURTS
    else:
        verdict = UNCLEAR
    return PairedDiff(n, mean, (lo, hi), confidence, verdict)
