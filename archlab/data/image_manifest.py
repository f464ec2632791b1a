"""CSV manifests of images: one row per image with a path, a label and optionally a split."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from archlab import fingerprint
from archlab.data.csv_format import case_note, label_spellings, read_text_csv
from archlab.data.folders import SPLIT_NAMES
from archlab.data.image_set import (
    IMAGE_EXTENSIONS,
    ImageSet,
    check_train_has_every_class,
    conflict_note,
    decode_files,
    file_notes,
)
from archlab.errors import ArchlabError

# Manifest columns tried in order when data.path_column / data.label_column are empty.
PATH_COLUMNS = ("path", "filepath", "file_path", "image_path", "filename", "file", "image",
                "img", "image_id", "id")  # fmt: skip
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target", "y")
SPLIT_COLUMNS = ("split", "subset", "set")  # not "fold": cross-validation folds are no split


@dataclass(frozen=True)
class Manifest:
    """Column names of a CSV manifest ('' = detect); ``image_root`` = what paths are relative to."""

    path_column: str = ""
    label_column: str = ""
    split_column: str = ""
    image_root: str = ""  # '' = the manifest's folder


def _pick_column(
    path: Path, columns: list[str], given: str, candidates: Sequence[str], key: str, what: str
) -> str:
    if given:
        if given not in columns:
            raise ArchlabError(
                f"{path}: no {what} column {given!r} (data.{key}); columns are {columns}"
            )
        return given
    lower = {c.lower(): c for c in columns}
    found = next((lower[c] for c in candidates if c in lower), "")
    return found


def load_manifest(
    path: Path, m: Manifest, channels: int, size: int, skip_corrupt: bool
) -> ImageSet:
    """A CSV with one row per image: a path (relative to the CSV's folder), a label, a split."""
    fingerprint.record(path)
    base = Path(m.image_root) if m.image_root else path.parent
    df, codec, notes = _read(path, base)
    # A file's line of row i: after the header line, or from line 1 in a headerless manifest.
    line0 = 1 if df.attrs.get("headerless") else 2
    pcol, lcol, scol = _columns(path, df, m)
    if df.empty:
        raise ArchlabError(f"{path}: no rows (only a header line)")
    cells = df[lcol].str.strip()
    # Read as text runs read labels (label_spellings): invisible characters at the ends removed
    # as spaces are, a missing value's spellings ('NaN', 'NA', 'null') missing, '0' and '0.0'
    # (a spreadsheet's numbers) one class; what was changed is said.
    spelt, spellings = label_spellings(path, cells.tolist(), ())
    labels_raw = pd.Series(spelt, index=cells.index)
    _refuse_missing_labels(path, cells, labels_raw, lcol, line0)
    if spellings:
        notes.append(spellings)
    values = sorted(labels_raw.unique(), key=_label_order)
    tags = _split_tags(path, df, scol, m, line0)
    cols = _Columns(pcol, lcol, scol, line0)
    labels = labels_raw.tolist()
    rows, repeats = _rows(path, df[pcol].str.strip().tolist(), labels, tags, cols, base, m)
    if repeats:
        notes.append(f"data: {path}: dropped {len(repeats)} row(s) that repeat an earlier one "
                     f"(same image, label and split; {repeats[0]})")  # fmt: skip
    index = {v: i for i, v in enumerate(values)}
    files = [(p, index[labels[i]]) for i, p in rows.items()]
    have = {sp: set(labels_raw[tags == sp]) for sp in ("train", "val", "test")}
    if scol:
        check_train_has_every_class(path, values, have, "manifest")
    dec = decode_files(path, files, channels, size, skip_corrupt)
    kept = np.asarray(tags, dtype=str)[list(rows)][dec.keep]
    shown = [f"{_shown(path.parent, files[i][0])} ({values[files[i][1]]})" for i in dec.keep]
    label_notes = [
        case_note(path, values),
        conflict_note(dec.digests, dec.labels, shown),
    ]
    origin = {sp: f"column {scol!r}" for sp in ("train", "val", "test") if have[sp]}
    return ImageSet(
        images=dec.images,
        labels=dec.labels,
        class_names=values,
        source=str(path),
        provided_split=kept if scol else None,
        skipped=dec.skipped,
        layout="manifest",
        files=dec.paths,
        split_origin=origin if scol else {},
        digests=dec.digests,
        native_side=dec.native_side,
        encoding=codec,
        notes=[*notes, *file_notes(path.parent, dec.skipped, []), *filter(None, label_notes)],
    )


def _refuse_missing_labels(
    path: Path, cells: pd.Series, labels: pd.Series, column: str, line0: int
) -> None:
    """An image without a label (an empty cell, or one a missing value's spelling empties) is
    refused, naming the first: an image cannot be learnt or scored without its class."""
    empty = np.flatnonzero((labels == "").to_numpy())
    if not len(empty):
        return
    cell = cells.iloc[int(empty[0])]
    what = f"missing label {cell!r} (a missing value, as text runs read it)" if cell else (
        "empty label")  # fmt: skip
    more = f" ({len(empty)} rows without a label)" if len(empty) > 1 else ""
    raise ArchlabError(
        f"{path}: {what} in column {column!r} at line {empty[0] + line0}{more}; label each "
        "image or remove its row"
    )


def _shown(folder: Path, p: Path) -> str:
    """Image file ``p`` as a first line names it: relative to ``folder`` where it lies under it."""
    try:
        return str(p.relative_to(folder))
    except ValueError:
        return str(p)


class _Columns(NamedTuple):
    """The manifest's path, label and split columns, and the file line of its first row."""

    path: str
    label: str
    split: str
    line0: int


def _rows(
    path: Path,
    rels: list[str],
    labels: list[str],
    tags: np.ndarray,
    cols: _Columns,
    base: Path,
    m: Manifest,
) -> tuple[dict[int, Path], list[str]]:
    """Each row's image file (row -> file, rows that repeat an earlier one left out) and which
    rows were left out. One file under two labels or in two splits is refused: it cannot be
    both, and in two splits its test score would not be held out."""
    rows: dict[int, Path] = {}
    repeats: list[str] = []
    first: dict[Path, int] = {}  # resolved file -> its first row
    for i, rel in enumerate(rels):
        p = _image_file(path, i + cols.line0, rel, cols.path, base, m)
        j = first.setdefault(p.resolve(), i)
        lines = f"lines {j + cols.line0} and {i + cols.line0} list the same image {str(p)!r}"
        if labels[j] != labels[i]:
            raise ArchlabError(
                f"{path}: {lines} with the labels {labels[j]!r} and {labels[i]!r} "
                f"(column {cols.label!r}); keep one"
            )
        if tags[j] != tags[i]:
            raise ArchlabError(
                f"{path}: {lines} in the {tags[j]} and the {tags[i]} split "
                f"(column {cols.split!r}); keep one"
            )
        if j != i:
            repeats.append(f"line {i + cols.line0} repeats line {j + cols.line0}")
        else:
            rows[i] = p
    return rows, repeats


def _read(path: Path, base: Path) -> tuple[pd.DataFrame, str, list[str]]:
    """The manifest's cells as strings, the encoding read and first-line notes. A first line
    with an image file name in it is a row, not a header (``df.attrs["headerless"]``): read as
    a header, that image would be lost and its path and label taken for column names."""

    def read(src: Path, codec: str, sep: str) -> pd.DataFrame:
        df = pd.read_csv(src, dtype=str, keep_default_na=False, sep=sep, encoding=codec)
        if not any(_names_image(str(c), base) for c in df.columns):
            return df
        df = pd.read_csv(src, dtype=str, keep_default_na=False, sep=sep, encoding=codec,
                         header=None)  # fmt: skip
        df.columns = [f"col{k + 1}" for k in range(df.shape[1])]
        df.attrs["headerless"] = True
        return df

    try:
        df, codec, note = read_text_csv(path, "auto", read)
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the manifest is empty (expected a header and rows)") from None
    except (pd.errors.ParserError, OSError, EOFError) as e:
        raise ArchlabError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    df.columns = [str(c) for c in df.columns]
    notes = [note] if note else []
    if df.attrs.get("headerless"):
        notes.append(f"data: {path} has no header line (its first line names an image): read "
                     f"as columns {', '.join(df.columns)}")  # fmt: skip
    return df, codec, notes


def _names_image(cell: str, base: Path) -> bool:
    """Whether a header cell is an image path (an image file name, or a file under ``base``)."""
    cell = cell.strip()
    return cell.lower().endswith(tuple(IMAGE_EXTENSIONS)) or (
        bool(cell) and (base / cell.replace("\\", "/")).is_file()
    )


def _columns(path: Path, df: pd.DataFrame, m: Manifest) -> tuple[str, str, str]:
    """The path, label and split columns ('' split: none): as named, else by a known name,
    else the column of image file names and, beside it, the one other column as the label."""
    cols = list(df.columns)
    pcol = _pick_column(path, cols, m.path_column, PATH_COLUMNS, "path_column", "path")
    if not pcol:  # no known name: the column whose cells are image file names
        pcol = next(
            (c for c in cols if len(df) and df[c].str.lower().str.endswith(
                tuple(IMAGE_EXTENSIONS)).all()), ""
        )  # fmt: skip
    lcol = _pick_column(path, cols, m.label_column, LABEL_COLUMNS, "label_column", "label")
    scol = (
        ""
        if m.split_column.lower() == "none"
        else _pick_column(path, cols, m.split_column, SPLIT_COLUMNS, "split_column", "split")
    )
    if not lcol:  # two columns, one of them the paths: the other one is the label (Kaggle's form)
        rest = [c for c in cols if c not in (pcol, scol)]
        lcol = rest[0] if pcol and len(rest) == 1 else ""
    if not pcol or not lcol:
        key, what = ("path_column", "image path") if not pcol else ("label_column", "label")
        raise ArchlabError(
            f"{path}: cannot tell which column holds the {what}s; columns are {cols}; "
            f"set data.{key}=<column>"
        )
    return pcol, lcol, scol


def _split_tags(path: Path, df: pd.DataFrame, scol: str, m: Manifest, line0: int) -> np.ndarray:
    """Each row's split (train, val or test) from the split column; all train without one."""
    if not scol:
        return np.full(len(df), "train", dtype=object)
    low = df[scol].str.strip().str.lower()
    bad = np.flatnonzero(~low.isin(list(SPLIT_NAMES)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: unknown split value {df[scol].iloc[i]!r} in column {scol!r} at line "
            f"{i + line0}; use train, val (valid, validation, dev) or test"
            + ("" if m.split_column else ", or set data.split_column=none to ignore the column")
        )
    return low.map(SPLIT_NAMES).to_numpy(dtype=object)


def _image_file(path: Path, line: int, rel: str, pcol: str, base: Path, m: Manifest) -> Path:
    """The image file a row names (``rel``, relative to ``base`` unless absolute)."""
    if "\\" in rel and not (base / rel).exists():  # a manifest written on Windows
        rel = rel.replace("\\", "/")
    if not (base / rel).exists():  # names written in the other Unicode form (macOS: NFD)
        rel = next((f for f in (unicodedata.normalize(n, rel) for n in ("NFD", "NFC"))
                    if (base / f).exists()), rel)  # fmt: skip
    p = _find_image(path, line, Path(rel) if Path(rel).is_absolute() else base / rel)
    if not rel or not p.is_file():
        hint = "" if m.image_root else "; paths are relative to the CSV (data.image_root=DIR)"
        what = f"not found at {p}{hint}"
        if rel and p.is_dir():
            what = f"is a folder ({p}), not an image file"
        raise ArchlabError(f"{path}: line {line}: image {rel!r} (column {pcol!r}) {what}")
    return p


def _find_image(manifest: Path, line: int, p: Path) -> Path:
    """``p``, or ``p`` plus an image extension when the manifest's ids have none (Kaggle's form);
    an id that two files share (``id.jpg`` and ``id.png``) is refused, not guessed."""
    if p.suffix.lower() in IMAGE_EXTENSIONS or p.is_file():
        return p
    exts = (".jpg", ".png", ".jpeg", *sorted(IMAGE_EXTENSIONS - {".jpg", ".png", ".jpeg"}))
    found = [q for q in (p.with_name(p.name + e) for e in exts) if q.is_file()]
    if len(found) > 1:
        raise ArchlabError(
            f"{manifest}: line {line}: image id {p.name!r} matches "
            f"{' and '.join(q.name for q in found)} in {p.parent}; name the file with its "
            "extension in the manifest"
        )
    return found[0] if found else p


def _label_order(v: str) -> tuple[int, float | str]:
    """Integer-like labels in numeric order (2 before 10), then the rest alphabetically."""
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)
