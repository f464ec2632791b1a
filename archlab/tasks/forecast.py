"""Sales forecasting, the ``forecast`` framing: per-series windows -> the next step's sales.

Per series, the previous ``window`` steps of scaled sales plus the target step's covariates ->
that step's sales, split by time (last ``test_steps`` test, the ``val_steps`` before them
validation). All inputs come from one ``SalesFeaturizer`` (data/sales_features.py) fitted on
the training steps and saved in fitted.json; training, eval, predict and explain share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from archlab.config import RunConfig
from archlab.data import sales, sales_csv, sales_recipe
from archlab.data.sales_baselines import next_step_naive
from archlab.data.sales_features import Features, SalesFeaturizer, auto_season
from archlab.errors import ArchlabError
from archlab.rundir import require_fitted
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Batches, DataBundle
from archlab.tasks.sales_common import (
    FeaturizedFit,
    SalesContext,
    SalesTargets,
    SalesTask,
    plain,
    plain_dict,
    resolved_config,
    source_info,
)
from archlab.tasks.sales_naive import (
    last_week_aliases,
    naive_baselines,
    notes,
    own_row_baselines,
    series_plot,
    strongest_baseline,
)


@dataclass(frozen=True)
class ForecastFitted(FeaturizedFit):
    """The forecast framing's fitted state: the featurizer and the training target's stats."""

    kind: ClassVar[str] = "sales-forecast"
    featurizer_type = SalesFeaturizer
    featurizer: SalesFeaturizer
    global_mean: float  # training target mean and std: the standardized RMSE/R² metrics
    global_std: float
    resolved: dict[str, Any] = field(default_factory=dict)  # config values the data decided

    @property
    def input_size(self) -> int:
        return self.featurizer.n_features

    @property
    def n_categories(self) -> tuple[int, ...]:
        return self.featurizer.n_categories


ForecastBundle = DataBundle[ForecastFitted, SalesContext]


class ForecastData:
    """Reads the sales tables and builds the forecast framing's windows; keeps only ``cfg``.

    Given a run's ``fitted`` (eval, ensemble, explain) it is reused, not refitted: the run's
    scalers, key vocabularies, covariate statistics, season and layout are applied to the data
    read now, so the network sees inputs built as in its training, on its own data (the same
    bits) and on another data set (``archlab eval RUN --data OTHER``: OTHER's last test_steps,
    with series the run never saw dropped and counted; another time step is refused).
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def build(self, device: torch.device, fitted: ForecastFitted | None = None) -> ForecastBundle:
        r = self._read(fitted)
        c, p, n_train = r.c, r.p, r.n_train
        if fitted is None:
            feat = SalesFeaturizer.fit(p, n_train, c, r.covs, r.step)
        else:
            feat = fitted.featurizer
        f = feat.transform(p)
        s_idx, t_idx, dropped = _samples(p, f, n_train, c)
        split_t = _split(c, t_idx, n_train, p.y.shape[1])
        hol = p.holiday[t_idx].astype(np.float32)
        targets = SalesTargets(f.yn[s_idx, t_idx], f.scale[s_idx], f.offset[s_idx], hol).pack()
        base = feat.baseline(f.yn, s_idx, t_idx)
        make = _batcher(device, feat, f, s_idx, t_idx, base, targets)
        te = split_t["test"]
        test_rows = _test_rows(c, p, s_idx[te], t_idx[te])
        info = _info(r, feat, t_idx, split_t, dropped)
        own = own_row_baselines(p, p.y.shape[1] - c.test_steps, c.season)
        if fitted is None:
            train_y = p.y[:, :n_train]
            fitted = ForecastFitted(
                featurizer=feat,
                global_mean=float(np.nanmean(train_y)),
                global_std=float(np.std(train_y[~np.isnan(train_y)])),
                resolved=plain_dict(r.resolved),
            )
        else:
            info["series_unknown_to_run"] = int(np.sum(~f.known))
        row_of = np.full(p.y.shape, -1, dtype=np.int64)
        row_of[p.row_series, p.row_time] = np.arange(len(p.row_series))
        return DataBundle(
            train=make(split_t["train"]),
            val=make(split_t["val"]),
            test=make(split_t["test"]),
            fitted=fitted,
            info=info,
            splits={k: row_of[s_idx[v], t_idx[v]].tolist() for k, v in split_t.items()},
            notes=[*notes(c, info, r.resolved), *r.notes],
            context=SalesContext(test_rows, {**own, **last_week_aliases(own)}),
        )

    def _read(self, fitted: ForecastFitted | None) -> _Read:
        """The merged tables as a panel, with the config values decided by the data (fresh fit)
        or by the run (``fitted``: its season, required lags and covariates)."""
        c0: SalesDataConfig = self.cfg.data
        df = sales.load_sales(c0)
        resolved = dict(df.attrs.get("resolved", {}))  # what the data decided from here on
        step_days = sales.infer_step_days(df[c0.date_column].to_numpy())
        if fitted is None:
            # Walmart's weekly defaults follow the data's time step (a value the user set stays).
            dflt = SalesDataConfig()
            season = c0.season if c0.season != dflt.season else auto_season(step_days)
            lags = c0.require_lags
            resolved.update(
                season=season, require_lags=(1, season) if lags == dflt.require_lags else lags
            )
        else:
            feat = fitted.featurizer
            if step_days != feat.step_days:
                raise ArchlabError(
                    f"{c0.path}: its dates are {step_days} days apart but the run was trained "
                    f"on {feat.step_days}-day steps"
                )
            run = resolved_config(c0, fitted.resolved)  # the run's season and required lags
            resolved.update(season=feat.season, require_lags=run.require_lags)
            resolved.update(window=feat.window, val_steps=run.val_steps)
        c = resolved_config(c0, resolved)
        if fitted is None:
            covs = list(c.covariates) + (
                [f"{m}_missing" for m in c.markdown_columns if f"{m}_missing" in df.columns]
            )
        else:
            covs = list(fitted.featurizer.covariates)
            missing = [k for k in covs if k not in df.columns]
            if missing:
                raise ArchlabError(
                    f"{c.path}: covariate column(s) {missing} the run was trained on are not in "
                    f"the merged tables; found {list(df.columns)}"
                )
        keys = list(c.series_keys)
        p = sales.build_panel(df, keys, c.date_column, c.target, c.holiday_column, covs, step_days)
        T = p.y.shape[1]
        why = {"window": "run", "val_steps": "run"}
        if fitted is None:  # window and validation span from the step and the history
            derived, why = sales_recipe.next_step(c, step_days, T)
            why = {"window": "config", "val_steps": "config", **why}
            resolved.update(derived)
            c = resolved_config(c, derived)
        assert c.val_steps is not None
        n_train = T - c.test_steps - c.val_steps
        if n_train < 1:
            raise ArchlabError(
                f"{c.path}: {T} time steps but data.test_steps={c.test_steps} + "
                f"data.val_steps={c.val_steps} leave no training steps"
            )
        return _Read(
            c, resolved, p, covs, step_days, n_train, len(df),
            [*sales_recipe.describe(c, why), *sales.reading_notes(df)],
            df.attrs.get("read", {}),
            {k: {"value": getattr(c, k), "from": v} for k, v in why.items()},
        )  # fmt: skip

    def restore(self, run_dir: Path) -> ForecastFitted:
        """The run's featurizer and target statistics, without the data (fitted.json)."""
        return ForecastFitted.from_dict(require_fitted(run_dir, ForecastFitted.kind))


class _Read(NamedTuple):
    c: SalesDataConfig  # with the resolved values
    resolved: dict[str, Any]
    p: sales.Panel
    covs: list[str]  # the panel's covariate columns
    step: int  # days per step (28+: calendar months)
    n_train: int  # the first n_train steps are training steps
    n_rows: int  # rows of the merged table
    notes: list[str]  # what reading found (last date's coverage, a trimmed tail, missing values)
    read: dict[str, Any]  # the same facts, for data.json
    recipe: dict[str, Any]  # window and val_steps: value and where each came from


def _samples(
    p: sales.Panel, f: Features, n_train: int, c: SalesDataConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Samples (series, step): every observed one whose series has training steps (a fitted
    scaler) and whose required lags are observed; the rest are dropped and counted."""
    n_obs = np.sum(~np.isnan(p.y[:, :n_train]), 1)
    scaled = f.known & (n_obs > 0)
    s_idx, t_idx = np.nonzero(~np.isnan(p.y))
    has_scaler = scaled[s_idx]
    lag_ok = np.ones(len(s_idx), bool)
    for lag in c.require_lags:
        tl = t_idx - lag
        lag_ok &= (tl >= 0) & ~np.isnan(p.y[s_idx, np.maximum(tl, 0)])
    keep = has_scaler & lag_ok
    if not keep.any():
        raise ArchlabError(
            f"{c.path}: no sample left: every series is too short for the required lags "
            f"{list(c.require_lags)} and {n_train} training steps ({len(p.y)} series dropped)"
        )
    dropped = {
        "dropped_rows_missing_lags": int(np.sum(has_scaler & ~lag_ok)),
        "dropped_series_no_training_steps": int(np.sum(~scaled)),
        "dropped_rows_no_training_steps": int(np.sum(~has_scaler)),
    }
    return s_idx[keep], t_idx[keep], dropped


def _split(
    c: SalesDataConfig, t_idx: np.ndarray, n_train: int, n_steps: int
) -> dict[str, np.ndarray]:
    """Each sample's split by its step: the first n_train steps train, the last test_steps
    test, the steps between validation (each split must have a sample)."""
    split_t = {"train": t_idx < n_train, "test": t_idx >= n_steps - c.test_steps}
    split_t["val"] = ~split_t["train"] & ~split_t["test"]
    for k, steps in (("train", n_train), ("val", c.val_steps), ("test", c.test_steps)):
        if not split_t[k].any():
            raise ArchlabError(
                f"{c.path}: no {k} samples: none of the {steps} {k} steps has a value "
                "with the history data.require_lags needs; check the dates of the panel's "
                "last rows"
            )
    return split_t


def _test_rows(c: SalesDataConfig, p: sales.Panel, s: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    """One row per test sample: series keys, date, actual and each naive forecast."""
    naive = next_step_naive(p.y, s, t, c.season)
    rows = pd.DataFrame(
        {
            **{k: p.keys[s, i] for i, k in enumerate(c.series_keys)},
            c.date_column: p.dates[t],
            "actual": p.y[s, t],
            "last_step": naive["last_step"],
            "seasonal_naive": naive["seasonal_naive"],
            "holiday": p.holiday[t],
        }
    )
    # The mean of whichever exists (both do unless data.require_lags drops one of them).
    rows["mean"] = rows[["last_step", "seasonal_naive"]].mean(axis=1)
    return rows


def _info(
    r: _Read,
    feat: SalesFeaturizer,
    t_idx: np.ndarray,
    split_t: dict[str, np.ndarray],
    dropped: dict[str, int],
) -> dict[str, Any]:
    """data.json's facts: the source, the panel, the layout, the split and what was dropped."""
    S, T = r.p.y.shape
    dates = r.p.dates

    def split_date(pick: Callable[[np.ndarray], Any]) -> dict[str, str]:
        return {k: str(pick(dates[t_idx[v]]))[:10] if v.any() else "" for k, v in split_t.items()}

    events = sales.event_flags(dates, feat.events, r.step)
    return {
        **source_info(r.c, r.resolved),
        "framing": "forecast",
        "n_rows": r.n_rows,
        "read": r.read,
        "n_series": S,
        "n_steps": T,
        "step_days": r.step,
        "time_step": "calendar month" if r.step >= sales.MONTHLY_MIN_DAYS else f"{r.step} days",
        "input_size": feat.n_features,
        "window": feat.window,
        "recipe": r.recipe,
        "split_sizes": {k: int(v.sum()) for k, v in split_t.items()},
        "split_first_date": split_date(np.min),
        "split_last_date": split_date(np.max),
        **dropped,
        "n_categories": list(feat.n_categories),
        "covariates_constant_in_training": feat.constant_covariates,
        "event_steps": [str(d)[:10] for d in dates[events > 0]],
    }


def _batcher(
    device: torch.device,
    feat: SalesFeaturizer,
    f: Features,
    s_idx: np.ndarray,
    t_idx: np.ndarray,
    base: np.ndarray,
    targets: np.ndarray,
) -> Callable[[np.ndarray], Batches]:
    """``make(mask)``: the Batches of the samples in ``mask``, windows gathered per batch."""
    steps_t = torch.from_numpy(f.steps).to(device)
    offs = feat.offsets(device)
    s_all = torch.from_numpy(s_idx).to(device)
    t_all = torch.from_numpy(t_idx).to(device)
    cats_t = torch.from_numpy(f.cats).to(device)
    base_t = torch.from_numpy(base.astype(np.float32)).to(device)
    targ_t = torch.from_numpy(targets.astype(np.float32)).to(device)

    def make(mask: np.ndarray) -> Batches:
        sel = torch.from_numpy(np.flatnonzero(mask)).to(device)

        def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
            j = sel[i.to(device)]
            x = feat.windows(steps_t, s_all[j], t_all[j], offs)
            return x, cats_t[s_all[j]], base_t[j], targ_t[j]

        return Batches(int(mask.sum()), fetch)

    return make


class HistoryWindows(NamedTuple):
    """Network inputs built from history CSVs: one window per known series."""

    x: torch.Tensor  # (N, window + 1, F)
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N,) the baseline the network corrects, scaled units
    scale: np.ndarray  # (N,) per-series scale and offset back to sales units
    offset: np.ndarray
    rows: list[dict[str, Any]]  # series keys and date of each window's last history step


class SalesForecast(SalesTask):
    """Regression of next-step sales per series with a recurrent network."""

    fitted: ForecastFitted

    def embeddings(self) -> tuple[int, ...]:
        return self.fitted.n_categories if self.model_cfg.embed_dim else ()

    def baselines(self, data: ForecastBundle) -> dict[str, Any]:
        """Each naive forecast's WMAE, MAE, RMSE, R² on the network's test rows (and on every
        test row where it exists: ``*_own_rows``)."""
        extra = naive_baselines(data.context.test_rows)
        extra.update(data.context.own_row_baselines)
        extra.update(last_week_aliases(extra))
        return extra

    def plot_test_rows(self, rows: pd.DataFrame, run_dir: Path, data: ForecastBundle) -> None:
        c = self.data_cfg
        series_plot(rows, list(c.series_keys), c.date_column, c.plot_series, run_dir,
                    strongest_baseline(self.baselines(data)))  # fmt: skip

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Next-step forecast per known series from CSV(s) of history in the training format.

        Each CSV holds rows (series keys, date, target[, holiday, covariates]); the forecast is
        for the step after the CSV's last date. Missing covariates count as training means.
        """
        h = self.history_windows(inputs)
        model.eval()
        with torch.no_grad():
            out = (h.base + model(h.x, h.cats)).double().numpy()
        fc = out * h.scale + h.offset
        return [{**k, "forecast": float(f)} for k, f in zip(h.rows, fc, strict=True)]

    def history_windows(self, inputs: list[str]) -> HistoryWindows:
        """The network's inputs for the step after each history CSV's last date (see predict)."""
        feat, c = self.fitted.featurizer, self.data_cfg
        keys = list(feat.series_keys)
        df = sales_csv.read_history(inputs, keys, c)
        for k, m in zip(feat.covariates, feat.cov_mean, strict=True):
            if k not in df.columns:
                df[k] = m
        for k in c.markdown_columns:
            if k in df.columns:
                df[k] = df[k].fillna(0.0)
        p = sales.build_panel(
            df, keys, c.date_column, c.target, c.holiday_column, feat.covariates, feat.step_days, 1
        )
        p = feat.with_next_holiday(p)
        f = feat.transform(p)
        if not f.known.any():
            raise ArchlabError(f"{inputs[0]}: none of its series were seen in training")
        s = np.flatnonzero(f.known)
        t = np.full(len(s), p.y.shape[1] - 1)
        x = feat.windows(torch.from_numpy(f.steps), torch.from_numpy(s), torch.from_numpy(t),
                         feat.offsets())  # fmt: skip
        base = torch.from_numpy(feat.baseline(f.yn, s, t).astype(np.float32))
        date = str(p.dates[-1])[:10]
        rows = [
            {**{k: plain(p.keys[i, j]) for j, k in enumerate(keys)}, c.date_column: date} for i in s
        ]
        return HistoryWindows(x, torch.from_numpy(f.cats[s]), base, f.scale[s], f.offset[s], rows)


__all__ = [
    "ForecastData",
    "ForecastFitted",
    "HistoryWindows",
    "SalesForecast",
    "auto_season",
    "last_week_aliases",
    "strongest_baseline",
]
