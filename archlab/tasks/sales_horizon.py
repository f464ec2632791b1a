"""Multi-horizon sales forecasting (``data.horizon=H`` > 1): data, fitted state and task.

From an origin, the network reads ``window`` history steps and the H future steps (only what is
known in advance, see archlab/data/sales_horizon.py) and emits all H steps at once (direct
multi-output): each future step's recurrent output goes through the shared linear head, as the
residual over last season's 3-step-smoothed sales. Splits are by origin: test = the last H
steps, forecast from the step before them; validation = the ``val_steps`` steps before the
test, forecast from the last training step; training = every origin inside the training steps
whose window has a season of history before it (targets after the training steps are masked).
``data.backtest_origins=K`` also scores the K - 1 origins before the test origin (one step
apart, all forecasting validation/test steps only), reported as mean and std.

Targets are (N, H, 6): scaled sales, per-series scale and offset, holiday flag, mask (an
observed target step of that split) and the origin's backtest number (0 = the test origin).

(~560 lines: the framing's data, fitted state, task and its predict-time row mapping in one
place; HorizonData could move to a module of its own, as the forecast framing's did.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from archlab import rundir
from archlab.config import RunConfig
from archlab.data import sales, sales_csv
from archlab.data import sales_baselines as naive
from archlab.data.sales_features import auto_season
from archlab.data.sales_horizon import HorizonFeaturizer, future_panel, read_forecast_rows
from archlab.errors import ArchlabError
from archlab.metrics import regression_metrics, wmae
from archlab.models import MODELS
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.base import Batches, DataBundle

SVD_RANK = 10  # per-group rank of the SVD baseline (the Walmart competition winner's choice)
TARGET_COLS = 6


def _weight(hol: torch.Tensor) -> torch.Tensor:
    return torch.where(hol > 0.5, 5.0, 1.0)  # Kaggle's WMAE: holiday weeks weigh 5


@dataclass(frozen=True)
class HorizonFitted:
    """Everything a horizon run learned from its training steps (fitted.json)."""

    kind: ClassVar[str] = "sales-horizon"
    featurizer: HorizonFeaturizer
    resolved: dict[str, Any]  # config values the data decided (date format, season...)
    global_mean: float  # of training sales, for the standardized RMSE/R²
    global_std: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "featurizer": self.featurizer.to_dict(),
            "resolved": self.resolved,
            "global_mean": self.global_mean,
            "global_std": self.global_std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HorizonFitted:
        return cls(
            HorizonFeaturizer.from_dict(d["featurizer"]),
            dict(d["resolved"]),
            float(d["global_mean"]),
            float(d["global_std"]),
        )

    def data_config(self, c: SalesDataConfig) -> SalesDataConfig:
        """``c`` with the values the data resolved when the run was trained."""
        given = {k: v for k, v in self.resolved.items() if k != "step_days"}
        return replace(c, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


class TestContext(NamedTuple):
    """Facts about the test origins for baselines() and artifacts()."""

    rows: pd.DataFrame  # one row per scored (series, step, origin): keys, date, actual, ...
    keys: list[str]
    date: str


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _resolve(c: SalesDataConfig, df: pd.DataFrame) -> tuple[SalesDataConfig, dict[str, Any]]:
    """The config with what the data decided (date format, tables, season for its time step)."""
    resolved = dict(df.attrs.get("resolved", {}))
    step_days = sales.infer_step_days(df[c.date_column].to_numpy())
    if c.season == SalesDataConfig().season:
        resolved["season"] = auto_season(step_days)
    resolved["step_days"] = step_days
    plain = {k: list(v) if isinstance(v, tuple) else _plain(v) for k, v in resolved.items()}
    fields = {k: v for k, v in resolved.items() if k != "step_days"}
    return replace(c, **fields), plain


class HorizonData:
    """Reads the panel, fits the featurizer on training steps, batches origins per split."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def restore(self, run_dir: Path) -> HorizonFitted:
        d = rundir.read_fitted(Path(run_dir), HorizonFitted.kind)
        if d is None:
            raise ArchlabError(f"{run_dir}: no {rundir.FITTED} (was the run started?)")
        return HorizonFitted.from_dict(d)

    def build(self, device: torch.device, fitted: HorizonFitted | None = None) -> DataBundle:
        df = sales.load_sales(self.cfg.data)
        c, resolved = _resolve(self.cfg.data, df)
        step_days = resolved["step_days"]
        H, keys = c.horizon, list(c.series_keys)
        missing = [k for k in c.known_covariates if k not in c.covariates]
        if missing:
            raise ArchlabError(
                f"{c.path}: data.known_covariates {missing} are not covariates of the data "
                f"(found {list(c.covariates)})"
            )
        covs = list(c.covariates)
        p = sales.build_panel(df, keys, c.date_column, c.target, c.holiday_column, covs, step_days)
        S, T = p.y.shape
        n_train = T - H - c.val_steps
        if n_train < 2:
            raise ArchlabError(
                f"{c.path}: {T} time steps, but data.horizon={H} test steps + data.val_steps="
                f"{c.val_steps} leave {max(n_train, 0)} training steps (need >= 2): lower "
                "data.horizon or data.val_steps"
            )
        fz = fitted.featurizer if fitted is not None else HorizonFeaturizer.fit(
            p, n_train, series_keys=keys, covariates=covs, known_covariates=c.known_covariates,
            step_days=step_days, season=c.season, window=c.window, horizon=H, events=c.events,
            min_scale=c.min_scale,
        )  # fmt: skip
        if fitted is None:
            part = p.y[:, :n_train]
            ok = part[~np.isnan(part)]
            fitted = HorizonFitted(fz, resolved, float(ok.mean()), float(ok.std()))
        f = fz.transform(p)
        lags = naive.season_lags(H, c.season)
        h = np.arange(1, H + 1)
        observed = ~np.isnan(p.y)

        def samples(
            origins: list[int], limit: int, need_ref: bool, backtest: bool = False
        ) -> tuple:
            """(series, origin, targets) of every series with a scored target from an origin.

            ``backtest``: the origins are numbered (0 = the first) in the targets' last column;
            otherwise they all count as one (a training or validation split)."""
            s_all, o_all, targ = [], [], []
            for k, o in enumerate(origins):
                t = o + h
                inside = t < limit
                ok = observed[:, np.minimum(t, T - 1)] & inside[None, :]
                if need_ref:
                    ok &= (t - lags >= 0)[None, :]
                s = np.flatnonzero(ok.any(1))
                if not len(s):
                    continue
                tt = np.minimum(t, T - 1)
                yn = np.nan_to_num((p.y[s][:, tt] - f.offset[s, None]) / f.scale[s, None])
                tg = np.stack(
                    [
                        np.where(ok[s], yn, 0.0),
                        np.broadcast_to(f.scale[s, None], yn.shape),
                        np.broadcast_to(f.offset[s, None], yn.shape),
                        np.broadcast_to(p.holiday[tt] & inside, yn.shape),
                        ok[s],
                        np.full(yn.shape, k if backtest else 0),
                    ],
                    -1,
                )
                s_all.append(s)
                o_all.append(np.full(len(s), o))
                targ.append(tg)
            if not s_all:
                return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, H, 6))
            return np.concatenate(s_all), np.concatenate(o_all), np.concatenate(targ)

        o_test = T - H - 1
        k_back = max(1, c.backtest_origins)
        first_train = c.season + c.window - 1
        split = {
            # Training origins whose whole window has last season's steps, as the test
            # origin's has: earlier ones would teach the network a history without them.
            "train": samples(list(range(first_train, n_train - 1)), n_train, True),
            "val": samples([n_train - 1], T - H, False),
            "test": samples([o_test - k for k in range(k_back)], T, False, backtest=True),
        }
        if len(split["train"][0]) == 0:
            raise ArchlabError(
                f"{c.path}: no training origin has a season ({c.season} steps) of history "
                f"before its window (data.window={c.window}) in the {n_train} training steps: "
                f"lower data.horizon={H}, data.val_steps or data.window, or give a longer history"
            )
        step_t = torch.from_numpy(f.step).to(device)
        ref_t = torch.from_numpy(f.ref).to(device)
        cats_t = torch.from_numpy(f.cats).to(device)

        def make(part: tuple) -> Batches:
            s_t = torch.from_numpy(part[0]).to(device)
            o_t = torch.from_numpy(part[1]).to(device)
            tg = torch.from_numpy(part[2].astype(np.float32)).to(device)

            def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
                j = i.to(device)
                x, base = fz.windows(step_t, ref_t, s_t[j], o_t[j])
                return x, cats_t[s_t[j]], base, tg[j]

            return Batches(len(part[0]), fetch)

        groups = f.cats[:, -1]
        ctx_rows = []
        for k in range(k_back):
            o = o_test - k
            base = naive.all_baselines(p.y, o, H, c.season, groups, SVD_RANK)
            s, hh = np.nonzero(observed[:, o + 1 : o + 1 + H])
            t = o + 1 + hh
            ctx_rows.append(
                pd.DataFrame(
                    {
                        **{key: p.keys[s, i] for i, key in enumerate(keys)},
                        c.date_column: p.dates[t],
                        "step": hh + 1,
                        "origin": k,
                        "actual": p.y[s, t],
                        "holiday": p.holiday[t],
                        **{n: b[s, hh] for n, b in base.items()},
                    }
                )
            )
        rows = pd.concat(ctx_rows, ignore_index=True)
        dates = p.dates
        sizes = {k: int(v[2][..., 4].sum()) for k, v in split.items()}
        info = {
            "source": str(Path(c.path).resolve()),
            "framing": "horizon",
            "resolved_config": resolved,
            "n_rows": len(df),
            "n_series": S,
            "n_steps": T,
            "step_days": step_days,
            "horizon": H,
            "window": c.window,
            "input_size": fz.input_size,
            "feature_names": fz.feature_names,
            "known_covariates": list(c.known_covariates),
            "origins": {
                "train": f"{str(dates[first_train])[:10]}..{str(dates[n_train - 2])[:10]}",
                "val": str(dates[n_train - 1])[:10],
                "test": str(dates[o_test])[:10],
                "backtest": [str(dates[o_test - k])[:10] for k in range(k_back)],
            },
            "split_samples": {k: len(v[0]) for k, v in split.items()},
            "split_target_steps": sizes,
            "test_first_date": str(dates[o_test + 1])[:10],
            "test_last_date": str(dates[T - 1])[:10],
            "series_without_training_steps": int(S - len(fz.series)),
        }
        notes = [
            f"data: {c.path}, {S} series x {T} steps of {step_days} days; horizon {H} steps, "
            f"season {c.season}",
            f"data: origins train {info['origins']['train']} ({sizes['train']} targets), val "
            f"{info['origins']['val']} ({sizes['val']}), test {info['origins']['test']} "
            f"({sizes['test']} targets"
            + (f" over {k_back} backtest origins)" if k_back > 1 else ")"),
        ]
        splits = {
            k: (v[0] * T + v[1]).tolist() for k, v in split.items()
        }  # series * T + origin of each sample
        return DataBundle(
            train=make(split["train"]),
            val=make(split["val"]),
            test=make(split["test"]),
            fitted=fitted,
            info=info,
            splits=splits,
            notes=notes,
            context=TestContext(rows, keys, c.date_column),
        )


class HorizonNet(nn.Module):
    """Direct multi-output over a sales RNN: the head reads every future step's output.

    Wraps a ``RecurrentRegressor`` from MODELS (rnn, lstm, gru) and uses its own layers; its
    forward reads only the last step, so this forward reads the last ``horizon`` ones.
    """

    def __init__(self, net: nn.Module, horizon: int) -> None:
        super().__init__()
        self.net = net
        self.horizon = horizon

    def forward(self, x: torch.Tensor, cats: torch.Tensor | None = None) -> torch.Tensor:
        n = self.net
        if len(n.embeddings):
            assert cats is not None, "this model embeds categorical ids: pass cats (batch, k)"
            e = torch.cat([emb(cats[:, i]) for i, emb in enumerate(n.embeddings)], -1)
            x = torch.cat([x, e[:, None, :].expand(-1, x.shape[1], -1)], -1)
        out, _ = n.rnn(x)
        return n.head(n.drop(out[:, -self.horizon :])).squeeze(-1)  # (batch, H)


def _scored(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Flat (actual, forecast, holiday, step, origin) of every scored target, sales units."""
    out, t = outputs.double().numpy(), targets.double().numpy()
    ok = t[..., 4] > 0.5
    pred = out * t[..., 1] + t[..., 2]
    y = t[..., 0] * t[..., 1] + t[..., 2]
    step = np.broadcast_to(np.arange(1, out.shape[1] + 1), out.shape)
    return y[ok], pred[ok], t[..., 3][ok] > 0.5, step[ok], t[..., 5][ok].astype(int)


def score(
    y: np.ndarray, pred: np.ndarray, hol: np.ndarray, step: np.ndarray, origin: np.ndarray
) -> dict[str, Any]:
    """WMAE, MAE, RMSE, R² on origin 0, WMAE per horizon step, backtest mean/std over origins."""
    o0 = origin == 0
    m: dict[str, Any] = {"wmae": wmae(y[o0], pred[o0], hol[o0])}
    m.update(regression_metrics(y[o0], pred[o0]))
    m["wmae_by_step"] = [
        wmae(y[o0 & (step == k)], pred[o0 & (step == k)], hol[o0 & (step == k)])
        if np.any(o0 & (step == k))
        else None
        for k in range(1, int(step.max(initial=0)) + 1)
    ]
    ks = np.unique(origin)
    if len(ks) > 1:
        per = [wmae(y[origin == k], pred[origin == k], hol[origin == k]) for k in ks]
        m["backtest_wmae_mean"], m["backtest_wmae_std"] = float(np.mean(per)), float(np.std(per))
        m["backtest_wmae"] = per
    return m


class HorizonForecast:
    """The H-step sales task: loss, metrics, baselines, plots and the H-step predict."""

    name = "sales"
    monitor = ("val_loss", "min")
    outputs = "values"  # (N, H) affine in the target: `archlab ensemble` averages them

    def __init__(self, cfg: RunConfig, fitted: HorizonFitted) -> None:
        self.cfg = cfg
        self.fitted = fitted
        self.data_cfg: SalesDataConfig = fitted.data_config(cfg.data)
        self.model_cfg: SalesModelConfig = cfg.model

    def build_model(self) -> nn.Module:
        m, fz = self.model_cfg, self.fitted.featurizer
        cats = fz.n_categories if m.embed_dim else ()
        net = MODELS[m.name].build(
            input_size=fz.input_size,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=self.cfg.reg.dropout,
            embeddings=cats,
            embed_dim=m.embed_dim if cats else 0,
        )
        return HorizonNet(net, fz.horizon)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, cats, base, y = batch
        return base + model(x, cats), y  # the network predicts the residual over the baseline

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = targets
        if self.model_cfg.loss == "mse":
            return ((outputs - t[..., 0]) ** 2 * t[..., 4]).sum() / t[..., 4].sum().clamp(min=1)
        # scale * |scaled error| is the error in sales units: the batch's WMAE up to a constant.
        w = _weight(t[..., 3]) * t[..., 1] * t[..., 4]
        return (w * (outputs - t[..., 0]).abs()).sum() / w.sum().clamp(min=1e-12)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        y, pred, hol, step, origin = _scored(outputs, targets)
        m = score(y, pred, hol, step, origin)
        g = self.fitted
        o0 = origin == 0
        std = regression_metrics(
            (y[o0] - g.global_mean) / g.global_std, (pred[o0] - g.global_mean) / g.global_std
        )
        m["rmse_std"], m["r2_std"] = std["rmse"], std["r2"]
        return m

    def callbacks(self) -> list:
        return []

    def baselines(self, data: DataBundle) -> dict[str, Any]:
        """Every horizon baseline on the test rows: WMAE/MAE/RMSE/R², by step, backtests."""
        rows: pd.DataFrame = data.context.rows
        out: dict[str, Any] = {}
        y, hol = rows.actual.to_numpy(), rows.holiday.to_numpy(bool)
        step, origin = rows.step.to_numpy(), rows.origin.to_numpy()
        for name in naive.BASELINE_NAMES:
            b = rows[name].to_numpy()
            ok = ~np.isnan(b)  # seasonal naive only where last season's step has a row
            m = score(y[ok], b[ok], hol[ok], step[ok], origin[ok])
            m["rows"] = int(np.sum(ok & (origin == 0)))
            out.update({f"baseline_{name}_{k}": v for k, v in m.items()})
        return out

    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: DataBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab.plots.eda_sales import actual_vs_forecast
        from archlab.plots.horizon import error_by_step

        y, pred, hol, step, origin = _scored(outputs, targets)
        m = score(y, pred, hol, step, origin)
        base = self.baselines(data)
        curves = {"model": m["wmae_by_step"]}
        for name in naive.BASELINE_NAMES:
            curves[name] = base[f"baseline_{name}_wmae_by_step"]
        error_by_step(curves, Path(run_dir) / "plots" / "error_by_step.png")
        # The model's forecasts of the four largest test series beside the best baseline.
        ctx: TestContext = data.context
        rows = ctx.rows[ctx.rows.origin == 0]
        best = min(
            naive.BASELINE_NAMES, key=lambda n: np.nan_to_num(base[f"baseline_{n}_wmae"], nan=1e30)
        )
        rows = rows.assign(forecast=_test_forecasts(outputs, targets))
        label = rows[ctx.keys].astype(str).agg("-".join, axis=1)
        wanted = list(self.data_cfg.plot_series) or list(
            rows.groupby(label).actual.sum().nlargest(4).index
        )
        series = {
            n: (g[ctx.date].to_numpy(), g.actual.to_numpy(), g.forecast.to_numpy(),
                g[best].to_numpy())
            for n in wanted if len(g := rows[label == n])
        }  # fmt: skip
        actual_vs_forecast(series, Path(run_dir) / "plots" / "actual_vs_forecast.png", best)

    # --- predict: the H steps after the end of the data ---
    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Forecast the H steps after the data's last step, per series.

        ``inputs``: an optional history CSV in the training format (default: the run's
        ``data.path``) and optional files of rows to forecast (series keys and date, e.g.
        Walmart's test.csv): then one row per line of those files, each with ``source``
        "model", or "baseline" (last season's 3-step smoothing) for a series the run has no
        training history of.
        """
        c, fz = self.data_cfg, self.fitted.featurizer
        hist, wanted = [], []
        for item in inputs:
            path = Path(item)
            if not path.exists():
                raise ArchlabError(f"{path}: no such file")
            cols = sales_csv.read_csv(path, []).columns
            (hist if c.target in cols else wanted).append(path)
        if len(hist) > 1:
            raise ArchlabError(f"give one history CSV (got {', '.join(map(str, hist))})")
        df = sales.load_sales(replace(c, path=str(hist[0])) if hist else c)
        want = [read_forecast_rows(w, c) for w in wanted]
        hol = [d for w in want if c.holiday_column in w.columns
               for d in w.loc[w[c.holiday_column], c.date_column].unique()]  # fmt: skip
        p = future_panel(df, c, fz, hol)
        T, H = p.y.shape[1], fz.horizon
        o = T - H - 1
        f = fz.transform(p)
        s = np.flatnonzero(fz.series_index(p.keys) >= 0)
        if not len(s):
            raise ArchlabError(
                f"{hist[0] if hist else c.path}: none of its series were seen in training"
            )
        model.eval()
        with torch.no_grad():
            x, base = fz.windows(
                torch.from_numpy(f.step), torch.from_numpy(f.ref), torch.from_numpy(s),
                torch.full((len(s),), o),
            )  # fmt: skip
            out = (base + model(x, torch.from_numpy(f.cats[s]))).double().numpy()
        fc = naive.smoothed_seasonal_naive(p.y, o, H, fz.season)  # (S, H): the fallback
        src = np.full(fc.shape, "baseline", dtype=object)
        fc[s] = out * f.scale[s, None] + f.offset[s, None]
        src[s] = "model"
        if not want:
            keys, dates = list(c.series_keys), p.dates[o + 1 :]
            return [
                {**{k: _plain(p.keys[i, j]) for j, k in enumerate(keys)},
                 c.date_column: str(dates[h])[:10], "step": h + 1,
                 "forecast": float(fc[i, h]), "source": src[i, h]}
                for i in s for h in range(H)
            ]  # fmt: skip
        return _wanted_rows(p, fc, src, o, want, wanted, c, fz.step_days)


def _wanted_rows(
    p: sales.Panel,
    fc: np.ndarray,
    src: np.ndarray,
    o: int,
    want: list[pd.DataFrame],
    paths: list[Path],
    c: SalesDataConfig,
    step_days: int,
) -> list[dict[str, Any]]:
    """One forecast per row of the files to forecast; a series never seen gets 0 ("baseline")."""
    keys = list(c.series_keys)
    H = fc.shape[1]
    out: list[dict[str, Any]] = []
    for w, path in zip(want, paths, strict=True):
        d = w[c.date_column].to_numpy().astype("datetime64[D]")
        origin = p.dates[0].astype("datetime64[D]")
        t = sales.time_index(d, origin, step_days)
        off = np.flatnonzero(sales.step_dates(origin, t, step_days) != d)
        if len(off):
            i = int(off[0])
            raise ArchlabError(
                f"{path}: date {d[i]} at line {i + 2} is not on the data's {step_days}-day "
                f"step grid (its steps fall on {origin} + k x {step_days} days)"
            )
        h = t - o - 1
        bad = np.flatnonzero((h < 0) | (h >= H))
        if len(bad):
            i = int(bad[0])
            raise ArchlabError(
                f"{path}: date {d[i]} at line {i + 2} is outside the forecast steps "
                f"{str(p.dates[o + 1])[:10]}..{str(p.dates[-1])[:10]} (data.horizon={H})"
            )
        # The panel's series index of each row (-1: a series the data never had), by a join.
        try:
            panel_keys = pd.DataFrame(p.keys, columns=keys).astype(w[keys].dtypes.to_dict())
        except (TypeError, ValueError):
            raise ArchlabError(
                f"{path}: its series keys {keys} are not of the training data's type"
            ) from None
        si = (
            w[keys].merge(panel_keys.assign(_s=np.arange(len(p.keys))), on=keys, how="left")
            ._s.fillna(-1).to_numpy(np.int64)
        )  # fmt: skip
        if not (si >= 0).any():
            first = tuple(_plain(v) for v in w[keys].iloc[0])
            raise ArchlabError(f"{path}: none of its series (e.g. {first}) occur in the data")
        known = si >= 0
        res = w[keys].copy()
        res[c.date_column] = d.astype(str)
        res["step"] = h + 1
        res["forecast"] = np.where(known, fc[np.maximum(si, 0), h], 0.0)
        res["source"] = np.where(known, src[np.maximum(si, 0), h], "baseline")
        out += res.to_dict("records")
    return out


def _test_forecasts(outputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """The test origin's forecasts in the order of the context's rows (series, then step)."""
    t = targets.double().numpy()
    pred = outputs.double().numpy() * t[..., 1] + t[..., 2]
    first = t[:, 0, 5] == 0
    return pred[first][t[first][..., 4] > 0.5]
