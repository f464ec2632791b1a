"""Images kept in a table: a Parquet file whose rows hold encoded images (the Hugging Face Hub's
image data sets: an image column of {bytes, path} structs beside a label column), or a folder
of such files named by their split (``train-00000-of-00001.parquet``, ``test-...``).

A Parquet file without an image column is a manifest of image paths (image_manifest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from archlab import fingerprint
from archlab.data.csv_format import PARQUET_SUFFIXES, hf_class_names
from archlab.data.folders import split_tables
from archlab.data.image_manifest import LABEL_COLUMNS, Manifest, _label_order
from archlab.data.image_set import (
    ImageSet,
    check_train_has_every_class,
    conflict_note,
    decode_blobs,
    file_notes,
)
from archlab.errors import ArchlabError


def is_parquet(name: str | Path) -> bool:
    return str(name).lower().endswith(PARQUET_SUFFIXES)


def image_tables(path: Path) -> dict[str, list[Path]]:
    """The Parquet files of encoded images ``path`` names: itself (one file, no split), or a
    folder's split files (folders.split_tables); {} where it names none (a manifest of paths,
    or a folder of class folders)."""
    if path.is_dir():
        tables = split_tables(path, is_parquet)
        return tables if tables and _image_column(_schema(tables["train"][0])) else {}
    if is_parquet(path) and _image_column(_schema(path)):
        return {"": [path]}
    return {}


def _schema(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ArchlabError(f"{path}: cannot be read as Parquet ({str(e)[:120]})") from None


def _image_column(schema: Any) -> str:
    """The column of encoded images: a struct with a binary ``bytes`` field (the Hub's Image
    feature), or a binary column; "" where there is none."""
    import pyarrow as pa

    for f in schema:
        t = f.type
        if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0:
            t = t.field("bytes").type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return f.name
    return ""


def load_image_table(
    tables: dict[str, list[Path]],
    m: Manifest,
    channels: int,
    size: int,
    skip_corrupt: bool,
    held_out: bool = False,
) -> ImageSet:
    """The tables' images decoded as files are (image_set.decode_blobs), labelled by
    ``m.label_column`` (else the Hub's class-label column, else a usual label name); each
    image named ``FILE#ROW``. Split files give the data's split unless ``held_out``."""
    import pyarrow.parquet as pq

    first = tables.get("train", tables.get(""))[0]
    schema = _schema(first)
    image = _image_column(schema)
    names_by_col = hf_class_names(schema.metadata or {})
    label = _label_column(first, schema.names, m.label_column, names_by_col)
    class_names = names_by_col.get(label)
    blobs: list[tuple[str, bytes]] = []
    raw: list[Any] = []
    tags: list[str] = []
    hidden = 0
    for sp, paths in tables.items():
        for p in paths:
            fingerprint.record(p)
            try:
                t = pq.read_table(p, columns=[image, label])
            except (OSError, ValueError, KeyError) as e:
                why = str(e)[:120]
                raise ArchlabError(f"{p}: cannot be read as an image table ({why})") from None
            cells = t.column(image).to_pylist()
            values = t.column(label).to_pylist()
            for i, (cell, v) in enumerate(zip(cells, values, strict=True)):
                if v is None or (class_names is not None and isinstance(v, int) and v < 0):
                    hidden += 1  # the Hub's -1: a test split with its labels withheld
                    continue
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not data:
                    raise ArchlabError(f"{p}: row {i}: no image bytes in column {image!r}")
                blobs.append((f"{p}#{i}", data))
                raw.append(v)
                tags.append(sp or "train")
    if not blobs:
        raise ArchlabError(f"{first}: no labelled image in column {label!r}")
    if class_names is not None:
        bad = next((v for v in raw if not isinstance(v, int) or v >= len(class_names)), None)
        if bad is not None:
            raise ArchlabError(
                f"{first}: label {bad!r} in column {label!r} is no class id of its metadata's "
                f"{len(class_names)} classes"
            )
        values = [class_names[v] for v in raw]
    else:
        values = [str(v) for v in raw]
        class_names = sorted(set(values), key=_label_order)
    labels = np.array([class_names.index(v) for v in values], dtype=np.int64)
    split = any(tables) and "" not in tables and not held_out
    if split:
        have = {sp: {class_names[i] for i in labels[np.array(tags) == sp]} for sp in tables}
        check_train_has_every_class(first.parent, class_names, have, "folder")
    items = [(n, b, int(y)) for (n, b), y in zip(blobs, labels, strict=True)]
    dec = decode_blobs(first.parent, items, channels, size, skip_corrupt)
    kept = np.array(tags)[dec.keep]
    hub = " (the names its Hugging Face metadata gives them)" if label in names_by_col else ""
    n_files = sum(len(v) for v in tables.values())
    notes = [
        f"data: {first.parent if split else first}: {len(dec.paths):,} images read from column "
        f"{image!r} of {n_files} Parquet file(s), labels from column {label!r}{hub}",
        f"data: {hidden} row(s) without a label left out (the Hub's -1: labels withheld)"
        if hidden
        else "",
        *file_notes(first.parent, dec.skipped, []),
        conflict_note(dec.digests, dec.labels, [Path(n).name for n in dec.paths]),
    ]
    return ImageSet(
        images=dec.images,
        labels=dec.labels,
        class_names=list(class_names),
        source=str(first.parent if split else first),
        provided_split=kept if split else None,
        skipped=dec.skipped,
        layout="table",
        split_origin={sp: _origin(tables[sp]) for sp in tables if split and (kept == sp).any()},
        digests=dec.digests,
        files=dec.paths,
        native_side=dec.native_side,
        notes=[n for n in notes if n],
    )


def _origin(paths: list[Path]) -> str:
    return paths[0].name if len(paths) == 1 else f"{paths[0].name} (+{len(paths) - 1})"


def _label_column(path: Path, columns: list[str], given: str, hub: dict[str, list[str]]) -> str:
    """data.label_column where set (it must exist), else the Hub's one class-label column,
    else the first usual label name (any case)."""
    if given:
        if given not in columns:
            raise ArchlabError(
                f"{path}: no label column {given!r} (data.label_column); columns are {columns}"
            )
        return given
    if len(hub) == 1 and next(iter(hub)) in columns:
        return next(iter(hub))
    lower = {c.lower(): c for c in columns}
    found = next((lower[c] for c in LABEL_COLUMNS if c in lower), "")
    if not found:
        raise ArchlabError(
            f"{path}: no label column (tried {', '.join(LABEL_COLUMNS)}); columns are {columns}: "
            "set data.label_column"
        )
    return found
