"""Multi-horizon sales forecasting (``data.horizon=H`` > 1): the task.

From an origin, the network reads ``window`` history steps and the H future steps (only what is
known in advance, see archlab/data/sales_horizon.py) and emits all H steps at once (direct
multi-output): each future step's recurrent output goes through the shared linear head, as the
residual over last season's sales (smoothed over data.smooth_steps steps). Backtest origins
(data.backtest_origins) are scored too, reported as mean and std.

Its splits, targets, fitted state and batching are in archlab/tasks/sales_horizon_data.py; the
knobs chosen on validation after training (correction scale, blend with the statistical peer)
in archlab/tasks/sales_posthoc.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from archlab import fingerprint
from archlab.config import RunConfig
from archlab.data import sales, sales_csv, sales_peer
from archlab.data import sales_baselines as naive
from archlab.data.sales_horizon import PanelFeatures, future_panel, match_keys, read_forecast_rows
from archlab.data.sales_peer import MIN_SEASONS
from archlab.errors import ArchlabError
from archlab.metrics import regression_metrics, wmae
from archlab.models import MODELS
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.sales_common import (
    SalesTargets,
    SalesTask,
    holiday_weight,
    plain,
    series_plot,
)
from archlab.tasks.sales_horizon_data import (
    PEER_FILE,
    SVD_RANK,
    HorizonBundle,
    HorizonFitted,
    PeerInputs,
    TestContext,
    rolling,
)
from archlab.tasks.sales_posthoc import (
    SCALES,
    blended,
    choose,
    fit_at,
    fit_entry,
    parts,
    peer_forecast,
    rolled,
    scored,
    test_span,
)
from archlab.utils import write_json_atomic


class EndWindows(NamedTuple):
    """The network's inputs at a panel's last data step (the origin) for its seen series."""

    f: PanelFeatures
    s: np.ndarray  # the panel rows of the series seen in training
    o: int  # the origin
    x: torch.Tensor  # (N, window + H, F)
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N, H) the residual base, scaled units


class HistoryWindows(NamedTuple):
    """Network inputs built from a history CSV: one window per series seen in training."""

    x: torch.Tensor  # (N, window + H, F)
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N, H) the base the network corrects, scaled units
    scale: np.ndarray  # (N,) per-series scale and offset back to sales units
    offset: np.ndarray
    rows: list[dict[str, Any]]  # series keys and date of each window's origin (last data step)


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


class HorizonForecast(SalesTask):
    """The H-step sales task: loss, metrics, baselines, plots and the H-step predict."""

    fitted: HorizonFitted

    def __init__(self, cfg: RunConfig, fitted: HorizonFitted) -> None:
        self.cfg = cfg
        self.fitted = fitted
        self.data_cfg: SalesDataConfig = fitted.data_config(cfg.data)
        self.model_cfg: SalesModelConfig = cfg.model
        self.reg = cfg.reg
        # (context, its rows with the peer's column, the peer's fit CPU seconds): baselines()
        # and artifacts() both read it, and the peer takes a minute on Walmart.
        self._scored_rows: tuple[TestContext, pd.DataFrame, float | None] | None = None

    def build_model(self) -> nn.Module:
        m, fz = self.model_cfg, self.fitted.featurizer
        cats = fz.n_categories if m.embed_dim else ()
        return MODELS[m.name].build(
            input_size=fz.input_size,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=self.cfg.reg.dropout,
            embeddings=cats,
            embed_dim=m.embed_dim if cats else 0,
            horizon=fz.horizon,  # the head reads each of the H future steps
        )

    @property
    def correction_scale(self) -> float:
        """The scale applied at evaluation: the config's number, or the one chosen on
        validation after training (1, the full correction, until then)."""
        s = self.data_cfg.correction_scale
        return float(self.fitted.chosen.get("correction_scale", 1.0)) if s == "auto" else s

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, cats, base, y = batch
        # The network predicts the residual over the baseline; training fits all of it, and
        # evaluation takes data.correction_scale of it (1 unless shrunk toward the base).
        scale = 1.0 if model.training else self.correction_scale
        return base + scale * model(x, cats), y

    # --- post-hoc knobs (archlab/tasks/sales_posthoc.py), chosen after training ---
    def tune(self, model: nn.Module, data: HorizonBundle) -> tuple[HorizonForecast, list[str]]:
        """This task with the correction scale and blend weight chosen on validation, and the
        lines that say what was chosen on what."""
        chosen, lines = choose(self.data_cfg, model, data.val, data.context.peer)
        return HorizonForecast(self.cfg, replace(self.fitted, chosen=chosen)), lines

    def tuned_metrics(self, model: nn.Module, data: HorizonBundle) -> dict[str, Any]:
        """The chosen knobs with their validation WMAE, and test_blend_* (the hybrid)."""
        ch = self.fitted.chosen
        out = {k: v for k, v in ch.items() if not k.endswith(("_by_weight", "_by_scale"))}
        if "blend_weight" in ch and data.context.peer is not None:
            base, corr, t = parts(model, data.test)
            b = blended(ch, data.context.peer, base, corr, t)
            assert b is not None
            m = score(*scored(b, t))
            out.update({f"test_blend_{k}": v for k, v in m.items()})
        return out

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = SalesTargets.unpack(targets, horizon=True)
        if self.model_cfg.loss == "mse":
            return ((outputs - t.scaled) ** 2 * t.observed).sum() / t.observed.sum().clamp(min=1)
        # scale * |scaled error| is the error in sales units: the batch's WMAE up to a constant.
        w = holiday_weight(t.holiday) * t.scale * t.observed
        return (w * (outputs - t.scaled).abs()).sum() / w.sum().clamp(min=1e-12)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        y, pred, hol, step, origin = scored(outputs, targets)
        m = score(y, pred, hol, step, origin)
        g = self.fitted
        o0 = origin == 0
        std = regression_metrics(
            (y[o0] - g.global_mean) / g.global_std, (pred[o0] - g.global_mean) / g.global_std
        )
        m["rmse_std"], m["r2_std"] = std["rmse"], std["r2"]
        return m

    def rows_with_peer(self, ctx: TestContext) -> tuple[pd.DataFrame, float | None]:
        """The context's rows with the statistical peer's forecast as one more baseline column
        (fitted once per context), and its fit's CPU seconds (None without a peer)."""
        if self._scored_rows is None or self._scored_rows[0] is not ctx:
            rows, seconds = ctx.rows, None
            if ctx.peer is not None:
                col, seconds = fit_peer(ctx.peer, ctx.rows, self.data_cfg.horizon)
                rows = rows.assign(**{ctx.peer.name: col})
            self._scored_rows = (ctx, rows, seconds)
        return self._scored_rows[1], self._scored_rows[2]

    def test_sources(self, data: HorizonBundle, n: int) -> list[dict[str, Any]]:
        """The first ``n`` test samples' series (key column -> value), origin date (the last
        step the window reads) and the H dates their outputs forecast, in test-split order
        (tasks/base.py's Sourced)."""
        ctx, fz = data.context, self.fitted.featurizer
        assert ctx.test_keys is not None and ctx.test_origins is not None
        out = []
        for key, o in zip(ctx.test_keys[:n], ctx.test_origins[:n], strict=True):
            steps = int(o) + np.arange(fz.horizon + 1)
            dates = sales.step_dates(ctx.first_date, steps, fz.step_days, fz.weekdays)
            out.append({
                "series": {k: plain(v) for k, v in zip(ctx.keys, key.tolist(), strict=True)},
                "origin": str(dates[0])[:10],
                "dates": [str(d)[:10] for d in dates[1:]],
            })  # fmt: skip
        return out

    def baselines(self, data: HorizonBundle) -> dict[str, Any]:
        """Every horizon baseline on the test rows: WMAE/MAE/RMSE/R², by step, backtests; the
        statistical peer's fit time too."""
        rows, peer_seconds = self.rows_with_peer(data.context)
        out: dict[str, Any] = {}
        y, hol = rows.actual.to_numpy(), rows.holiday.to_numpy(bool)
        step, origin = rows.step.to_numpy(), rows.origin.to_numpy()
        for name in _baseline_names(rows):
            b = rows[name].to_numpy()
            ok = ~np.isnan(b)  # seasonal naive only where last season's step has a row
            m = score(y[ok], b[ok], hol[ok], step[ok], origin[ok])
            m["rows"] = int(np.sum(ok & (origin == 0)))
            out.update({f"baseline_{name}_{k}": v for k, v in m.items()})
        if peer_seconds is not None:
            out[f"baseline_{data.context.peer.name}_fit_seconds"] = peer_seconds
        # The last step's numbers under the older name next-step readers still use.
        old = "baseline_last_step_"
        out.update({"baseline_last_week_" + k[len(old) :]: v for k, v in out.items()
                    if k.startswith(old)})  # fmt: skip
        return out

    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: HorizonBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab.plots.horizon import error_by_date, error_by_step

        y, pred, hol, step, origin = scored(outputs, targets)
        m = score(y, pred, hol, step, origin)
        base = self.baselines(data)
        ctx = data.context
        ctx_rows, _ = self.rows_with_peer(ctx)
        names = _baseline_names(ctx_rows)
        rows = ctx_rows[ctx_rows.origin == 0]
        rows = rows.assign(forecast=_test_forecasts(outputs, targets))
        png = Path(run_dir) / "plots" / "error_by_step.png"
        if rolling(self.data_cfg):  # one step ahead from every test date: error over time
            cols = {"model": "forecast", **{n: n for n in names}}
            error_by_date(*wmae_by_date(rows, ctx.date, cols), png)
        else:
            curves = {"model": m["wmae_by_step"]}
            for name in names:
                curves[name] = base[f"baseline_{name}_wmae_by_step"]
            error_by_step(curves, png)
        write_json_atomic(Path(run_dir) / SCALE_FILE, correction_scales(self.fitted.chosen))
        self.keep_peer_fits(run_dir, data)
        # The model's forecasts of the four largest test series beside the best baseline.
        best = strongest_baseline(base, names)
        series_plot(rows, ctx.keys, ctx.date, self.data_cfg.plot_series, run_dir, best)
        if rolling(self.data_cfg):  # the mean error of each test step, over the series
            from archlab.plots.eda_sales import residuals_by_step

            res = (rows.actual - rows.forecast).groupby(rows[ctx.date]).mean()
            residuals_by_step(res.index.to_numpy(), res.to_numpy(),
                              Path(run_dir) / "plots" / "residuals.png")  # fmt: skip

    # --- predict: the H steps after the end of the data ---
    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Forecast the H steps after the data's last step, per series.

        ``inputs``: an optional history CSV in the training format (default: the run's
        ``data.path``) and optional files of rows to forecast (series keys and date, e.g.
        Walmart's test.csv): then one row per line of those files, each with ``source``
        "model", "blend" (with the statistical peer fitted at the data's last step, when the
        run chose a blend weight below 1), or "baseline" (last season's smoothed sales) for a
        series the run has no training history of.
        """
        c = self.data_cfg
        hist, wanted = [], []
        for item in inputs:
            path = Path(item)
            if not path.exists():
                raise ArchlabError(f"{path}: no such file")
            frame = sales_csv.read_csv(path, [], c.encoding)
            cols = [str(k) for k in frame.columns]
            _check_target_column(path, cols, c.target)
            # Rows to forecast name their series and dates; anything else (a wide table too)
            # is read as a history, whose errors name the columns a history needs.
            # A target column with no value at all (a template to fill) is rows to forecast too.
            blank = c.target in cols and bool(
                frame[c.target].astype("string").str.strip().fillna("").isin(["", "nan", "NaN"])
                .all()
            )  # fmt: skip
            rows = (
                (c.target not in cols or blank)
                and {*sales.key_columns(c.series_keys), c.date_column} <= set(cols)
                and not sales.reads_wide(c, frame)
            )
            (wanted if rows else hist).append(path)
        if len(hist) > 1:
            raise ArchlabError(f"give one history CSV (got {', '.join(map(str, hist))})")
        want = [read_forecast_rows(w, self._other_files()) for w in wanted]
        p = self._end_panel(hist[0] if hist else None, want, wanted)
        fc, src, o = self._forecast_end(model, p, hist[0] if hist else None)
        unseen = np.flatnonzero(src[:, 0] == "baseline")
        if len(unseen) and not want:  # forecast only for the series the run was trained on
            e_g = ", ".join(map(str, p.keys[unseen[0]]))
            why = ("were not in the run's training data" if hist else
                   "had too little history to be trained on")  # fmt: skip
            print(f"archlab: note: {hist[0] if hist else c.path}: {len(unseen)} of {len(src)} "
                  f"series {why} (e.g. {e_g}): no forecast for them", file=sys.stderr)  # fmt: skip
        if not want:
            keys, dates = list(c.series_keys), p.dates[o + 1 :]
            if closed := _closed_days(p, o):
                print(f"archlab: note: {hist[0] if hist else c.path}: {closed}", file=sys.stderr)
            return [
                {**{k: plain(p.keys[i, j]) for j, k in enumerate(keys)},
                 c.date_column: str(dates[h])[:10], "step": h + 1,
                 "forecast": float(fc[i, h]), "source": src[i, h]}
                for i in np.flatnonzero(src[:, 0] != "baseline") for h in range(fc.shape[1])
            ]  # fmt: skip
        fz = self.fitted.featurizer
        asked = np.concatenate([w[c.date_column].to_numpy().astype("datetime64[D]") for w in want])
        ahead = p.dates[o + 1 :].astype("datetime64[D]")
        if closed := _closed_days(p, o, np.isin(ahead, asked)):
            print(f"archlab: note: {wanted[0]}: {closed}", file=sys.stderr)
        return _wanted_rows(p, fc, src, o, want, wanted, c, fz.step_days, fz.weekdays)

    def _end_panel(
        self, hist: Path | None, want: list[pd.DataFrame], paths: list[Path]
    ) -> sales.Panel:
        """The history (default: the run's data) with the H steps after its end to forecast;
        the dates of the rows to forecast (``want``, read from ``paths``) are checked first."""
        c = self.data_cfg
        if hist:  # a history of sales alone is read: the covariates it lacks take their means
            df = sales.load_sales(replace(self._other_files(), path=str(hist)), True, True)
            fz = self.fitted.featurizer
            sales.check_same_step(df[c.date_column].to_numpy(), fz.step_days, fz.weekdays, hist)
            sales.check_grid(df, c.series_keys, c.date_column, fz.step_days, fz.weekdays, hist)
        else:
            df = self._own_data()
        read = df.attrs.get("read", {})
        for line in sales.tail_note(df):  # the origin is the last date kept: say why
            said = line.removeprefix("data: ").split("; set data.tail_min_coverage")[0]
            if read.get("tail_trimmed_dates") and said.startswith("dropped") and not want:
                # Rows left to fill in (no value) are not what is forecast: the steps after
                # the last date kept are; a file of rows to forecast has its dates checked.
                said += (f"; the forecast is for the steps after {read['last_date']}: give "
                         "the rows to forecast as a file without the target column to have "
                         "their dates forecast")  # fmt: skip
            print(f"archlab: note: {hist or c.path}: {said}", file=sys.stderr)
        fz = self.fitted.featurizer
        dates = df[c.date_column].to_numpy().astype("datetime64[D]")
        closed = _closed_weekdays(dates, fz)
        if fz.horizon == 1 and closed:
            df = _through_closed_days(df, c, fz, closed, hist or c.path)
            dates = df[c.date_column].to_numpy().astype("datetime64[D]")
        if want:  # before the known covariates' values on those dates are looked up
            end = sales.time_index(dates.max(), dates.min(), fz.step_days, fz.weekdays)
            for w, path in zip(want, paths, strict=True):
                d = w[c.date_column].to_numpy().astype("datetime64[D]")
                h = _steps_ahead(d, dates.min(), int(end), fz.horizon, path, c, fz.step_days,
                                 fz.weekdays, closed)  # fmt: skip
                _one_row_a_step(w, h, c, path, fz.step_days)
        missing = [k for k in fz.covariates if k not in df.columns]
        rows = pd.concat(want) if want else None
        for w, path in zip(want, paths, strict=True):
            # A what-if (promo=1) on a covariate the network never reads for future steps
            # changed nothing, unsaid.
            if unread := [k for k in fz.covariates if k in w.columns
                          and k not in fz.known_covariates]:  # fmt: skip
                print(f"archlab: note: {path}: column(s) {', '.join(unread)} of the rows to "
                      "forecast are not read: the run does not know them in advance "
                      "(data.known_covariates), so their values change no forecast",
                      file=sys.stderr)  # fmt: skip
        filled: list[str] = []  # known covariates whose forecast steps take the mean too
        if hist and missing:
            # A history of sales alone (at any horizon): each covariate it lacks reads as its
            # training mean, constant over the window and the steps forecast, and said so.
            print(f"archlab: note: {hist}: no column(s) {', '.join(missing)}: read as their "
                  "training means", file=sys.stderr)  # fmt: skip
            for k in missing:
                df[k] = fz.cov_mean[fz.covariates.index(k)]
            # A known one the rows to forecast do not bring either is not looked up in the
            # run's features table on the forecast steps: it keeps its mean there too.
            given = set(rows.columns) if rows is not None else set()
            filled = [k for k in missing if k in fz.known_covariates and k not in given]
        if hist and c.holiday_column and c.holiday_column not in df.columns:
            # A history of sales alone: no step of it a holiday (a KeyError traceback before).
            print(f"archlab: note: {hist}: no column {c.holiday_column}: its steps read as no "
                  "holidays", file=sys.stderr)  # fmt: skip
            df[c.holiday_column] = False
        flags = [w for w in want if c.holiday_column and c.holiday_column in w.columns]
        hol = [d for w in flags for d in w.loc[w[c.holiday_column], c.date_column].unique()]
        flagged = [d for w in flags for d in w[c.date_column].unique()]
        known = tuple(k for k in fz.known_covariates if k not in filled)
        p = future_panel(df, c, replace(fz, known_covariates=known), hol, rows, str(hist or ""),
                         flagged)  # fmt: skip
        for k in filled:
            j = fz.covariates.index(k)
            p.cov[:, p.y.shape[1] - fz.horizon :, j] = fz.cov_mean[j]
        return p

    def _own_data(self) -> pd.DataFrame:
        """The run's data, to forecast from without a history: refused where missing or
        changed since training (a file at the same relative path, read from another folder)."""
        c, hint = self.data_cfg, "give the history to forecast from (archlab predict RUN FILE.csv)"
        if not Path(c.path).exists():
            raise ArchlabError(f"{c.path}: no such file or directory: the run's data, which "
                               f"predict forecasts from without a history; {hint}")  # fmt: skip
        with fingerprint.recording() as reads:
            df = sales.load_sales(c)
        saved = self.fitted.trained_inputs
        if saved and (changed := fingerprint.differences(saved, fingerprint.fingerprint(reads),
                                                         subset=True)):  # fmt: skip
            raise ArchlabError(f"{c.path}: the data differ from what the run was trained on "
                               f"({'; '.join(changed)}); {hint}, or restore the original "
                               "files")  # fmt: skip
        return df

    def _other_files(self) -> SalesDataConfig:
        """The config that reads files other than the run's data (a history, rows to
        forecast): the date format is inferred for each of them, the run's own (inferred or
        set) where the dates fit several (11/02/2012) or where it is none of the usual ones."""
        fmt = self.fitted.resolved.get("date_format", self.data_cfg.date_format)
        return replace(self.data_cfg, date_format=sales_csv.PREFER + fmt)

    def _end_windows(self, p: sales.Panel, hist: Path | None) -> EndWindows:
        """The network's inputs at the panel's last data step (the origin), seen series only."""
        fz = self.fitted.featurizer
        o = p.y.shape[1] - fz.horizon - 1
        _check_history(fz, p, o, hist or self.data_cfg.path)
        f = fz.transform(p)
        s = np.flatnonzero(fz.series_index(p.keys) >= 0)
        if not len(s):
            raise ArchlabError(
                f"{hist or self.data_cfg.path}: none of its series were seen in training"
            )
        ended = s[np.isnan(p.y[s, o])]  # no row on the last date: forecast as no sales there
        if len(ended) and not np.isnan(p.y[:, o]).all():  # all: a closed day, said already
            obs = ~np.isnan(p.y[ended, : o + 1])
            last = p.dates[o - np.argmax(obs[:, ::-1], 1)]
            e = int(np.argmin(last))  # the one that ended first
            key = ", ".join(map(str, p.keys[ended[e]]))
            print(f"archlab: note: {hist or self.data_cfg.path}: {len(ended)} of {len(s)} series "
                  f"have no value on the last date, {str(p.dates[o])[:10]} (e.g. {key}, last on "
                  f"{str(last[e])[:10]}): {_ended_reading(self.fitted.chosen)}",
                  file=sys.stderr)  # fmt: skip
        with torch.no_grad():
            x, base = fz.windows(
                torch.from_numpy(f.step), torch.from_numpy(f.ref), torch.from_numpy(s),
                torch.full((len(s),), o),
            )  # fmt: skip
        return EndWindows(f, s, o, x, torch.from_numpy(f.cats[s]), base)

    def history_windows(self, inputs: list[str]) -> HistoryWindows:
        """The network's inputs for the H steps after one history CSV's last date, per series
        seen in training (as ``predict`` reads it)."""
        if len(inputs) != 1:
            raise ArchlabError(f"give one history CSV (got {', '.join(inputs)})")
        hist = Path(inputs[0])
        if not hist.exists():
            raise ArchlabError(f"{hist}: no such file")
        p = self._end_panel(hist, [], [])
        w = self._end_windows(p, hist)
        c, keys = self.data_cfg, list(self.data_cfg.series_keys)
        date = str(p.dates[w.o])[:10]
        rows = [{**{k: plain(p.keys[i, j]) for j, k in enumerate(keys)}, c.date_column: date}
                for i in w.s]  # fmt: skip
        return HistoryWindows(w.x, w.cats, w.base, w.f.scale[w.s], w.f.offset[w.s], rows)

    def _forecast_end(
        self, model: nn.Module, p: sales.Panel, hist: Path | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The (S, H) forecasts after the panel's last data step, their sources, the origin."""
        fz = self.fitted.featurizer
        f, s, o, x, cats, base = self._end_windows(p, hist)
        model.eval()
        with torch.no_grad():
            corr = model(x, cats)
            out = (base + self.correction_scale * corr).double().numpy()
            sb = self.fitted.chosen.get("blend_correction_scale", self.correction_scale)
            out_b = (base + sb * corr).double().numpy()
        fc = naive.smoothed_seasonal_naive(p.y, o, fz.horizon, fz.season, fz.smooth_steps)
        src = np.full(fc.shape, "baseline", dtype=object)  # the fallback of unseen series
        fc[s] = out * f.scale[s, None] + f.offset[s, None]
        src[s] = "model"
        w = self.fitted.chosen.get("blend_weight")
        if w is not None and w < 1 and o + 1 < MIN_SEASONS * fz.season:
            print(f"archlab: note: {hist or self.data_cfg.path}: {o + 1} steps of history, under "
                  f"the {MIN_SEASONS} seasons of {fz.season} steps the statistical peer needs: "
                  "the network's forecasts alone (no blend)", file=sys.stderr)  # fmt: skip
        elif w is not None and w < 1:  # the hybrid, with the peer fitted at this origin
            net = out_b * f.scale[s, None] + f.offset[s, None]
            peer = self._end_peer(p, f, s, o)
            name, y, args = fit_entry(peer, o, fz.horizon)
            if not sales_peer.is_fitted(name, y, *args):  # not the run's own data
                where = hist or self.data_cfg.path
                print(f"archlab: fitting the statistical peer ({peer.name}) on {where} at its "
                      "last step", file=sys.stderr)  # fmt: skip
            fc[s] = w * net + (1 - w) * fit_at(peer, o, fz.horizon)
            src[s] = "blend"
        return fc, src, o

    def _end_peer(self, p: sales.Panel, f: Any, s: np.ndarray, o: int) -> PeerInputs:
        """The peer's inputs at the data's end: the seen series alone, so that the rows a
        forecast file adds (new series, no history) leave the fit, and its saved copy, as is."""
        fz = self.fitted.featurizer
        y = sales.fill_blank_cells(p, fz.season)[s]
        return PeerInputs(self.data_cfg.peer, y, [o], fz.season, f.cats[s, -1], SVD_RANK,
                          np.arange(len(s)))  # fmt: skip

    def keep_peer_fits(self, run_dir: Path, data: HorizonBundle) -> None:
        """Save the peer's fits at the test origins (eval's test_blend_*) and at the data's
        end (predict, serve) when the run blends (PEER_FILE): they take ~60 s each on Walmart."""
        w, peer = self.fitted.chosen.get("blend_weight"), data.context.peer
        if w is None or w >= 1 or peer is None:
            return
        H = self.data_cfg.horizon
        if span := test_span(peer):  # rolling origins: one fit, rolled over the test
            fits = [rolled(peer, *span)]
        else:
            fits = [fit_entry(peer, o, H) for o in peer.origins]
        # The peer reads sales alone: future values of known covariates (which only the rows
        # to forecast may bring) are neither needed nor checked here.
        c, fz = self.data_cfg, replace(self.fitted.featurizer, known_covariates=())
        df = sales.load_sales(c)
        if fz.horizon == 1 and (closed := _closed_weekdays(df[c.date_column].to_numpy(), fz)):
            # As predict reads it: the next open day's origin, past closed days (said there).
            df = _through_closed_days(df, c, fz, closed, c.path, say=False)
        p = future_panel(df, c, fz)
        o = p.y.shape[1] - fz.horizon - 1
        end = self._end_peer(p, fz.transform(p), np.flatnonzero(fz.series_index(p.keys) >= 0), o)
        fits.append(fit_entry(end, o, H))
        sales_peer.save_fits(Path(run_dir) / PEER_FILE, fits)


def _check_target_column(path: Path, cols: list[str], target: str) -> None:
    """A file whose column differs from the run's target only in case or spaces: said in one
    line, rather than read as rows to forecast (which have no target)."""
    near = [k for k in cols if k != target and k.strip().lower() == target.strip().lower()]
    if near:
        raise ArchlabError(
            f"{path}: no column {target!r} (the run's data.target); found {near[0]!r}: name the "
            "columns as in the training data"
        )


def _check_history(fz: Any, p: sales.Panel, o: int, where: object) -> None:
    """Refuse a history shorter than the training origins had: the window, and a season
    before it for last season's sales (and the level shift) of the steps forecast."""
    window = max(fz.window, fz.level_steps)
    a = "an" if str(window)[0] == "8" or window in (11, 18) else "a"  # "an 8-step window"
    if fz.horizon > 1:
        need, what = fz.season + window, f"{a} {window}-step window and a season before it"
    else:  # rolling origins: each target needs its own window and season lag
        need, what = max(window, fz.season), f"{a} {window}-step window, reaching a season back"
    if o + 1 < need:
        raise ArchlabError(
            f"{where}: a history of {o + 1} step{'s' if o else ''} ({str(p.dates[0])[:10]}.."
            f"{str(p.dates[o])[:10]}), but the run reads {need} before each forecast ({what}, "
            f"{fz.season} steps): give a longer history"
        )


def _wanted_rows(
    p: sales.Panel,
    fc: np.ndarray,
    src: np.ndarray,
    o: int,
    want: list[pd.DataFrame],
    paths: list[Path],
    c: SalesDataConfig,
    step_days: int,
    weekdays: int = 7,
) -> list[dict[str, Any]]:
    """One forecast per row of the files to forecast; a series never seen gets 0 ("baseline")."""
    keys = list(c.series_keys)
    H = fc.shape[1]
    out: list[dict[str, Any]] = []
    for w, path in zip(want, paths, strict=True):
        d = w[c.date_column].to_numpy().astype("datetime64[D]")
        h = _steps_ahead(d, p.dates[0], o, H, path, c, step_days, weekdays)
        # The panel's series index of each row (-1: a series the data never had), matched as
        # a history's series are matched to the run's (the file's spelling kept for output).
        si = match_keys([tuple(k) for k in p.keys.tolist()], w[keys])
        if not (si >= 0).any():
            first = ", ".join(str(v) for v in w[keys].iloc[0])
            like = ", ".join(str(v) for v in p.keys[0])
            raise ArchlabError(f"{path}: none of its series (e.g. {first}) occur in the data, "
                               f"whose series are like {like}")  # fmt: skip
        known = si >= 0
        _lost_zeros(w[keys][~known], p.keys, path)
        res = w[keys].copy()
        res[c.date_column] = d.astype(str)
        res["step"] = h + 1
        res["forecast"] = np.where(known, fc[np.maximum(si, 0), h], 0.0)
        res["source"] = np.where(known, src[np.maximum(si, 0), h], "baseline")
        out += res.to_dict("records")
    return out


def baseline_rows(rows: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> str:
    """How many forecasts took the baseline (series without training history), or "";
    predict says it on stderr and serve in its notes."""
    fallback = [r for r in rows if r.get("source") == "baseline"]  # "model" or "blend" otherwise
    if not fallback:
        return ""
    keys = [k for k in keys if k in fallback[0]]
    n_series = len({tuple(r[k] for k in keys) for r in fallback})
    e_g = f" (e.g. {', '.join(str(fallback[0][k]) for k in keys)})" if keys else ""
    return (f"{len(fallback)} row(s) of {n_series} series without training history{e_g} took "
            "the baseline (last season's smoothed sales; 0 for a series never seen)")  # fmt: skip


def _closed_weekdays(dates: np.ndarray, fz: Any) -> list[int]:
    """The days of the week a daily history has (almost) no rows on (a shop's closed days)."""
    u = np.unique(np.asarray(dates).astype("datetime64[D]"))
    if fz.step_days != 1 or len(u) < 2:
        return []
    end = sales.time_index(u[-1], u[0], 1, fz.weekdays)
    grid = sales.step_dates(u[0], np.arange(int(end) + 1), 1, fz.weekdays).astype("datetime64[D]")
    return sales.rare_weekdays(sales.weekday(grid), np.isin(grid, u))


def _through_closed_days(
    df: pd.DataFrame,
    c: SalesDataConfig,
    fz: Any,
    closed: list[int],
    where: object,
    say: bool = True,
) -> pd.DataFrame:
    """A next-step run's history ending before closed days (a Saturday before a closed
    Sunday) with those days as steps without a value: its one step is then the next open day
    (the Monday), forecast from the closed day as training scores such days, not the closed
    day itself. Said in a note."""
    last = df[c.date_column].max()
    days = []
    while len(days) < 6:
        d = sales.step_dates(np.datetime64(last, "D"), np.array([len(days) + 1]), 1, fz.weekdays)
        if sales.weekday(d)[0] not in closed:
            break
        days.append(pd.Timestamp(d[0]))
    if not days:
        return df
    keys = list(c.series_keys)
    series = df[keys].drop_duplicates() if keys else pd.DataFrame(index=[0])
    empty = pd.concat([series.assign(**{c.date_column: d}) for d in days], ignore_index=True)
    if c.holiday_column and c.holiday_column in df.columns:
        empty[c.holiday_column] = False
    nxt = sales.step_dates(np.datetime64(days[-1], "D"), np.array([1]), 1, fz.weekdays)[0]
    said = ", ".join(f"{d:%A} {d:%Y-%m-%d}" for d in days)
    are = "is a closed day" if len(days) == 1 else "are closed days"
    if say:
        print(f"archlab: note: {where}: {said} after its last date {are} (the history has no "
              f"rows on that weekday): the forecast is for the next open day, {str(nxt)[:10]}, "
              "from the closed day, as training scores such days", file=sys.stderr)  # fmt: skip
    out = pd.concat([df, empty], ignore_index=True)
    out.attrs = df.attrs
    return out


def _closed_days(p: sales.Panel, o: int, asked: np.ndarray | None = None) -> str:
    """A line where daily forecast steps fall on a day of the week that the history has rows
    on under half of (a shop closed on Sundays), else ''."""
    d = p.dates.astype("datetime64[D]")
    daily = p.weekdays == sales.BUSINESS or (len(d) > 1 and d[1] - d[0] == np.timedelta64(1, "D"))
    if len(d) < 2 or not daily:
        return ""
    day = sales.weekday(d)
    rare = sales.rare_weekdays(day[: o + 1], ~np.isnan(p.y[:, : o + 1]).all(0))
    on = np.isin(day[o + 1 :], rare) & (True if asked is None else asked)  # the steps asked for
    ahead = np.flatnonzero(on)
    if not len(ahead):
        return ""
    first = pd.Timestamp(d[o + 1 + ahead[0]])
    return (
        f"{len(ahead)} forecast step(s) fall on a day of the week the history has few or no rows "
        f"on (e.g. step {ahead[0] + 1}, {first:%Y-%m-%d}, a {first:%A}): forecasts of days "
        "read as missing in the history, not of the trading days after them, which are later "
        "steps (a run with a larger data.horizon reaches them)"
    )


def _ended_reading(chosen: dict[str, Any]) -> str:
    """How the forecast of a series without a value on the last date reads its steps without
    one: the network sees them flagged missing (not as no sales), the peer as no sales."""
    w = chosen.get("blend_weight")
    peer = (
        "; the statistical peer in the blend reads them as no sales"
        if w is not None and w < 1
        else ""
    )
    return (
        "the network reads its steps without a value as missing, not as no sales (its forecast "
        f"builds on last season's){peer}; write 0 where a series sold nothing"
    )


def _steps_ahead(
    d: np.ndarray,
    first: np.datetime64,
    o: int,
    H: int,
    path: Path,
    c: SalesDataConfig,
    step_days: int,
    weekdays: int,
    closed: Sequence[int] = (),
) -> np.ndarray:
    """The step ahead (0 .. H - 1) of each date ``d`` to forecast, on the grid of a panel that
    starts on ``first`` and ends its history at step ``o``; a date off the grid or outside the
    H steps after ``o`` is one line (``closed``: weekdays the history has no rows on, named
    where they stand between the history and a date)."""
    origin = np.datetime64(first, "D")
    t = sales.time_index(d, origin, step_days, weekdays)
    # A step of months is any day in it: a month dated on its last business day (the 29th
    # one month, the 31st the next) is that month, whatever day the data's grid shows.
    on = sales.step_dates(origin, t, step_days, weekdays)
    if sales.months_per_step(step_days):
        on = np.where(sales.time_index(on, origin, step_days) == t, d, on)
    off = np.flatnonzero(on != d)
    if len(off):
        i = int(off[0])
        after = sales.step_dates(origin, np.array(1), step_days, weekdays)
        grid = (
            f"{sales.step_adjective(step_days, weekdays)} steps (e.g. {origin}, {after})"
            if sales.months_per_step(step_days) or weekdays == sales.BUSINESS
            else f"{step_days}-day step grid (its steps fall on {origin} + k x {step_days} days)"
        )
        raise ArchlabError(f"{path}: date {d[i]} at line {i + 2} is not on the data's {grid}")
    h = t - o - 1
    bad = np.flatnonzero((h < 0) | (h >= H))
    if len(bad):
        i = int(bad[0])
        span = sales.step_dates(origin, np.array([o + 1, o + H]), step_days, weekdays)
        # A history without the target column reads as rows to forecast: say what it lacks.
        history = (f"; if {path.name} is a history, it lacks the target column {c.target!r}"
                   if h[i] < 0 and len(np.unique(d)) > H else "")  # fmt: skip
        between = sales.step_dates(origin, np.arange(o + 1, t[i]), step_days, weekdays)
        if h[i] >= H and len(between) and np.isin(sales.weekday(between), closed).all():
            # A next-step run ending on a Saturday forecasts the closed Sunday, not the Monday.
            history = (f"; the step(s) before it ({str(between[0])[:10]}"
                       + (f"..{str(between[-1])[:10]}" if len(between) > 1 else "")
                       + ") fall on days the history has no rows on (closed): the run forecasts "
                       f"them; data.horizon={int(h[i]) + 1} or more reaches {d[i]}")  # fmt: skip
        raise ArchlabError(
            f"{path}: date {d[i]} at line {i + 2} is outside the forecast steps "
            f"{str(span[0])[:10]}..{str(span[1])[:10]} (data.horizon={H}){history}"
        )
    return h


def _one_row_a_step(
    w: pd.DataFrame, h: np.ndarray, c: SalesDataConfig, path: Path, step_days: int
) -> None:
    """Refuse two rows to forecast of one series in one step of months (any day of a month
    is that month, as in training): they would get one forecast twice."""
    keys = [k for k in c.series_keys if k in w.columns]
    dup = pd.DataFrame({**{k: w[k].to_numpy() for k in keys}, "_h": h}).duplicated().to_numpy()
    if not dup.any():
        return
    i = int(np.flatnonzero(dup)[0])
    d = w[c.date_column].to_numpy().astype("datetime64[D]")
    j = int(np.flatnonzero((h == h[i]) & (w[keys].to_numpy() == w[keys].to_numpy()[i]).all(1))[0])
    unit = sales.step_unit(step_days)
    raise ArchlabError(
        f"{path}: series {', '.join(str(w[k].iloc[i]) for k in keys)} has two rows in one "
        f"{unit}: {d[j]} at line {j + 2} and {d[i]} at line {i + 2} (a {unit} is one step, "
        f"whatever its day); give one row per series and {unit}"
    )


SCALE_FILE = "correction_scale.json"


def correction_scales(chosen: dict[str, Any]) -> dict[str, Any]:
    """correction_scale.json: the validation WMAE of base + s x correction for every s in
    SCALES (0: the residual base alone, the level-shifted seasonal naive; 1: the network alone)
    and the best s, as chosen on validation (None without validation steps)."""
    curve = chosen.get("correction_scale_val_wmae_by_scale")
    if curve is None:
        return {"scale": list(SCALES), "val_wmae": [None] * len(SCALES), "best_scale": None}
    return {"scale": list(SCALES), "val_wmae": curve, "best_scale": SCALES[int(np.argmin(curve))]}


def strongest_baseline(metrics: dict[str, Any], names: list[str]) -> str:
    """The baseline of ``names`` with the lowest test WMAE (one without rows never wins): the
    one the forecast plot draws, the one to beat."""
    return min(names, key=lambda n: np.nan_to_num(metrics[f"baseline_{n}_wmae"], nan=1e30))


def _baseline_names(rows: pd.DataFrame) -> list[str]:
    """The baselines the test rows hold (level_seasonal_naive only with a level shift), then
    the statistical peer's (with data.peer)."""
    names = (*naive.BASELINE_NAMES, *naive.NEXT_STEP_NAMES, *sales_peer.PEERS)
    return [n for n in names if n in rows.columns]


def fit_peer(peer: PeerInputs, rows: pd.DataFrame, horizon: int) -> tuple[np.ndarray, float]:
    """The peer's forecast of each context row (one fit per origin) and the fits' CPU seconds
    (process time: every thread of this process, none of the rest of the machine's load)."""
    t0 = time.process_time()
    assert peer.row_origins is not None
    fc = peer_forecast(peer, peer.row_origins, peer.series, horizon, test_span(peer))
    col = fc[np.arange(len(fc)), rows.step.to_numpy() - 1]
    return col, time.process_time() - t0


def wmae_by_date(
    rows: pd.DataFrame, date: str, cols: dict[str, str]
) -> tuple[list[Any], dict[str, list[float]]]:
    """The test dates and, per forecaster (name -> column of ``rows``), the WMAE of its
    forecasts of each date, over the rows where it has one (NaN where it has none)."""
    groups = list(rows.groupby(date, sort=True))
    curves: dict[str, list[float]] = {}
    for name, col in cols.items():
        curves[name] = []
        for _, g in groups:
            ok = g[col].notna().to_numpy()
            y, f, hol = (g[k].to_numpy()[ok] for k in ("actual", col, "holiday"))
            curves[name].append(wmae(y, f, hol) if ok.any() else np.nan)
    return [d for d, _ in groups], curves


def _test_forecasts(outputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """The test origin's forecasts in the order of the context's rows (series, then step)."""
    t = SalesTargets.unpack(targets.double().numpy(), horizon=True)
    pred = t.to_sales(outputs.double().numpy())
    first = t.origin[:, 0] == 0
    return pred[first][t.observed[first] > 0.5]


def _lost_zeros(unknown: pd.DataFrame, run_keys: np.ndarray, path: Path) -> None:
    """Warn where a series the run does not know is one of its own without leading zeros
    (a spreadsheet saved store 001 as 1): it gets no forecast of the run's."""
    if unknown.empty:
        return
    bare = {tuple(str(v).lstrip("0") for v in k): k for k in run_keys.tolist()}
    for k in unknown.itertuples(index=False):
        twin = bare.get(tuple(str(v).lstrip("0") for v in k))
        if twin is not None:
            print(f"archlab: warning: {path}: series {', '.join(map(str, k))} is not the run's, "
                  f"which has {', '.join(map(str, twin))} (leading zeros lost, as a spreadsheet "
                  "drops them?): write the keys as the data does", file=sys.stderr)  # fmt: skip
            return
