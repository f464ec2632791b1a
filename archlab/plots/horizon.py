"""Forecast error figures: test WMAE by horizon step, or by test date for one-step-ahead
forecasts from every test date; the model against the baselines (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from archlab.plots import _save


def _legend_outside(ax: plt.Axes) -> None:
    """The legend right of the axes: with up to eight forecasters it would cover their lines."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def error_by_step(curves: dict[str, Sequence[float | None]], path: Path) -> None:
    """One line per forecaster: WMAE of the test rows at each step ahead (1 .. H)."""
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    for name, values in curves.items():
        v = np.array([np.nan if x is None else x for x in values], dtype=float)
        steps = np.arange(1, len(v) + 1)
        style = {"color": "k", "lw": 2.0} if name == "model" else {"lw": 1.2, "ls": "--"}
        ax.plot(steps, v, label=name, **style, zorder=3 if name == "model" else 2)
    ax.set_xlabel("steps ahead of the forecast origin")
    ax.set_ylabel("WMAE")
    ax.set_title("test error by horizon step")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    _save(fig, path)


def error_by_date(dates: Sequence[Any], curves: dict[str, Sequence[float]], path: Path) -> None:
    """One line per forecaster: WMAE of the one-step-ahead forecasts of each test date."""
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    x = np.array(dates)
    for name, values in curves.items():
        style = {"color": "k", "lw": 2.0} if name == "model" else {"lw": 1.2, "ls": "--"}
        ax.plot(x, np.asarray(values, dtype=float), label=name, marker=".", **style,
                zorder=3 if name == "model" else 2)  # fmt: skip
    ax.set_xlabel("test date (each forecast one step ahead of the history before it)")
    ax.set_ylabel("WMAE")
    ax.set_title("test error by date")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.autofmt_xdate()
    _save(fig, path)
