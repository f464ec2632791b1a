"""Image loading: load_image_set (the one entry point), .npz arrays, digits, channels and size.

Folders of class sub-folders, optionally under train/val/test folders, are read by
image_folders.py, CSV manifests by image_manifest.py, and both decode files in image_set.py.

Everything is decoded once into one uint8 array (N, C, H, W); splitting and batching work on
indices into it, so no image is decoded twice and no per-sample Python runs while training.
One process keeps its last decoded set (the trials of ``train --budget``, an ablation's cells).
"""

from __future__ import annotations

import copy
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archlab import fingerprint
from archlab.data.csv_format import is_table_name
from archlab.data.image_folders import load_folder, split_folders
from archlab.data.image_manifest import Manifest, load_manifest
from archlab.data.image_set import (
    IMAGE_EXTENSIONS,
    ImageSet,
    auto_size,
    conflict_note,
    digest,
    size_note,
)
from archlab.data.image_table import image_tables, is_parquet, load_image_table
from archlab.data.splits import duplicate_groups
from archlab.errors import ArchlabError
from archlab.utils import ContentCache, file_key

NPZ_KEYS = ("images", "labels")


FORMATS = ("folder", "manifest", "table", "npz", "digits")


def load_image_set(
    path: str,
    *,
    fmt: str,
    size: int,
    channels: int,
    skip_corrupt: bool = False,
    layout: str = "auto",
    manifest: Manifest | None = None,
    held_out: bool = False,
) -> ImageSet:
    """Load ``path`` (folder, CSV manifest, .npz, or '' for built-in digits) as size x size.

    A folder is ``root/<class>/...`` or, with ``layout`` 'split' (or 'auto' and a ``train``
    sub-folder), ``root/{train,val|valid|validation,test}/<class>/...``. ``held_out``: a set a
    saved run scores whole (eval --all), which may hold a single class.
    """
    if channels not in (0, 1, 3):
        raise ArchlabError(
            f"invalid config value data.channels={channels}: must be 1, 3 or 0 (auto)"
        )
    if fmt == "auto":
        if not path:
            fmt = "digits"
        else:
            p = Path(path)
            if not p.exists():
                raise ArchlabError(f"{path}: no such file or directory")
            suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
            fmt = (
                "table" if (p.is_dir() or is_parquet(p)) and image_tables(p)
                else "folder" if p.is_dir()
                else "npz" if p.suffix == ".npz"
                else "manifest" if suffix.lower() in (".csv", ".csv.gz") or is_table_name(p)
                else "unknown"
            )  # fmt: skip
            if fmt == "unknown":
                raise ArchlabError(
                    f"{path}: expected a folder of class sub-folders, a .csv manifest "
                    "(path and label columns), a Parquet file of images or an .npz file"
                )
    if fmt not in FORMATS:
        raise ArchlabError(f"invalid config value data.format={fmt!r}: auto, {', '.join(FORMATS)}")
    args = (size, channels, skip_corrupt, layout, manifest, held_out)
    if fmt == "digits":
        return _decode(path, fmt, *args)
    key = _set_key(path, fmt, *args)
    if (hit := _cached(key)) is not None:
        return hit
    with fingerprint.recording() as reads:
        s = _decode(path, fmt, *args)
    for p in reads:  # the run's own fingerprint, outside the inner recording
        fingerprint.record(p, aux=p in reads.aux)
    if key is not None and s.images.nbytes <= MAX_CACHED_BYTES:
        files = tuple((p, *_stat(p)) for p in sorted(reads))
        _DECODED.put(key, (copy.deepcopy(s), files))
    return s


# A decoded set, kept while its inputs are unchanged: later runs in the process copy it instead
# of decoding every file again. Only the last one, and only when it is small enough to hold twice.
MAX_CACHED_BYTES = 512 << 20
_DECODED: ContentCache[tuple[ImageSet, tuple[tuple[str, int, int], ...]]] = ContentCache(keep=1)


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _set_key(path: str, fmt: str, *args: object) -> str | None:
    """What the decoded set depends on besides the files it reads (checked on a hit): the
    arguments, the data file, and for a folder every file under it (one added, removed or
    renamed changes the key)."""
    if not os.path.isdir(path):
        return file_key(path, fmt, *args)
    h = hashlib.sha256(repr((os.path.abspath(path), args)).encode())
    for d, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                h.update(repr((p, *_stat(p))).encode())
            except OSError:  # vanished while walking: decode it as usual, no cache
                return None
    return h.hexdigest()


def _cached(key: str | None) -> ImageSet | None:
    """A copy of the cached set for ``key`` when every file it read is unchanged, each
    recorded in the run's fingerprint as a fresh read would be."""
    kept = _DECODED.lookup(key) if key is not None else None
    if kept is None:
        return None
    s, files = kept
    try:
        if any(_stat(p) != (size, mtime) for p, size, mtime in files):
            return None
    except OSError:
        return None
    for p, _, _ in files:
        fingerprint.record(p)
    return copy.deepcopy(s)


def _decode(
    path: str,
    fmt: str,
    size: int,
    channels: int,
    skip_corrupt: bool,
    layout: str,
    manifest: Manifest | None,
    held_out: bool = False,
) -> ImageSet:
    if fmt == "digits":
        s = _load_digits()
    elif fmt == "npz":
        s = _load_npz(Path(path))
    elif fmt == "folder":
        s = load_folder(Path(path), channels or 3, size, skip_corrupt, layout, held_out)
    elif fmt == "table":
        if not (tables := image_tables(Path(path))):
            raise ArchlabError(
                f"{path}: no Parquet file of encoded images (a column of image bytes) here "
                "(data.format=table)"
            )
        m = manifest or Manifest()
        s = load_image_table(tables, m, channels or 3, size, skip_corrupt, held_out)
    else:
        s = load_manifest(Path(path), manifest or Manifest(), channels or 3, size, skip_corrupt)
    if not channels:
        channels = _auto_channels(s)
    s.images = _to_channels(s.images, channels)
    if not size:  # auto: folders and manifests were decoded at it already
        s.native_side = side = s.native_side or min(s.images.shape[-2:])
        size = auto_size(side)
        s.notes.append(size_note(size, side))
    if s.images.shape[-2:] != (size, size):
        s.images = resize_uint8(s.images, size)
    if not held_out:  # training needs 2+ classes; a set scored whole may hold one
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
        digests=_array_digests(images),
    )


def _load_npz(path: Path) -> ImageSet:
    fingerprint.record(path)
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
    digests = _array_digests(images)
    shown = [f"image {i} ({class_names[k]})" for i, k in enumerate(labels.tolist())]
    clash = conflict_note(digests, labels, shown)
    images = images[..., :3] if images.shape[-1] == 4 else images  # drop alpha
    return ImageSet(
        images=np.ascontiguousarray(images.transpose(0, 3, 1, 2)),
        labels=labels.astype(np.int64),
        class_names=class_names,
        source=str(path),
        provided_split=split,
        layout="npz",
        split_origin={} if split is None else {k: "npz 'split' array" for k in np.unique(split)},
        digests=digests,
        notes=[clash] if clash else [],
    )


def _array_digests(images: np.ndarray) -> list[str]:
    """Each image's content hash: the bytes of its array as stored (per image, not per file)."""
    return [digest(np.ascontiguousarray(a).tobytes()) for a in images]


# A grey picture stored as RGB decodes with equal channels (JPEG included); a colour photo's
# channels differ by tens of levels on average (images3: 30, its 1st percentile 5). An image
# whose mean |R-G| + |G-B| exceeds this many grey levels has colour.
COLOUR_SPREAD = 2.0


def colour_images(images: np.ndarray) -> int:
    """How many of the (N, C, H, W) uint8 images have colour (``COLOUR_SPREAD``)."""
    if images.shape[1] == 1 or not len(images):
        return 0
    n = 0
    chunk = max(1, (1 << 24) // images[0].size)  # int16 copies of 16M pixels at a time (32 MB)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].astype(np.int16)
        spread = np.abs(x[:, 0] - x[:, 1]) + np.abs(x[:, 1] - x[:, 2])
        n += int((spread.mean(axis=(1, 2)) > COLOUR_SPREAD).sum())
    return n


def _auto_channels(s: ImageSet) -> int:
    """data.channels=0: RGB when any image has colour, else grayscale; said on a first line."""
    s.colour_images = n = colour_images(s.images)
    if n:
        s.notes.append(f"data: {n:,} of {len(s.images):,} images have colour: read as RGB "
                       "(data.channels=1 for grayscale)")  # fmt: skip
        return 3
    s.notes.append("data: no image has colour: read as grayscale")
    return 1


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
    if s.provided_split is None:
        _check_carvable(s)


# How to give a class a second image, or drop it, in each layout ({0}: "it" or "each").
GROW_OR_DROP = {
    "class_folders": "add images to {0} or remove its folder",
    "manifest": "add rows of {0} to the manifest or remove its rows",
    "npz": "add images of {0} or remove its images",
}


def _check_carvable(s: ImageSet) -> None:
    """Refuse, naming them, classes a stratified split cannot carve (under 2 distinct images)
    where splits.stratified_split would refuse the set without naming any: where a class
    holds one image alone and the set carries no split of its own (data.subset would fail on
    it too). Counted as the split counts: copies of one picture are one, and a copy belongs to
    the class of the first of them."""
    groups = np.arange(len(s.labels)) if s.digests is None else duplicate_groups(s.digests)
    distinct = np.bincount(s.labels[np.unique(groups)], minlength=len(s.class_names))
    files = np.bincount(s.labels, minlength=len(s.class_names))
    if not ((distinct == 1) & (files == 1)).any():
        return  # a class of copies alone may yet be carved from a subset: left to the split
    few = np.flatnonzero(distinct == 1).tolist()

    def held(i: int) -> str:
        # The rest of its images copy that one, or an earlier image of another class.
        return "1 image" if files[i] == 1 else f"1 distinct image of {files[i]}"

    if len(few) == 1:
        which = f"class {s.class_names[few[0]]!r} has {held(few[0])}"
    else:
        which = "classes " + ", ".join(f"{s.class_names[i]!r} ({held(i)})" for i in few[:5])
        which += ", ..." if len(few) > 5 else ""
    fix = GROW_OR_DROP.get(s.layout, "add images to {0} or remove its images")
    raise ArchlabError(
        f"{s.source}: too few images for a stratified test split: {which} (need >= 2 per "
        f"class to carve train, val and test); {fix.format('it' if len(few) == 1 else 'each')}"
    )


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "Manifest",
    "load_image_set",
    "resize_uint8",
    "split_folders",
]
