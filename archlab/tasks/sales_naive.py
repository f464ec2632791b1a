"""The next-step framing's scores of its naive baselines (data/sales_baselines.py), the run's
first lines and its actual-vs-forecast plot: what a forecast is scored and shown against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archlab.data.sales import Panel
from archlab.data.sales_baselines import next_step_naive
from archlab.metrics import regression_metrics, wmae
from archlab.task_configs import SalesDataConfig

# The naive forecasts every test row is scored against (columns of test_rows, metric names).
BASELINES = ("last_step", "seasonal_naive", "mean")


def naive_baselines(rows: pd.DataFrame) -> dict[str, Any]:
    """Each naive forecast's WMAE, MAE, RMSE, R² on the test rows (keys ``baseline_*``)."""
    extra: dict[str, Any] = {}
    for name in BASELINES:
        b = rows[name].to_numpy()
        ok = ~np.isnan(b)  # all True when require_lags holds 1 and the season
        extra[f"baseline_{name}_wmae"] = wmae(rows.actual[ok], b[ok], rows.holiday[ok])
        for k, v in regression_metrics(rows.actual[ok], b[ok]).items():
            extra[f"baseline_{name}_{k}"] = v
    return extra


def own_row_baselines(p: Panel, first_test: int, season: int) -> dict[str, float]:
    """Each baseline on every test row where it exists (how the issue quoted them)."""
    s, t = np.nonzero(~np.isnan(p.y[:, first_test:]))
    t = t + first_test
    y, hol = p.y[s, t], p.holiday[t]
    naive = next_step_naive(p.y, s, t, season)
    out = {}
    for name in BASELINES:
        b = naive[name]
        ok = ~np.isnan(b)
        out[f"baseline_{name}_wmae_own_rows"] = wmae(y[ok], b[ok], hol[ok]) if ok.any() else None
    return out


def last_week_aliases(metrics: dict[str, Any]) -> dict[str, Any]:
    """``baseline_last_week_*`` copies of ``baseline_last_step_*`` (the old names, still read)."""
    old = "baseline_last_step_"
    return {
        "baseline_last_week_" + k[len(old) :]: v for k, v in metrics.items() if k.startswith(old)
    }


def strongest_baseline(metrics: dict[str, Any]) -> str:
    """The baseline with the lowest test WMAE: the one the plot draws, the one to beat."""
    return min(BASELINES, key=lambda n: np.nan_to_num(metrics[f"baseline_{n}_wmae"], nan=np.inf))


def notes(c: SalesDataConfig, info: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """The run's first lines: what was read, what was skipped or inferred, and the split."""
    skipped = [
        f"no {k.removesuffix('_file')} table"
        for k in ("stores_file", "features_file")
        if resolved.get(k) == ""
    ] + (["no holiday column (WMAE = MAE)"] if resolved.get("holiday_column") == "" else [])
    fmt = f"dates {c.date_format}" + (" (inferred)" if "date_format" in resolved else "")
    step = {"1 days": "daily", "7 days": "weekly", "calendar month": "monthly"}.get(
        info["time_step"], f"{info['time_step']}"
    )
    head = (
        f"data: {c.path} ({info['input']}), {info['n_series']} series x {info['n_steps']} "
        f"{step} steps; {fmt}; season {c.season} steps"
    )
    first, last = info["split_first_date"], info["split_last_date"]
    split = ", ".join(
        f"{k} {info['split_sizes'][k]} ({first[k]}..{last[k]})" for k in ("train", "val", "test")
    )
    return [head + "".join(f"; {s}" for s in skipped), f"data: samples {split}"]


def series_plot(
    rows: pd.DataFrame,
    keys: list[str],
    date: str,
    wanted: tuple[str, ...],
    run_dir: Path,
    baseline: str = "mean",
) -> None:
    """actual_vs_forecast.png: the chosen (or four largest) test series with ``baseline``."""
    from archlab.plots.eda_sales import actual_vs_forecast

    label = rows[keys].astype(str).agg("-".join, axis=1)
    chosen = list(wanted) or list(rows.groupby(label).actual.sum().nlargest(4).index)
    series = {}
    for name in chosen:
        g = rows[label == name]
        if len(g):
            series[name] = (g[date].to_numpy(), g.actual.to_numpy(), g.forecast.to_numpy(),
                            g[baseline].to_numpy())  # fmt: skip
    actual_vs_forecast(series, Path(run_dir) / "plots" / "actual_vs_forecast.png", baseline)
