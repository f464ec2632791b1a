"""Softmax, naive and numerically stable, and a check of shift invariance and overflow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Tolerance for "unchanged" probabilities. Adding c ≈ 1e3 to logits of size ≈ 1e3 rounds them
# to a float64 ulp of ≈ 2e-13, so differences of that order are rounding, not a failure.
SHIFT_TOL = 1e-10


def softmax_naive(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(z) / sum(exp(z)): exact maths, but exp overflows to inf above z ≈ 709 (float64)."""
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_stable(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(z − max z): same result (shift invariance); every exponent is <= 0, so exp <= 1."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class SoftmaxCheck:
    """Numbers behind the softmax claims; ``passed`` is True when every claim holds."""

    shift_max_abs_diff: float  # max |softmax(z + c) − softmax(z)|, random and ±1000 logits
    reference_max_abs_diff: float  # max |softmax_stable − torch.softmax| on the same logits
    naive_agrees_moderate: float  # max |naive − stable| where naive cannot overflow (|z| <= 10)
    naive_nonfinite: bool  # naive softmax returns nan/inf on the extreme logits
    stable_finite: bool  # stable softmax is finite and sums to 1 on the extreme logits
    passed: bool


def extreme_logits() -> np.ndarray:
    """Rows that break the naive form: exp(1000) = inf, and exp(-1000) = 0 for every entry."""
    return np.array(
        [
            [1000.0, 999.0, -1000.0],
            [-1000.0, -1000.0, -1000.0],
            [1000.0, 1000.0, 1000.0],
            [-1000.0, 0.0, 1000.0],
        ]
    )


def check_softmax(seed: int = 0, rows: int = 64, classes: int = 10) -> SoftmaxCheck:
    """Test shift invariance on random and extreme logits; check only the naive form overflows."""
    rng = np.random.default_rng(seed)
    moderate = rng.normal(0.0, 3.0, size=(rows, classes))
    large = rng.uniform(-1000.0, 1000.0, size=(rows, classes))
    extreme = extreme_logits()

    shift_diff = 0.0
    ref_diff = 0.0
    for z in (moderate, large, extreme):
        p = softmax_stable(z)
        ref = torch.softmax(torch.from_numpy(z), dim=-1).numpy()
        ref_diff = max(ref_diff, float(np.abs(p - ref).max()))
        # One constant per row, from tiny to large, both signs.
        for c in rng.uniform(-1000.0, 1000.0, size=(4, z.shape[0], 1)):
            shift_diff = max(shift_diff, float(np.abs(softmax_stable(z + c) - p).max()))

    naive_agrees = float(np.abs(softmax_naive(moderate) - softmax_stable(moderate)).max())
    # The overflow is the point being shown, so numpy's warnings about it are silenced.
    with np.errstate(over="ignore", invalid="ignore"):
        naive_extreme = softmax_naive(extreme)
    naive_nonfinite = bool(not np.isfinite(naive_extreme).all())
    stable_extreme = softmax_stable(extreme)
    stable_finite = bool(
        np.isfinite(stable_extreme).all() and np.allclose(stable_extreme.sum(axis=-1), 1.0)
    )
    passed = (
        shift_diff < SHIFT_TOL
        and ref_diff < SHIFT_TOL
        and naive_agrees < SHIFT_TOL
        and naive_nonfinite
        and stable_finite
    )
    return SoftmaxCheck(shift_diff, ref_diff, naive_agrees, naive_nonfinite, stable_finite, passed)
