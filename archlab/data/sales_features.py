"""The next-step framing's fitted featurizer: per-step inputs, windows and the baseline.

``SalesFeaturizer.fit`` learns what the inputs need from a panel's training steps (the shared
core of data/sales_core.py, plus holiday dates, season, events and the feature layout);
``transform`` turns any panel with the same columns into the network's inputs, ``windows``
gathers windows ending at target steps and ``baseline`` gives the baseline the network
corrects. Training, eval, predict and explain all go through it (saved in fitted.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from archlab.data.sales import MONTHLY_MIN_DAYS, Panel, event_flags, group_mean, lagged, step_dates
from archlab.data.sales_baselines import next_step_naive
from archlab.data.sales_core import (
    PanelFit,
    fit_covariates,
    fit_series,
    fit_vocab,
    year_position,
)

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig

# Per-step feature columns of the forecasting framing (the covariates, then the events follow).
STEP_FEATURES = (
    "sales",  # scaled sales of the step (0 at the target step: unknown)
    "observed",  # 1 where the step has a sales row (0 at the target step)
    "sales_last_year",  # scaled sales one season earlier
    "observed_last_year",
    "sales_last_year_next",  # one season minus one step earlier (last year's following week)
    "group_sales",  # mean scaled sales of the series' group (department) across stores
    "group_sales_last_year",  # smoothed seasonal signal shared by the group's series
    "group_sales_last_year_next",
    "holiday",
    "season_sin",  # position in the year
    "season_cos",
    "target_step",  # 1 only at the step being forecast
)
EVENT_FEATURES = ("event", "event_last_year")  # the two columns data.events adds
# Inputs of the target step that are not known when forecasting it: zeroed in its window row.
UNKNOWN_AT_TARGET = ("sales", "observed", "group_sales")
TARGET_FLAG = "target_step"


def feature_layout(covariates: Sequence[str], events: bool) -> tuple[str, ...]:
    """Names of the per-step input columns, in order: STEP_FEATURES, covariates, event flags."""
    return (*STEP_FEATURES, *covariates, *(EVENT_FEATURES if events else ()))


def _columns(names: Sequence[str], wanted: Sequence[str]) -> tuple[int, ...]:
    return tuple(list(names).index(n) for n in wanted)


def auto_season(step_days: int) -> int:
    """Steps per seasonal cycle of the default ``data.season``: the year, or the week if daily."""
    if step_days >= MONTHLY_MIN_DAYS:
        return 12
    if step_days == 1:
        return 7  # daily sales (store visits, transactions) cycle with the week
    return max(2, round(365.25 / step_days))  # 52 for weekly data


class Features(NamedTuple):
    """A panel as the network's inputs (see ``SalesFeaturizer.transform``)."""

    steps: np.ndarray  # (S, T, F) float32 inputs of every step, scaled units
    yn: np.ndarray  # (S, T) scaled target, NaN where missing
    offset: np.ndarray  # (S,) per-series offset and scale back to sales units
    scale: np.ndarray
    cats: np.ndarray  # (S, k) int64 index of each series key in the training vocabulary
    known: np.ndarray  # (S,) bool: the series was in the training panel


@dataclass(frozen=True)
class SalesFeaturizer(PanelFit):
    """What the forecast framing's inputs learn from the training steps; frozen, JSON-able."""

    series_keys: tuple[str, ...]
    series: tuple[tuple[Any, ...], ...]  # key values of each training-panel series
    offset: tuple[float, ...]  # per series: mean over its training steps (0 if it has none)
    scale: tuple[float, ...]  # and std (at least data.min_scale)
    key_vocab: tuple[tuple[Any, ...], ...]  # sorted values of each key: the embedding ids
    covariates: tuple[str, ...]
    cov_mean: tuple[float, ...]
    cov_std: tuple[float | None, ...]  # None: constant over the training steps (enters as 0)
    step_days: int  # 28+: calendar months (see data/sales.time_index)
    holiday_dates: tuple[str, ...]  # YYYY-MM-DD of the panel's holiday steps
    season: int
    window: int
    residual: str  # data.residual: the baseline the network corrects
    events: tuple[str, ...] = ()  # data.events dates; () adds no event columns

    @classmethod
    def fit(
        cls,
        p: Panel,
        n_train: int,
        c: SalesDataConfig,
        covariates: Sequence[str],
        step_days: int,
    ) -> SalesFeaturizer:
        """Fit on the first ``n_train`` steps of ``p`` (built with ``covariates``) for config
        ``c`` (with the values the data decided: season, require_lags)."""
        return cls(
            series_keys=tuple(c.series_keys),
            **fit_series(p.keys, p.y, n_train, c.min_scale, seen_only=False),
            key_vocab=fit_vocab(p.keys, factorize=True),
            covariates=tuple(covariates),
            **fit_covariates(p.cov, n_train, empty_std=1.0),
            step_days=step_days,
            holiday_dates=tuple(str(d)[:10] for d in p.dates[p.holiday]),
            season=c.season,
            window=c.window,
            residual=c.residual,
            events=tuple(c.events),
        )

    # --- layout ---
    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_layout(self.covariates, bool(self.events))

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def unknown_at_target(self) -> tuple[int, ...]:
        return _columns(self.feature_names, UNKNOWN_AT_TARGET)

    @property
    def target_flag(self) -> int:
        return _columns(self.feature_names, [TARGET_FLAG])[0]

    # --- transform ---
    def transform(self, p: Panel) -> Features:
        """Inputs of every step of ``p`` (its covariates in ``self.covariates`` order).

        Series unknown to the training panel get the first series' scaler and key id 0 for
        unknown key values; ``known`` says which they are (callers drop them).
        """
        idx = self.series_index(p.keys)
        offset, scale = self.scalers(idx, unknown=None)
        cats = self.key_ids(p.keys)
        events = event_flags(p.dates, self.events, self.step_days) if self.events else None
        cov = self.standardized(p.cov, np.float32)
        steps, yn = forecast_steps(p, offset, scale, cov, cats[:, -1], self.season, events)
        return Features(steps, yn, offset, scale, cats, idx >= 0)

    def with_next_holiday(self, p: Panel) -> Panel:
        """``p`` (a history panel with one empty step appended) with that step's holiday flag:
        a holiday if the same step a season earlier was one (in the training panel or in ``p``)."""
        T = p.y.shape[1]
        year_ago = step_dates(p.dates[-1], np.int64(-self.season), self.step_days)
        hol_dates = {np.datetime64(d) for d in self.holiday_dates}
        in_panel = self.season < T and bool(p.holiday[T - 1 - self.season])
        holiday = p.holiday.copy()
        holiday[-1] = bool(holiday[-1] or year_ago in hol_dates or in_panel)
        return replace(p, holiday=holiday)

    def offsets(self, device: torch.device | None = None) -> torch.Tensor:
        """Time offsets of a window's steps relative to its target step: -window .. 0."""
        return torch.arange(-self.window, 1, device=device)

    def windows(
        self, steps: torch.Tensor, s: torch.Tensor, t: torch.Tensor, offs: torch.Tensor
    ) -> torch.Tensor:
        """(N, window + 1, F) windows of ``steps`` ending at each target step ``(s, t)``."""
        return gather_windows(steps, s, t, offs, self.unknown_at_target, self.target_flag)

    def baseline(self, yn: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The baseline the network corrects at each (series, step) (``data.residual``)."""
        return baseline_scaled(self.residual, self.season, yn, s, t)


def forecast_steps(
    panel: Panel,
    offset: np.ndarray,
    scale: np.ndarray,
    cov: np.ndarray,
    groups: np.ndarray,
    season: int,
    events: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step inputs (S, T, F) in scaled units, and the scaled target (S, T) with NaN gaps.

    ``cov``: the standardized covariates (``PanelFit.standardized``). With ``events`` ((T,)
    flags of moving calendar events such as Easter, see ``event_flags``), two more columns
    follow the covariates: the step holds an event, and the step a season earlier held one.
    Both are known in advance, so the target step keeps them.
    """
    yn = (panel.y - offset[:, None]) / scale[:, None]
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    gm = group_mean(yn, groups, n_groups)[groups]
    sin, cos = year_position(panel.dates, yn.shape)
    cols = [
        yn,
        ~np.isnan(yn),
        lagged(yn, season),
        ~np.isnan(lagged(yn, season)),
        lagged(yn, season - 1),
        gm,
        lagged(gm, season),
        lagged(gm, season - 1),
        np.broadcast_to(panel.holiday, yn.shape),
        sin,
        cos,
        np.zeros_like(yn),
    ]
    parts = [np.stack(cols, -1).astype(np.float32), cov.astype(np.float32)]
    if events is not None:
        flag = events[None, :].astype(np.float32)
        ev = np.stack([flag, lagged(flag, season)], -1)  # (1, T, 2)
        parts.append(np.broadcast_to(ev, (*yn.shape, 2)).astype(np.float32))
    steps = np.concatenate(parts, -1)
    return np.nan_to_num(steps, nan=0.0), yn


def gather_windows(
    steps: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    offs: torch.Tensor,
    unknown: Sequence[int] = _columns(STEP_FEATURES, UNKNOWN_AT_TARGET),
    flag: int = STEP_FEATURES.index(TARGET_FLAG),
) -> torch.Tensor:
    """(N, len(offs), F) windows ending at each target step, with the unknowns masked.

    ``unknown``: columns zeroed at the target step; ``flag``: the column set to 1 there (both
    default to their STEP_FEATURES positions, which covariates and events follow).
    """
    tt = t[:, None] + offs[None, :]
    x = steps[s[:, None], tt.clamp(min=0)]
    x = x * (tt >= 0)[..., None]  # steps before the panel starts are zeros
    last = x[:, -1].clone()
    last[:, list(unknown)] = 0.0  # the target step's own sales are unknown
    last[:, flag] = 1.0
    return torch.cat([x[:, :-1], last[:, None]], 1)


def baseline_scaled(
    residual: str, season: int, yn: np.ndarray, s: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """The baseline the network corrects (``data.residual``), in scaled units."""
    if residual == "none":
        return np.zeros(len(s))
    naive = next_step_naive(yn, s, t, season)
    both = np.stack([naive["last_step"], naive["seasonal_naive"]])
    pick = {"last_step": [0], "last_week": [0], "seasonal": [1], "mean": [0, 1]}[residual]
    b = _nanmean(both[pick])
    # Where the chosen lag is missing, fall back to the other one, then to the series mean.
    return np.nan_to_num(np.where(np.isnan(b), _nanmean(both), b))


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where every value is missing (no warning)."""
    n = np.sum(~np.isnan(a), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(a, 0) / n, np.nan)
