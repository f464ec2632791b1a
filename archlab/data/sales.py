"""Retail sales panels: CSV loading and merging, the dense series x time panel, and windows.

The merged table (one row per series and date) is turned once into dense arrays indexed by
(series, time step); windows for a batch are then one fancy-indexing gather, so no Python runs
per row. Everything here is framing-agnostic; the task decides splits and scaling.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from archlab.errors import ArchlabError

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig


# --- reading and merging ---
def resolve_file(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name.gz`` beside it when only the compressed file exists."""
    p = directory / name
    if not p.exists() and (directory / f"{name}.gz").exists():
        return directory / f"{name}.gz"
    if not p.exists():
        raise ArchlabError(f"{p}: no such file (set data.path to the folder holding it)")
    return p


def read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV (plain or .gz; CR/LF/CRLF line endings) and check its required columns."""
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            if b"\x00" in f.read(4096):
                raise ArchlabError(f"{path}: not a CSV file (binary content)")
    try:
        df = pd.read_csv(path)
    except UnicodeDecodeError as e:
        raise ArchlabError(
            f"{path}: cannot decode as UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "re-save the file as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the file is empty (expected a header line and rows)") from None
    except (pd.errors.ParserError, OSError, EOFError, zlib.error) as e:  # zlib, EOF: bad .gz
        raise ArchlabError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        header = ",".join(map(str, df.columns))
        hint = next(
            (f"; the header looks {sep!r}-separated, save the file comma-separated"
             for sep in (";", "\t", "|") if sep in header),
            "",
        )  # fmt: skip
        raise ArchlabError(
            f"{path}: missing column(s) {missing}; found columns {list(df.columns)}{hint}"
        )
    if df.empty:
        raise ArchlabError(f"{path}: no data rows (only a header line)")
    return df


def _show(value: object) -> str:
    """A cell as the user wrote it: 'an empty cell', or the text in quotes (no numpy reprs)."""
    return "an empty cell" if pd.isna(value) else repr(str(value))


# Formats ``data.date_format=auto`` tries. Day-first and month-first formats both fit dates whose
# days are all <= 12: then the order is ambiguous and the user must say it.
DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
    "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y", "%d.%m.%Y", "%m.%d.%Y",
    "%d/%m/%y", "%m/%d/%y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y",
)  # fmt: skip


def infer_date_format(df: pd.DataFrame, column: str, path: Path) -> str:
    """The one format of ``DATE_FORMATS`` that reads every date of ``column`` (its distinct values).

    None fits: the format reading most of them, so that ``parse_dates`` names the first value it
    cannot read. Several fit (day-first and month-first): refused, naming ``data.date_format``.
    """
    raw = pd.Series(df[column].dropna().unique())
    if not len(raw):
        return DATE_FORMATS[0]
    values = raw.astype(str)  # numbers (20100205) as the text they were
    read = {f: int(pd.to_datetime(values, format=f, errors="coerce").notna().sum())
            for f in DATE_FORMATS}  # fmt: skip
    fit = [f for f, n in read.items() if n == len(values)]
    if len(fit) > 1:
        both = pd.to_datetime(values, format=fit[0], errors="coerce")
        other = pd.to_datetime(values, format=fit[1], errors="coerce")
        differ = (both != other).to_numpy()
        sample = str(values[differ].iloc[0] if differ.any() else values.iloc[0])
        raise ArchlabError(
            f"{path}: dates in column {column!r} read both as {fit[0]!r} and {fit[1]!r} "
            f"(e.g. {sample!r}: day and month are both <= 12 everywhere); set "
            f"data.date_format={fit[0]} or data.date_format={fit[1]}"
        )
    if fit:
        return fit[0]
    return max(read, key=lambda f: read[f])


def parse_dates(df: pd.DataFrame, column: str, fmt: str, path: Path) -> str:
    """Parse ``column`` in place with ``fmt`` ('auto': inferred); the first bad value is reported
    with its line. Returns the format used."""
    if fmt == "auto":
        fmt = infer_date_format(df, column, path)
    raw = df[column]
    # A column read as numbers (20100205, inf) is parsed as the text it was: no epoch casts.
    parsed = pd.to_datetime(raw.astype(str) if raw.dtype.kind in "biuf" else raw, format=fmt,
                            errors="coerce")  # fmt: skip
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: unparseable date {_show(raw.iloc[i])} in column {column!r} at line "
            f"{i + 2} (expected format {fmt!r}; set data.date_format)"
        )
    df[column] = parsed
    return fmt


def parse_bool(df: pd.DataFrame, column: str, path: Path) -> None:
    """Holiday flags written TRUE/FALSE, true/false or 1/0 -> bool, in place."""
    s = df[column]
    if s.dtype == bool:
        return
    low = s.astype(str).str.strip().str.lower()
    ok = low.isin(["true", "false", "1", "0", "1.0", "0.0"])
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise ArchlabError(
            f"{path}: column {column!r} has non-boolean value {_show(s.iloc[i])} at line {i + 2}"
        )
    df[column] = low.isin(["true", "1", "1.0"])


def parse_number(df: pd.DataFrame, column: str, path: Path) -> None:
    """Coerce ``column`` to float in place; the first non-number is reported with its line."""
    if pd.api.types.is_numeric_dtype(df[column]):
        df[column] = df[column].astype(float)
        return
    num = pd.to_numeric(df[column], errors="coerce")
    bad = np.flatnonzero((num.isna() & df[column].notna()).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: column {column!r} has non-numeric value {_show(df[column].iloc[i])} "
            f"at line {i + 2}"
        )
    df[column] = num.astype(float)


def check_unique(df: pd.DataFrame, keys: Sequence[str], date: str, path: Path) -> None:
    dup = df.duplicated([*keys, date]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        row = df.iloc[i]
        key = ", ".join(str(row[k]) for k in keys)
        raise ArchlabError(
            f"{path}: duplicate ({', '.join([*keys, date])}) key ({key}, "
            f"{row[date].date()}) at line {i + 2}; each series needs one row per date"
        )


def check_join(
    df: pd.DataFrame, other: pd.DataFrame, key: str, path: Path, opath: Path, date: str = ""
) -> None:
    """``other`` joins ``df`` on ``key`` (and ``date``): same kind of values, one row per key."""
    a, b = df[key], other[key]
    if a.dtype.kind != b.dtype.kind and not (a.dtype.kind in "iu" and b.dtype.kind in "iu"):
        raise ArchlabError(
            f"{opath}: column {key!r} holds {b.dtype} values (e.g. {_show(b.iloc[0])}) but "
            f"{path.name} holds {a.dtype} (e.g. {_show(a.iloc[0])}); the tables join on it"
        )
    if date:
        check_unique(other, [key], date, opath)
    elif other[key].duplicated().any():
        i = int(np.flatnonzero(other[key].duplicated().to_numpy())[0])
        raise ArchlabError(
            f"{opath}: {key} {_show(other[key].iloc[i])} appears again at line {i + 2}; "
            f"each {key.lower()} needs one row"
        )


def load_sales(cfg: SalesDataConfig) -> pd.DataFrame:
    """Load and merge the sales, stores and features tables as the study did.

    ``cfg.path`` is a folder holding ``train_file`` (and the other tables), or the sales CSV
    itself. Tables, a holiday column and covariates left at their (Walmart) defaults are
    optional: skipped when the data has none of them. A value the user set must exist.
    What was resolved (date format, skipped defaults) is in ``df.attrs["resolved"]``.

    sales + stores on the store column, + features on (store, date, holiday); markdowns NA -> 0
    (optionally with ``<col>_missing`` indicators), forward-fill columns filled per store;
    Year, Month, Week added. Rows are sorted by series keys and date.
    """
    if not cfg.path:
        raise ArchlabError(
            "data.path is empty: give --data DIR (holding train/features/stores) or --data FILE.csv"
        )
    given = Path(cfg.path)
    if not given.exists():
        raise ArchlabError(f"{given}: no such file or directory")
    single = not given.is_dir()
    root = given.parent if single else given
    date, target, hol, store = cfg.date_column, cfg.target, cfg.holiday_column, cfg.store_column
    keys = list(cfg.series_keys)
    path = given if single else resolve_file(root, cfg.train_file)
    df = read_csv(path, [*keys, date, target])

    def default(name: str) -> object:  # the field's default (Walmart's), not the user's value
        return next(f.default for f in fields(cfg) if f.name == name)

    resolved: dict[str, object] = {}
    if hol and hol not in df.columns:
        if hol != default("holiday_column"):
            raise ArchlabError(
                f"{path}: missing column(s) [{hol!r}] (data.holiday_column); found columns "
                f"{list(df.columns)}"
            )
        hol = resolved["holiday_column"] = ""  # no holiday flag: every weight 1
    for k in keys:
        empty = np.flatnonzero(df[k].isna().to_numpy())
        if len(empty):
            raise ArchlabError(
                f"{path}: series key column {k!r} has an empty cell at line {empty[0] + 2}"
            )
    given_fmt = "auto" if cfg.date_format == default("date_format") else cfg.date_format
    fmt = parse_dates(df, date, given_fmt, path)
    if fmt != cfg.date_format:
        resolved["date_format"] = fmt
    parse_number(df, target, path)
    if hol:
        parse_bool(df, hol, path)
    check_unique(df, keys, date, path)
    tables = {}
    for key in ("stores_file", "features_file"):
        name = getattr(cfg, key)
        if name and name == default(key) and not _exists(root, name):
            resolved[key] = ""  # the user has no such table
        elif name and single and not _exists(root, name):
            raise ArchlabError(
                f"{root / name}: no such file (data.{key}; tables are read from beside "
                f"{given.name}; set data.{key}= to go without)"
            )
        elif name:
            tables[key] = resolve_file(root, name)
    if "stores_file" in tables:
        spath = tables["stores_file"]
        stores = read_csv(spath, [store])
        check_join(df, stores, store, path, spath)
        df = df.merge(stores, on=store, how="left")
    if "features_file" in tables:
        fpath = tables["features_file"]
        feats = read_csv(fpath, [store, date])
        parse_dates(feats, date, given_fmt, fpath)
        check_join(df, feats, store, path, fpath, date)  # before sorting: lines stay true
        feats = feats.sort_values([store, date], kind="stable")
        ffill = [c for c in cfg.ffill_columns if c in feats.columns]
        if ffill:  # gaps in slow-moving indicators: the last published value still holds
            feats[ffill] = feats.groupby(store, sort=False)[ffill].ffill()
        on = [store, date] + ([hol] if hol and hol in feats.columns else [])
        if hol and hol in feats.columns:
            parse_bool(feats, hol, fpath)
        dup = [c for c in feats.columns if c in df.columns and c not in on]
        df = df.merge(feats.drop(columns=dup), on=on, how="left")
    for c in cfg.markdown_columns:
        if c in df.columns:
            if cfg.missing_indicators:
                df[f"{c}_missing"] = df[c].isna().astype(float)
            df[c] = df[c].fillna(0.0)  # no markdown promotion that week
    if cfg.covariates == default("covariates"):  # Walmart's: keep the ones the data has
        present = tuple(c for c in cfg.covariates if c in df.columns)
        if present != cfg.covariates:
            resolved["covariates"] = present
    missing = [c for c in resolved.get("covariates", cfg.covariates) if c not in df.columns]
    if missing:
        raise ArchlabError(
            f"{root}: covariate column(s) {missing} not found in the merged tables; found "
            f"{list(df.columns)} (set data.covariates)"
        )
    dt = df[date].dt
    df["Year"], df["Month"] = dt.year, dt.month
    df["Week"] = dt.isocalendar().week.astype(int).to_numpy()
    df = df.sort_values([*keys, date], kind="stable").reset_index(drop=True)
    if cfg.stores:
        if store not in df.columns:
            raise ArchlabError(
                f"{path}: data.stores selects on column {store!r} (data.store_column), which is "
                f"not there; found columns {list(df.columns)}"
            )
        df = df[df[store].isin(cfg.stores)]
    if cfg.depts:
        df = df[df[keys[-1]].isin(cfg.depts)]
    if len(df) == 0:
        raise ArchlabError(f"{root}: no rows left after data.stores/data.depts selection")
    df = df.reset_index(drop=True)
    df.attrs["resolved"] = resolved
    return df


def _exists(directory: Path, name: str) -> bool:
    return (directory / name).exists() or (directory / f"{name}.gz").exists()


# --- the dense panel ---
@dataclass
class Panel:
    """Dense (series, time) arrays of one merged table; NaN where a series has no row."""

    keys: np.ndarray  # (S, k) series key values
    dates: np.ndarray  # (T,) datetime64 of each time step
    y: np.ndarray  # (S, T) target, NaN where missing
    holiday: np.ndarray  # (T,) bool: any row of that step is a holiday
    cov: np.ndarray  # (S, T, C) covariates, NaN where missing
    row_series: np.ndarray  # (N,) series index of each merged row
    row_time: np.ndarray  # (N,) time index of each merged row


# Steps of at least this many days are calendar months: 28-31-day gaps cannot be counted in days.
MONTHLY_MIN_DAYS = 28


def _months(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype(np.int64)  # months since 1970-01 (year*12+month)


def time_index(dates: np.ndarray, origin: np.datetime64, step_days: int) -> np.ndarray:
    """Step number of each date counted from ``origin`` (calendar months for monthly data)."""
    if step_days >= MONTHLY_MIN_DAYS:
        return _months(dates) - _months(np.asarray(origin))
    return ((dates - origin) // np.timedelta64(step_days, "D")).astype(np.int64)


def step_dates(origin: np.datetime64, steps: np.ndarray, step_days: int) -> np.ndarray:
    """The date of each step number (monthly steps are labelled by the month's first day)."""
    if step_days >= MONTHLY_MIN_DAYS:
        return (np.asarray(origin).astype("datetime64[M]") + steps).astype("datetime64[D]")
    return origin + steps * np.timedelta64(step_days, "D")


def infer_step_days(dates: np.ndarray) -> int:
    """The sampling period in days: the smallest gap between distinct dates (7 for weekly).

    28 or more means monthly data, indexed by calendar month (see ``time_index``).
    """
    u = np.unique(dates)
    if len(u) < 2:
        return 7
    return max(1, int(np.diff(u).min() // np.timedelta64(1, "D")))


def build_panel(
    df: pd.DataFrame,
    keys: Sequence[str],
    date: str,
    target: str,
    holiday: str,
    covariates: Sequence[str],
    step_days: int,
    extra_steps: int = 0,
) -> Panel:
    """Scatter the merged rows into dense arrays (``extra_steps`` empty steps appended)."""
    d = df[date].to_numpy()
    origin = d.min()
    t = time_index(d, origin, step_days)
    T = int(t.max()) + 1 + extra_steps
    codes = [pd.factorize(df[k], sort=True) for k in keys]
    key_arr = np.stack([df[k].to_numpy() for k in keys], 1)
    mult = np.cumprod([1] + [len(u) for _, u in codes[:0:-1]])[::-1]
    flat = sum(c * m for (c, _), m in zip(codes, mult, strict=True))
    _, first, s = np.unique(flat, return_index=True, return_inverse=True)
    clash = pd.Series(s * T + t).duplicated().to_numpy()
    if clash.any():  # irregular dates: two rows of one series fall into the same step
        i = int(np.flatnonzero(clash)[0])
        unit = "calendar month" if step_days >= MONTHLY_MIN_DAYS else f"{step_days}-day step"
        raise ArchlabError(
            f"series {tuple(key_arr[i].tolist())}: two rows fall into the same {unit} "
            f"(second one dated {str(d[i])[:10]}); the panel needs regularly spaced dates"
        )
    y = np.full((len(first), T), np.nan)
    y[s, t] = df[target].to_numpy(float)
    hol = np.zeros(T, bool)
    if holiday:
        hol[t[df[holiday].to_numpy(bool)]] = True
    cov = np.full((len(first), T, len(covariates)), np.nan, dtype=np.float32)
    if covariates:
        cov[s, t] = df[list(covariates)].to_numpy(np.float32)
    dates = step_dates(origin, np.arange(T), step_days)
    return Panel(key_arr[first], dates, y, hol, cov, s, t)


def series_scalers(y: np.ndarray, n_train: int, min_scale: float) -> tuple[np.ndarray, ...]:
    """Per-series mean and std over the first ``n_train`` steps only (no look-ahead).

    Returns (offset, scale, n_obs); series without training observations get NaN offsets.
    """
    part = y[:, :n_train]
    n = np.sum(~np.isnan(part), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.nansum(part, 1) / n
        var = np.nansum((part - offset[:, None]) ** 2, 1) / n
    scale = np.maximum(np.sqrt(np.nan_to_num(var)), min_scale)
    return offset, scale, n


def group_mean(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean over series of each group per time step, ignoring NaN: (S, T) -> (G, T)."""
    ok = ~np.isnan(values)
    tot = np.zeros((n_groups, values.shape[1]))
    cnt = np.zeros((n_groups, values.shape[1]))
    np.add.at(tot, groups, np.where(ok, values, 0.0))
    np.add.at(cnt, groups, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / cnt


def lagged(a: np.ndarray, lag: int) -> np.ndarray:
    """``a`` shifted right by ``lag`` steps along axis 1 (NaN where the lag is before start)."""
    out = np.full_like(a, np.nan)
    if lag < a.shape[1]:
        out[:, lag:] = a[:, : a.shape[1] - lag]
    return out


def windows(steps: np.ndarray, series: np.ndarray, time: np.ndarray, length: int) -> np.ndarray:
    """Gather ``steps[s, t-length+1 .. t]`` for every (s, t) pair: (N, length, F).

    Steps before the start of the panel are zeros. One fancy-indexing gather, no Python loop.
    """
    offs = np.arange(-length + 1, 1)
    tt = time[:, None] + offs[None, :]
    out = steps[series[:, None], np.maximum(tt, 0)]
    out[tt < 0] = 0.0
    return out


def ffill_time(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1 of an (S, T, C) array (covariates carry over gaps)."""
    ok = ~np.isnan(a)
    idx = np.where(ok, np.arange(a.shape[1])[None, :, None], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(a, idx, axis=1)


# Per-step feature columns of the forecasting framing (the covariates follow them).
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
COV_CLIP = 5.0  # standardized covariates are clipped to +-5 training standard deviations
UNKNOWN_AT_TARGET = (0, 1, 5)  # columns zeroed at the target step (not known when forecasting)
TARGET_FLAG = 11


def event_flags(dates: np.ndarray, events: Sequence[str], step_days: int) -> np.ndarray:
    """(T,) 1.0 where a step's period [its date, the next step's date) holds an event date."""
    d = dates.astype("datetime64[D]")
    if not len(d) or not len(events):
        return np.zeros(len(d), np.float32)
    end = step_dates(d[0], np.arange(1, len(d) + 1), step_days).astype("datetime64[D]")
    ev = np.asarray(events, dtype="datetime64[D]")
    return ((d[:, None] <= ev) & (ev < end[:, None])).any(1).astype(np.float32)


def forecast_steps(
    panel: Panel,
    offset: np.ndarray,
    scale: np.ndarray,
    cov_mean: np.ndarray,
    cov_std: np.ndarray,
    groups: np.ndarray,
    season: int,
    events: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step inputs (S, T, F) in scaled units, and the scaled target (S, T) with NaN gaps.

    With ``events`` ((T,) flags of moving calendar events such as Easter, see ``event_flags``),
    two more columns follow the covariates: the step holds an event, and the step a season
    earlier held one. Both are known in advance, so the target step keeps them.
    """
    yn = (panel.y - offset[:, None]) / scale[:, None]
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    gm = group_mean(yn, groups, n_groups)[groups]
    day = (panel.dates - panel.dates.astype("datetime64[Y]")) / np.timedelta64(1, "D")
    angle = np.broadcast_to(2 * np.pi * day / 365.25, yn.shape)
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
        np.sin(angle),
        np.cos(angle),
        np.zeros_like(yn),
    ]
    base = np.stack(cols, -1).astype(np.float32)
    # Clipped: later steps can drift beyond the training range (CPI, fuel price).
    cov = np.clip((ffill_time(panel.cov) - cov_mean) / cov_std, -COV_CLIP, COV_CLIP)
    parts = [base, cov.astype(np.float32)]
    if events is not None:
        flag = events[None, :].astype(np.float32)
        ev = np.stack([flag, lagged(flag, season)], -1)  # (1, T, 2)
        parts.append(np.broadcast_to(ev, (*yn.shape, 2)).astype(np.float32))
    steps = np.concatenate(parts, -1)
    return np.nan_to_num(steps, nan=0.0), yn
