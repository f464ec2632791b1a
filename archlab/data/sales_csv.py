"""Reading a user's sales CSVs: files (plain or .gz), dates, numbers, flags and join checks.

Every bad cell is reported in one line naming the file, column, value and line number.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from archlab import fingerprint
from archlab.data.csv_format import TABLE_SUFFIXES, read_text_csv
from archlab.errors import ArchlabError


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name``, else ``name.gz`` beside it, else for a .csv name the same table as
    Parquet or JSON (``train.parquet`` for ``train.csv``); None where there is none."""
    names = [name, f"{name}.gz"]
    if name.lower().endswith(".csv"):
        names += [name[:-4] + s for s in TABLE_SUFFIXES]
    return next((directory / n for n in names if (directory / n).exists()), None)


def resolve_file(directory: Path, name: str) -> Path:
    """``find_file``'s file, or one line naming the one wanted."""
    if (p := find_file(directory, name)) is None:
        p = directory / name
        raise ArchlabError(f"{p}: no such file (set data.path to the folder holding it)")
    return p


def read_csv(
    path: Path, required: Sequence[str], encoding: str = "auto", keys: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a CSV (plain or .gz; CR/LF/CRLF line endings) and check its required columns;
    ``df.attrs["notes"]``: first lines on where ``auto`` found the file not UTF-8 and on the
    columns of a semicolon file read with a dot grouping thousands. The ``keys`` columns it
    has are read as written (``key_values``)."""
    fingerprint.record(path)

    grouped: list[str] = []  # columns whose dots group thousands (semicolon files)
    as_text = dict.fromkeys(keys, str)

    def read(src: Path, codec: str, sep: str) -> pd.DataFrame:
        if sep != ";":
            return pd.read_csv(src, encoding=codec, sep=sep, dtype=as_text)
        # Semicolon files come from locales that write 12,5 for 12.5 (a 12.5 still reads)
        # and 1.234 for 1234: read as text too, to tell a grouping dot from a decimal one.
        df = pd.read_csv(src, encoding=codec, sep=sep, decimal=",", dtype=as_text)
        grouped[:] = _dot_thousands(df, pd.read_csv(src, encoding=codec, sep=sep, dtype=str))
        return df

    try:
        df, _, note = read_text_csv(path, encoding, read)
    except LookupError:
        raise ArchlabError(
            f"unknown encoding {encoding!r}: use a Python codec name, e.g. data.encoding=latin-1"
        ) from None
    except UnicodeDecodeError as e:
        raise ArchlabError(
            f"{path}: cannot decode as {encoding} (byte 0x{e.object[e.start]:02x} at offset "
            f"{e.start}); set the file's encoding, e.g. --set data.encoding=latin-1"
        ) from None
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the file is empty (expected a header line and rows)") from None
    except (pd.errors.ParserError, OSError, EOFError, zlib.error) as e:  # zlib, EOF: bad .gz
        raise ArchlabError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    df.attrs["notes"] = [note] if note else []
    # A spreadsheet's trailing empty rows (",,,"): no row at all. Only at the end, so the
    # line numbers of the rows before stay true.
    empty = df.isna().all(axis=1).to_numpy()
    trailing = int(np.argmin(empty[::-1])) if not empty.all() else 0
    if trailing:
        notes = [*df.attrs["notes"], f"data: {path}: {trailing} empty row(s) at the end left out"]
        df = df.iloc[: len(df) - trailing].copy()
        df.attrs["notes"] = notes
    if grouped:
        df.attrs["notes"].append(
            f"data: {path}: a dot read as a thousands separator in column(s) {grouped} (every "
            "dotted number there groups digits by three, as in locales that write 1.234,5)"
        )
    check_columns(df, required, path)
    if df.empty:
        raise ArchlabError(f"{path}: no data rows (only a header line)")
    for column in df.columns:
        if column in as_text:
            df[column] = key_values(df[column])
        elif df[column].dtype.kind == "f":
            check_finite(df, column, path)
    return df


INTEGER = r"-?(?:0|[1-9]\d*)"  # an integer as a number prints it: no leading zero, no exponent


def key_values(cells: pd.Series) -> pd.Series:
    """A key column read as text, as numbers where each of its values is an INTEGER (store 1,
    dept 10); otherwise as written (spaces around it aside): store codes 001 and 01 are two
    stores, and 1E2 is not 100."""
    cells = cells.str.strip()  # "North " (a stray space) is North, as " 1" is 1
    given = cells.dropna()
    if len(given) and given.str.fullmatch(INTEGER).all():
        return pd.to_numeric(cells)  # int64; float64 with an empty cell (refused)
    return cells


def check_columns(df: pd.DataFrame, required: Sequence[str], path: Path, hint: str = "") -> None:
    """Refuse a file without the ``required`` columns, in one line ending with ``hint``."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        header = ",".join(map(str, df.columns))
        # A name that differs only in letter case or spaces ("Date" for "date") is the likely one.
        near = [(m, f) for m in missing for f in map(str, df.columns)
                if f != m and f.strip().casefold() == m.strip().casefold()]  # fmt: skip
        if near:
            hint = f"; did you mean {near[0][1]!r} for {near[0][0]!r}? (names must match exactly)"
        hint = next(
            (f"; the header looks {sep!r}-separated, save the file comma-separated"
             for sep in (";", "\t", "|") if sep in header),
            hint,
        )  # fmt: skip
        raise ArchlabError(
            f"{path}: missing column(s) {missing}; found columns {list(df.columns)}{hint}"
        )


# A number whose dots group digits by three (1.234, 12.345.678,9), and one with no dot (912, 12,5).
GROUPED = r"[-+]?[1-9]\d{0,2}(?:\.\d{3})+(?:,\d*)?"
UNDOTTED = r"[-+]?\d+(?:,\d*)?"


def _dot_thousands(df: pd.DataFrame, raw: pd.DataFrame) -> list[str]:
    """Re-read, in place, the columns of a semicolon file (``raw``: its cells as text) whose
    every number is GROUPED or UNDOTTED, with a GROUPED one among them: there a dot groups
    thousands, and pandas' decimal-comma reading would take 1.234 for 1.234, not 1234.
    A column with any other dotted number (12.5, 0.125) keeps pandas' reading. Returns them."""
    columns = []
    for column in raw.columns:
        cells = raw[column].dropna().str.strip()
        grouped = cells.str.fullmatch(GROUPED)
        if grouped.any() and (grouped | cells.str.fullmatch(UNDOTTED)).all():
            text = cells.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            df[column] = pd.to_numeric(text).reindex(df.index)
            columns.append(str(column))
    return columns


def check_finite(df: pd.DataFrame, column: str, path: Path) -> None:
    """Refuse inf and -inf in a numeric column (NaN, an empty cell, stays 'missing').

    One inf in a target or covariate turns the fitted scalers into inf/NaN and every metric
    into nonsense with exit 0, so it is an input error naming its line.
    """
    values = df[column].to_numpy(dtype=float)
    bad = np.flatnonzero(np.isinf(values))
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: column {column!r} has the non-finite value {values[i]} at line {i + 2}; "
            "write a number, or leave the cell empty for a missing value"
        )


def _show(value: object) -> str:
    """A cell as the user wrote it: 'an empty cell', or the text in quotes (no numpy reprs)."""
    return "an empty cell" if pd.isna(value) else repr(str(value))


# Formats ``data.date_format=auto`` tries. Day-first and month-first formats both fit dates whose
# days are all <= 12: then the order is ambiguous and the user must say it.
DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y", "%d.%m.%Y", "%m.%d.%Y",
    "%d/%m/%y", "%m/%d/%y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y",
    "%Y-%m", "%Y-%m-%dT%H:%M",  # monthly exports (2018-01); ISO minutes without seconds
    "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M",  # Excel's and databases' minutes
    "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z",  # with an offset (pandas writes the second)
)  # fmt: skip


# "auto:<format>": inferred, with <format> (a run's own, inferred or set) tried first and taken
# where several fit: a run's later files (a few dates, all days <= 12) read as its data did.
PREFER = "auto:"


def infer_date_format(df: pd.DataFrame, column: str, path: Path, prefer: str = "") -> str:
    """The one format of ``DATE_FORMATS`` that reads every date of ``column`` (its distinct values).

    None fits: the format reading most of them, so that ``parse_dates`` names the first value it
    cannot read. Several fit (day-first and month-first): ``prefer`` where it is one of them,
    else refused, naming ``data.date_format``.
    """
    raw = pd.Series(df[column].dropna().unique())
    if not len(raw):
        return DATE_FORMATS[0]
    values = raw.astype(str)  # numbers (20100205) as the text they were
    formats = dict.fromkeys((prefer, *DATE_FORMATS) if prefer else DATE_FORMATS)
    read = {f: _readable(values, f) for f in formats}
    fit = [f for f, n in read.items() if n == len(values)]
    if prefer in fit:
        return prefer
    # Formats that read every date alike are one reading (with and without an offset's %z).
    first = _parsed(values, fit[0]) if fit else None
    other = [f for f in fit[1:] if (_parsed(values, f) != first).any()]
    if other:
        differ = (_parsed(values, other[0]) != first).to_numpy()
        sample = str(values[differ].iloc[0])
        fit = [fit[0], other[0]]
        fix = (_saved_fix(prefer) if prefer else
               f"set data.date_format={fit[0]} or data.date_format={fit[1]}")  # fmt: skip
        raise ArchlabError(
            f"{path}: dates in column {column!r} read both as {fit[0]!r} and {fit[1]!r} "
            f"(e.g. {sample!r}: day and month are both <= 12 everywhere); {fix}"
        )
    if fit:
        return fit[0]
    return max(read, key=lambda f: read[f])


def _saved_fix(fmt: str) -> str:
    """The fix of a date a saved run cannot read in a later file (predict takes no settings)."""
    return f"write the dates as the run's data were ({fmt}) or as YYYY-MM-DD"


def _parsed(values: pd.Series, fmt: str) -> pd.Series:
    text, local = _local_time(values, fmt)
    return pd.to_datetime(text, format=local, errors="coerce")


def _readable(values: pd.Series, fmt: str) -> int:
    """How many of ``values`` ``fmt`` reads (as parse_dates reads them: offsets dropped)."""
    text, local = _local_time(values, fmt)
    try:
        return int(pd.to_datetime(text, format=local, errors="coerce").notna().sum())
    except ValueError:
        return 0


def _local_time(text: pd.Series, fmt: str) -> tuple[pd.Series, str]:
    """Dates with an offset (``fmt`` with %z) as their local calendar time: text and format
    without it. An offset converted to one zone could move a day's row into the day before
    (and mixed offsets, as daylight saving gives, clash)."""
    if "%z" not in fmt and "%Z" not in fmt:
        return text, fmt
    text = text.str.replace(r"\s*(?:Z|UTC|GMT|[+-]\d\d:?\d\d)$", "", regex=True)
    return text, fmt.replace("%z", "").replace("%Z", "").strip()


def parse_dates(df: pd.DataFrame, column: str, fmt: str, path: Path) -> str:
    """Parse ``column`` in place with ``fmt`` ('auto': inferred); the first bad value is reported
    with its line. Returns the format used."""
    prefer = fmt.removeprefix(PREFER) if fmt.startswith(PREFER) else ""
    inferred = fmt == "auto" or bool(prefer)
    if inferred:
        fmt = infer_date_format(df, column, path, prefer)
    raw = df[column]
    # A column read as numbers (20100205, inf) is parsed as the text it was: no epoch casts.
    text, local = _local_time(raw.astype(str) if raw.dtype.kind in "biuf" else raw, fmt)
    try:
        parsed = pd.to_datetime(text, format=local, errors="coerce")
    except ValueError as e:  # e.g. "ISO8601" given, with mixed offsets
        raise ArchlabError(f"{path}: dates in column {column!r}: {e} (data.date_format "
                           f"{fmt!r})") from None  # fmt: skip
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)  # local calendar time, as above
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        if pd.isna(raw.iloc[i]):
            raise ArchlabError(f"{path}: an empty date in column {column!r} at line {i + 2}")
        # An inferred format is only the one reading the most dates: not what was expected.
        said = (f"no date format reads them all, {fmt!r} the most" if inferred else
                f"expected format {fmt!r}")  # fmt: skip
        raise ArchlabError(
            f"{path}: unparseable date {_show(raw.iloc[i])} in column {column!r} at line "
            f"{i + 2} ({said}; {_saved_fix(prefer) if prefer else 'set data.date_format'})"
        )
    df[column] = parsed
    return fmt


TRUE = ("true", "1", "1.0", "yes", "y", "t")  # flags as spreadsheets and databases write them
FALSE = ("false", "0", "0.0", "no", "n", "f")


def parse_bool(df: pd.DataFrame, column: str, path: Path) -> None:
    """Holiday flags written TRUE/FALSE, 1/0, yes/no, Y/N or t/f (any case) -> bool, in place."""
    s = df[column]
    if s.dtype == bool:
        return
    low = s.astype(str).str.strip().str.lower()
    ok = low.isin(TRUE + FALSE)
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise ArchlabError(
            f"{path}: column {column!r} has non-boolean value {_show(s.iloc[i])} at line {i + 2}"
            " (write true/false, 1/0 or yes/no)"
        )
    df[column] = low.isin(TRUE)


def parse_number(df: pd.DataFrame, column: str, path: Path) -> None:
    """Coerce ``column`` to float in place; the first non-number is reported with its line."""
    if pd.api.types.is_numeric_dtype(df[column]):
        df[column] = df[column].astype(float)
        check_finite(df, column, path)
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
    check_finite(df, column, path)


def parse_covariates(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """The covariate ``columns`` of ``df`` that it has, as floats in place: numbers, or flags
    written as words (yes/no, true/false: 1/0); the first other value is one line."""
    for column in (c for c in columns if c in df.columns):
        if not pd.api.types.is_numeric_dtype(df[column]):  # text: a flag written as words?
            low = df[column].astype(str).str.strip().str.lower().where(df[column].notna())
            if low.notna().any() and low.dropna().isin(TRUE + FALSE).all():
                df[column] = low.isin(TRUE).astype(float).where(low.notna())
                continue
        parse_number(df, column, path)


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
