"""Multi-horizon sales (``data.horizon=H`` > 1): reading the panel, the fitted state, batching.

``HorizonData.build`` reads and merges the tables, fits the featurizer
(archlab/data/sales_horizon.py) on the training steps and batches forecast origins per split:
test = the last H steps, forecast from the step before them; validation = the ``val_steps``
steps before the test, forecast from the last training step; training = every origin inside
the training steps whose window has a season of history before it (targets after the training
steps are masked). ``data.backtest_origins=K`` adds the K - 1 origins before the test origin,
and the K - 1 before the validation origin (scored on the validation steps only).

With H = 1 (next-step forecasting) the origins roll: the test is the last ``data.test_steps``
steps, each forecast from the actual history up to the step before it, and validation likewise
each of its steps; a (series, step) is a sample where its series has training steps and the
steps ``data.require_lags`` names are observed, in every split.

Targets are (N, H, 6): scaled sales, per-series scale and offset, holiday flag, mask (an
observed target step of that split) and the origin's backtest number (0 = the test origin).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import pandas as pd
import torch

from archlab import rundir
from archlab.config import RunConfig, config_sources
from archlab.data import sales, sales_peer, sales_recipe
from archlab.data import sales_baselines as naive
from archlab.data.sales import PlainJSON
from archlab.data.sales_horizon import HorizonFeaturizer, PanelFeatures, future_known
from archlab.data.sales_peer import MIN_SEASONS
from archlab.errors import ArchlabError
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Batches, DataBundle
from archlab.tasks.sales_common import (
    SalesTargets,
    plain,
    plain_dict,
    refuse_score_all,
    resolved_config,
    source_info,
)

# fitted.json's kind of next-step runs written before next-step forecasting was horizon 1.
NEXT_STEP_KIND = "sales-forecast"
# A blending run's peer forecasts at its test origins and its data's end (sales_peer.save_fits).
PEER_FILE = "peer_forecast.npz"
SVD_RANK = 10  # per-group rank of the SVD baseline (the Walmart competition winner's choice)


@dataclass(frozen=True)
class HorizonFitted(PlainJSON):
    """Everything a horizon run learned from its training steps (fitted.json)."""

    kind: ClassVar[str] = "sales-horizon"
    featurizer: HorizonFeaturizer
    resolved: dict[str, Any]  # config values the data decided (date format, season...)
    global_mean: float  # of training sales, for the standardized RMSE/R²
    global_std: float
    # The post-hoc knobs chosen on validation after training (archlab/tasks/sales_posthoc.py)
    # with the validation WMAE each rests on; {} until then and in older runs.
    chosen: dict[str, Any] = field(default_factory=dict)
    # The run's inputs.json, set where a run is restored: the data predict forecasts from
    # (without a history) must be those the run was trained on.
    trained_inputs: dict[str, Any] = field(default_factory=dict)
    transient: ClassVar[tuple[str, ...]] = ("trained_inputs",)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        fz = HorizonFeaturizer.from_dict(d["featurizer"])
        resolved = d.get("resolved", {})
        if "step_days" in resolved:  # as the featurizer reads it (an older run's month: 30)
            resolved = {**resolved, "step_days": fz.step_days}
        return super().from_dict({**d, "featurizer": fz, "resolved": resolved})

    def data_config(self, c: SalesDataConfig) -> SalesDataConfig:
        """``c`` with the values the data resolved when the run was trained."""
        return resolved_config(c, {k: v for k, v in self.resolved.items() if k not in STEP_KEYS})


# The horizon recipe's fields a None of which the data decides (archlab/data/sales_recipe.py),
# and those decided as well where they apply (test_steps: rolling origins, H = 1).
RECIPE = ("window", "val_steps", "val_gap", "level_steps", "level_weight", "smooth_steps")
RECIPE_MORE = ("known_covariates", "test_steps")


class PeerInputs(NamedTuple):
    """What the statistical peer (data.peer) is fitted on: it runs only when a run is scored."""

    name: str  # a name of sales_peer.PEERS
    y: np.ndarray  # the (S, T) panel
    origins: list[int]  # the test origin, then each backtest origin (every test origin if rolling)
    season: int
    groups: np.ndarray  # (S,) the SVD baseline's groups
    rank: int
    series: np.ndarray  # the panel row of each context row
    # The origin and panel row of each validation sample, on which the blend weight is chosen
    # (val_origins None: no blend to choose, or too short a history for the peer there).
    val_origins: np.ndarray | None = None
    val_series: np.ndarray | None = None
    test_series: np.ndarray | None = None  # the panel row and origin of each test sample
    test_origins: np.ndarray | None = None
    row_origins: np.ndarray | None = None  # the origin of each context row
    # An origin per step (H = 1): the peer is fitted once, at the first origin of a split, and
    # rolled over the rest (sales_peer.ONE_STEP_PEERS).
    rolling: bool = False


class TestContext(NamedTuple):
    """Facts about the test origins for baselines() and artifacts()."""

    rows: pd.DataFrame  # one row per scored (series, step, origin): keys, date, actual, ...
    keys: list[str]
    date: str
    peer: PeerInputs | None = None  # None: data.peer=none, or too short a history for it
    # Each test sample's series keys (n, k) and origin step, in the test split's order, and
    # the panel's first date the steps count from (sales.step_dates): where a sample is from.
    test_keys: np.ndarray | None = None
    test_origins: np.ndarray | None = None
    first_date: np.datetime64 | None = None


HorizonBundle = DataBundle[HorizonFitted, TestContext]


# What the data decided that is no config field: the step in days, and business-day steps.
STEP_KEYS = ("step_days", "weekdays")


def _resolve(c: SalesDataConfig, df: pd.DataFrame) -> tuple[SalesDataConfig, dict[str, Any]]:
    """The config with what the data decided (date format, tables, season for its time step)."""
    resolved = dict(df.attrs.get("resolved", {}))
    sales.check_daily_or_longer(df[c.date_column], c.path)
    step_days = sales.infer_step_days(df[c.date_column].to_numpy())
    sales.check_step(step_days, c.path)
    # The series keys as read (a wide table's, a single series'), not as configured.
    keys = resolved.get("series_keys", c.series_keys)
    sales.check_aligned(df, list(keys), c.date_column, step_days, c.path)
    weekdays = sales.infer_weekdays(df[c.date_column].to_numpy(), step_days)
    sales.check_grid(df, list(keys), c.date_column, step_days, weekdays, c.path)
    if weekdays != 7:  # recorded only where it applies: older runs and others read 7
        resolved["weekdays"] = weekdays
    dflt = SalesDataConfig()
    if c.season == dflt.season:
        resolved["season"] = sales_recipe.auto_season(step_days, weekdays)
    if rolling(c) and c.require_lags == dflt.require_lags:  # the last step and a season back
        resolved["require_lags"] = (1, resolved.get("season", c.season))
    resolved["step_days"] = step_days
    fields = {k: v for k, v in resolved.items() if k not in STEP_KEYS}
    return replace(c, **fields), plain_dict(resolved)


BLEND_NOTES = ("data: no blend of network", "data: the blend weight is chosen")


def _blend_notes(c: SalesDataConfig, n: int) -> tuple[bool, list[str]]:
    """Whether the peer is also fit at the validation origins to choose data.blend_weight
    (``n`` steps up to the earliest), and a first-line note where that history is short."""
    if c.blend_weight != "auto":
        return False, []
    if n <= c.season:  # STL needs every step of the season seen once
        return False, [
            f"{BLEND_NOTES[0]} and {c.peer} (data.blend_weight=auto): {n} steps "
            f"up to the validation origin, not over one season of {c.season} steps to fit the "
            "peer on there; the run goes on with the network alone"
        ]
    if n >= MIN_SEASONS * c.season:
        return True, []
    return True, [
        f"{BLEND_NOTES[1]} with {c.peer} fit on {n} steps up to the "
        f"validation origin, under {MIN_SEASONS} seasons of {c.season} (MSTL then sees each "
        "step of the season once): the peer is weaker there than at the test origin"
    ]


def rolling(c: SalesDataConfig) -> bool:
    """Whether every step of the test and validation spans is an origin of its own (H = 1)."""
    return c.horizon == 1


class HorizonData:
    """Reads the panel, fits the featurizer on training steps, batches origins per split."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def restore(self, run_dir: Path) -> HorizonFitted:
        d = rundir.require_fitted(Path(run_dir), (HorizonFitted.kind, NEXT_STEP_KIND))
        if "horizon" not in d["featurizer"]:  # the former next-step featurizer has none
            raise ArchlabError(
                f"{run_dir}: a run of the former next-step sales forecaster (fitted.json kind "
                f"{NEXT_STEP_KIND!r}, written by archlab 0.1.0, which reads it): next-step "
                "forecasting is now horizon 1 of the one forecaster; train it again"
            )
        if (Path(run_dir) / PEER_FILE).exists():  # the peer's fit at the data's end
            sales_peer.load_fits(Path(run_dir) / PEER_FILE)
        inputs = Path(run_dir) / rundir.INPUTS
        saved = json.loads(rundir.read_recorded(inputs)) if inputs.exists() else {}
        return replace(HorizonFitted.from_dict(d), trained_inputs=saved)

    def build(
        self, device: torch.device, fitted: HorizonFitted | None = None, score_all: bool = False
    ) -> HorizonBundle:
        if score_all:
            refuse_score_all(self.cfg.data.path)
        r = self._read(fitted)
        c, p, n_train, T = r.c, r.p, r.n_train, r.p.y.shape[1]
        given = fitted is not None
        fz = fitted.featurizer if fitted is not None else _fit(r)
        if fitted is None:
            part = p.y[:, :n_train]
            ok = part[~np.isnan(part)]
            fitted = HorizonFitted(fz, r.resolved, float(ok.mean()), float(ok.std()))
        if given and not (fz.series_index(p.keys) >= 0).any():  # not a date problem
            raise ArchlabError(
                f"{c.path}: none of its series were seen in training (e.g. "
                f"{', '.join(map(str, p.keys[0]))}; the run's are e.g. "
                f"{', '.join(map(str, fz.series[0]))}): the run scores the series it was trained on"
            )
        f = fz.transform(p)
        o = _origins(c, T, n_train)
        scored = _scored(c, p, fz)
        roll = rolling(c)
        split = {
            # Training origins whose whole window has last season's steps, as the test
            # origin's has: earlier ones would teach the network a history without them
            # (rolling origins: the required lags of each target step say the same).
            "train": _samples(p, f, c, scored, list(range(r.first_train, o.n_fit - 1)), o.n_fit,
                              not roll),
            "val": _samples(p, f, c, scored, o.val, o.n_val, False, first=n_train),
            "test": _samples(p, f, c, scored, o.tests, T, False, backtest=not roll),
        }  # fmt: skip
        # A saved run scoring other data (eval --data) needs its test origins alone: a file too
        # short to train on may still hold them.
        if len(split["train"][0]) == 0 and roll and not given:
            raise ArchlabError(
                f"{c.path}: no sample left: every series is too short for the required lags "
                f"{list(c.require_lags)} (data.require_lags) in the {n_train} training steps "
                f"({T} steps less data.test_steps={c.test_steps} and "
                f"data.val_steps={c.val_steps}): lower those, give a longer history, or "
                "--set data.require_lags=1 to train without last season's value"
            )
        if len(split["train"][0]) == 0 and not given:
            raise ArchlabError(
                f"{c.path}: no training origin has a season (data.season={c.season} steps) of "
                f"history before its window (data.window={c.window}) in the {n_train} training "
                f"steps: lower data.horizon={c.horizon}, data.val_steps"
                + (f", data.val_gap={c.val_gap}" if c.val_gap else "")
                + ", data.window or data.season (the steps of one cycle), or give a longer "
                "history"
            )
        for k, steps in (("val", c.val_steps), ("test", _test_span(c))):
            # e.g. a stray last date kept by tail_min_coverage=0
            if len(split[k][0]) == 0 and (k == "test" or not given):
                need = " with the history data.require_lags needs" if roll else ""
                raise ArchlabError(
                    f"{c.path}: no {k} samples: none of the {steps} {k} steps has a value{need}; "
                    "check the dates of the panel's last rows"
                )
        rows, row_series, row_origins = _test_rows(c, p, scored, f.cats[:, -1], o.tests)
        peer, peer_note = _peer(c, p, f.cats[:, -1], o, n_train, split, row_series, row_origins)
        if given:  # the blend was chosen in training: its notes are not about this data's run
            peer_note = [n for n in peer_note if not n.startswith(BLEND_NOTES)]
        info = _info(r, fz, o, split, scored)
        if given:  # another data set read with the run's featurizer
            info["series_unknown_to_run"] = int(np.sum(fz.series_index(p.keys) < 0))
        make = _batcher(device, fz, f)
        return DataBundle(
            train=make(split["train"]),
            val=make(split["val"]),
            test=make(split["test"]),
            fitted=fitted,
            info=info,
            splits=_split_ids(p, split, roll),
            notes=_notes(r, info, o, peer_note, None if given else fz),
            context=TestContext(
                rows,
                list(c.series_keys),
                c.date_column,
                peer,
                test_keys=p.keys[split["test"][0]],
                test_origins=split["test"][1],
                first_date=p.dates[0],
            ),
        )

    def _read(self, fitted: HorizonFitted | None) -> _Read:
        """The merged tables as a panel, with every value of the recipe decided (by the
        config, the data or the run) and the training steps it leaves."""
        df = sales.load_sales(self.cfg.data, trained=fitted is not None)
        c, resolved = _resolve(self.cfg.data, df)
        step_days, weekdays = resolved["step_days"], resolved.get("weekdays", 7)
        if fitted is not None:  # another data set read with the run's featurizer
            fz = fitted.featurizer
            sales.check_same_step(df[c.date_column].to_numpy(), fz.step_days, fz.weekdays, c.path)
            # The run's grid (month-end data without a February is still monthly; a short
            # file of business days is still business days).
            step_days, weekdays = fz.step_days, fz.weekdays
        lacking = [] if fitted is None else [
            k for k in fitted.featurizer.covariates if k not in df.columns
        ]  # fmt: skip
        if lacking:  # scored, the network would read values the data does not have
            raise ArchlabError(
                f"{c.path}: no column(s) {lacking}, covariates the run reads (its tables, e.g. "
                "features.csv, beside the file; predict reads a history without them)"
            )
        # data.missing_indicators: the markdowns' "was missing" flags are covariates too.
        flags = [f"{m}_missing" for m in c.markdown_columns if f"{m}_missing" in df.columns]
        if any(k not in c.covariates for k in flags):
            c = replace(c, covariates=(*c.covariates, *(k for k in flags if k not in c.covariates)))
            resolved["covariates"] = list(c.covariates)
        missing = [k for k in c.known_covariates or () if k not in c.covariates]
        if missing:
            raise ArchlabError(
                f"{c.path}: data.known_covariates {missing} are not covariates of the data "
                f"(found {list(c.covariates)})"
            )
        p = sales.build_panel(df, list(c.series_keys), c.date_column, c.target,
                              c.holiday_column, list(c.covariates), step_days,
                              weekdays=weekdays)  # fmt: skip
        T = p.y.shape[1]
        c, why = _recipe(c, df, p, step_days, fitted)
        if fitted is None:
            derived = [k for k in (*RECIPE, *RECIPE_MORE) if why.get(k, "config") != "config"]
            resolved.update(plain_dict({k: getattr(c, k) for k in derived}))
        why = sales_recipe.named(why, config_sources(self.cfg))
        assert c.val_steps is not None and c.val_gap is not None and c.window is not None
        assert c.level_steps is not None
        n_test = _test_span(c)
        n_train = T - n_test - c.val_gap - c.val_steps
        if n_train < 2:
            gap = f" + data.val_gap={c.val_gap}" if c.val_gap else ""
            span = f"data.test_steps={n_test}" if rolling(c) else f"data.horizon={c.horizon}"
            raise ArchlabError(
                f"{c.path}: {T} time steps, but {span} test steps + "
                f"data.val_steps={c.val_steps}{gap} leave {max(n_train, 0)} training steps "
                "(need >= 2): lower data.horizon or data.val_steps"
                + (" or data.val_gap" if c.val_gap else "")
            )
        # The level shift also reads a season back from the origin (data.level_steps steps);
        # rolling origins start where the required lags do (each target checks its own).
        first_train = 0 if rolling(c) else c.season + max(c.window, c.level_steps) - 1
        return _Read(c, resolved, why, df, p, step_days, weekdays, n_train, first_train)


class _Read(NamedTuple):
    c: SalesDataConfig  # every value of the recipe decided
    resolved: dict[str, Any]  # what the data decided (fitted.json's "resolved")
    why: dict[str, str]  # where each recipe value came from
    df: pd.DataFrame  # the merged table
    p: sales.Panel
    step_days: int
    weekdays: int  # 5: business-day steps
    n_train: int  # the first n_train steps are training steps
    first_train: int  # the first training origin


class _Origins(NamedTuple):
    """The forecast origins of each split (steps of the panel)."""

    tests: list[int]  # the test origin (the step before the last H), then each backtest origin
    val: list[int]  # the validation origin (the last training step), then its backtests
    n_val: int  # validation steps are n_train .. n_val - 1
    n_fit: int  # training targets reach steps before this


def _test_span(c: SalesDataConfig) -> int:
    """Steps of the test span: data.test_steps with rolling origins, else the horizon."""
    return c.test_steps if rolling(c) else c.horizon


def _origins(c: SalesDataConfig, n_steps: int, n_train: int) -> _Origins:
    assert c.val_steps is not None
    if rolling(c):  # every step of the span forecast from the step before it
        first_test = n_steps - c.test_steps
        val = list(range(n_train - 1, n_train + c.val_steps - 1))
        return _Origins(list(range(first_test - 1, n_steps - 1)), val, n_train + c.val_steps,
                        n_train)  # fmt: skip
    o_test = n_steps - c.horizon - 1
    # The steps training targets may reach: with fit_through_val every step before the
    # test origin, the val_gap steps included (the model then forecasts as deployed).
    n_fit = o_test + 1 if c.fit_through_val else n_train
    k_back = max(1, c.backtest_origins)
    # Validation from K origins too (data.backtest_origins), each scored on the validation
    # steps alone: a short validation span counts K times, and no step training reaches.
    val = [o for o in range(n_train - 1, n_train - 1 - k_back, -1) if o >= 0]
    return _Origins([o_test - k for k in range(k_back)], val, n_train + c.val_steps, n_fit)


def _fit(r: _Read) -> HorizonFeaturizer:
    c = r.c
    assert c.window is not None and c.level_steps is not None and c.level_weight is not None
    assert c.known_covariates is not None and c.smooth_steps is not None
    return HorizonFeaturizer.fit(
        r.p, r.n_train, series_keys=c.series_keys, covariates=c.covariates,
        known_covariates=c.known_covariates, step_days=r.step_days, season=c.season,
        window=c.window, horizon=c.horizon, events=c.events, min_scale=c.min_scale,
        level_steps=c.level_steps, level_weight=c.level_weight, smooth_steps=c.smooth_steps,
        residual=c.residual if rolling(c) else "smoothed", weekdays=r.weekdays,
    )  # fmt: skip


def _samples(
    p: sales.Panel,
    f: PanelFeatures,
    c: SalesDataConfig,
    scored: np.ndarray,
    origins: list[int],
    limit: int,
    need_ref: bool,
    backtest: bool = False,
    first: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series, origin, targets) of every series with a scored target (``scored``, see
    ``_scored``) from an origin (a step from ``first`` to before ``limit``); ``need_ref``:
    only targets a season after the start.

    ``backtest``: the origins are numbered (0 = the first) in the targets' last column;
    otherwise they all count as one (a training or validation split)."""
    H, T = c.horizon, p.y.shape[1]
    lags, h = naive.season_lags(H, c.season), np.arange(1, H + 1)
    s_all, o_all, targ = [], [], []
    for k, o in enumerate(origins):
        t = o + h
        inside = (t >= first) & (t < limit)
        ok = scored[:, np.minimum(t, T - 1)] & inside[None, :]
        if need_ref:
            ok &= (t - lags >= 0)[None, :]
        s = np.flatnonzero(ok.any(1))
        if not len(s):
            continue
        tt = np.minimum(t, T - 1)
        yn = np.nan_to_num((p.y[s][:, tt] - f.offset[s, None]) / f.scale[s, None])
        tg = SalesTargets(
            scaled=np.where(ok[s], yn, 0.0),
            scale=np.broadcast_to(f.scale[s, None], yn.shape),
            offset=np.broadcast_to(f.offset[s, None], yn.shape),
            holiday=np.broadcast_to(p.holiday[tt] & inside, yn.shape),
            observed=ok[s],
            origin=np.full(yn.shape, k if backtest else 0),
        ).pack()
        s_all.append(s)
        o_all.append(np.full(len(s), o))
        targ.append(tg)
    if not s_all:
        return (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, H, len(SalesTargets._fields))),
        )
    return np.concatenate(s_all), np.concatenate(o_all), np.concatenate(targ)


def _batcher(
    device: torch.device, fz: HorizonFeaturizer, f: PanelFeatures
) -> Callable[[tuple], Batches]:
    """``make(samples)``: the Batches of (series, origin, targets), windows gathered per batch."""
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

    return make


def _scored(c: SalesDataConfig, p: sales.Panel, fz: HorizonFeaturizer) -> np.ndarray:
    """(S, T) the (series, step) pairs a split may score: every observed one, and with rolling
    origins only those of a series with training steps whose ``data.require_lags`` steps are
    observed (the next-step samples)."""
    ok = ~np.isnan(p.y)
    if not rolling(c):
        return ok
    need = ok & (fz.series_index(p.keys) >= 0)[:, None]
    last_open = naive.last_open_step(p.y)
    for lag in c.require_lags:
        before = np.zeros_like(ok)  # a lag longer than the panel: no step has it
        before[:, lag:] = ok[:, : max(0, ok.shape[1] - lag)]
        if lag == 1:  # the step before, or past closed steps the last open one (a Monday's
            # Saturday where shops close on Sundays: every Monday was left out)
            before[:, 1:] = ok[:, last_open[:-1]]
        need &= before
    return need


def _test_rows(
    c: SalesDataConfig,
    p: sales.Panel,
    scored: np.ndarray,
    groups: np.ndarray,
    origins: list[int],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per scored (series, step) after each test origin (``_scored``, up to the last
    step): keys, date, step, origin number (0 for every rolling origin), actual, holiday and
    every naive baseline; and the panel row and origin of each."""
    H, keys, T = c.horizon, list(c.series_keys), p.y.shape[1]
    level = (c.level_steps, c.level_weight) if c.level_steps else None
    ctx_rows, row_series, row_origins = [], [], []
    for k, o in enumerate(origins):
        base = naive.all_baselines(p.y, o, H, c.season, groups, SVD_RANK, level, c.smooth_steps)
        if rolling(c):  # the next-step baselines (and their metric names) too
            base.update(naive.next_step_baselines(p.y, o, H, c.season))
        s, hh = np.nonzero(scored[:, o + 1 : min(o + 1 + H, T)])
        t = o + 1 + hh
        row_series.append(s)
        row_origins.append(np.full(len(s), o))
        ctx_rows.append(
            pd.DataFrame(
                {
                    **{key: p.keys[s, i] for i, key in enumerate(keys)},
                    c.date_column: p.dates[t],
                    "step": hh + 1,
                    "origin": 0 if rolling(c) else k,
                    "actual": p.y[s, t],
                    "holiday": p.holiday[t],
                    **{n: b[s, hh] for n, b in base.items()},
                }
            )
        )
    rows = pd.concat(ctx_rows, ignore_index=True)
    return rows, np.concatenate(row_series), np.concatenate(row_origins)


def _peer(
    c: SalesDataConfig,
    p: sales.Panel,
    groups: np.ndarray,
    o: _Origins,
    n_train: int,
    split: dict[str, tuple],
    row_series: np.ndarray,
    row_origins: np.ndarray,
) -> tuple[PeerInputs | None, list[str]]:
    """The statistical peer's inputs (None: data.peer=none, or too short a history) and a
    first-line note on what it could not do."""
    if c.peer == "none":
        return None, []
    # Rolling origins: one fit at the first of a split (the rest roll on it).
    k_back, o_test = (1 if rolling(c) else len(o.tests)), o.tests[0]
    # The earliest origin has the shortest history; MSTL needs MIN_SEASONS seasons.
    if o_test - k_back + 2 < MIN_SEASONS * c.season:
        return None, [
            f"data: no {c.peer} peer (data.peer): {o_test - k_back + 2} steps up to the "
            f"{'earliest ' if k_back > 1 else ''}test origin, under the {MIN_SEASONS} "
            f"seasons of {c.season} steps (data.season) its MSTL needs; the run goes on "
            "without it"
        ]
    blend, note = _blend_notes(c, n_train - k_back + 1)
    val_origins = split["val"][1] if blend else None
    y = sales.fill_blank_cells(p, c.season)
    return PeerInputs(c.peer, y, o.tests, c.season, groups, SVD_RANK, row_series, val_origins,
                      split["val"][0], split["test"][0], split["test"][1], row_origins,
                      rolling(c)), note  # fmt: skip


def _info(
    r: _Read, fz: HorizonFeaturizer, o: _Origins, split: dict[str, tuple], scored: np.ndarray
) -> dict[str, Any]:
    """data.json's facts: the source, the panel, the recipe, the origins and the splits."""
    c, dates, n_train, n_fit = r.c, r.p.dates, r.n_train, o.n_fit
    S, T = r.p.y.shape
    observed, seen = ~np.isnan(r.p.y), fz.series_index(r.p.keys) >= 0
    targets = {  # the step of each scored target of each split
        k: (v[1][:, None] + np.arange(1, c.horizon + 1))[
            SalesTargets.unpack(v[2], horizon=True).observed > 0.5
        ]
        for k, v in split.items()
    }
    o_test = o.tests[0]
    roll = rolling(c)

    def span(a: int, b: int) -> str:
        return f"{str(dates[a])[:10]}..{str(dates[b])[:10]}"

    info = {
        **source_info(c, r.resolved),
        "framing": "forecast" if rolling(c) else "horizon",
        "n_rows": len(r.df),
        "read": r.df.attrs.get("read", {}),
        "n_series": S,
        "n_steps": T,
        "step_days": r.step_days,
        "time_step": (
            f"calendar {sales.step_unit(r.step_days)}"
            if sales.months_per_step(r.step_days)
            else "business day"
            if r.weekdays == sales.BUSINESS
            else f"{r.step_days} days"
        ),
        "horizon": c.horizon,
        "window": c.window,
        "val_dates": span(n_train, o.n_val - 1),
        "val_gap": c.val_gap,
        "correction_scale": c.correction_scale,
        "input_size": fz.input_size,
        "feature_names": fz.feature_names,
        "known_covariates": list(c.known_covariates or ()),
        "recipe": {
            k: {"value": plain_dict({k: getattr(c, k)})[k], "from": r.why[k]}
            for k in (*RECIPE, *RECIPE_MORE)
            if k in r.why
        },
        "origins": {
            # the origins of actual training samples: the first needs its lags' history
            "train": span(*_range(split["train"][1], r.first_train, n_fit - 2)),
            "val": span(o.val[0], o.val[-1]) if roll else str(dates[n_train - 1])[:10],
            "val_backtest": [] if roll else [str(dates[v])[:10] for v in o.val],
            "test": span(o.tests[0], o.tests[-1]) if roll else str(dates[o_test])[:10],
            "backtest": [] if roll else [str(dates[t])[:10] for t in o.tests],
        },
        "split_sizes": {k: len(v[0]) for k, v in split.items()},
        "split_target_steps": {k: len(t) for k, t in targets.items()},
        # A split without samples (eval --data on a file too short to train on) has no dates.
        "split_first_date": {k: str(dates[t.min()])[:10] for k, t in targets.items() if len(t)},
        "split_last_date": {k: str(dates[t.max()])[:10] for k, t in targets.items() if len(t)},
        "test_first_date": str(dates[o_test + 1])[:10],
        "test_last_date": str(dates[T - 1])[:10],
        # Observed steps no split scores: series without training steps, required lags missing.
        "series_without_training_steps": int(S - len(fz.series)),
        "rows_without_training_steps": int(observed[~seen].sum()),
        "rows_missing_lags": int((observed & seen[:, None] & ~scored).sum()),
        "event_steps": [
            str(d)[:10]
            for d in dates[sales.event_flags(dates, fz.events, r.step_days, r.weekdays) > 0]
        ],
    }
    ends = _series_ends(~np.isnan(r.p.y), dates, o_test, roll)
    if ends:
        info["series_ending_early"] = ends["count"]
    return info


def _range(origins: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The first and last of ``origins`` (``first``, ``last`` where there is none)."""
    return (int(origins.min()), int(origins.max())) if len(origins) else (first, last)


def _one_step_note(c: SalesDataConfig, sizes: dict[str, int]) -> list[str]:
    """Next-step runs whose test or validation is one step (quarterly data: a quarter of a
    year): a first line, as the choices and the test metrics rest on one row per series."""
    if not rolling(c) or min(c.test_steps, c.val_steps or 0) > 1:
        return []
    return [
        f"data: test {c.test_steps} and validation {c.val_steps} step(s), {sizes['test']} and "
        f"{sizes['val']} targets: the test metrics, the correction scale and the blend weight "
        "rest on that few rows; raise data.test_steps and data.val_steps where the history allows"
    ]


def _unseen_note(r: _Read, fz: HorizonFeaturizer) -> list[str]:
    """Series without a value in the training steps: a first line, as no split scores them
    and predict forecasts none of them with the network."""
    unseen = np.flatnonzero(fz.series_index(r.p.keys) < 0)
    if not len(unseen):
        return []
    first = r.p.dates[np.argmax(~np.isnan(r.p.y[unseen[0]]))]
    return [
        f"data: {len(unseen)} of {len(r.p.keys)} series have no value in the training steps "
        f"(e.g. {', '.join(map(str, r.p.keys[unseen[0]]))}, first on {str(first)[:10]}): "
        "left out of training and test, and predict gives them no network forecast"
    ]


def _split_ids(p: sales.Panel, split: dict[str, tuple], roll: bool) -> dict[str, list[int]]:
    """split.json: per split, series * T + origin of each sample; with rolling origins the
    merged table's row of each sample's target step (the row it forecasts)."""
    T = p.y.shape[1]
    if not roll:
        return {k: (v[0] * T + v[1]).tolist() for k, v in split.items()}
    row_of = np.full(p.y.shape, -1, dtype=np.int64)
    row_of[p.row_series, p.row_time] = np.arange(len(p.row_series))
    return {k: row_of[v[0], v[1] + 1].tolist() for k, v in split.items()}


def _head(c: SalesDataConfig, r: _Read, info: dict[str, Any]) -> str:
    """The run's first line: what was read, skipped and inferred, and what the test forecasts."""
    left_out = r.df.attrs.get("read", {}).get("tables_not_joined", [])
    skipped = [
        f"{k.removesuffix('_file')} table not joined"
        if k in left_out
        else f"no {k.removesuffix('_file')} table"
        for k in ("stores_file", "features_file")
        if r.resolved.get(k) == ""
    ] + (["no holiday column (WMAE = MAE)"] if r.resolved.get("holiday_column") == "" else [])
    fmt = f"dates {c.date_format}" + (" (inferred)" if "date_format" in r.resolved else "")
    step = sales.step_adjective(r.step_days, r.weekdays)
    test = (
        f"an origin per step of the last {c.test_steps} (test)"
        if rolling(c)
        else f"horizon {c.horizon} steps"
    )
    return (
        f"data: {c.path} ({info['input']}), {info['n_series']} series x {info['n_steps']} "
        f"{step} steps; {fmt}; season {c.season} steps; {test}" + "".join(f"; {k}" for k in skipped)
    )


def _notes(
    r: _Read,
    info: dict[str, Any],
    o: _Origins,
    peer_note: list[str],
    fz: HorizonFeaturizer | None,
) -> list[str]:
    """The run's first lines: the panel, the origins and targets of each split, the peer,
    the recipe, series ending early and what reading found (``fz``: the featurizer fitted on
    this data, None for a run's on other data)."""
    c, k_back = r.c, len(o.tests)
    orig, sizes = info["origins"], info["split_target_steps"]
    if rolling(c):  # one origin per step: no backtests
        k_back = 1
    ends = _series_ends(~np.isnan(r.p.y), r.p.dates, o.tests[0], rolling(c))
    return [
        _head(c, r, info),
        f"data: origins train {orig['train']} ({sizes['train']} targets), val "
        f"{orig['val']} ({sizes['val']}"
        + (f" over {len(o.val)} origins" if len(o.val) > 1 and not rolling(c) else "")
        + (f"; then {c.val_gap} steps in no split" if c.val_gap else "")
        + ("; training targets reach the test origin" if c.fit_through_val else "")
        + f"), test {orig['test']} ({sizes['test']} targets"
        + (f" over {k_back} backtest origins)" if k_back > 1 else ")"),
        *peer_note,  # before training starts: the run goes on without this baseline
        *sales_recipe.describe(c, r.why),
        *([ends["note"]] if ends else []),
        *(_unseen_note(r, fz) if fz is not None else []),
        *_one_step_note(c, sizes),
        *_weekday_note(r),
        *_holiday_note(r),
        *_month_day_note(r),
        *sales.reading_notes(r.df),
    ]


def _holiday_note(r: _Read) -> list[str]:
    """A holiday column that differs between series on a date (a per-store promotion flag,
    say): a first line, as a step is a holiday for every series where any row flags it (its
    WMAE weight of 5 and the network's input alike)."""
    col, date = r.c.holiday_column, r.c.date_column
    if not col or col not in r.df.columns:
        return []
    flags = r.df[col].astype(bool).groupby(r.df[date])
    mixed = int((flags.any() != flags.all()).sum())
    if not mixed:
        return []
    return [
        f"data: the holiday column {col} differs between series on {mixed} date(s): a date is "
        "a holiday for every series where any row flags it (a WMAE weight of 5, an input of the "
        "network); WMAE weighs holidays by date, as Walmart's files flag them"
    ]


def _weekday_note(r: _Read) -> list[str]:
    """Daily data with no row on any weekend (trading or business days): a first line, as
    its steps are business days."""
    if r.weekdays != sales.BUSINESS:
        return _sparse_weekdays(r)
    return [
        "data: no row falls on a Saturday or Sunday: read as business days, Monday to Friday, "
        "each a step (a Friday's next step is the Monday; a week is 5 steps)",
        *_sparse_weekdays(r),
    ]


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _sparse_weekdays(r: _Read) -> list[str]:
    """Daily data where a day of the week has rows on under half of its dates (shops closed on
    Sundays, one Saturday opening in business days): a first line, as those days are steps
    without a value, and a forecast step can fall on one."""
    t = r.c.target  # a closed day may be written as rows with an empty value
    valued = r.df[t].notna().to_numpy() if t in r.df.columns else np.ones(len(r.df), bool)
    d = np.unique(r.df[r.c.date_column].to_numpy()[valued].astype("datetime64[D]"))
    if r.step_days != 1 or len(d) < sales.MIN_BUSINESS_DATES:
        return []
    span = np.arange(d[0], d[-1] + np.timedelta64(1, "D"))
    day = sales.weekday(span)
    if r.weekdays == sales.BUSINESS:  # weekends are no steps: only closed weekdays are said
        span, day = span[day < 5], day[day < 5]
    has = np.isin(span, d)
    sparse = sales.rare_weekdays(day, has)
    if not sparse:
        return []
    said = ", ".join(f"{has[day == k].sum()} of {(day == k).sum()} {DAY_NAMES[k]}s"
                     for k in sparse)  # fmt: skip
    weekend = sparse == [5, 6] and has[day >= 5].any()  # business days plus a few weekend rows
    hint = "; drop the weekend rows to step by business days (Monday to Friday)"
    return [
        f"data: {sales.step_adjective(1, r.weekdays)} steps, but rows on only {said}: each "
        "such day is a step without "
        "a value (the statistical peer reads it as no sales) and a forecast step can fall on one"
        + (hint if weekend else "")
    ]


def _month_day_note(r: _Read) -> list[str]:
    """Steps of months whose rows fall on other days than the steps' (monthly totals dated on
    the day they were booked): a first line, as each row is read as its calendar month."""
    k = sales.months_per_step(r.step_days)
    d = np.unique(r.df[r.c.date_column].to_numpy().astype("datetime64[D]"))
    off = d[~np.isin(d, r.p.dates.astype("datetime64[D]"))]
    if not k or not len(off):
        return []
    step = r.p.dates[sales.time_index(off[:1], r.p.dates[0], r.step_days)[0]]
    unit = sales.step_unit(r.step_days)
    return [
        f"data: {len(off)} of {len(d)} dates fall on another day of their {unit} than its step "
        f"(e.g. {off[0]}, step dated {str(step)[:10]}): each row is read as the calendar "
        f"{unit} it falls in, the steps dated on the first date's day"
    ]


def _recipe(
    c: SalesDataConfig,
    df: pd.DataFrame,
    p: sales.Panel,
    step_days: int,
    fitted: HorizonFitted | None,
) -> tuple[SalesDataConfig, dict[str, str]]:
    """``c`` with every value of the recipe (RECIPE and known_covariates) decided, by the
    config, the data or the run (``fitted``), and where each came from; the checks they need."""
    T = p.y.shape[1]
    H = c.horizon
    if fitted is not None:  # the featurizer holds what it was fitted with (older runs too)
        fz = fitted.featurizer
        c = replace(fitted.data_config(c), window=fz.window, level_steps=fz.level_steps,
                    level_weight=fz.level_weight, smooth_steps=fz.smooth_steps,
                    known_covariates=fz.known_covariates)  # fmt: skip
        more = RECIPE_MORE if rolling(c) else ("known_covariates",)
        why = {k: "run" for k in (*RECIPE, *more)}
    else:
        sales_recipe.check_season(c, c.season, T)
        c, why = sales_recipe.derive(c, step_days, c.season, T, p.weekdays)
        why["known_covariates"] = "config"
        if c.known_covariates is None:
            known = future_known(df, c, list(c.covariates), step_days, H, p.weekdays)
            c = replace(c, known_covariates=known)
            steps = "the step" if H == 1 else f"the {H} steps"
            why["known_covariates"] = f"data: with values on {steps} after the last date"
    assert c.val_steps is not None and c.val_gap is not None and c.window is not None
    assert c.level_steps is not None
    _check_known(c, p, T - _test_span(c))
    if c.backtest_origins > c.val_steps + 1:
        raise ArchlabError(
            f"invalid config value data.backtest_origins={c.backtest_origins}: at most "
            f"data.val_steps + 1 = {c.val_steps + 1}"
        )
    if rolling(c) and c.backtest_origins:
        raise ArchlabError(
            f"invalid config value data.backtest_origins={c.backtest_origins}: with "
            "data.horizon=1 every test step is an origin of its own already"
        )
    if c.level_weight is None:
        n_train = T - _test_span(c) - c.val_gap - c.val_steps
        first = c.season + max(c.window, c.level_steps) - 1
        w = sales_recipe.level_weight(p.y, n_train, first, c) if c.level_steps else 0.0
        c = replace(c, level_weight=w)
        why["level_weight"] = (
            "data: fits the training origins best as a plain rule"
            if c.level_steps
            else "data: no level shift"
        )
    why.setdefault("level_weight", "config")
    return c, why


def _series_ends(
    observed: np.ndarray, dates: np.ndarray, o_test: int, roll: bool = False
) -> dict[str, Any]:
    """How many series end before the panel's last step, and a line saying how the test origin
    was chosen despite them ({} when every series reaches the last step)."""
    S, T = observed.shape
    has = observed.any(1)
    last = np.where(has, T - 1 - np.argmax(observed[:, ::-1], 1), -1)
    early = np.flatnonzero(has & (last < T - 1))
    if not len(early):
        return {}
    before = int(np.sum(has & (last <= o_test)))
    return {
        "count": len(early),
        "note": (
            f"data: {len(early)} of {S} series end before the last date {str(dates[-1])[:10]} "
            f"(the earliest on {str(dates[last[early].min()])[:10]}); the "
            + ("first test origin" if roll else "test origin")
            + f", {str(dates[o_test])[:10]}, is "
            + ("data.test_steps" if roll else "the horizon")
            + " before the last date that at least "
            "data.tail_min_coverage of the busiest date's series reach, the same for every "
            "series"
            + (f"; {before} series with no value after it are not scored" if before else "")
        ),
    }


def _check_known(c: SalesDataConfig, p: sales.Panel, first_test: int) -> None:
    """A covariate declared known in advance needs a value wherever a test step is forecast:
    a gap there means it is not known in advance (the network would read a filled-in value)."""
    assert c.known_covariates is not None
    covs = list(c.covariates)
    observed = ~np.isnan(p.y[:, first_test:])
    for name in c.known_covariates:
        gap = np.isnan(p.cov[:, first_test:, covs.index(name)]) & observed
        if gap.any():
            s, h = np.argwhere(gap)[0]
            raise ArchlabError(
                f"{c.path}: data.known_covariates {name!r} has no value for series "
                f"{tuple(plain(v) for v in p.keys[s])} on {str(p.dates[first_test + h])[:10]} "
                "(a test step): a covariate known in advance needs one on every step forecast; "
                "fill it in or drop it from data.known_covariates"
            )
