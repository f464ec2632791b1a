"""The sales recipe's values derived from the data: window, validation span and gap, level
shift and smoothing, from the time step, the season and the history, each with its source.

A data-config field left at None is derived here; a value set (by a preset or --set) is used as
given. Nothing here is a constant of one data set: spans are stated in days or in seasons and
converted to the data's steps, so weekly data keeps the weekly recipe's values (an 8-step
window, 13 validation steps for next-step forecasting) and daily data gets days and weeks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from archlab.data.sales import BUSINESS, months_per_step, step_unit
from archlab.data.sales_baselines import level_seasonal_naive
from archlab.errors import ArchlabError

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig

WINDOW_DAYS = 56  # history the network reads before an origin: 8 weeks (8 weekly steps)
QUARTER_DAYS = 91.3  # next-step validation span: a quarter of a year (13 weekly steps)
LEVEL_DAYS = 28  # the level shift's span: about a month, at most one season
# A season of at least this many steps (a year of weeks) has neighbouring steps alike enough
# to smooth last season's step with them; in a shorter one (a week of days) they are other
# phases of the cycle (other weekdays), so the base is last season's step alone.
SMOOTH_MIN_SEASON = 26
LEVEL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the grid the level rule's weight is chosen from
MAX_LEVEL_ORIGINS = 60  # training origins the weight is scored on (evenly spread)


def auto_season(step_days: int, weekdays: int = 7) -> int:
    """Steps per seasonal cycle of the default ``data.season``: the year, or the week if daily
    (5 business days)."""
    if weekdays == BUSINESS:
        return BUSINESS
    if k := months_per_step(step_days):
        return max(2, 12 // k)  # 12 months, 4 quarters, 2 half-years
    if step_days == 1:
        return 7  # daily sales (store visits, transactions) cycle with the week
    return max(2, round(365.25 / step_days))  # 52 for weekly data


def window_steps(step_days: int) -> int:
    """WINDOW_DAYS in steps (at least 3)."""
    return max(3, round(WINDOW_DAYS / step_days))


def level_steps_for(step_days: int, season: int) -> int:
    """LEVEL_DAYS in steps, at most one season (a daily panel's week), at least 1."""
    return max(1, min(season, round(LEVEL_DAYS / step_days)))


def smooth_width(season: int) -> int:
    return 3 if season >= SMOOTH_MIN_SEASON else 1


def _days(step_days: int, weekdays: int = 7) -> str:
    if weekdays == BUSINESS:
        return "business-day"
    return f"calendar-{step_unit(step_days)}" if months_per_step(step_days) else f"{step_days}-day"


def check_season(c: SalesDataConfig, season: int, n_steps: int) -> None:
    """A season must fit in the history before the test: seasonal naive reads a season back."""
    history = n_steps - c.horizon
    if 2 <= history <= season:  # no history at all: the split's own error says so
        # The horizon takes the most where it leaves fewer steps than it forecasts.
        lower = "data.horizon" if c.horizon > history else "data.season"
        raise ArchlabError(
            f"{c.path}: {n_steps} steps, of which data.horizon={c.horizon} are the test, leave "
            f"{history} steps of history, not more than the season of data.season ({season} "
            f"steps): the forecasts read the same step a season back; lower {lower} or give a "
            "longer history"
        )


def derive(
    c: SalesDataConfig, step_days: int, season: int, n_steps: int, weekdays: int = 7
) -> tuple[SalesDataConfig, dict[str, str]]:
    """``c`` (season resolved) with every None of the recipe derived, except level_weight
    (see ``level_weight``), and where each value came from."""
    H, unit = c.horizon, _days(step_days, weekdays)
    keys = ("window", "val_steps", "val_gap", "level_steps", "smooth_steps")
    why = {k: "config" for k in (*keys, "test_steps") if k in keys or H == 1}
    v: dict[str, Any] = {}
    if c.window is None:
        v["window"] = window_steps(step_days)
        floor = v["window"] > WINDOW_DAYS / step_days + 0.5  # monthly steps: 56 days is 2
        why["window"] = (
            f"data: at least 3 steps ({WINDOW_DAYS} days is under 3 {unit} steps)"
            if floor
            else f"data: {WINDOW_DAYS} steps, as for daily data (about {WINDOW_DAYS // 5} weeks)"
            if weekdays == BUSINESS
            else f"data: {WINDOW_DAYS} days of {unit} steps"
        )
    if H == 1:  # an origin per step: no level shift, validation right before the test
        v.update(level_steps=0, val_gap=0)
        why.update(level_steps="data: an origin per step", val_gap="data: an origin per step")
    elif c.level_steps is None:
        v["level_steps"] = level_steps_for(step_days, season)
        why["level_steps"] = (
            f"data: {LEVEL_DAYS} steps as for daily data, at most a season"
            if weekdays == BUSINESS
            else f"data: {LEVEL_DAYS} days of {unit} steps, at most a season"
            if LEVEL_DAYS / step_days >= 0.9  # a month of 28 days is about one monthly step
            else f"data: one step ({LEVEL_DAYS} days is less than a {unit} step)"
        )
    if c.smooth_steps is None:
        v["smooth_steps"] = smooth_width(season)
        why["smooth_steps"] = (
            f"data: a season of >= {SMOOTH_MIN_SEASON} steps: last season's step and its neighbours"
            if v["smooth_steps"] == 3
            else f"data: a season of {season} steps: its neighbours are other phases of it"
        )
    c = replace(c, **v)
    if H == 1:
        return _spans_next_step(c, unit, step_days, n_steps, why)
    assert c.window is not None and c.level_steps is not None
    # Steps left for validation and training origins once the test and the first training
    # origin's history (a season plus the window or the level span) are set aside.
    first = season + max(c.window, c.level_steps) - 1
    gap_given = c.val_gap if c.val_gap is not None else 0
    avail = n_steps - H - first - 1 - gap_given
    if c.val_steps is None:
        # One origin forecasting H steps, as the test does, unless that leaves fewer
        # training origins than validation steps.
        v["val_steps"] = max(1, min(H, avail // 2))
        why["val_steps"] = (
            "data: the horizon (one origin, as the test)"
            if v["val_steps"] == H
            else f"data: half the {max(avail, 0)} steps after the first training origin"
        )
    val = v.get("val_steps", c.val_steps)
    if c.val_gap is None:
        # Put the validation origin on the test origin's phase of the season (the same
        # weekday on a daily panel) when the season is no longer than the horizon.
        gap = (-val) % season if season <= H else 0
        if gap and avail - val - gap < val:
            gap = 0
        v["val_gap"] = gap
        why["val_gap"] = (
            "data: puts the validation origin on the test origin's phase of the season"
            if gap
            else "data: validation right before the test"
        )
    return replace(c, **v), why


def _spans_next_step(
    c: SalesDataConfig, unit: str, step_days: int, n_steps: int, why: dict[str, str]
) -> tuple[SalesDataConfig, dict[str, str]]:
    """Next-step forecasting's test and validation spans: the test takes a quarter of a year,
    at most a quarter of the steps; validation as much, at most a third of the steps before the
    test, so training keeps two."""
    quarter = max(1, round(QUARTER_DAYS / step_days))
    test_steps = c.test_steps
    if test_steps is None:
        test_steps = min(quarter, max(1, n_steps // 4))
        why["test_steps"] = (
            _quarter_why(unit, step_days)
            if test_steps == quarter
            else "data: a quarter of the steps"
        )
    val_steps = c.val_steps
    if val_steps is None:
        third = max(1, (n_steps - test_steps) // 3)
        val_steps = min(quarter, third)
        why["val_steps"] = (
            _quarter_why(unit, step_days)
            if quarter <= third
            else "data: a third of the steps before the test"
        )
    return replace(c, test_steps=test_steps, val_steps=val_steps), why


def _quarter_why(unit: str, step_days: int) -> str:
    """Why a next-step span is a quarter of a year; a half-year step is one step, longer."""
    if QUARTER_DAYS / step_days < 0.9:
        return f"data: one step (a quarter of a year is less than a {unit} step)"
    return f"data: a quarter of a year of {unit} steps"


def level_weight(y: np.ndarray, n_train: int, first: int, c: SalesDataConfig) -> float:
    """The weight of the level shift in the residual base that fits the training origins
    best as a plain rule (mean absolute error over targets inside the training steps)."""
    H = c.horizon
    assert c.level_steps is not None and c.smooth_steps is not None
    last = n_train - 2  # the last origin with a target inside the training steps
    if last < first:
        return 0.0
    origins = np.unique(np.linspace(first, last, min(MAX_LEVEL_ORIGINS, last - first + 1)))
    err = np.zeros(len(LEVEL_WEIGHTS))
    for o in origins.astype(int):
        t = o + 1 + np.arange(H)
        inside = t < n_train
        actual = y[:, t[inside]]
        ok = ~np.isnan(actual)
        for i, w in enumerate(LEVEL_WEIGHTS):
            f = level_seasonal_naive(y, o, H, c.season, c.level_steps, w, c.smooth_steps)
            err[i] += np.abs(actual - f[:, inside])[ok].sum()
    return LEVEL_WEIGHTS[int(np.argmin(err))]


def named(why: dict[str, str], sources: dict[str, str]) -> dict[str, str]:
    """``why`` with each value set in the config ("config") named by its source: a preset, a
    flag, a search... (``config.config_sources``), or the task's "default"."""
    return {k: sources.get(f"data.{k}", "default") if v == "config" else v for k, v in why.items()}


def describe(c: SalesDataConfig, why: dict[str, str]) -> list[str]:
    """The run's first line on the recipe: the values, grouped by their source."""
    by: dict[str, list[str]] = {}
    for k, source in why.items():
        by.setdefault(source, []).append(f"{k} {getattr(c, k)}")
    return ["data: recipe: " + "; ".join(f"{', '.join(v)} ({k})" for k, v in by.items())]
