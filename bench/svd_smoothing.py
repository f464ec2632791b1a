"""The SVD seasonal-naive baseline's rank-10 smoothing on a daily panel: SVD against the
Gram-matrix eigh of ``sales_baselines.low_rank``, with numpy's BLAS at its own thread count
(one per core) and at one thread (``train.threads=1``, which archlab.threads now applies to it).

A 2,000-series daily panel (50 departments of 40 stores, 1,000 days) rolled over its test
origins built its data in 119 s beside other jobs, 100 s of them in 4,550 SVDs; this times
``--origins`` of those origins for each variant, interleaved over ``--rounds`` rounds so that
a change in the machine's load hits them alike, and prints the median seconds and the ratios.

Usage: python bench/svd_smoothing.py [--origins 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from archlab.data.sales_baselines import low_rank


def svd_form(a: np.ndarray, rank: int) -> np.ndarray:
    """The smoothing as it was: one truncated SVD."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    k = min(rank, len(s))
    return (u[:, :k] * s[:k]) @ vt[:k]


def smooth(y: np.ndarray, n_steps: int, groups: np.ndarray, form) -> np.ndarray:
    out = np.zeros_like(y[:, :n_steps])
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        out[rows] = form(y[rows, :n_steps], 10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    days, stores, depts = 1000, 40, 50
    t = np.arange(days)
    level = rng.gamma(2.0, 50.0, (stores * depts, 1))
    y = level * (1 + 0.2 * np.sin(2 * np.pi * t / 7)) + rng.normal(0, 5, (stores * depts, days))
    groups = np.repeat(np.arange(depts), stores)
    origins = range(days - 91, days - 91 + args.origins)
    cores = os.cpu_count() or 1
    variants = {
        f"svd, BLAS {cores} threads": (svd_form, cores),
        "svd, BLAS 1 thread": (svd_form, 1),
        "gram eigh, BLAS 1 thread": (low_rank, 1),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (form, threads) in variants.items():
            with threadpool_limits(limits=threads, user_api="blas"):
                t0 = time.perf_counter()
                for o in origins:
                    smooth(y, o + 1, groups, form)
                times[name].append(time.perf_counter() - t0)
    a = smooth(y, days - 91, groups, svd_form)
    b = smooth(y, days - 91, groups, low_rank)
    load = os.getloadavg()[0]
    print(f"{len(groups)} series x {days} days, {depts} groups, {args.origins} origins, "
          f"{args.rounds} rounds; load average {load:.1f} on {cores} cores")  # fmt: skip
    print(f"max |gram - svd| / max |svd| = {np.abs(a - b).max() / np.abs(a).max():.1e}")
    base = statistics.median(times[next(iter(variants))])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:28s} {med:7.2f} s  ({base / med:5.1f}x the first)")


if __name__ == "__main__":
    main()
