"""Sales figures: the study's five exploratory plots and the forecast plots of a run (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from archlab.plots import _save

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig

TIME_FEATURES = ("Temperature", "Fuel_Price", "CPI", "Unemployment")


def sales_eda(
    df: pd.DataFrame, cfg: SalesDataConfig, out_dir: Path, step: str = "weekly", label: str = ""
) -> tuple[list[Path], list[str]]:
    """Write the five plots into ``out_dir``; returns their paths and a line per plot left out.

    A plot whose columns the panel lacks (store type, holiday flag, unemployment) is left out.
    ``step`` names the panel's steps in titles ("weekly", "daily"); ``label`` the target on
    axes (default its column's name).
    """
    date, y, hol = cfg.date_column, cfg.target, cfg.holiday_column
    name = label or y
    out_dir = Path(out_dir)
    paths: list[Path] = []
    optional = {"sales_by_store_type": "Type", "sales_holiday": hol,
                "sales_vs_unemployment": "Unemployment"}  # fmt: skip
    left_out = [f"{name}.png (no {f'column {col!r}' if col else 'holiday column'})"
                for name, col in optional.items() if not col or col not in df]  # fmt: skip

    # 1. Features over time (mean over series per date): Walmart's features, or the target
    # and the covariates the user named.
    covs = [k for k in cfg.covariates if k in df.columns and k not in TIME_FEATURES
            and pd.api.types.is_numeric_dtype(df[k])]  # fmt: skip
    feats = [f for f in TIME_FEATURES if f in df.columns] or [y]
    feats += covs
    per_date = df.groupby(date)[feats].mean()
    fig, axes = plt.subplots(len(feats), 1, figsize=(9, 2.0 * len(feats)), sharex=True)
    for ax, f in zip(np.atleast_1d(axes), feats, strict=True):
        ax.plot(per_date.index, per_date[f])
        ax.set_ylabel(name if f == y else f, fontsize=8)
        ax.grid(alpha=0.3)
    keys = [k for k in cfg.series_keys if k in df.columns]
    many = df.groupby(keys).ngroups if keys else 1
    fig.suptitle("features over time" + (" (mean over series)" if many > 1 else ""))
    paths.append(_out(fig, out_dir / "features_over_time.png"))

    # 2. Sales distribution by store type.
    if "Type" in df.columns:
        fig, ax = plt.subplots(figsize=(6, 4))
        types = sorted(df["Type"].dropna().unique())
        ax.boxplot([df.loc[df["Type"] == t, y] for t in types], showfliers=False)
        ax.set_xticks(range(1, len(types) + 1), types)
        ax.set_xlabel("store type")
        ax.set_ylabel(name)
        ax.set_title(f"{step} sales by store type (outliers hidden)")
        paths.append(_out(fig, out_dir / "sales_by_store_type.png"))

    # 3. Distribution of the step's sales (log count: a long right tail and some returns).
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(df[y], bins=100, log=True)
    ax.set_xlabel(name)
    ax.set_ylabel("rows (log)")
    ax.set_title(f"distribution of {name}")
    paths.append(_out(fig, out_dir / "sales_distribution.png"))

    # 4. Average sales per step, holiday vs non-holiday steps.
    if hol and hol in df.columns:
        fig, ax = plt.subplots(figsize=(5, 4))
        means = df.groupby(hol)[y].mean()
        ax.bar([str(k) for k in means.index], means.to_numpy(), color=["C0", "C3"][: len(means)])
        ax.set_xlabel(f"holiday {step_noun(step)}")
        ax.set_ylabel(f"mean {name}")
        ax.set_title(f"average {step} sales: holiday vs not")
        paths.append(_out(fig, out_dir / "sales_holiday.png"))

    # 5. Average sales vs unemployment (one point per store and date).
    if "Unemployment" in df.columns:
        fig, ax = plt.subplots(figsize=(6, 4))
        g = df.groupby([cfg.store_column, date]).agg(u=("Unemployment", "first"), s=(y, "mean"))
        ax.scatter(g.u, g.s, s=3, alpha=0.3)
        ax.set_xlabel("unemployment (%)")
        ax.set_ylabel(f"mean {name} per store and date")
        ax.set_title(f"average {step} sales vs unemployment")
        paths.append(_out(fig, out_dir / "sales_vs_unemployment.png"))
    return paths, left_out


def step_noun(adjective: str) -> str:
    """ "weekly" -> "week", "daily" -> "day", "quarterly" -> "quarter"; else "step"."""
    nouns = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}
    return nouns.get(adjective, "step")


def _out(fig: plt.Figure, path: Path) -> Path:
    _save(fig, path)
    return path


def actual_vs_forecast(
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    baseline: str = "mean",
) -> None:
    """One panel per series: actual, model forecast and the ``baseline`` over the test steps.

    The caller passes the strongest baseline (lowest test WMAE): the one the model must beat.
    """
    n = max(1, len(series))
    # constrained layout keeps each panel's title clear of the date labels of the one above
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.4 * n), squeeze=False, layout="constrained")
    for ax, (name, (d, actual, fc, base)) in zip(axes[:, 0], series.items(), strict=False):
        ax.plot(d, actual, "k-", label="actual")
        # the baseline goes under the forecast: where they coincide the forecast stays visible
        ax.plot(d, base, "C1--", lw=2.2, alpha=0.8, label=f"baseline ({baseline})")
        ax.plot(d, fc, "C0-", lw=1.3, label="forecast")
        ax.set_title(f"series {name}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    _save(fig, path)


def residuals_by_step(dates: np.ndarray, residual: np.ndarray, path: Path) -> None:
    """Mean residual (actual - forecast) per test date."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    gap = np.diff(np.unique(dates)) / np.timedelta64(1, "D") if len(dates) > 1 else [7.0]
    ax.bar(dates, residual, width=0.7 * float(np.min(gap)))  # width in days: 5 for weekly
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("mean residual (actual - forecast)")
    ax.set_title("residuals by time step (test)")
    ax.grid(alpha=0.3)
    _save(fig, path)
