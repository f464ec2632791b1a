"""Retail sales panels: merging the sales tables and the dense series x time panel.

The merged table (one row per series and date) is turned once into dense arrays indexed by
(series, time step), with the framing-agnostic array tools every framing builds on (scalers,
lags, group means, calendar flags). Reading single CSVs is in sales_csv.py; the forecast
framing's inputs (features, windows, baseline) are in sales_horizon.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd

from archlab.data import csv_format
from archlab.data.sales_csv import (
    check_columns,
    check_join,
    check_unique,
    find_file,
    parse_bool,
    parse_covariates,
    parse_dates,
    parse_number,
    read_csv,
    resolve_file,
)
from archlab.errors import ArchlabError

if TYPE_CHECKING:
    from archlab.task_configs import SalesDataConfig


# --- merging ---
def load_sales(
    cfg: SalesDataConfig, covariates_optional: bool = False, trained: bool = False
) -> pd.DataFrame:
    """Load and merge the sales, stores and features tables as the study did.

    ``cfg.path`` is a folder holding ``train_file`` (and the other tables), or the sales CSV
    itself. Tables, a holiday column and covariates left at their (Walmart) defaults are
    optional: skipped when the data has none of them. A value the user set must exist.
    What was resolved (date format, skipped defaults) is in ``df.attrs["resolved"]``.
    ``covariates_optional``: a covariate the tables lack is left out, not refused (a history
    of sales alone, given to a saved run that fills them in). ``trained``: ``cfg`` is a
    finished run's (eval, predict), whose column names the file must use: no ``--set`` there.

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
    resolved: dict[str, object] = {}
    wide = not given.is_dir() and _wide_ok(cfg)  # before "none" becomes SINGLE_SERIES
    if not cfg.series_keys:  # one series: keyed by a column reading adds
        cfg = replace(cfg, series_keys=(SINGLE_SERIES,))
        resolved["series_keys"] = [SINGLE_SERIES]
    single = not given.is_dir()
    root = given.parent if single else given
    path = given if single else resolve_file(root, cfg.train_file)
    df, hol, given_fmt = _read_sales(cfg, path, resolved, wide, trained)
    cfg = replace(cfg, series_keys=tuple(resolved.get("series_keys", cfg.series_keys)))
    store = cfg.store_column
    if store == _default(cfg, "store_column") and store not in df.columns:
        # Walmart's join key is absent: join on the series key a sibling table has (a daily
        # panel keyed store_nbr beside a stores.csv keyed store_nbr).
        names = [getattr(cfg, k) for k in ("stores_file", "features_file")
                 if getattr(cfg, k) == _default(cfg, k)]  # fmt: skip
        if shared := _shared_key(root, list(cfg.series_keys), names):
            store = resolved["store_column"] = shared
    tables, not_joined, left_out = _tables(cfg, df, given, store, resolved)
    notes, wide_read = list(df.attrs["notes"]), bool(df.attrs.get("wide"))
    df = _join(cfg, df, tables, store, hol, given_fmt, path, not_joined, notes)
    for c in cfg.markdown_columns:
        if c in df.columns:
            if cfg.missing_indicators:
                df[f"{c}_missing"] = df[c].isna().astype(float)
            df[c] = df[c].fillna(0.0)  # no markdown promotion that week
    covariates = _covariates(cfg, df, root, resolved, covariates_optional)
    df = _select(cfg, _with_calendar(df, cfg), store, path, root)
    df, read = _trim_tail(df, list(cfg.series_keys), cfg.date_column, cfg.target,
                          cfg.tail_min_coverage, path)  # fmt: skip
    used = [cfg.target, *(c for c in covariates if c in df.columns)]
    read["missing"] = {c: int(df[c].isna().sum()) for c in used}
    read["not_joined"] = not_joined
    read["tables_not_joined"] = left_out
    read["file_notes"] = notes
    read["wide"] = wide_read
    df.attrs["resolved"] = resolved
    df.attrs["read"] = read
    return df


# The series key of a file that is one series (data.series_keys empty), and its one value.
SINGLE_SERIES, SINGLE_VALUE = "series", "all"


def with_single_key(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``df`` with the SINGLE_SERIES key column added where the keys are that column alone
    and the file has none (a run on one series reads its other files so too)."""
    if tuple(keys) == (SINGLE_SERIES,) and SINGLE_SERIES not in df.columns:
        df.insert(0, SINGLE_SERIES, SINGLE_VALUE)
    return df


def key_columns(keys: Sequence[str]) -> list[str]:
    """The key columns a file must have: none for a single series (``with_single_key``)."""
    return [] if tuple(keys) == (SINGLE_SERIES,) else list(keys)


def date_format_given(cfg: SalesDataConfig) -> str:
    """The date format to read a file with: "auto" (inferred) unless the user set one."""
    return "auto" if cfg.date_format == _default(cfg, "date_format") else cfg.date_format


def _default(cfg: SalesDataConfig, name: str) -> object:
    """A data-config field's default (Walmart's), to tell it from a value the user set."""
    return next(f.default for f in fields(cfg) if f.name == name)


def _read_sales(
    cfg: SalesDataConfig,
    path: Path,
    resolved: dict[str, object],
    wide_ok: bool,
    trained: bool = False,
) -> tuple[pd.DataFrame, str, str]:
    """The sales table with parsed dates, target and holiday flag, checked for empty keys and
    duplicate rows (a wide table melted first); its holiday column and the date format given."""
    date, target, hol, keys = cfg.date_column, cfg.target, cfg.holiday_column, cfg.series_keys
    df = read_csv(path, [], cfg.encoding, [*keys, cfg.store_column])
    series, hint = _wide(cfg, df, wide_ok, path)
    if series:
        df = _melt(cfg, df, series, path)
        keys = (SINGLE_SERIES,)
        resolved["series_keys"] = [SINGLE_SERIES]
    roles = {**dict.fromkeys(key_columns(keys), "data.series_keys"), date: "data.date_column",
             target: "data.target"}  # fmt: skip
    if trained and (lost := [k for k in roles if k not in df.columns]):  # no --set there
        hint = _rename_hint(lost, roles, [k for k in df.columns if k not in _used(cfg)])
    if not hint and (unset := sorted({v for k, v in roles.items() if k not in df.columns})):
        hint = f"; set {', '.join(unset)} to the file's own column name(s)" + (
            " (data.series_keys=none: the file is one series)"
            if "data.series_keys" in unset
            else ""
        )
    check_columns(df, list(roles), path, hint)
    df = with_single_key(df, keys)
    if hol and hol not in df.columns:
        if hol != _default(cfg, "holiday_column"):
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
    given_fmt = date_format_given(cfg)
    fmt = parse_dates(df, date, given_fmt, path)
    if fmt != cfg.date_format:
        resolved["date_format"] = fmt
    _drop_times_of_day(df, list(keys), date, path)
    parse_number(df, target, path)
    if hol:
        parse_bool(df, hol, path)
    parse_covariates(df, [c for c in cfg.covariates if c not in (*keys, date, target, hol)], path)
    check_unique(df, list(keys), date, path)
    return df, hol, given_fmt


def _used(cfg: SalesDataConfig) -> set[str]:
    """The columns a run reads from its sales file (keys, date, target, flags, covariates)."""
    names = (*cfg.series_keys, cfg.date_column, cfg.target, cfg.holiday_column, cfg.store_column)
    return {*names, *cfg.covariates}


def _rename_hint(lost: list[str], roles: dict[str, str], spare: list[str]) -> str:
    """What a file given to a finished run (eval, predict: no --set) can do about columns it
    lacks: rename its own to the run's names."""
    if len(lost) == 1 and len(spare) == 1:
        return f"; rename column {spare[0]!r} to {lost[0]!r} (the run's {roles[lost[0]]})"
    names = ", ".join(f"{k!r} ({roles[k]})" for k in lost)
    return f"; rename the file's columns to the run's names: {names}"


def _drop_times_of_day(df: pd.DataFrame, keys: list[str], date: str, path: Path) -> None:
    """Dates with times of day (a database's load times) read as calendar days, in place and
    noted, where no series has two rows on one day: weekly rows stamped 09:30 in one store and
    10:05 in another are one step. Two rows of a series on a day are data of steps shorter
    than a day, left for ``check_daily_or_longer`` to refuse."""
    day = df[date].dt.floor("D")
    timed = (df[date] != day).to_numpy()
    if not timed.any() or df.assign(_day=day).duplicated([*keys, "_day"]).any():
        return
    i = int(np.flatnonzero(timed)[0])
    df.attrs["notes"].append(
        f"data: {path}: times of day in column {date!r} dropped, each series has at most one "
        f"row a day (line {i + 2}: {df[date].iloc[i]} read as {day.iloc[i]:%Y-%m-%d})"
    )
    df[date] = day


def reads_wide(cfg: SalesDataConfig, df: pd.DataFrame) -> bool:
    """Whether ``load_sales`` reads the file ``df`` (as ``read_csv`` gives it) as a wide table:
    a history for a wide run, not rows to forecast (which name their series in a column)."""
    return bool(_wide(cfg, df, _wide_ok(cfg))[0])


def _wide_ok(cfg: SalesDataConfig) -> bool:
    """Read wide only where the user named no column it lacks: the series keys and the target
    at their defaults, or the key a wide run records (not "none", which says one series)."""
    keys = (_default(cfg, "series_keys"), (SINGLE_SERIES,))
    return cfg.target == _default(cfg, "target") and tuple(cfg.series_keys) in keys


def _not_series(cfg: SalesDataConfig, cols: list[str]) -> list[str]:
    """A wide table's columns that are no series: the date, the holiday flag, the covariates
    (data.covariates) and a spreadsheet's saved index ("Unnamed: 0")."""
    kept = (cfg.date_column, cfg.holiday_column, *cfg.covariates)
    return [c for c in cols if c in kept or c.startswith("Unnamed: ")]


def _wide(
    cfg: SalesDataConfig, df: pd.DataFrame, ok: bool, path: object = "the file"
) -> tuple[list[str], str]:
    """The series columns of a wide table (a date column, one numeric column per series);
    else [] and, where the file looks like one, a hint for the missing-columns error. A run
    read wide (its key SINGLE_SERIES) reads a history of one series column too."""
    date, cols = cfg.date_column, [str(c) for c in df.columns]
    other = [c for c in cols if c not in _not_series(cfg, cols)]
    numeric = [c for c in other if df[c].dtype.kind in "iuf"]  # numbers or empty cells
    long = {*cfg.series_keys, SINGLE_SERIES, cfg.target} & {*cols}  # a column of the long layout
    fewest = 1 if tuple(cfg.series_keys) == (SINGLE_SERIES,) else 2
    if date not in cols or not numeric or long:
        return [], ""
    if len(numeric) < fewest:  # date and one column: one series, named how?
        return [], (f"; a file of one series: --set data.series_keys=none --set "
                    f"data.target={numeric[0]}")  # fmt: skip
    if ok and len(numeric) == len(other):
        twice = [c for c in other if (m := re.fullmatch(r"(.+)\.\d+", c)) and m[1] in other]
        if twice:  # pandas renames a repeated header "north" to "north.1"
            raise ArchlabError(
                f"{path}: column {twice[0].rsplit('.', 1)[0]!r} "
                "appears twice in the header: name each series once"
            )
        return other, ""
    text = [c for c in other if c not in numeric]
    need = (f"every column but {date!r} must hold numbers ({text[0]!r} does not; name "
            "covariate columns in data.covariates)" if text else
            "give --data the file itself and leave data.series_keys and data.target unset: the "
            "series are its columns")  # fmt: skip
    return [], f"; it looks like a wide table (one column per series): to read it so, {need}"


def _melt(cfg: SalesDataConfig, df: pd.DataFrame, series: list[str], path: Path) -> pd.DataFrame:
    """The wide table ``df`` as one row per series column and date, noted; column by column,
    so a bad date or duplicate is first met in the first column's rows, at its file line."""
    kept = [c for c in series if df[c].notna().any()] or series  # all empty: as a long file's
    cols = [str(c) for c in df.columns]
    ids = [c for c in _not_series(cfg, cols) if not c.startswith("Unnamed: ")]
    long = df.melt(ids, kept, SINGLE_SERIES, cfg.target)
    # A header's stray space ("North ") is no part of the name, as in a long file's key cells.
    long[SINGLE_SERIES] = long[SINGLE_SERIES].astype(str).str.strip()
    kept = [str(c).strip() for c in kept]
    empty = [c for c in series if c not in kept]
    left = [c for c in cols if c.startswith("Unnamed: ")]
    covs = [c for c in ids if c in cfg.covariates]
    note = (f"data: {path} read as a wide table: {len(kept)} series, one per column "
            f"({', '.join(kept[:8])}{', ...' if len(kept) > 8 else ''}); series key "
            f"{SINGLE_SERIES!r}, values read as the target {cfg.target!r}"
            + (f"; covariate(s) {covs} beside them" if covs else "")
            + (f"; empty column(s) {empty} left out" if empty else "")
            + (f"; index column(s) {left} left out" if left else ""))  # fmt: skip
    long.attrs["notes"] = [note, *df.attrs["notes"]]
    long.attrs["wide"] = True  # its target's name is the run's, not the file's
    return long


def _tables(
    cfg: SalesDataConfig, df: pd.DataFrame, given: Path, store: str, resolved: dict[str, object]
) -> tuple[dict[str, Path], list[str], list[str]]:
    """The stores and features tables to join, by config key, and a line for each one beside
    the panel that is left out."""
    single = not given.is_dir()
    root = given.parent if single else given
    tables = {}
    not_joined: list[str] = []
    left_out: list[str] = []  # data.<key>s of the tables beside the panel that are not joined
    for key in ("stores_file", "features_file"):
        name = getattr(cfg, key)
        default = bool(name) and name == _default(cfg, key)
        if default and not _exists(root, name):
            resolved[key] = ""  # the user has no such table
        elif default and (why := _no_join_key(root, name, store, df, single)):
            # A table that happens to share the default name (another data set's stores.csv
            # beside a panel file) is joined only on a key both have; otherwise it is left
            # out, and said so. In a folder laid out as Walmart's, a table without the key
            # stays an error (a misspelt header).
            resolved[key] = ""
            left_out.append(key)
            not_joined.append(f"data: {resolve_file(root, name)} not joined: {why} (both files "
                              "need the join key, named data.store_column: rename the column in "
                              f"one of them, or set data.{key}= to silence this)")  # fmt: skip
        elif name and single and not _exists(root, name):
            raise ArchlabError(
                f"{root / name}: no such file (data.{key}; tables are read from beside "
                f"{given.name}; set data.{key}= to go without)"
            )
        elif name:
            tables[key] = resolve_file(root, name)
    return tables, not_joined, left_out


def _join(
    cfg: SalesDataConfig,
    df: pd.DataFrame,
    tables: dict[str, Path],
    store: str,
    hol: str,
    given_fmt: str,
    path: Path,
    not_joined: list[str],
    notes: list[str],
) -> pd.DataFrame:
    """``df`` with the stores table joined on ``store``, then the features table on (store,
    date, holiday), forward-fill columns filled per store; a line on each table's unused keys
    is added to ``not_joined``, each table's reading notes to ``notes``."""
    if "stores_file" in tables:
        spath = tables["stores_file"]
        stores = read_csv(spath, [store], cfg.encoding, [store])
        parse_covariates(stores, [c for c in cfg.covariates if c != store], spath)
        notes += stores.attrs["notes"]
        check_join(df, stores, store, path, spath)
        not_joined += _unused_keys(stores, df, store, spath)
        df = df.merge(stores, on=store, how="left")
    if "features_file" in tables:
        date, fpath = cfg.date_column, tables["features_file"]
        feats = read_csv(fpath, [store, date], cfg.encoding, [store])
        notes += feats.attrs["notes"]
        parse_dates(feats, date, given_fmt, fpath)
        parse_covariates(feats, [c for c in cfg.covariates if c not in (store, date)], fpath)
        check_join(df, feats, store, path, fpath, date)  # before sorting: lines stay true
        not_joined += _unused_keys(feats, df, store, fpath)
        feats = ffill_per_store(feats, cfg, store)
        on = [store, date] + ([hol] if hol and hol in feats.columns else [])
        if hol and hol in feats.columns:
            parse_bool(feats, hol, fpath)
        dup = [c for c in feats.columns if c in df.columns and c not in on]
        df = df.merge(feats.drop(columns=dup), on=on, how="left")
    return df


def ffill_per_store(feats: pd.DataFrame, cfg: SalesDataConfig, store: str) -> pd.DataFrame:
    """The features table sorted by store and date, its data.ffill_columns forward-filled per
    store (gaps in slow-moving indicators: the last published value still holds)."""
    feats = feats.sort_values([store, cfg.date_column], kind="stable")
    ffill = [c for c in cfg.ffill_columns if c in feats.columns]
    if ffill:
        feats[ffill] = feats.groupby(store, sort=False)[ffill].ffill()
    return feats


def _covariates(
    cfg: SalesDataConfig,
    df: pd.DataFrame,
    root: Path,
    resolved: dict[str, object],
    optional: bool = False,
) -> tuple[str, ...]:
    """The covariates of the run: Walmart's default ones that the data has, or the user's
    (each must be there, unless ``optional``)."""
    if optional or cfg.covariates == _default(cfg, "covariates"):  # keep those the data has
        present = tuple(c for c in cfg.covariates if c in df.columns)
        if present != cfg.covariates:
            resolved["covariates"] = present
    covariates = tuple(resolved.get("covariates", cfg.covariates))
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        raise ArchlabError(
            f"{root}: covariate column(s) {missing} not found in the merged tables; found "
            f"{list(df.columns)} (set data.covariates)"
        )
    return covariates


def _with_calendar(df: pd.DataFrame, cfg: SalesDataConfig) -> pd.DataFrame:
    """``df`` with Year, Month and (ISO) Week columns, sorted by series keys and date; one
    the date column is named (a spreadsheet's "Week") is not written over it."""
    dt = df[cfg.date_column].dt
    calendar = {"Year": dt.year, "Month": dt.month, "Week": dt.isocalendar().week.astype(int)}
    for name, values in calendar.items():
        if name != cfg.date_column:
            df[name] = values.to_numpy()
    return df.sort_values([*cfg.series_keys, cfg.date_column], kind="stable").reset_index(drop=True)


def _select(
    cfg: SalesDataConfig, df: pd.DataFrame, store: str, path: Path, root: Path
) -> pd.DataFrame:
    """The rows of the stores and departments data.stores and data.depts select."""
    if cfg.stores:
        if store not in df.columns:
            raise ArchlabError(
                f"{path}: data.stores selects on column {store!r} (data.store_column), which is "
                f"not there; found columns {list(df.columns)}"
            )
        df = df[df[store].isin(cfg.stores)]
    if cfg.depts:
        df = df[df[cfg.series_keys[-1]].isin(cfg.depts)]
    if len(df) == 0:
        raise ArchlabError(f"{root}: no rows left after data.stores/data.depts selection")
    return df.reset_index(drop=True)


STRAY_GAP = 3  # a hole in the dates: more than this many usual steps with no row at all
STRAY_DATES = 3  # the most dates past a hole that can be a stray tail (mistyped years)


def _holes(per_date: pd.Series) -> np.ndarray:
    """Positions i of the dates (``per_date``'s sorted index) followed by a hole: a gap of
    more than STRAY_GAP times the usual one."""
    gaps = np.diff(per_date.index.to_numpy())
    return np.flatnonzero(gaps > STRAY_GAP * np.median(gaps))


def _stray(dates: pd.Series, busiest: int) -> bool:
    """Whether ``dates`` (rows per date) beyond a hole are stray: a few dates at most (a long
    stretch after a closure is data, however few series) under half the busiest date's rows."""
    return 0 < len(dates) <= STRAY_DATES and dates.max() < 0.5 * busiest


def _trim_tail(
    df: pd.DataFrame, keys: list[str], date: str, target: str, min_coverage: float, path: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop the trailing dates that almost no series has a value on; say what the last date
    covers. A row whose target is empty does not reach its date: a history with the rows to
    fill (or a month whose figures are not in yet) is forecast from its last values.

    Also, unless ``min_coverage`` is 0, up to STRAY_DATES trailing dates past a hole in the
    calendar (a gap of more than STRAY_GAP times the usual one) that under half the busiest
    date's series reach: one row with a mistyped year is stray however few series there are;
    and so leading dates before a hole (a year typed 2000 for 2010)."""
    rows = df.groupby(date, sort=True).size()
    valued = df[target].notna() if target in df.columns else pd.Series(True, df.index)
    per_date = df[valued.to_numpy()].groupby(date).size().reindex(rows.index, fill_value=0)
    if not per_date.any():  # no value at all: left for the split checks to refuse
        per_date = rows
    n_series = int(df.groupby(keys, sort=False).ngroups)
    busiest = int(per_date.max())
    cut = len(per_date)
    while cut > 1 and per_date.iloc[cut - 1] < min_coverage * busiest:
        cut -= 1
    if min_coverage > 0 and cut > 2:
        holes = _holes(per_date.iloc[:cut])
        if len(holes) and _stray(per_date.iloc[holes[-1] + 1 : cut], busiest):
            cut = int(holes[-1]) + 1
    start = 0
    if min_coverage > 0 and cut > 2:  # the holes again: the tail may have held one
        holes = _holes(per_date.iloc[:cut])
        if len(holes) and _stray(per_date.iloc[: holes[0] + 1], busiest):
            start = int(holes[0]) + 1
    trimmed, early = per_date.iloc[cut:], per_date.iloc[:start]
    if len(trimmed) or len(early):
        kept = per_date.index[start:cut]
        df = df[(df[date] >= kept[0]) & (df[date] <= kept[-1])].reset_index(drop=True)
    last = per_date.index[cut - 1]
    return df, {
        "series": n_series,
        "last_date": str(last)[:10],
        "last_date_series": int(per_date.iloc[cut - 1]),
        "tail_trimmed_dates": [str(d)[:10] for d in trimmed.index],
        "tail_trimmed_rows": int(rows[trimmed.index].sum()),
        "head_trimmed_dates": [str(d)[:10] for d in early.index],
        "head_trimmed_rows": int(rows[early.index].sum()),
        "file": str(path),
    }


def tail_note(df: pd.DataFrame) -> list[str]:
    """The line on the trailing dates ``load_sales`` dropped ([] if none)."""
    read = df.attrs.get("read", {})
    d, e = read.get("tail_trimmed_dates"), read.get("head_trimmed_dates")
    lines = [
        f"data: dropped {read['tail_trimmed_rows']} row(s) on {len(d)} later date(s) "
        f"({d[0]}..{d[-1]}) that almost no series has a value on (under "
        "data.tail_min_coverage of the busiest date's series, or under half of them past a "
        "hole in the dates); set data.tail_min_coverage=0 to keep them"
    ] if d else []  # fmt: skip
    if e:
        lines.append(
            f"data: dropped {read['head_trimmed_rows']} row(s) on {len(e)} early date(s) "
            f"({e[0]}..{e[-1]}) before a hole in the dates that under half the series reach (a "
            "mistyped year?); set data.tail_min_coverage=0 to keep them"
        )
    return lines


def reading_notes(df: pd.DataFrame) -> list[str]:
    """The first lines on what ``load_sales`` found: the last date's coverage, a trimmed tail,
    missing values."""
    read = df.attrs.get("read")
    if not read:
        return []
    lines = [
        f"data: the last date, {read['last_date']}, has values for {read['last_date_series']} "
        f"of {read['series']} series",
        *tail_note(df),
    ]
    lines += read.get("not_joined", []) + read.get("file_notes", [])
    missing = {k: v for k, v in read["missing"].items() if v}
    if missing:
        lines.append(
            "data: missing values (empty cells, kept as missing): "
            + ", ".join(f"{k} {v}" for k, v in missing.items())
        )
    return lines


def _no_join_key(root: Path, name: str, store: str, df: pd.DataFrame, single: bool) -> str:
    """Why the table ``name`` beside the panel is left out ("" to join it): the panel has no
    ``store`` column, or (a panel given as a file) the table has none."""
    if store not in df.columns:
        return f"the panel has no column {store!r} (data.store_column) to join it on"
    cols = _header(root, name) if single else None
    if cols is not None and store not in cols:
        return f"it has no column {store!r} (data.store_column); its columns: {cols}"
    return ""


def _shared_key(root: Path, keys: list[str], names: list[str]) -> str:
    """The first series key that the header of one of the tables ``names`` beside the panel
    holds ("" if none does)."""
    headers = [_header(root, name) or [] for name in names if name]
    return next((k for cols in headers for k in keys if k in cols), "")


def _header(root: Path, name: str) -> list[str] | None:
    """The columns of the table ``name`` beside the panel; None where it is missing, binary or
    unreadable (a join, if any, then names the file)."""
    return csv_format.header(resolve_file(root, name)) if _exists(root, name) else None


def _unused_keys(table: pd.DataFrame, df: pd.DataFrame, key: str, path: Path) -> list[str]:
    """A line on the key values of a joined table that the panel has no rows of."""
    extra = pd.unique(table.loc[~table[key].isin(df[key]), key])
    if not len(extra):
        return []
    shown = ", ".join(str(v) for v in sorted(extra.tolist())[:5])
    return [
        f"data: {path} has {len(extra)} {key} value(s) the panel has no rows of (e.g. "
        f"{shown}): their rows are not used"
    ]


def _exists(directory: Path, name: str) -> bool:
    return find_file(directory, name) is not None


# --- fitted state ---
def plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class PlainJSON:
    """A frozen dataclass as plain JSON (tuples as lists) and back (lists as tuples; a field an
    older file lacks takes its default, a key it does not know is left out): fitted.json."""

    # Fields read from elsewhere in a run directory when it is restored: never written here.
    transient: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: _listify(v) for k, v in asdict(self).items() if k not in self.transient}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: _tuplify(v) for k, v in d.items() if k in names})


def _listify(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _listify(x) for k, x in v.items()}
    return [_listify(x) for x in v] if isinstance(v, tuple | list) else v


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


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
    weekdays: int = 7  # days of the week that are steps: 5 for business days (Mon-Fri)


def weekday(dates: np.ndarray) -> np.ndarray:
    """The day of the week of each date, Monday = 0 (1970-01-01 was a Thursday)."""
    return (np.asarray(dates).astype("datetime64[D]").astype(np.int64) + 3) % 7


def rare_weekdays(days: np.ndarray, has: np.ndarray) -> list[int]:
    """The days of the week (Monday = 0) that under half of the steps ``days`` (their
    weekdays) ``has`` a row or value on: a shop's closed days."""
    return [k for k in range(7) if 2 * has[days == k].sum() < (days == k).sum()]


def fill_blank_cells(p: Panel, season: int) -> np.ndarray:
    """The (S, T) sales with each blank cell (a row present, its value empty: unknown, unlike a
    step with no row, which the statistical peer reads as no sales) filled from the steps before
    it: the value a season earlier, else the last value. Zeros there pulled an MSTL fit far off
    (test WMAE 16.6 -> 77.2 with 10 of 480 monthly cells blank); the steps after a cell are not
    read, so a one-step forecast rolled over them sees nothing of its future."""
    y = p.y.copy()
    blank = np.zeros(y.shape, bool)
    blank[p.row_series, p.row_time] = True
    # A step no series of several has a value on is a closed day written as empty rows
    # (Sundays), not unknown sales: it stays no sales, as a step with no row. (One series
    # cannot tell the two apart: its blank cells are unknown.)
    blank &= np.isnan(y) & ~(np.isnan(y).all(0) & (len(y) > 1))
    last = np.full(len(y), np.nan)  # each series' last value so far (a fill included)
    for t in range(y.shape[1]):  # step by step, every series at once: fills chain
        if (b := blank[:, t]).any():
            ago = y[b, t - season] if t >= season else np.full(int(b.sum()), np.nan)
            y[b, t] = np.where(np.isnan(ago), last[b], ago)
        last = np.where(np.isnan(y[:, t]), last, y[:, t])
    return y


# Steps of at least this many days are calendar months: 29-31-day gaps cannot be counted in
# days. Monthly data is given 30 (infer_step_days); 28 is a 4-week period, counted in days.
MONTHLY_MIN_DAYS = 29
FOUR_WEEKS = 28
MAX_MONTHS = 6  # the longest step: half a year (yearly data has no season within a year)
_MONTH_STEPS = {1: "month", 2: "two months", 3: "quarter", 6: "half-year"}
_MONTH_ADJ = {1: "monthly", 2: "two-monthly", 3: "quarterly", 6: "half-yearly"}


def months_per_step(step_days: int) -> int:
    """Calendar months a step of ``step_days`` spans: 1 for 29-31 days, 3 for 89-92
    (quarters), 6 for 181-184; 0 for steps counted in days (28: 4-week periods)."""
    return max(1, round(step_days / 30.44)) if step_days >= MONTHLY_MIN_DAYS else 0


# Daily data with no row on any Saturday or Sunday (at least this many dates: two weeks) steps
# by business days: Friday's next step is Monday, and a week is 5 steps.
BUSINESS, MIN_BUSINESS_DATES = 5, 14


def infer_weekdays(dates: np.ndarray, step_days: int) -> int:
    """Days of the week that are steps: BUSINESS (Monday to Friday) for daily data with no row
    on a weekend, else 7."""
    d = np.unique(np.asarray(dates).astype("datetime64[D]"))
    if step_days != 1 or len(d) < MIN_BUSINESS_DATES:
        return 7
    return 7 if (weekday(d) >= 5).any() else BUSINESS


def _step_words(step_days: int, weekdays: int) -> tuple[str, str]:
    """A step as a noun and as an adjective ("quarter", "quarterly")."""
    if weekdays == BUSINESS:
        return "business day", "business-day"
    if k := months_per_step(step_days):
        return _MONTH_STEPS.get(k, f"{k}-month step"), _MONTH_ADJ.get(k, f"{k}-month")
    named = {1: ("day", "daily"), 7: ("week", "weekly"), FOUR_WEEKS: ("4-week period", "4-weekly")}
    return named.get(step_days, (f"{step_days}-day step", f"{step_days}-day"))


def step_unit(step_days: int, weekdays: int = 7) -> str:
    """A step in words: "day", "business day", "week", "7-day step"..., "month", "quarter"."""
    return _step_words(step_days, weekdays)[0]


def step_adjective(step_days: int, weekdays: int = 7) -> str:
    """The panel's steps as an adjective: "daily", "business-day", "weekly", "monthly",
    "quarterly", "3-day"."""
    return _step_words(step_days, weekdays)[1]


def check_same_step(dates: np.ndarray, step_days: int, weekdays: int, path: object) -> None:
    """Refuse a file (another data set, a history) whose steps are not a run's: its dates read
    on the run's grid would be a sparse panel of the run's step (a quarterly history to a
    monthly run: two months in three missing). One date has no step: its shortness is said
    where the history is read (it was called weekly, infer_step_days' guess)."""
    u = np.unique(np.asarray(dates).astype("datetime64[D]"))
    if len(u) < 2:
        return
    gaps = np.diff(u).astype(np.int64)
    # Two dates 28 days apart are a 4-week run's steps (alone they read as months)
    four_weekly = step_days == FOUR_WEEKS and not (gaps % FOUR_WEEKS).any()
    have = FOUR_WEEKS if four_weekly else infer_step_days(dates)
    k, run_k = months_per_step(have), months_per_step(step_days)
    same = k == run_k if (k or run_k) else have == step_days
    days = weekdays if len(np.unique(dates)) < MIN_BUSINESS_DATES else infer_weekdays(dates, have)
    if not same or days != weekdays:
        raise ArchlabError(
            f"{path}: its steps are {step_adjective(have, days)} (dates {gaps.min()} day(s) "
            "apart) "
            f"but the run was trained on {step_adjective(step_days, weekdays)} steps"
        )


def _months(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype(np.int64)  # months since 1970-01 (year*12+month)


def time_index(
    dates: np.ndarray, origin: np.datetime64, step_days: int, weekdays: int = 7
) -> np.ndarray:
    """Step number of each date counted from ``origin`` (steps of calendar months for monthly
    or quarterly data, of business days where ``weekdays`` is BUSINESS)."""
    if weekdays == BUSINESS:  # weekend dates (none in such data) count as the Monday after
        day = np.asarray(origin).astype("datetime64[D]")
        return np.busday_count(day, np.asarray(dates).astype("datetime64[D]")).astype(np.int64)
    if k := months_per_step(step_days):
        return (_months(dates) - _months(np.asarray(origin))) // k
    return ((dates - origin) // np.timedelta64(step_days, "D")).astype(np.int64)


def step_dates(
    origin: np.datetime64, steps: np.ndarray, step_days: int, weekdays: int = 7
) -> np.ndarray:
    """The date of each step number. Steps of months fall on the origin's day of the month
    (held to each month's length), or on each month's last day where the origin is one: a
    panel dated at month ends forecasts month ends. Business days skip weekends."""
    if weekdays == BUSINESS:
        day = np.asarray(origin).astype("datetime64[D]")
        out = np.busday_offset(day, np.asarray(steps), roll="forward")
        return out.astype(np.asarray(origin).dtype)
    k = months_per_step(step_days)
    if not k:
        return origin + steps * np.timedelta64(step_days, "D")
    day = np.asarray(origin).astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    ends = (month + steps * k + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
    if (day + np.timedelta64(1, "D")).astype("datetime64[M]") != month:  # a month's last day
        return ends
    return np.minimum((month + steps * k).astype("datetime64[D]") + (day - month), ends)


def check_daily_or_longer(dates: pd.Series, path: str) -> None:
    """Refuse dates less than a day apart (hourly data): the panel's steps are days or longer."""
    u = np.unique(dates.to_numpy())
    gaps = np.diff(u) < np.timedelta64(1, "D")
    if gaps.any():
        i = int(np.flatnonzero(gaps)[0])
        raise ArchlabError(
            f"{path}: dates less than a day apart ({pd.Timestamp(u[i])} and "
            f"{pd.Timestamp(u[i + 1])}): steps shorter than a day are not supported; sum or "
            "average the rows of each day (or longer period) first"
        )


def infer_step_days(dates: np.ndarray) -> int:
    """The sampling period in days: the smallest gap between distinct dates (7 for weekly)
    where every gap is a multiple of it, else the usual one.

    29 or more means steps of calendar months (see ``months_per_step`` and ``time_index``);
    monthly data gives 30 (its February gap is 28 days too). Every gap a multiple of 28 days
    (three dates or more) is 4-week periods, 13 a year, as retailers' calendars keep them:
    28, counted in days.
    A few dates off the grid (a week booked on the Thursday before its Friday) would make the
    smallest gap a phantom step (6 days): the most common gap is the step instead, and
    ``check_grid`` refuses the dates off it. Dates at most one a calendar month, on varying
    days (monthly totals dated on the day they were booked), are steps of months. Gaps of a
    week or less with no common step (fixed opening weekdays) are days.
    """
    u = np.unique(np.asarray(dates).astype("datetime64[D]"))
    if len(u) < 2:
        return 7
    gaps = np.diff(u).astype(np.int64)
    least = max(1, int(gaps.min()))
    if least == FOUR_WEEKS and len(u) > 2 and not (gaps % FOUR_WEEKS).any():
        return FOUR_WEEKS  # no calendar month holds 28-day gaps between three dates
    if least >= FOUR_WEEKS:
        return max(least, 30)  # months (a February gap is 28 days)
    month_gaps = np.diff(_months(u))
    if len(u) > 2 and (month_gaps >= 1).all():  # at most one date a calendar month
        k, n = np.unique(month_gaps, return_counts=True)
        return max(MONTHLY_MIN_DAYS, round(int(k[np.argmax(n)]) * 30.44))
    days = np.unique(weekday(u))
    if np.gcd.reduce(gaps) == 1 < least and gaps.max() <= 7 and gaps.mean() <= 4 > len(days):
        # About two or more dates a week on fixed weekdays, with no common step (gaps of 2 and
        # 3: a shop open Mondays, Wednesdays and Fridays): days, the closed ones steps without
        # a value. Read on a 2-day grid, every other week's dates would land on other weekdays'
        # steps. (Weekly dates with one a day early average 7 days apart; 3-day steps with a
        # mistyped date fall on every weekday: neither is this.)
        return 1
    values, counts = np.unique(gaps, return_counts=True)
    usual = int(values[np.argmax(counts)])
    # A grid of the smallest gap with holes (weekly data missing some weeks) stays so where
    # most of its steps hold a date; else its steps between the usual ones are phantoms.
    steps = int((u[-1] - u[0]).astype(np.int64)) // least + 1
    # (2-day steps fill half the days: a mistyped date among them does not make them days.)
    if not (gaps % least).any() and (usual == least or 2 * len(u) > steps + 1):
        return least
    return usual


def _between(off: np.ndarray) -> np.ndarray:
    """Off-grid rows (of one series, by date) with a row on the grid before and after them."""
    on = ~off
    return off & (np.cumsum(on) > 0) & (np.cumsum(on[::-1])[::-1] > 0)


def check_grid(
    df: pd.DataFrame, keys: Sequence[str], date: str, step_days: int, weekdays: int, path: object
) -> None:
    """Refuse dates off the grid of steps ``step_days`` apart that most dates are on (a week
    booked a day early): read on it, such a row would fall into a step it does not belong to.
    Steps of months and days have no such grid: any day of a month is that month."""
    if months_per_step(step_days) or step_days == 1 or weekdays != 7:
        return
    d = df[date].to_numpy().astype("datetime64[D]").astype(np.int64)
    phase, counts = np.unique(d % step_days, return_counts=True)
    usual = phase[np.argmax(counts)]
    off = d % step_days != usual
    if not off.any():
        return
    # Refused: a few dates among a series' dates on the grid (a week booked a day early). Not:
    # a week-ending day that changed once (the dates after it are all off), or shops open on
    # fixed weekdays (half the dates "off" a 2- or 3-day grid), which read as before.
    order = np.lexsort((d, *(df[k].astype(str).to_numpy() for k in reversed(list(keys)))))
    groups = [df[k].to_numpy()[order] for k in keys] if keys else np.zeros(len(d))
    series = pd.Series(off[order]).groupby(groups, sort=False)
    between = series.transform(lambda o: _between(o.to_numpy()))
    if not between.any() or 4 * len(np.unique(d[off])) > len(np.unique(d)):
        return
    first = np.flatnonzero(d == d[off].min())[0]  # the earliest date off the grid
    key = ", ".join(f"{k} {df[k].iloc[first]}" for k in keys)
    day = pd.Timestamp(df[date].iloc[first])
    ahead = int((usual - d[first]) % step_days)  # to the nearest step's date
    on = day + pd.Timedelta(days=ahead if 2 * ahead <= step_days else ahead - step_days)
    weekly = step_days % 7 == 0
    grid = f"{on:%A}s" if weekly else f"{on:%Y-%m-%d} + k x {step_days} days"
    raise ArchlabError(
        f"{path}: dates {step_days} days apart are the usual step, but {len(np.unique(d[off]))} "
        f"of {len(np.unique(d))} dates ({int(off.sum())} row(s)) are off its grid ({grid}), "
        f"e.g. {key} on {day:%Y-%m-%d}"
        + (f", a {day:%A}" if weekly else "")
        + f": date each row on its step (here {on:%Y-%m-%d}), or correct mistyped dates"
    )


def check_step(step_days: int, path: str) -> None:
    """Refuse steps longer than MAX_MONTHS (yearly data): no season fits within a step's year."""
    if months_per_step(step_days) > MAX_MONTHS:
        raise ArchlabError(
            f"{path}: the dates are {step_days} days or more apart (yearly data): steps longer "
            "than half a year are not supported; give monthly or quarterly values"
        )


def check_aligned(df: pd.DataFrame, keys: Sequence[str], date: str, step_days: int,
                  path: str) -> None:  # fmt: skip
    """Refuse series whose own rows are all further apart than the panel's time step: their
    dates are offset from each other (weekly rows on different weekdays, months dated on
    different days), and the panel would read as a sparse one of the smaller step.
    ``df`` is sorted by series keys and date, as load_sales leaves it."""
    t = df[date].to_numpy().astype("datetime64[D]").astype(np.int64)
    same = np.zeros(len(df), bool)  # row i is in the series of row i - 1
    same[1:] = True
    for k in keys:
        v = df[k].to_numpy()
        same[1:] &= v[1:] == v[:-1]
    gaps = np.diff(t, prepend=t[:1])[same]
    # Against the closest distinct dates, not the step: days with closed weekdays (Mondays,
    # Wednesdays and Fridays) have no rows a step apart in any series, nor in the panel.
    u = np.unique(t)
    if not len(gaps) or gaps.min() <= max(step_days, int(np.diff(u).min()) if len(u) > 1 else 0):
        return
    # The two closest dates: name a row on each, the rarer one's first (a mistyped date is
    # on one row; series dated on other weekdays or days of the month are whole series).
    n = np.unique(t, return_counts=True)[1]
    a = int(np.argmin(np.diff(u)))
    gaps_u, counts = np.unique(np.diff(u), return_counts=True)
    usual = gaps_u[np.argmax(counts)]  # between most dates: off that grid is the odd one
    pair = sorted((a, a + 1), key=lambda j: (n[j], (u[j] - u[0]) % usual == 0))
    rows = [int(np.flatnonzero(t == u[j])[0]) for j in pair]
    show = [", ".join(f"{k} {df[k].iloc[j]}" for k in keys) + f" on {str(df[date].iloc[j])[:10]}"
            for j in rows]  # fmt: skip
    many = "s" if n[pair[0]] > 1 else ""
    raise ArchlabError(
        f"{path}: every series has rows at least {gaps.min()} days apart, but dates "
        f"{step_days} day(s) apart occur: {show[0]} ({n[pair[0]]} row{many} on that date) and "
        f"{show[1]} ({n[pair[1]]}): put every series on the same dates (e.g. each week's "
        "Monday, each month's first day), or correct a mistyped date"
    )


def build_panel(
    df: pd.DataFrame,
    keys: Sequence[str],
    date: str,
    target: str,
    holiday: str,
    covariates: Sequence[str],
    step_days: int,
    extra_steps: int = 0,
    weekdays: int = 7,
) -> Panel:
    """Scatter the merged rows into dense arrays (``extra_steps`` empty steps appended)."""
    d = df[date].to_numpy()
    origin = d.min()
    t = time_index(d, origin, step_days, weekdays)
    T = int(t.max()) + 1 + extra_steps
    codes = [pd.factorize(df[k], sort=True) for k in keys]
    key_arr = np.stack([df[k].to_numpy() for k in keys], 1)
    mult = np.cumprod([1] + [len(u) for _, u in codes[:0:-1]])[::-1]
    flat = sum(c * m for (c, _), m in zip(codes, mult, strict=True))
    _, first, s = np.unique(flat, return_index=True, return_inverse=True)
    clash = pd.Series(s * T + t).duplicated().to_numpy()
    if clash.any():  # irregular dates: two rows of one series fall into the same step
        i = int(np.flatnonzero(clash)[0])
        k = months_per_step(step_days)
        unit = f"calendar {step_unit(step_days)}" if k else f"{step_days}-day step"
        key = ", ".join(map(str, key_arr[i].tolist()))
        where = f"{file}: " if (file := df.attrs.get("read", {}).get("file")) else ""
        # Periods of 4, 4 and 5 weeks, or 30-day cycles, read as months: two in one month
        more = (": steps about a month apart are calendar months, so periods that are not "
                "(4-4-5 weeks, 30 days) do not fit; give one row per calendar month, 4-week "
                "periods (every date 28 days apart), or weekly rows" if k
                else "")  # fmt: skip
        raise ArchlabError(
            f"{where}series {key}: two rows fall into the same {unit} "
            f"(second one dated {str(d[i])[:10]}); the panel needs regularly spaced dates{more}"
        )
    y = np.full((len(first), T), np.nan)
    y[s, t] = df[target].to_numpy(float)
    hol = np.zeros(T, bool)
    if holiday:
        hol[t[df[holiday].to_numpy(bool)]] = True
    cov = np.full((len(first), T, len(covariates)), np.nan, dtype=np.float32)
    if covariates:
        cov[s, t] = df[list(covariates)].to_numpy(np.float32)
    dates = step_dates(origin, np.arange(T), step_days, weekdays)
    return Panel(key_arr[first], dates, y, hol, cov, s, t, weekdays)


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


def ffill_time(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1 of an (S, T, C) array (covariates carry over gaps)."""
    ok = ~np.isnan(a)
    idx = np.where(ok, np.arange(a.shape[1])[None, :, None], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(a, idx, axis=1)


def event_flags(
    dates: np.ndarray, events: Sequence[str], step_days: int, weekdays: int = 7
) -> np.ndarray:
    """(T,) 1.0 where a step's period holds an event date: [its date, the next step's date)
    (a Friday's holds its weekend on business days), or for steps of months its calendar
    months: from a step dated on a month's first day, up to one dated on its last, and the
    calendar quarter (half-year) of one dated between (15 February: January to March)."""
    d = dates.astype("datetime64[D]")
    if not len(d) or not len(events):
        return np.zeros(len(d), np.float32)
    ev = np.asarray(events, dtype="datetime64[D]")
    if k := months_per_step(step_days):
        # A step's months: those from its date's on, or up to it where it is a month's end
        # (a quarter dated 31 March is January to March); dated mid-month, the calendar
        # quarter (or half-year) it falls in: a fiscal quarter starts on a month's first day.
        m = _months(d)
        ends = (d + 1).astype("datetime64[M]") != d.astype("datetime64[M]")
        starts = d.astype("datetime64[M]").astype("datetime64[D]") == d
        first = np.where(ends, m - (k - 1), np.where(starts, m, m - (m % 12) % k))
        back = _months(ev)[None, :] - first[:, None]
        return ((back >= 0) & (back < k)).any(1).astype(np.float32)
    end = step_dates(d[0], np.arange(1, len(d) + 1), step_days, weekdays).astype("datetime64[D]")
    return ((d[:, None] <= ev) & (ev < end[:, None])).any(1).astype(np.float32)
