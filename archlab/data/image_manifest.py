"""CSV manifests of images: one row per image with a path, a label and optionally a split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from archlab import fingerprint
from archlab.data.csv_format import read_text_csv
from archlab.data.image_set import (
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    ImageSet,
    check_train_has_every_class,
    decode_files,
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
    df, codec, note = _read(path)
    pcol, lcol, scol = _columns(path, df, m)
    if df.empty:
        raise ArchlabError(f"{path}: no rows (only a header line)")
    labels_raw = df[lcol].str.strip()
    empty = np.flatnonzero((labels_raw == "").to_numpy())
    if len(empty):
        raise ArchlabError(f"{path}: empty label in column {lcol!r} at line {empty[0] + 2}")
    values = sorted(labels_raw.unique(), key=_label_order)
    index = {v: i for i, v in enumerate(values)}
    tags = _split_tags(path, df, scol, m)
    base = Path(m.image_root) if m.image_root else path.parent
    files: list[tuple[Path, int]] = []
    first_row: dict[Path, int] = {}  # resolved file -> its first row, to catch a file listed twice
    for i, (rel, lab) in enumerate(zip(df[pcol].str.strip(), labels_raw, strict=True)):
        p = _image_file(path, i + 2, rel, pcol, base, m)
        j = first_row.setdefault(p.resolve(), i)
        if tags[j] != tags[i]:  # one file in two splits: its test score would not be held out
            raise ArchlabError(
                f"{path}: lines {j + 2} and {i + 2} list the same image {str(p)!r} in the "
                f"{tags[j]} and the {tags[i]} split (column {scol!r}); keep one"
            )
        files.append((p, index[lab]))
    have = {sp: set(labels_raw[tags == sp]) for sp in ("train", "val", "test")}
    if scol:
        check_train_has_every_class(path, values, have, "manifest")
    dec = decode_files(path, files, channels, size, skip_corrupt)
    origin = {sp: f"column {scol!r}" for sp in ("train", "val", "test") if have[sp]}
    return ImageSet(
        images=dec.images,
        labels=dec.labels,
        class_names=values,
        source=str(path),
        provided_split=np.asarray(tags, dtype=str)[dec.keep] if scol else None,
        skipped=dec.skipped,
        layout="manifest",
        split_origin=origin if scol else {},
        digests=dec.digests,
        native_side=dec.native_side,
        encoding=codec,
        notes=[note] if note else [],
    )


def _read(path: Path) -> tuple[pd.DataFrame, str, str]:
    """The manifest's cells as strings, the encoding read and its first-line note."""

    def read(codec: str, sep: str) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, encoding=codec)

    try:
        df, codec, note = read_text_csv(path, "auto", read)
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the manifest is empty (expected a header and rows)") from None
    except (pd.errors.ParserError, OSError, EOFError) as e:
        raise ArchlabError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    df.columns = [str(c) for c in df.columns]
    return df, codec, note


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


def _split_tags(path: Path, df: pd.DataFrame, scol: str, m: Manifest) -> np.ndarray:
    """Each row's split (train, val or test) from the split column; all train without one."""
    if not scol:
        return np.full(len(df), "train", dtype=object)
    low = df[scol].str.strip().str.lower()
    bad = np.flatnonzero(~low.isin(list(SPLIT_NAMES)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: unknown split value {df[scol].iloc[i]!r} in column {scol!r} at line "
            f"{i + 2}; use train, val (valid, validation, dev) or test"
            + ("" if m.split_column else ", or set data.split_column=none to ignore the column")
        )
    return low.map(SPLIT_NAMES).to_numpy(dtype=object)


def _image_file(path: Path, line: int, rel: str, pcol: str, base: Path, m: Manifest) -> Path:
    """The image file a row names (``rel``, relative to ``base`` unless absolute)."""
    if "\\" in rel and not (base / rel).exists():  # a manifest written on Windows
        rel = rel.replace("\\", "/")
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
