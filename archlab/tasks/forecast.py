"""Sales forecasting (study part III): config sections, framings, loss, metrics, baselines.

Two framings of the merged panel:
- ``forecast`` (default): per series, the previous ``window`` steps of scaled sales (scaler
  fitted on training steps only) plus the target step's covariates -> that step's sales, split
  by time (last ``test_steps`` test, the ``val_steps`` before them validation).
- ``parity``: the study's setup; each merged row one sample (sequence length 1), standardized
  features and target, random 70/15/15 split.

Targets are (N, 4): scaled target, per-row scale, offset and holiday flag, so metrics are exact
on the original sales scale while the loss works in scaled units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import RunConfig
from archlab.data import sales
from archlab.errors import ArchlabError
from archlab.metrics import regression_metrics, wmae
from archlab.models import MODELS
from archlab.rundir import DATA, FITTED, read_fitted
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.base import Batches, DataBundle

# The naive forecasts every test row is scored against (columns of test_rows, metric names).
BASELINES = ("last_step", "seasonal_naive", "mean")
LEGACY_STATE_FILE = "sales_state.json"  # fitted.json's predecessor, read for older runs


def _holiday_weight(hol: torch.Tensor) -> torch.Tensor:
    return torch.where(hol > 0.5, 5.0, 1.0)  # Kaggle's WMAE: holiday weeks weigh 5


@dataclass(frozen=True)
class SalesFitted:
    """What sales forecasting learns from its training steps (scalers, vocabularies, sizes)."""

    kind: ClassVar[str] = "sales"
    framing: str
    input_size: int
    global_mean: float  # training target mean and std: the standardized RMSE/R² metrics
    global_std: float
    n_categories: tuple[int, ...] = ()  # vocabulary size of each series key (embeddings)
    resolved: dict[str, Any] = field(default_factory=dict)  # config values the data decided
    # Forecast framing: per-series offset/scale, key vocabularies, covariate statistics,
    # holiday dates and step length (what predict needs to build windows from history).
    state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "framing": self.framing,
            "input_size": self.input_size,
            "global_mean": self.global_mean,
            "global_std": self.global_std,
            "n_categories": list(self.n_categories),
            "resolved": _plain_dict(self.resolved),
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SalesFitted:
        return cls(
            framing=d["framing"],
            input_size=int(d["input_size"]),
            global_mean=float(d["global_mean"]),
            global_std=float(d["global_std"]),
            n_categories=tuple(d.get("n_categories", ())),
            resolved=dict(d.get("resolved", {})),
            state=dict(d.get("state", {})),
        )

    def data_config(self, c: SalesDataConfig) -> SalesDataConfig:
        """``c`` with the values the data decided (date format, season, skipped tables)."""
        res = {k: tuple(v) if isinstance(v, list) else v for k, v in self.resolved.items()}
        return replace(c, **res)


@dataclass
class SalesContext:
    """The test rows behind a bundle: keys, dates, actuals and each naive forecast."""

    test_rows: pd.DataFrame
    own_row_baselines: dict[str, Any] = field(default_factory=dict)


class SalesData:
    """Reads and merges the sales tables, builds the panel and its framing's samples."""

    def __init__(self, cfg: RunConfig) -> None:
        self.data_cfg: SalesDataConfig = cfg.data
        self.split_seed = cfg.data_seed
        self.resolved: dict[str, Any] = {}

    # --- data ---
    def build(self, device: torch.device, fitted: SalesFitted | None = None) -> DataBundle:
        """The bundle. Sales refits its scalers even given a run's ``fitted``: they depend only
        on the data's training steps, so on the run's own data they come out the same."""
        df = sales.load_sales(self.data_cfg)
        # What the data decided (date format, Walmart defaults it does not have) from here on.
        self.resolved = dict(df.attrs.get("resolved", {}))
        self.data_cfg = replace(self.data_cfg, **self.resolved)
        if self.data_cfg.framing == "parity":
            return self._parity(df, device)
        return self._forecast(df, device)

    def _forecast(self, df: pd.DataFrame, device: torch.device) -> DataBundle:
        keys = list(self.data_cfg.series_keys)
        step_days = sales.infer_step_days(df[self.data_cfg.date_column].to_numpy())
        # Walmart's weekly defaults follow the data's time step (a value the user set stays).
        dflt = SalesDataConfig()
        season = self.data_cfg.season
        if season == dflt.season:
            season = auto_season(step_days)
        lags = self.data_cfg.require_lags
        self.resolved.update(
            season=season, require_lags=(1, season) if lags == dflt.require_lags else lags
        )
        c = self.data_cfg = replace(self.data_cfg, **self.resolved)
        covs = list(c.covariates) + (
            [f"{m}_missing" for m in c.markdown_columns if f"{m}_missing" in df.columns]
        )
        p = sales.build_panel(df, keys, c.date_column, c.target, c.holiday_column, covs, step_days)
        S, T = p.y.shape
        n_train = T - c.test_steps - c.val_steps
        if n_train < 1:
            raise ArchlabError(
                f"{c.path}: {T} time steps but data.test_steps={c.test_steps} + "
                f"data.val_steps={c.val_steps} leave no training steps"
            )
        offset, scale, n_obs = sales.series_scalers(p.y, n_train, c.min_scale)
        train_cov = p.cov[:, :n_train].reshape(S * n_train, len(covs))  # (rows, C); C may be 0
        with np.errstate(invalid="ignore"):
            cov_mean = np.nan_to_num(np.nanmean(train_cov, 0)).astype(np.float32)
            cov_std = np.nan_to_num(np.nanstd(train_cov, 0), nan=1.0).astype(np.float32)
        # A covariate constant over the training steps (the markdowns: NA before Nov 2011) teaches
        # the network nothing and would be far out of range later: it enters as zeros.
        constant = [k for k, v in zip(covs, cov_std, strict=True) if not v > 0]
        cov_std[~(cov_std > 0)] = np.inf
        codes = [pd.factorize(p.keys[:, i], sort=True) for i in range(len(keys))]
        cats = np.stack([cd for cd, _ in codes], 1).astype(np.int64)
        events = sales.event_flags(p.dates, c.events, step_days)
        steps, yn = sales.forecast_steps(
            p,
            np.nan_to_num(offset),
            scale,
            cov_mean,
            cov_std,
            cats[:, -1],
            c.season,
            events if c.events else None,
        )
        # Samples: every observed (series, step) whose series has training weeks (a fitted
        # scaler) and whose required lags are observed; the rest are dropped and counted.
        s_idx, t_idx = np.nonzero(~np.isnan(p.y))
        has_scaler = n_obs[s_idx] > 0
        lag_ok = np.ones(len(s_idx), bool)
        for lag in c.require_lags:
            tl = t_idx - lag
            lag_ok &= (tl >= 0) & ~np.isnan(p.y[s_idx, np.maximum(tl, 0)])
        keep = has_scaler & lag_ok
        dropped_series = int(np.sum(n_obs == 0))
        s_idx, t_idx = s_idx[keep], t_idx[keep]
        if len(s_idx) == 0:
            raise ArchlabError(
                f"{c.path}: no sample left: every series is too short for the required lags "
                f"{list(c.require_lags)} and {n_train} training steps ({S} series dropped)"
            )
        base = baseline_scaled(c, yn, s_idx, t_idx)
        y = p.y[s_idx, t_idx]
        hol = p.holiday[t_idx].astype(np.float32)
        targets = np.stack([yn[s_idx, t_idx], scale[s_idx], offset[s_idx], hol], 1)
        row_of = np.full((S, T), -1, dtype=np.int64)
        row_of[p.row_series, p.row_time] = np.arange(len(p.row_series))
        split_t = {"train": t_idx < n_train, "test": t_idx >= T - c.test_steps}
        split_t["val"] = ~split_t["train"] & ~split_t["test"]

        steps_t = torch.from_numpy(steps).to(device)
        L = c.window + 1
        offs = torch.arange(-L + 1, 1, device=device)
        s_all = torch.from_numpy(s_idx).to(device)
        t_all = torch.from_numpy(t_idx).to(device)
        cats_t = torch.from_numpy(cats).to(device)
        base_t = torch.from_numpy(base.astype(np.float32)).to(device)
        targ_t = torch.from_numpy(targets.astype(np.float32)).to(device)

        def make(mask: np.ndarray) -> Batches:
            sel = torch.from_numpy(np.flatnonzero(mask)).to(device)

            def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
                j = sel[i.to(device)]
                x = gather_windows(steps_t, s_all[j], t_all[j], offs)
                return x, cats_t[s_all[j]], base_t[j], targ_t[j]

            return Batches(int(mask.sum()), fetch)

        dates = p.dates
        te = split_t["test"]
        test_rows = pd.DataFrame(
            {
                **{k: p.keys[s_idx[te], i] for i, k in enumerate(keys)},
                c.date_column: dates[t_idx[te]],
                "actual": y[te],
                "last_step": _lag(p.y, s_idx[te], t_idx[te], 1),
                "seasonal_naive": _lag(p.y, s_idx[te], t_idx[te], c.season),
                "holiday": hol[te] > 0.5,
            }
        )
        test_rows["mean"] = test_rows[["last_step", "seasonal_naive"]].mean(axis=1)
        global_std = float(np.std(p.y[:, :n_train][~np.isnan(p.y[:, :n_train])]))
        global_mean = float(np.nanmean(p.y[:, :n_train]))
        own = _own_row_baselines(p, T - c.test_steps, c.season)
        state = {
            "framing": "forecast",
            "series_keys": keys,
            "series": p.keys.tolist(),
            "offset": np.nan_to_num(offset).tolist(),
            "scale": scale.tolist(),
            "key_vocab": [u.tolist() for _, u in codes],
            "covariates": covs,
            "cov_mean": cov_mean.tolist(),
            "cov_std": [v if np.isfinite(v) else None for v in cov_std.tolist()],
            "step_days": step_days,
            "holiday_dates": [str(d)[:10] for d in dates[p.holiday]],
            "input_size": int(steps.shape[-1]),
            "global_mean": global_mean,
            "global_std": global_std,
            "resolved": _plain_dict(self.resolved),
        }
        info = {
            "source": str(Path(c.path).resolve()),
            "input": "file" if Path(c.path).is_file() else "folder",
            "resolved_config": _plain_dict(self.resolved),
            "framing": "forecast",
            "n_rows": len(df),
            "n_series": S,
            "n_steps": T,
            "step_days": step_days,
            "time_step": (
                "calendar month" if step_days >= sales.MONTHLY_MIN_DAYS else f"{step_days} days"
            ),
            "input_size": int(steps.shape[-1]),
            "window": c.window,
            "split_sizes": {k: int(v.sum()) for k, v in split_t.items()},
            "split_first_date": {
                k: str(dates[t_idx[v]].min())[:10] if v.any() else "" for k, v in split_t.items()
            },
            "split_last_date": {
                k: str(dates[t_idx[v]].max())[:10] if v.any() else "" for k, v in split_t.items()
            },
            "dropped_rows_missing_lags": int(np.sum(has_scaler & ~lag_ok)),
            "dropped_series_no_training_steps": dropped_series,
            "dropped_rows_no_training_steps": int(np.sum(~has_scaler)),
            "n_categories": [len(u) for _, u in codes],
            "covariates_constant_in_training": constant,
            "event_steps": [str(d)[:10] for d in dates[events > 0]],
        }
        fitted = SalesFitted(
            framing="forecast",
            input_size=int(steps.shape[-1]),
            global_mean=global_mean,
            global_std=global_std,
            n_categories=tuple(len(u) for _, u in codes),
            resolved=_plain_dict(self.resolved),
            state=state,
        )
        return DataBundle(
            train=make(split_t["train"]),
            val=make(split_t["val"]),
            test=make(split_t["test"]),
            fitted=fitted,
            info=info,
            splits={k: row_of[s_idx[v], t_idx[v]].tolist() for k, v in split_t.items()},
            notes=_notes(c, info, self.resolved),
            context=SalesContext(test_rows, {**own, **last_week_aliases(own)}),
        )

    def _parity(self, df: pd.DataFrame, device: torch.device) -> DataBundle:
        c = self.data_cfg
        extra = [c.holiday_column] if c.holiday_column else []
        num_cols = [*c.covariates, *extra, "Year", "Month", "Week"]
        missing = [k for k in c.parity_onehot if k not in df.columns]
        if missing:
            raise ArchlabError(
                f"{c.path}: data.parity_onehot column(s) {missing} not found; found "
                f"{list(df.columns)}"
            )
        n = len(df)
        if df[c.target].isna().any():  # forecast framing treats them as missing weeks instead
            raise ArchlabError(
                f"{c.path}: data.framing=parity needs {c.target!r} on every row of "
                f"{c.train_file}; {int(df[c.target].isna().sum())} row(s) have an empty cell"
            )
        perm = np.random.default_rng(self.split_seed).permutation(n)
        n_test, n_val = round(c.test_fraction * n), round(c.val_fraction * n)
        split = {
            "train": np.sort(perm[n_test + n_val :]),
            "val": np.sort(perm[n_test : n_test + n_val]),
            "test": np.sort(perm[:n_test]),
        }
        x = df[num_cols].to_numpy(np.float64)
        tr = x[split["train"]]
        mu, sd = np.nanmean(tr, 0), np.nanstd(tr, 0)
        sd[~(sd > 0)] = 1.0
        x = np.nan_to_num((x - mu) / sd).astype(np.float32)
        vocab = [pd.factorize(df[k], sort=True) for k in c.parity_onehot]
        codes = np.stack([cd for cd, _ in vocab], 1) if vocab else np.zeros((n, 0), np.int64)
        sizes = [len(u) for _, u in vocab]
        y = df[c.target].to_numpy(np.float64)
        ymu, ysd = float(y[split["train"]].mean()), float(y[split["train"]].std())
        ysd = ysd if ysd > 0 else 1.0  # a constant target: scaled by 1, like constant features
        hol = df[c.holiday_column].to_numpy(np.float32) if c.holiday_column else np.zeros(n)
        targets = np.stack([(y - ymu) / ysd, np.full(n, ysd), np.full(n, ymu), hol], 1)
        x_t = torch.from_numpy(x).to(device)
        codes_t = torch.from_numpy(codes.astype(np.int64)).to(device)
        targ_t = torch.from_numpy(targets.astype(np.float32)).to(device)
        zero = torch.zeros(n, device=device)
        width = sum(sizes)

        def make(idx: np.ndarray) -> Batches:
            sel = torch.from_numpy(idx).to(device)

            def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
                j = sel[i.to(device)]
                onehot = [F.one_hot(codes_t[j, k], n).float() for k, n in enumerate(sizes)]
                xb = torch.cat([x_t[j], *onehot], 1)[:, None, :]  # sequence length 1
                return xb, codes_t[j], zero[j], targ_t[j]

            return Batches(len(idx), fetch)

        te = split["test"]
        test_rows = pd.DataFrame(
            {
                **{k: df[k].to_numpy()[te] for k in c.series_keys},
                c.date_column: df[c.date_column].to_numpy()[te],
                "actual": y[te],
                "holiday": hol[te] > 0.5,
            }
        )
        input_size = len(num_cols) + width
        info = {
            "source": str(Path(c.path).resolve()),
            "input": "file" if Path(c.path).is_file() else "folder",
            "resolved_config": _plain_dict(self.resolved),
            "framing": "parity",
            "n_rows": n,
            "input_size": input_size,
            "numeric_features": num_cols,
            "onehot_features": dict(zip(c.parity_onehot, sizes, strict=True)),
            "split_sizes": {k: len(v) for k, v in split.items()},
        }
        fitted = SalesFitted(
            framing="parity",
            input_size=input_size,
            global_mean=ymu,
            global_std=ysd,
            resolved=_plain_dict(self.resolved),
        )
        return DataBundle(
            train=make(split["train"]),
            val=make(split["val"]),
            test=make(split["test"]),
            fitted=fitted,
            info=info,
            splits={k: v.tolist() for k, v in split.items()},
            context=SalesContext(test_rows),
        )

    def restore(self, run_dir: Path) -> SalesFitted:
        """The run's scalers and vocabularies, without the data."""
        d = read_fitted(run_dir, SalesFitted.kind)
        if d is not None:
            return SalesFitted.from_dict(d)
        path = Path(run_dir) / LEGACY_STATE_FILE  # a run from before fitted.json
        if not path.exists():
            raise ArchlabError(f"{run_dir}: no {FITTED} (was the run finished?)")
        state = json.loads(path.read_text())
        info = json.loads((Path(run_dir) / DATA).read_text())
        return SalesFitted(
            framing=state["framing"],
            input_size=int(state["input_size"]),
            global_mean=float(state.get("global_mean", 0.0)),
            global_std=float(state.get("global_std", 1.0)),
            n_categories=tuple(info.get("n_categories", ())),
            resolved=state.get("resolved", {}),  # runs before it: their config holds every value
            state=state if state["framing"] == "forecast" else {},
        )


class SalesForecast:
    """Regression of next-step sales per series with a recurrent network."""

    name = "sales"
    outputs = "values"  # how `archlab ensemble` averages members: see archlab/ensemble.py

    def __init__(self, cfg: RunConfig, fitted: SalesFitted) -> None:
        self.fitted = fitted
        self.data_cfg: SalesDataConfig = fitted.data_config(cfg.data)
        self.model_cfg: SalesModelConfig = cfg.model
        self.reg = cfg.reg
        self.state = fitted.state

    def callbacks(self) -> list[Any]:
        return []

    # --- model, loss, metrics ---
    def build_model(self) -> nn.Module:
        m = self.model_cfg
        cats: tuple[int, ...] = ()
        if self.fitted.framing == "forecast" and m.embed_dim:
            cats = self.fitted.n_categories
        return MODELS[m.name].build(
            input_size=self.fitted.input_size,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=self.reg.dropout,
            embeddings=cats,
            embed_dim=m.embed_dim if cats else 0,
        )

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, cats, base, y = batch
        return base + model(x, cats), y  # the network predicts the residual over the baseline

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.model_cfg.loss == "mse":
            return F.mse_loss(outputs, targets[:, 0])
        # |pred - y| on the sales scale is scale * |scaled error|, so weighting by scale makes
        # this the batch's WMAE up to a constant (it stays in scaled units).
        w = _holiday_weight(targets[:, 3]) * targets[:, 1]
        return (w * (outputs - targets[:, 0]).abs()).sum() / w.sum()

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        out, t = outputs.double().numpy(), targets.double().numpy()
        pred = out * t[:, 1] + t[:, 2]
        y = t[:, 0] * t[:, 1] + t[:, 2]
        m: dict[str, Any] = {"wmae": wmae(y, pred, t[:, 3] > 0.5), **regression_metrics(y, pred)}
        mu, sd = self.fitted.global_mean, self.fitted.global_std
        std = regression_metrics((y - mu) / sd, (pred - mu) / sd)
        m["rmse_std"], m["r2_std"] = std["rmse"], std["r2"]
        return m

    # --- artefacts and prediction ---
    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: DataBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab.report import eda_sales as sales_plots

        rows = data.context.test_rows.copy()
        t = targets.double().numpy()
        rows["forecast"] = outputs.double().numpy() * t[:, 1] + t[:, 2]
        c = self.data_cfg
        if c.framing == "forecast":
            _series_plot(rows, list(c.series_keys), c.date_column, c.plot_series, run_dir,
                         strongest_baseline(self.baselines(data)))  # fmt: skip
        res = (rows.actual - rows.forecast).groupby(rows[c.date_column]).mean()
        sales_plots.residuals_by_step(
            res.index.to_numpy(), res.to_numpy(), Path(run_dir) / "plots" / "residuals.png"
        )

    def baselines(self, data: DataBundle) -> dict[str, Any]:
        """Each naive forecast's WMAE, MAE, RMSE, R² on the network's test rows (and on every
        test row where it exists: ``*_own_rows``); none for the parity framing."""
        if self.fitted.framing != "forecast":
            return {}
        rows = data.context.test_rows
        extra: dict[str, Any] = {}
        for name in BASELINES:
            b = rows[name].to_numpy()
            ok = ~np.isnan(b)  # all True when require_lags holds 1 and the season
            extra[f"baseline_{name}_wmae"] = wmae(rows.actual[ok], b[ok], rows.holiday[ok])
            for k, v in regression_metrics(rows.actual[ok], b[ok]).items():
                extra[f"baseline_{name}_{k}"] = v
        extra.update(data.context.own_row_baselines)
        extra.update(last_week_aliases(extra))
        return extra

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
        st = self.state
        if self.fitted.framing != "forecast":
            raise ArchlabError("predict needs a forecast-framing run (data.framing=forecast)")
        c = self.data_cfg
        frames = []
        for path in inputs:
            p = Path(path)
            if not p.exists():
                raise ArchlabError(f"{p}: no such file")
            df = sales.read_csv(p, [*st["series_keys"], c.date_column, c.target])
            sales.parse_dates(df, c.date_column, c.date_format, p)
            sales.parse_number(df, c.target, p)
            if c.holiday_column in df.columns:
                sales.parse_bool(df, c.holiday_column, p)
            elif c.holiday_column:
                df[c.holiday_column] = False
            sales.check_unique(df, st["series_keys"], c.date_column, p)
            frames.append(df)
        df = pd.concat(frames, ignore_index=True)
        covs = st["covariates"]
        for k, m in zip(covs, st["cov_mean"], strict=True):
            if k not in df.columns:
                df[k] = m
        for k in c.markdown_columns:
            if k in df.columns:
                df[k] = df[k].fillna(0.0)
        keys = st["series_keys"]
        p = sales.build_panel(
            df, keys, c.date_column, c.target, c.holiday_column, covs, st["step_days"], 1
        )
        T = p.y.shape[1]
        known = {tuple(k): i for i, k in enumerate(st["series"])}
        idx = np.array([known.get(tuple(k.tolist()), -1) for k in p.keys])
        ok = idx >= 0
        if not ok.any():
            raise ArchlabError(f"{inputs[0]}: none of its series were seen in training")
        offset = np.array(st["offset"])[np.maximum(idx, 0)]
        scale = np.array(st["scale"])[np.maximum(idx, 0)]
        vocab = [{v: j for j, v in enumerate(vs)} for vs in st["key_vocab"]]
        cats = np.array([[vocab[i].get(v, 0) for i, v in enumerate(k)] for k in p.keys.tolist()])
        year_ago = sales.step_dates(p.dates[-1], np.int64(-c.season), st["step_days"])
        hol_dates = {np.datetime64(d) for d in st["holiday_dates"]}
        # The target step is a holiday if the same step a season earlier was one.
        in_csv = c.season < T and bool(p.holiday[T - 1 - c.season])
        p.holiday[-1] = bool(p.holiday[-1] or year_ago in hol_dates or in_csv)
        steps, yn = sales.forecast_steps(
            p,
            offset,
            scale,
            np.array(st["cov_mean"], np.float32),
            np.array([np.inf if v is None else v for v in st["cov_std"]], np.float32),
            cats[:, -1],
            c.season,
            sales.event_flags(p.dates, c.events, st["step_days"]) if c.events else None,
        )
        s = np.flatnonzero(ok)
        t = np.full(len(s), T - 1)
        x = gather_windows(
            torch.from_numpy(steps),
            torch.from_numpy(s),
            torch.from_numpy(t),
            torch.arange(-c.window, 1),
        )
        base = torch.from_numpy(baseline_scaled(c, yn, s, t).astype(np.float32))
        date = str(p.dates[-1])[:10]
        rows = [
            {**{k: _plain(p.keys[i, j]) for j, k in enumerate(keys)}, c.date_column: date}
            for i in s
        ]
        return HistoryWindows(x, torch.from_numpy(cats[s]), base, scale[s], offset[s], rows)


class HistoryWindows(NamedTuple):
    """Network inputs built from history CSVs: one window per known series."""

    x: torch.Tensor  # (N, window + 1, F)
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N,) the baseline the network corrects, scaled units
    scale: np.ndarray  # (N,) per-series scale and offset back to sales units
    offset: np.ndarray
    rows: list[dict[str, Any]]  # series keys and date of each window's last history step


def baseline_scaled(c: SalesDataConfig, yn: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The baseline the network corrects (``data.residual``), in scaled units."""
    r = c.residual
    if r == "none":
        return np.zeros(len(s))
    both = np.stack([_lag(yn, s, t, 1), _lag(yn, s, t, c.season)])
    pick = {"last_step": [0], "last_week": [0], "seasonal": [1], "mean": [0, 1]}[r]
    b = _nanmean(both[pick])
    # Where the chosen lag is missing, fall back to the other one, then to the series mean.
    return np.nan_to_num(np.where(np.isnan(b), _nanmean(both), b))


def gather_windows(
    steps: torch.Tensor, s: torch.Tensor, t: torch.Tensor, offs: torch.Tensor
) -> torch.Tensor:
    """(N, len(offs), F) windows ending at each target step, with the unknowns masked."""
    tt = t[:, None] + offs[None, :]
    x = steps[s[:, None], tt.clamp(min=0)]
    x = x * (tt >= 0)[..., None]  # steps before the panel starts are zeros
    last = x[:, -1].clone()
    last[:, list(sales.UNKNOWN_AT_TARGET)] = 0.0  # the target step's own sales are unknown
    last[:, sales.TARGET_FLAG] = 1.0
    return torch.cat([x[:, :-1], last[:, None]], 1)


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where every value is missing (no warning)."""
    n = np.sum(~np.isnan(a), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(a, 0) / n, np.nan)


def _lag(a: np.ndarray, s: np.ndarray, t: np.ndarray, lag: int) -> np.ndarray:
    tl = t - lag
    return np.where(tl >= 0, a[s, np.maximum(tl, 0)], np.nan)


def _own_row_baselines(p: sales.Panel, first_test: int, season: int) -> dict[str, float]:
    """Each baseline on every test row where it exists (how the issue quoted them)."""
    s, t = np.nonzero(~np.isnan(p.y[:, first_test:]))
    t = t + first_test
    y, hol = p.y[s, t], p.holiday[t]
    last, seas = _lag(p.y, s, t, 1), _lag(p.y, s, t, season)
    out = {}
    for name, b in (("last_step", last), ("seasonal_naive", seas), ("mean", (last + seas) / 2)):
        ok = ~np.isnan(b)
        out[f"baseline_{name}_wmae_own_rows"] = wmae(y[ok], b[ok], hol[ok]) if ok.any() else None
    return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _plain_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else _plain(v) for k, v in d.items()}


def auto_season(step_days: int) -> int:
    """Steps per seasonal cycle of the default ``data.season``: the year, or the week if daily."""
    if step_days >= sales.MONTHLY_MIN_DAYS:
        return 12
    if step_days == 1:
        return 7  # daily sales (store visits, transactions) cycle with the week
    return max(2, round(365.25 / step_days))  # 52 for weekly data


def last_week_aliases(metrics: dict[str, Any]) -> dict[str, Any]:
    """``baseline_last_week_*`` copies of ``baseline_last_step_*`` (the old names, still read)."""
    old = "baseline_last_step_"
    return {
        "baseline_last_week_" + k[len(old) :]: v for k, v in metrics.items() if k.startswith(old)
    }


def _notes(c: SalesDataConfig, info: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
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


def strongest_baseline(metrics: dict[str, Any]) -> str:
    """The baseline with the lowest test WMAE: the one the plot draws, the one to beat."""
    return min(BASELINES, key=lambda n: np.nan_to_num(metrics[f"baseline_{n}_wmae"], nan=np.inf))


def _series_plot(
    rows: pd.DataFrame,
    keys: list[str],
    date: str,
    wanted: tuple[str, ...],
    run_dir: Path,
    baseline: str = "mean",
) -> None:
    from archlab.report.eda_sales import actual_vs_forecast

    label = rows[keys].astype(str).agg("-".join, axis=1)
    chosen = list(wanted) or list(rows.groupby(label).actual.sum().nlargest(4).index)
    series = {}
    for name in chosen:
        g = rows[label == name]
        if len(g):
            series[name] = (g[date].to_numpy(), g.actual.to_numpy(), g.forecast.to_numpy(),
                            g[baseline].to_numpy())  # fmt: skip
    actual_vs_forecast(series, Path(run_dir) / "plots" / "actual_vs_forecast.png", baseline)


def eda(cfg: RunConfig, out_dir: Path) -> list[Path]:
    """The study's five exploratory plots of the merged panel."""
    from archlab.report.eda_sales import sales_eda

    df = sales.load_sales(cfg.data)
    return sales_eda(df, replace(cfg.data, **df.attrs.get("resolved", {})), Path(out_dir))
