"""Image loading: class-folder trees (optionally under train/val/test folders), CSV manifests,
.npz arrays and scikit-learn's bundled digits.

Everything is decoded once into one uint8 array (N, C, H, W); splitting and batching work on
indices into it, so no image is decoded twice and no per-sample Python runs while training.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from archlab.errors import ArchlabError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
NPZ_KEYS = ("images", "labels")
# Split folder and manifest split names (lower-cased) -> archlab's split. Keras' and torchvision's
# examples and most public sets use train/ + val/ (or valid/, validation/) + test/.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")
# Manifest columns tried in order when data.path_column / data.label_column are empty.
PATH_COLUMNS = ("path", "filepath", "file_path", "image_path", "filename", "file", "image",
                "img", "image_id", "id")  # fmt: skip
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target", "y")
SPLIT_COLUMNS = ("split", "subset", "set")  # not "fold": cross-validation folds are no split


@dataclass
class ImageSet:
    """Decoded images with labels; ``provided_split`` holds the data's own split tags."""

    images: np.ndarray  # uint8, (N, C, H, W)
    labels: np.ndarray  # int64, (N,)
    class_names: list[str]
    source: str
    provided_split: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)  # corrupt files skipped (skip_corrupt=true)
    ignored: int = 0  # non-image files ignored in class folders
    layout: str = ""  # class_folders, split_folders, manifest, npz, digits
    split_origin: dict[str, str] = field(
        default_factory=dict
    )  # split -> folder/column it came from


@dataclass(frozen=True)
class Manifest:
    """Column names of a CSV manifest ('' = detect); ``image_root`` = what paths are relative to."""

    path_column: str = ""
    label_column: str = ""
    split_column: str = ""
    image_root: str = ""  # '' = the manifest's folder


def load_image_set(
    path: str,
    *,
    fmt: str,
    size: int,
    channels: int,
    skip_corrupt: bool = False,
    layout: str = "auto",
    manifest: Manifest | None = None,
) -> ImageSet:
    """Load ``path`` (folder, CSV manifest, .npz, or '' for built-in digits) as size x size.

    A folder is ``root/<class>/...`` or, with ``layout`` 'split' (or 'auto' and a ``train``
    sub-folder), ``root/{train,val|valid|validation,test}/<class>/...``.
    """
    if channels not in (1, 3):
        raise ArchlabError(f"invalid config value data.channels={channels}: must be 1 or 3")
    if fmt == "auto":
        if not path:
            fmt = "digits"
        else:
            p = Path(path)
            if not p.exists():
                raise ArchlabError(f"{path}: no such file or directory")
            suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
            fmt = (
                "folder" if p.is_dir()
                else "npz" if p.suffix == ".npz"
                else "manifest" if suffix.lower() in (".csv", ".csv.gz")
                else "unknown"
            )  # fmt: skip
            if fmt == "unknown":
                raise ArchlabError(
                    f"{path}: expected a folder of class sub-folders, a .csv manifest "
                    "(path and label columns) or an .npz file"
                )
    if fmt == "digits":
        s = _load_digits()
    elif fmt == "npz":
        s = _load_npz(Path(path))
    elif fmt == "folder":
        s = _load_folder(Path(path), channels, size, skip_corrupt, layout)
    elif fmt == "manifest":
        s = _load_manifest(Path(path), manifest or Manifest(), channels, size, skip_corrupt)
    else:
        raise ArchlabError(
            f"invalid config value data.format={fmt!r}: auto, folder, manifest, npz, digits"
        )
    s.images = _to_channels(s.images, channels)
    if (size and s.images.shape[-1] != size) or (size and s.images.shape[-2] != size):
        s.images = resize_uint8(s.images, size)
    _check_classes(s)
    return s


def _load_digits() -> ImageSet:
    # scikit-learn ships 1,797 real 8x8 handwritten digits (UCI), intensities 0..16.
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return ImageSet(
        images=images,
        labels=d.target.astype(np.int64),
        class_names=[str(c) for c in d.target_names],
        source="sklearn.datasets.load_digits (UCI handwritten digits, 8x8)",
        layout="digits",
    )


def _load_npz(path: Path) -> ImageSet:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ArchlabError(f"{path}: not a readable .npz file ({e.__class__.__name__})") from None
    missing = [k for k in NPZ_KEYS if k not in z.files]
    if missing:
        raise ArchlabError(
            f"{path}: missing array(s) {missing}; found {sorted(z.files)}; "
            "expected 'images' (N,H,W[,C]) uint8 and 'labels' (N,) integers"
        )
    try:
        images, labels = z["images"], z["labels"]
    except ValueError:
        raise ArchlabError(
            f"{path}: arrays must be plain numeric arrays (no pickled objects)"
        ) from None
    if images.dtype != np.uint8:
        raise ArchlabError(f"{path}: 'images' has dtype {images.dtype}; expected uint8 (0..255)")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ArchlabError(
            f"{path}: 'images' has shape {images.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C in 1, 3, 4"
        )
    if (
        labels.ndim != 1
        or len(labels) != len(images)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise ArchlabError(
            f"{path}: 'labels' must be a 1-D integer array of length {len(images)}; "
            f"got shape {labels.shape} dtype {labels.dtype}"
        )
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if "class_names" in z.files:
        class_names = [str(c) for c in z["class_names"]]
    else:
        class_names = [str(i) for i in range(n_classes)]
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ArchlabError(
            f"{path}: 'labels' has values outside 0..{len(class_names) - 1} "
            f"(found {int(labels.min())}..{int(labels.max())})"
        )
    split = None
    if "split" in z.files:
        split = z["split"].astype(str)
        bad = set(np.unique(split)) - {"train", "test", "val"}
        if bad or len(split) != len(labels):
            raise ArchlabError(f"{path}: 'split' must hold 'train'/'val'/'test' for every image")
    images = images[..., :3] if images.shape[-1] == 4 else images  # drop alpha
    return ImageSet(
        images=np.ascontiguousarray(images.transpose(0, 3, 1, 2)),
        labels=labels.astype(np.int64),
        class_names=class_names,
        source=str(path),
        provided_split=split,
        layout="npz",
        split_origin={} if split is None else {k: "npz 'split' array" for k in np.unique(split)},
    )


def _class_files(d: Path) -> tuple[list[Path], int]:
    """Image files anywhere under class folder ``d`` (sorted), and how many others were there."""
    found = [p for p in sorted(d.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    imgs = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
    return imgs, len(found) - len(imgs)


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path, layout: str) -> dict[str, Path]:
    """archlab split -> folder when ``root`` holds train/val/test folders ({} = class folders)."""
    if layout == "classes":
        return {}
    dirs = _subdirs(root)
    named = {d: SPLIT_NAMES.get(d.name.lower()) for d in dirs}
    tagged = {d: sp for d, sp in named.items() if sp and d.name.lower() in SPLIT_FOLDERS}
    if layout == "auto" and not any(sp == "train" for sp in tagged.values()):
        if tagged and len(tagged) == len(dirs):  # val/ and test/ but no train/
            raise ArchlabError(
                f"{root}: holds split folders ({', '.join(d.name for d in tagged)}) but no "
                "train/ folder; the training split needs root/train/<class>/..."
            )
        return {}
    if not any(sp == "train" for sp in tagged.values()):
        raise ArchlabError(
            f"{root}: data.layout=split but there is no train/ folder "
            "(expected root/train/<class>/..., optionally val/ and test/ beside it)"
        )
    other = [d.name for d in dirs if d not in tagged]
    if other:
        raise ArchlabError(
            f"{root}: split folders ({', '.join(d.name for d in tagged)}) beside other folders "
            f"{other}; move those out, or set data.layout=classes to read every folder as a class"
        )
    out: dict[str, Path] = {}
    for d, sp in tagged.items():
        if sp in out:
            raise ArchlabError(
                f"{root}: both {out[sp].name}/ and {d.name}/ name the {sp} split; keep one"
            )
        out[sp] = d
    for sp, d in out.items():
        loose = [
            p.name for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if loose:
            raise ArchlabError(
                f"{d}: holds images ({loose[0]}, ...) outside class folders; a labelled {sp} "
                f"split needs {d.name}/<class>/<image> (move unlabelled images out)"
            )
    return out


def _load_folder(
    root: Path, channels: int, size: int, skip_corrupt: bool, layout: str = "auto"
) -> ImageSet:
    splits = split_folders(root, layout)
    if splits:
        return _load_split_folders(root, splits, channels, size, skip_corrupt)
    class_dirs = _subdirs(root)
    if not class_dirs:
        raise ArchlabError(f"{root}: no class sub-folders found (expected root/<class>/<image>)")
    files: list[tuple[Path, int]] = []
    ignored = 0
    for label, d in enumerate(class_dirs):
        imgs, n_other = _class_files(d)
        ignored += n_other
        if not imgs:
            raise ArchlabError(
                f"{d}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += [(p, label) for p in imgs]
    images, labels, skipped, _ = _decode(root, files, channels, size, skip_corrupt)
    return ImageSet(
        images=images,
        labels=labels,
        class_names=[d.name for d in class_dirs],
        source=str(root),
        skipped=skipped,
        ignored=ignored,
        layout="class_folders",
    )


def _load_split_folders(
    root: Path, splits: dict[str, Path], channels: int, size: int, skip_corrupt: bool
) -> ImageSet:
    """``root/<split>/<class>/...``: classes are the union of every split's class folders."""
    per_split = {sp: {d.name: d for d in _subdirs(folder)} for sp, folder in splits.items()}
    if not per_split["train"]:
        raise ArchlabError(
            f"{splits['train']}: no class sub-folders found (expected train/<class>/<image>)"
        )
    names = sorted({n for classes in per_split.values() for n in classes})
    files: list[tuple[Path, int]] = []
    tags: list[str] = []
    ignored = 0
    have: dict[str, set[str]] = {sp: set() for sp in splits}
    for sp, classes in per_split.items():
        for n, d in classes.items():
            imgs, n_other = _class_files(d)
            ignored += n_other
            if imgs:
                have[sp].add(n)
            files += [(p, names.index(n)) for p in imgs]
            tags += [sp] * len(imgs)
    _check_train_has_every_class(root, names, have, "folder")
    images, labels, skipped, keep = _decode(root, files, channels, size, skip_corrupt)
    return ImageSet(
        images=images,
        labels=labels,
        class_names=names,
        source=str(root),
        provided_split=np.array(tags)[keep],
        skipped=skipped,
        ignored=ignored,
        layout="split_folders",
        split_origin={sp: f"{d.name}/" for sp, d in splits.items()},
    )


def _check_train_has_every_class(
    source: Path, names: Sequence[str], have: dict[str, set[str]], kind: str
) -> None:
    missing = {n: sp for sp in ("val", "test") for n in sorted(have.get(sp, set()) - have["train"])}
    if missing:
        n, sp = next(iter(missing.items()))
        where = f"{sp}/{n}/ has images but train/{n}/ has none" if kind == "folder" else (
            f"class {n!r} has {sp} rows but no train row"
        )  # fmt: skip
        raise ArchlabError(
            f"{source}: class {n!r} is missing from the training split ({where}); "
            f"a model cannot learn it (classes without training images: {sorted(missing)})"
        )
    empty = [n for n in names if not any(n in h for h in have.values())]
    if empty:
        raise ArchlabError(f"{source}: class(es) {empty} have no images")


def _decode(
    root: Path,
    files: list[tuple[Path, int]],
    channels: int,
    size: int,
    skip_corrupt: bool,
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Decode (path, label) pairs: (N, C, size, size) uint8, labels, skipped paths, kept rows."""
    if not size:
        raise ArchlabError(f"{root}: data.size=0 (keep native) is not supported for folders")
    mode = "L" if channels == 1 else "RGB"

    def decode(p: Path) -> np.ndarray | None:
        try:
            with Image.open(p) as im:
                im = (
                    im.convert("RGBA").convert(mode) if im.mode in ("P", "LA") else im.convert(mode)
                )
                im = im.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            if skip_corrupt:
                return None
            raise ArchlabError(
                f"{p}: cannot decode image ({e.__class__.__name__}); remove it or set "
                "data.skip_corrupt=true to skip unreadable files"
            ) from None

    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL releases the GIL while decoding
        decoded = list(pool.map(decode, [p for p, _ in files]))
    keep = [i for i, a in enumerate(decoded) if a is not None]
    skipped = [str(files[i][0]) for i, a in enumerate(decoded) if a is None]
    if not keep:
        raise ArchlabError(f"{root}: no image could be decoded")
    images = np.ascontiguousarray(np.stack([decoded[i] for i in keep]).transpose(0, 3, 1, 2))
    labels = np.array([files[i][1] for i in keep], dtype=np.int64)
    return images, labels, skipped, np.array(keep)


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


def _load_manifest(
    path: Path, m: Manifest, channels: int, size: int, skip_corrupt: bool
) -> ImageSet:
    """A CSV with one row per image: a path (relative to the CSV's folder), a label, a split."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise ArchlabError(
            f"{path}: cannot decode as UTF-8; re-save the manifest as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the manifest is empty (expected a header and rows)") from None
    except (pd.errors.ParserError, OSError, EOFError) as e:
        raise ArchlabError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    cols = [str(c) for c in df.columns]
    df.columns = cols
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
    if df.empty:
        raise ArchlabError(f"{path}: no rows (only a header line)")
    base = Path(m.image_root) if m.image_root else path.parent
    files: list[tuple[Path, int]] = []
    labels_raw = df[lcol].str.strip()
    empty = np.flatnonzero((labels_raw == "").to_numpy())
    if len(empty):
        raise ArchlabError(f"{path}: empty label in column {lcol!r} at line {empty[0] + 2}")
    values = sorted(labels_raw.unique(), key=_label_order)
    index = {v: i for i, v in enumerate(values)}
    tags = np.full(len(df), "train", dtype=object)
    if scol:
        low = df[scol].str.strip().str.lower()
        bad = np.flatnonzero(~low.isin(list(SPLIT_NAMES)).to_numpy())
        if len(bad):
            i = int(bad[0])
            raise ArchlabError(
                f"{path}: unknown split value {df[scol].iloc[i]!r} in column {scol!r} at line "
                f"{i + 2}; use train, val (valid, validation, dev) or test"
                + ("" if m.split_column else ", or set data.split_column=none to ignore the column")
            )
        tags = low.map(SPLIT_NAMES).to_numpy(dtype=object)
    for i, (rel, lab) in enumerate(zip(df[pcol].str.strip(), labels_raw, strict=True)):
        p = _find_image(Path(rel) if Path(rel).is_absolute() else base / rel)
        if not rel or not p.is_file():
            hint = "" if m.image_root else "; paths are relative to the CSV (data.image_root=DIR)"
            raise ArchlabError(
                f"{path}: line {i + 2}: image {rel!r} (column {pcol!r}) not found at {p}{hint}"
            )
        files.append((p, index[lab]))
    have = {sp: set(labels_raw[tags == sp]) for sp in ("train", "val", "test")}
    if scol:
        _check_train_has_every_class(path, values, have, "manifest")
    images, labels, skipped, keep = _decode(path, files, channels, size, skip_corrupt)
    origin = {sp: f"column {scol!r}" for sp in ("train", "val", "test") if have[sp]}
    return ImageSet(
        images=images,
        labels=labels,
        class_names=values,
        source=str(path),
        provided_split=np.asarray(tags, dtype=str)[keep] if scol else None,
        skipped=skipped,
        layout="manifest",
        split_origin=origin if scol else {},
    )


def _find_image(p: Path) -> Path:
    """``p``, or ``p`` plus an image extension when the manifest's ids have none (Kaggle's form)."""
    if p.suffix.lower() in IMAGE_EXTENSIONS or p.is_file():
        return p
    found = (p.with_name(p.name + e) for e in (".jpg", ".png", ".jpeg", *sorted(IMAGE_EXTENSIONS)))
    return next((q for q in found if q.is_file()), p)


def _label_order(v: str) -> tuple[int, float | str]:
    """Integer-like labels in numeric order (2 before 10), then the rest alphabetically."""
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
        rgb = images.astype(np.float32)
        gray = rgb[:, 0] * 0.299 + rgb[:, 1] * 0.587 + rgb[:, 2] * 0.114
        return np.clip(np.round(gray), 0, 255).astype(np.uint8)[:, None]
    return np.repeat(images, 3, axis=1)


def resize_uint8(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """Bilinear (antialiased) resize of a uint8 (N, C, H, W) array to size x size."""
    out = []
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(images[i : i + chunk]).float()
        y = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(y.round().clamp(0, 255).to(torch.uint8).numpy())
    return np.concatenate(out) if out else images


def _check_classes(s: ImageSet) -> None:
    present = np.unique(s.labels)
    if len(s.class_names) < 2 or len(present) < 2:
        raise ArchlabError(
            f"{s.source}: found {len(present)} class(es) ({', '.join(s.class_names)}); "
            "classification needs at least 2"
        )
    counts = np.bincount(s.labels, minlength=len(s.class_names))
    empty = [s.class_names[i] for i, c in enumerate(counts) if c == 0]
    if empty:
        raise ArchlabError(f"{s.source}: class(es) {empty} have no images")
