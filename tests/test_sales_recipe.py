"""The generic sales recipe on a daily panel: values derived from the data, tables joined on
the key they share, first-line notes, and the network against seasonal naive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab.cli import main
from archlab.config import RunConfig, apply_overrides
from archlab.data import sales_recipe
from archlab.errors import ArchlabError
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.sales_horizon_data import HorizonData

CPU = torch.device("cpu")
COLUMNS = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]


def write_daily(tmp: Path, series: int = 20, days: int = 400, seed: int = 0) -> Path:
    """A daily store panel with a weekday pattern per store, a slow trend and noise (day-first
    dates), and a stores.csv keyed store_nbr that lists four stores the panel lacks."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-04", periods=days, freq="D")
    week = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])
    frames = []
    for s in range(series):
        shape = week ** rng.uniform(0.5, 1.5)
        trend = np.exp(rng.normal(0, 8e-4) * np.arange(days))
        y = rng.uniform(500, 3000) * shape[dates.day_of_week] * trend
        y *= rng.lognormal(0, 0.08, days)
        frames.append(
            pd.DataFrame(
                {"date": dates.strftime("%d/%m/%Y"), "store_nbr": s + 1, "transactions": y.round(1)}
            )
        )
    path = tmp / "transactions.csv"
    pd.concat(frames).to_csv(path, index=False)
    stores = pd.DataFrame({"store_nbr": range(1, series + 5), "city": "Quito", "cluster": 3})
    stores.to_csv(tmp / "stores.csv", index=False)
    return path


def _cfg(path: Path, *sets: str) -> RunConfig:
    cfg = RunConfig(task="sales", data=SalesDataConfig(), model=SalesModelConfig())
    return apply_overrides(cfg, [f"data.path={path}", *COLUMNS, "data.peer=none", *sets])


def test_rules_follow_the_step_and_season() -> None:
    # weekly data keeps the weekly recipe's values; daily data gets days and weeks
    assert sales_recipe.window_steps(7) == 8 and sales_recipe.window_steps(1) == 56
    assert sales_recipe.level_steps_for(7, 52) == 4 and sales_recipe.level_steps_for(1, 7) == 7
    assert sales_recipe.smooth_width(52) == 3 and sales_recipe.smooth_width(7) == 1
    d, why = sales_recipe.derive(SalesDataConfig(), 7, 52, 143)  # H = 1: an origin per step
    assert (d.window, d.test_steps, d.val_steps, d.level_steps, d.val_gap) == (8, 13, 13, 0, 0)
    assert why["window"] == "data: 56 days of 7-day steps"
    assert why["test_steps"] == "data: a quarter of a year of 7-day steps"
    d, why = sales_recipe.derive(SalesDataConfig(), 30, 12, 48)  # 56 days are 2 months: 3
    assert d.window == 3 and why["window"] == (
        "data: at least 3 steps (56 days is under 3 calendar-month steps)"
    )
    # quarterly and half-yearly steps: their recipe says steps, not day counts of a quarter
    d, why = sales_recipe.derive(SalesDataConfig(horizon=4), 91, 4, 40)
    assert (d.window, d.level_steps) == (3, 1)
    assert why["level_steps"] == "data: one step (28 days is less than a calendar-quarter step)"
    d, why = sales_recipe.derive(SalesDataConfig(), 182, 2, 40)
    assert d.test_steps == 1
    assert why["test_steps"] == (
        "data: one step (a quarter of a year is less than a calendar-half-year step)"
    )
    # daily steps: 91 test days; a short history keeps three quarters of it before the test
    d, why = sales_recipe.derive(SalesDataConfig(), 1, 7, 1688)
    assert (d.test_steps, d.val_steps) == (91, 91)
    d, why = sales_recipe.derive(SalesDataConfig(), 1, 7, 120)
    assert d.test_steps == 30 and why["test_steps"] == "data: a quarter of the steps"
    assert d.val_steps == 30  # a third of the 90 steps before the test
    # a span set is used as given (the study's presets test Walmart's last 39 weeks)
    d, why = sales_recipe.derive(SalesDataConfig(test_steps=39), 7, 52, 143)
    assert (d.test_steps, why["test_steps"], d.val_steps) == (39, "config", 13)
    # a horizon that is not a whole number of weeks: the gap puts the validation origin on
    # the test origin's weekday; one of weeks needs none
    c = SalesDataConfig(horizon=10, season=7)
    d, why = sales_recipe.derive(c, 1, 7, 400)
    assert (d.val_steps, d.val_gap, d.window, d.level_steps) == (10, 4, 56, 7)
    assert (d.val_steps + d.val_gap) % 7 == 0 and why["val_gap"].startswith("data:")
    d, _ = sales_recipe.derive(SalesDataConfig(horizon=14, season=7), 1, 7, 400)
    assert d.val_gap == 0
    # values set are used as given, and said so
    d, why = sales_recipe.derive(SalesDataConfig(horizon=14, window=5, val_gap=2), 1, 7, 400)
    assert (d.window, d.val_gap, why["window"], why["val_gap"]) == (5, 2, "config", "config")
    # a short history: validation shrinks so that training keeps as many origins
    d, _ = sales_recipe.derive(SalesDataConfig(horizon=39), 7, 52, 143)
    assert d.val_steps == (143 - 39 - (52 + 8 - 1) - 1) // 2


def test_daily_panel_derives_its_recipe_and_reports_what_it_left_out(tmp_path: Path) -> None:
    path = write_daily(tmp_path, series=6, days=200)
    df = pd.read_csv(path)
    # two stores stop ten days early
    late = pd.to_datetime(df.date, format="%d/%m/%Y") > pd.Timestamp("2021-07-12")
    df[~(late & df.store_nbr.isin([2, 5]))].to_csv(path, index=False)
    data = HorizonData(_cfg(path, "data.horizon=14")).build(CPU)
    recipe = {k: v["value"] for k, v in data.info["recipe"].items()}
    assert recipe == {
        "window": 56,
        "val_steps": 14,
        "val_gap": 0,
        "level_steps": 7,
        "level_weight": recipe["level_weight"],
        "smooth_steps": 1,
        "known_covariates": [],
    }
    assert recipe["level_weight"] in sales_recipe.LEVEL_WEIGHTS
    assert all(v["from"].startswith("data:") for v in data.info["recipe"].values())
    assert data.fitted.resolved["store_column"] == "store_nbr"  # stores.csv joined on it
    notes = "\n".join(data.notes)
    assert "data: recipe: window 56 (data: 56 days of 1-day steps)" in notes
    assert "stores.csv has 4 store_nbr value(s) the panel has no rows of (e.g. 7, 8" in notes
    assert "2 of 6 series end before the last date 2021-07-22" in notes
    assert "the test origin, 2021-07-08" in notes
    assert data.info["series_ending_early"] == 2
    # the residual base is last week's same day (no smoothing across weekdays)
    assert "seasonal_naive_3wk" not in data.context.rows.columns


def test_generic_daily_command_beats_seasonal_naive(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_daily(tmp_path)
    sets = [*COLUMNS, "data.horizon=28", "data.peer=none", "train.threads=1"]
    sets += ["train.progress=off", "train.epochs=4"]
    sets += ["data.level_steps=7"]  # the value the data gives: only its source changes
    argv = ["train", "--task", "sales", "--data", str(path), "--out", "runs"]
    assert main([*argv, *(a for kv in sets for a in ("--set", kv))]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    info = json.loads((run / "data.json").read_text())
    assert info["recipe"]["window"]["value"] == 56 and info["horizon"] == 28
    # each value says where it came from: the data, a flag, or the task's defaults
    assert info["recipe"]["window"]["from"].startswith("data:")
    assert info["recipe"]["level_steps"] == {"value": 7, "from": "--set"}
    assert info["config_sources"]["data.path"] == "--data"
    assert info["config_sources"]["data.horizon"] == "--set"
    assert "optim.lr" not in info["config_sources"]  # a default
    m = json.loads((run / "metrics.json").read_text())
    assert m["test_wmae"] < 0.97 * m["baseline_seasonal_naive_wmae"]


def _two_stores(path: Path, dates: pd.DatetimeIndex) -> Path:
    """Two stores' steadily rising transactions on ``dates``."""
    n = len(dates)
    pd.concat(
        pd.DataFrame({"date": dates, "store_nbr": s, "transactions": 100.0 * s + np.arange(n)})
        for s in (1, 2)
    ).to_csv(path, index=False)
    return path


def test_a_history_under_a_season_names_the_lag_to_drop(tmp_path: Path) -> None:
    # 60 weekly steps leave 34 to train on: none has the value a season (52 weeks) back
    path = _two_stores(tmp_path / "weekly.csv", pd.date_range("2023-01-06", periods=60, freq="7D"))
    with pytest.raises(ArchlabError, match=r"\[1, 52\].*--set data.require_lags=1"):
        HorizonData(_cfg(path)).build(CPU)
    assert len(HorizonData(_cfg(path, "data.require_lags=1")).build(CPU).train) > 0


def test_a_season_longer_than_the_history_names_data_season(tmp_path: Path) -> None:
    # every other day: the derived season is 183 steps, more than this history holds
    path = _two_stores(tmp_path / "eod.csv", pd.date_range("2023-01-01", periods=200, freq="2D"))
    with pytest.raises(ArchlabError, match=r"\(data.season=183 steps\).*or data.season \(the "):
        HorizonData(_cfg(path, "data.horizon=4")).build(CPU)
