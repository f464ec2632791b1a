"""The forecaster's featurizer: one fitted featurizer for train, eval, predict and explain.

``HorizonFeaturizer.fit`` learns per-series scalers, covariate statistics and series-key
vocabularies from the training steps; ``transform`` turns any panel of the same data (at
predict time the history plus H empty future steps) into per-step arrays; ``windows``
gathers, for (series, origin) pairs, ``window`` history steps ending at the origin followed by
the H future steps, in which only what is known in advance is kept (calendar, holiday and
event flags, last season's sales, the covariates declared known).

Last season's reference for a future step h is ``season_lags(H, season)[h]`` steps earlier;
its ``smooth_steps``-step smoothing is also the residual base the network corrects, plus
``level_weight`` x the level shift with ``level_steps`` > 0 (see data/sales_baselines.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import numpy as np
import pandas as pd
import torch

from archlab.data import sales, sales_csv
from archlab.data.sales import (
    FOUR_WEEKS,
    Panel,
    PlainJSON,
    event_flags,
    ffill_time,
    group_mean,
    plain,
    series_scalers,
)
from archlab.data.sales_baselines import level_shift, season_lags
from archlab.errors import ArchlabError

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig

# Features of the step itself (sales and observed are zeroed on future steps: unknown).
STEP_FEATURES = ("sales", "observed", "holiday", "event", "season_sin", "season_cos")
UNKNOWN_IN_FUTURE = ("sales", "observed")
# Features of the step's reference a season earlier (see the module docstring).
REF_FEATURES = ("ref_sales", "ref_observed", "ref_smoothed", "ref_group_smoothed", "ref_event")
FLAG_FEATURES = ("future", "steps_ahead")  # 1 on future steps; h / H on future steps
LEVEL_FEATURE = "level_shift"  # on future steps, with data.level_steps > 0 (see level_shift)
COV_CLIP = 5.0  # standardized covariates are clipped to +-5 training standard deviations


class PanelFeatures(NamedTuple):
    """Per-step arrays of one panel, in the featurizer's scaled units."""

    step: np.ndarray  # (S, T, len(STEP_FEATURES) + C) float32
    # (S, T, 8) sales, observed, smoothed-3, smoothed-2, group-3, group-2, event, and the level
    # shift with the step as origin (0 without data.level_steps)
    ref: np.ndarray
    y: np.ndarray  # (S, T) sales in sales units, NaN where missing
    offset: np.ndarray  # (S,) per-series scaler (offset 0 / scale min_scale for unknown series)
    scale: np.ndarray
    cats: np.ndarray  # (S, k) series-key ids (0 for a value never seen in training)


@dataclass(frozen=True)
class HorizonFeaturizer(PlainJSON):
    """What the forecaster learned from the training steps (plain values, fitted.json)."""

    series_keys: tuple[str, ...]
    series: tuple[tuple[Any, ...], ...]  # key values of every training series
    offset: tuple[float, ...]  # per-series mean / std of training steps (sales units)
    scale: tuple[float, ...]
    key_vocab: tuple[tuple[Any, ...], ...]  # sorted values of each series key: embedding ids
    covariates: tuple[str, ...]
    known_covariates: tuple[str, ...]  # kept on future steps; the rest are zeroed there
    cov_mean: tuple[float, ...]
    cov_std: tuple[float | None, ...]  # None: constant in training (enters as zeros)
    step_days: int
    season: int
    window: int
    horizon: int
    events: tuple[str, ...] = ()
    min_scale: float = 1.0
    # Defaults keep fitted.json files of runs from before the level shift readable.
    level_steps: int = 0
    level_weight: float = 0.0
    smooth_steps: int = 3  # the default reads fitted.json files from before it existed
    # The residual base: "smoothed" (last season's smoothing, plus the level shift), or one of
    # data.residual's naive forecasts (rolling origins, H = 1: the next step's own base).
    residual: str = "smoothed"
    weekdays: int = 7  # 5: business-day steps (sales.infer_weekdays); 7 in older runs
    # How step_days reads: 2, 28 days are 4-week periods; 1 (older runs), 28 was a month.
    step_scheme: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        if "step_scheme" not in d and d.get("step_days") == FOUR_WEEKS:
            d = {**d, "step_days": 30}  # a month, as monthly runs are written now
        return super().from_dict(d)

    @classmethod
    def fit(
        cls,
        panel: Panel,
        n_train: int,
        *,
        series_keys: Sequence[str],
        covariates: Sequence[str],
        known_covariates: Sequence[str],
        step_days: int,
        season: int,
        window: int,
        horizon: int,
        events: Sequence[str] = (),
        min_scale: float = 1.0,
        level_steps: int = 0,
        level_weight: float = 0.0,
        smooth_steps: int = 3,
        residual: str = "smoothed",
        weekdays: int = 7,
    ) -> HorizonFeaturizer:
        """Fit on the first ``n_train`` steps: each series' mean and std (a series without
        training steps has no scaler: it is not "known"), each covariate's mean and std (None
        where constant there, e.g. markdowns NA before Nov 2011: it would teach nothing and be
        far out of range later, so it enters as 0) and each key's values; the keyword
        arguments are the recipe, kept as given (see the fields)."""
        offset, scale, n_obs = series_scalers(panel.y, n_train, min_scale)
        keep = n_obs > 0
        S, _, C = panel.cov.shape
        train = panel.cov[:, :n_train].reshape(S * n_train, C)
        with np.errstate(invalid="ignore"):
            mean = np.nan_to_num(np.nanmean(train, 0))
            std = np.nan_to_num(np.nanstd(train, 0), nan=0.0)
        keys = [pd.unique(pd.Series(panel.keys[:, i])).tolist() for i in range(panel.keys.shape[1])]
        return cls(
            series=tuple(tuple(plain(v) for v in k) for k in panel.keys[keep].tolist()),
            offset=tuple(np.nan_to_num(offset[keep]).tolist()),
            scale=tuple(scale[keep].tolist()),
            key_vocab=tuple(tuple(sorted(plain(x) for x in k)) for k in keys),
            cov_mean=tuple(mean.tolist()),
            cov_std=tuple(v if v > 0 else None for v in std.tolist()),
            series_keys=tuple(series_keys),
            covariates=tuple(covariates),
            known_covariates=tuple(known_covariates),
            step_days=int(step_days),
            season=int(season),
            window=int(window),
            horizon=int(horizon),
            events=tuple(events),
            min_scale=float(min_scale),
            level_steps=int(level_steps),
            level_weight=float(level_weight),
            smooth_steps=int(smooth_steps),
            residual=str(residual),
            weekdays=int(weekdays),
        )

    @property
    def n_categories(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.key_vocab)

    @property
    def constant_covariates(self) -> list[str]:
        return [k for k, v in zip(self.covariates, self.cov_std, strict=True) if v is None]

    def series_index(self, keys: np.ndarray) -> np.ndarray:
        """Index of each panel series among the training series (-1: never seen in training)."""
        return match_keys(self.series, keys)

    def key_ids(self, keys: np.ndarray) -> np.ndarray:
        """(S, k) index of each series key value in the vocabulary (0 for one never seen)."""
        vocab = [{v: j for j, v in enumerate(vs)} for vs in self.key_vocab]
        text = [{str(v): j for j, v in enumerate(vs)} for vs in self.key_vocab]  # as above
        ids = [[vocab[i].get(plain(v), text[i].get(str(v), 0)) for i, v in enumerate(k)]
               for k in keys.tolist()]  # fmt: skip
        return np.array(ids, dtype=np.int64).reshape(len(keys), len(vocab))

    def scalers(
        self, idx: np.ndarray, unknown: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offset and scale of each series index; a series never seen (-1) gets ``unknown``
        (offset, scale)."""
        seen = idx >= 0
        offset = np.where(seen, np.array((*self.offset, unknown[0]))[idx], unknown[0])
        return offset, np.where(seen, np.array((*self.scale, unknown[1]))[idx], unknown[1])

    def standardized(self, cov: np.ndarray) -> np.ndarray:
        """(S, T, C) covariates forward-filled over gaps, standardized and clipped (later
        steps can drift beyond the training range: CPI, fuel price); NaN before a series'
        first value."""
        mean = np.array(self.cov_mean, np.float64)
        std = np.array([np.inf if v is None else v for v in self.cov_std], np.float64)
        return np.clip((ffill_time(cov) - mean) / std, -COV_CLIP, COV_CLIP)

    # --- sizes ---
    @property
    def feature_names(self) -> list[str]:
        level = [LEVEL_FEATURE] if self.level_steps else []
        return [*STEP_FEATURES, *self.covariates, *REF_FEATURES, *FLAG_FEATURES, *level]

    @property
    def input_size(self) -> int:
        return len(self.feature_names)

    def transform(self, panel: Panel) -> PanelFeatures:
        """Per-step arrays of ``panel`` (any panel of the same data: steps may extend past it)."""
        S, T = panel.y.shape
        offset, scale = self.scalers(self.series_index(panel.keys), (0.0, self.min_scale))
        cats = self.key_ids(panel.keys)
        y0 = np.nan_to_num(panel.y)  # a missing week counts as no sales
        prev = np.concatenate([np.zeros((S, 1)), y0[:, :-1]], 1)
        nxt = np.concatenate([y0[:, 1:], np.zeros((S, 1))], 1)
        sm3, sm2 = (prev + y0 + nxt) / 3, (prev + y0) / 2
        if self.smooth_steps == 1:  # last season's step alone
            sm3 = sm2 = y0

        def scaled(a: np.ndarray) -> np.ndarray:
            return (a - offset[:, None]) / scale[:, None]

        groups = cats[:, -1]
        n_groups = int(groups.max()) + 1 if S else 0
        day = (panel.dates - panel.dates.astype("datetime64[Y]")) / np.timedelta64(1, "D")
        angle = np.broadcast_to(2 * np.pi * day / 365.25, (S, T))  # the step's place in its year
        sin, cos = np.sin(angle), np.cos(angle)
        ev = event_flags(panel.dates, self.events, self.step_days, self.weekdays)
        ev = np.broadcast_to(ev, (S, T))
        cols = [
            scaled(y0),
            ~np.isnan(panel.y),
            np.broadcast_to(panel.holiday, (S, T)),
            ev,
            sin,
            cos,
        ]
        step = np.stack(cols, -1).astype(np.float32)
        if self.covariates:
            cov = np.nan_to_num(self.standardized(panel.cov)).astype(np.float32)
            step = np.concatenate([step, cov], -1)
        sm3n, sm2n = scaled(sm3), scaled(sm2)
        level = np.zeros((S, T))
        if self.level_steps:  # the baseline's own level shift, in scaled units (offsets cancel)
            level = level_shift(panel.y, np.arange(T), self.season, self.level_steps)
            level /= scale[:, None]
        ref = np.stack(
            [
                scaled(y0),
                ~np.isnan(panel.y),
                sm3n,
                sm2n,
                group_mean(sm3n, groups, n_groups)[groups],
                group_mean(sm2n, groups, n_groups)[groups],
                ev,
                level,
            ],
            -1,
        ).astype(np.float32)
        return PanelFeatures(np.nan_to_num(step), np.nan_to_num(ref), panel.y, offset, scale, cats)

    def windows(
        self, step: torch.Tensor, ref: torch.Tensor, s: torch.Tensor, origin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Network inputs (N, window + H, F) for (series, origin) pairs, and the residual base
        (N, H): last season's smoothing of each future step, in scaled units."""
        W, H, dev = self.window, self.horizon, step.device
        lags = torch.from_numpy(season_lags(H, self.season)).to(dev)
        rel = torch.arange(-W + 1, H + 1, device=dev)  # positions relative to the origin
        t = origin[:, None] + rel[None, :]  # (N, W+H)
        future = rel > 0
        ref_lag = torch.where(future, lags[(rel - 1).clamp(min=0, max=H - 1)], self.season)
        r = t - ref_lag[None, :]
        x = step[s[:, None], t.clamp(min=0, max=step.shape[1] - 1)] * (t >= 0)[..., None]
        unknown = [STEP_FEATURES.index(k) for k in UNKNOWN_IN_FUTURE]
        unknown += [
            len(STEP_FEATURES) + i
            for i, k in enumerate(self.covariates)
            if k not in self.known_covariates
        ]
        keep = torch.ones(x.shape[-1], device=dev)
        keep[unknown] = 0.0
        x = torch.where(future[None, :, None], x * keep, x)
        g = ref[s[:, None], r.clamp(min=0)] * (r >= 0)[..., None]  # (N, W+H, 8)
        # A future step whose reference is the origin itself (h a multiple of the season)
        # cannot see the step after it: its smoothing is over 2 steps.
        two = (future & (ref_lag == rel))[None, :, None]
        sm = torch.where(two, g[..., [3, 5]], g[..., [2, 4]])
        fl = torch.stack([future.float(), torch.where(future, rel / H, 0.0)], -1)
        ref_x = torch.cat([g[..., :2], sm, g[..., 6:7]], -1)
        x = torch.cat([x, ref_x, fl[None].expand(len(s), -1, -1)], -1)
        base = sm[:, W:, 0]
        if self.residual != "smoothed":  # the origin's step and last season's, as observed
            last = torch.where(x[:, W - 1, 1] > 0.5, x[:, W - 1, 0], torch.nan)[:, None]
            seas = torch.where(g[:, W:, 1] > 0.5, g[:, W:, 0], torch.nan)
            base = naive_base(self.residual, last.expand_as(seas), seas)
        if self.level_steps:
            shift = ref[s, origin, 7]
            x = torch.cat([x, torch.where(future[None, :], shift[:, None], 0.0)[..., None]], -1)
            base = base + self.level_weight * shift[:, None]
        return x, base


def naive_base(residual: str, last: torch.Tensor, seas: torch.Tensor) -> torch.Tensor:
    """The base of ``data.residual`` from the origin's step and last season's (NaN: missing):
    where the chosen one is missing, the other, then 0 (the series' training mean)."""
    if residual == "none":
        return torch.zeros_like(seas)
    both = torch.stack([last, seas])
    pick = {"last_step": [0], "last_week": [0], "seasonal": [1], "mean": [0, 1]}[residual]
    b = torch.nanmean(both[pick], 0)
    return torch.nan_to_num(torch.where(torch.isnan(b), torch.nanmean(both, 0), b))


# --- predict time: the history plus H future steps ---
def read_forecast_rows(path: Path, c: SalesDataConfig) -> pd.DataFrame:
    """Rows to forecast (series keys, date[, holiday flag][, known covariates]), e.g. Walmart's
    test.csv or a shop's file of future days with their planned promotions."""
    keys = c.series_keys
    df = sales.with_single_key(
        sales_csv.read_csv(
            path, [*sales.key_columns(keys), c.date_column], c.encoding, [*keys, c.store_column]
        ),
        keys,
    )
    sales_csv.parse_dates(df, c.date_column, sales.date_format_given(c), path)
    if c.holiday_column in df.columns:
        sales_csv.parse_bool(df, c.holiday_column, path)
    # Flags written as words (yes/no) read as training reads them: 1/0.
    sales_csv.parse_covariates(df, list(c.known_covariates), path)
    sales_csv.check_unique(df, list(c.series_keys), c.date_column, path)
    return df


def _features_table(c: SalesDataConfig) -> pd.DataFrame | None:
    """The features table as load_sales prepares it (forward-filled per store, markdowns 0)."""
    given = Path(c.path)
    root = given if given.is_dir() else given.parent
    if not c.features_file or not (
        (root / c.features_file).exists() or (root / f"{c.features_file}.gz").exists()
    ):
        return None
    path = sales_csv.resolve_file(root, c.features_file)
    feats = sales_csv.read_csv(path, [c.store_column, c.date_column], c.encoding, [c.store_column])
    sales_csv.parse_dates(feats, c.date_column, c.date_format, path)
    feats = sales.ffill_per_store(feats, c, c.store_column)
    for k in c.markdown_columns:
        if k in feats.columns:
            feats[k] = feats[k].fillna(0.0)
    return feats


def _at(table: pd.DataFrame, on: list[str], name: str, keys: list[np.ndarray],
        dates: np.ndarray) -> np.ndarray:  # fmt: skip
    """``table[name]`` looked up at every (key..., date) of ``keys`` x ``dates``: (S, H)."""
    look = table.set_index([*on])[name]
    look = look[~look.index.duplicated()]
    H = len(dates)
    at = pd.MultiIndex.from_arrays(
        [*(np.repeat(k, H) for k in keys), np.tile(dates.astype("datetime64[ns]"), len(keys[0]))]
    )
    return look.reindex(at).to_numpy(np.float32).reshape(len(keys[0]), H)


def future_known(df: pd.DataFrame, c: SalesDataConfig, covariates: Sequence[str], step_days: int,
                 horizon: int, weekdays: int = 7) -> tuple[str, ...]:  # fmt: skip
    """The covariates known in advance: those with a value for every series on each of the
    ``horizon`` steps after the data's last date, from the features table (by store and date)
    or, for a value constant over each series' history (a store's size), carried over."""
    keys = list(c.series_keys)
    last = df[c.date_column].max().to_datetime64().astype("datetime64[D]")
    dates = sales.step_dates(last, np.arange(1, horizon + 1), step_days, weekdays)
    table = _features_table(c) if c.store_column in keys else None
    per_series = df.groupby(keys, sort=False)
    stores = per_series[c.store_column].first().to_numpy() if table is not None else None
    known = []
    for name in covariates:  # looked up as future_panel will at predict time
        if table is not None and name in table.columns:
            at = _at(table, [c.store_column, c.date_column], name, [stores], dates)
            ok = not np.isnan(at).any()
        else:
            ok = bool((per_series[name].nunique() == 1).all())  # one value per series
        if ok:
            known.append(name)
    return tuple(known)


def future_panel(
    df: pd.DataFrame,
    c: SalesDataConfig,
    fz: HorizonFeaturizer,
    holidays: Sequence = (),
    rows: pd.DataFrame | None = None,
    where: str = "",
    flagged: Sequence = (),
) -> Panel:
    """The panel of the history ``df`` (read from ``where``, default data.path) with the H
    steps after its last date appended.

    Future steps are holidays where ``holidays`` (dates) says so; those not among ``flagged``
    (dates the rows to forecast give a holiday flag for) also where the step a season earlier
    was one. A known covariate comes from ``rows`` (the rows to forecast) when they
    have its column, else from the features table (by store and date), else carries over when
    constant over each series' history (a store's size). A known covariate still missing on a
    future step of a series to forecast (all training series without ``rows``) is an error.
    """
    H = fz.horizon
    missing = [k for k in fz.covariates if k not in df.columns]
    if missing:  # the network reads every covariate it trained on, for the history too
        raise ArchlabError(
            f"{where or c.path}: no column(s) {', '.join(missing)}, which the run's network "
            "reads for every step; give them as columns, or put the tables that hold them "
            "(features.csv, stores.csv) beside the file"
        )
    p = sales.build_panel(df, list(c.series_keys), c.date_column, c.target, c.holiday_column,
                          list(fz.covariates), fz.step_days, H, fz.weekdays)  # fmt: skip
    T = p.y.shape[1]
    n = T - H
    for j in range(n, T):
        p.holiday[j] |= j >= fz.season and bool(p.holiday[j - fz.season])
    # A date the rows to forecast flag is what they say (False clears last season's holiday).
    said = np.isin(p.dates[n:], np.asarray(flagged, dtype="datetime64[ns]"))
    p.holiday[n:] &= ~said
    if len(holidays):
        p.holiday[n:] |= np.isin(p.dates[n:], np.asarray(holidays, dtype="datetime64[ns]"))
    if not fz.known_covariates:
        return p
    table = _features_table(c)
    keys = list(c.series_keys)
    known = fz.series_index(p.keys) >= 0
    if rows is not None:  # only the series asked for need their future covariates
        asked = rows[keys].drop_duplicates().astype(str).agg("\0".join, axis=1)
        mine = pd.DataFrame(p.keys, columns=keys).astype(str).agg("\0".join, axis=1)
        known &= mine.isin(set(asked)).to_numpy()
    for name in fz.known_covariates:
        j = fz.covariates.index(name)
        if rows is not None and name in rows.columns:
            key_cols = [p.keys[:, i] for i in range(len(keys))]
            p.cov[:, n:, j] = _at(rows, [*keys, c.date_column], name, key_cols, p.dates[n:])
        elif table is not None and name in table.columns:
            if c.store_column not in c.series_keys:
                raise ArchlabError(
                    f"data.known_covariates {name!r} comes from the features table, joined on "
                    f"data.store_column={c.store_column!r}, which is not a series key"
                )
            stores = p.keys[:, keys.index(c.store_column)]
            on = [c.store_column, c.date_column]
            p.cov[:, n:, j] = _at(table, on, name, [stores], p.dates[n:])
        else:
            hist = p.cov[:, :n, j]
            with np.errstate(invalid="ignore"):
                static = np.nanmax(hist, 1) == np.nanmin(hist, 1)
            p.cov[:, n:, j] = np.where(static, np.nanmax(hist, 1), np.nan)[:, None]
        gap = np.isnan(p.cov[:, n:, j]) & known[:, None]
        if gap.any():
            s, h = np.argwhere(gap)[0]
            raise ArchlabError(
                f"data.known_covariates {name!r} has no value for series "
                f"{tuple(p.keys[s].tolist())} on {str(p.dates[n + h])[:10]} (a future step): "
                "give it for the forecast dates (a column of that name in the rows to "
                "forecast, or the features table) or drop it from data.known_covariates"
            )
    return p


def match_keys(series: Sequence[Sequence[Any]], keys: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Index of each row of ``keys`` (n, k) among ``series`` (-1: none). By value, else by
    text: a file whose codes are all integers (1, 2) reads them as numbers, one with a code like
    010 as text (sales_csv.key_values); and where ``series`` are all numbers, by number: a
    later file's 02 or 3.0 is the run's 2 or 3."""
    known = {tuple(plain(v) for v in k): i for i, k in enumerate(series)}
    text = {tuple(map(str, k)): i for i, k in enumerate(series)}
    numeric = all(_is_number(v) for k in series for v in k)
    number = {tuple(map(float, k)): i for i, k in enumerate(series)} if numeric else {}

    def find(k: list[Any]) -> int:
        i = known.get(tuple(plain(v) for v in k), text.get(tuple(map(str, k)), -1))
        if i < 0 and number and (n := _as_numbers(k)) is not None:
            i = number.get(n, -1)
        return i

    if isinstance(keys, pd.DataFrame):  # column by column: an object array's tolist is slow
        rows = list(zip(*(keys[c].tolist() for c in keys.columns), strict=True))
    else:
        rows = [tuple(k) for k in np.asarray(keys, dtype=object).tolist()]
    found = {k: find(list(k)) for k in dict.fromkeys(rows)}  # each distinct key once
    return np.array([found[k] for k in rows], np.int64)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _as_numbers(key: list[Any]) -> tuple[float, ...] | None:
    """A series key's values as numbers (text like ' 02' or '3.0' too); None if one is not."""
    try:
        return tuple(float(str(v).strip()) for v in key)
    except ValueError:
        return None
