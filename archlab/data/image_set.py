"""What every image loader returns, and the steps they share: decoding files, split names.

``ImageSet`` is one uint8 array (N, C, H, W) with labels; the folder and manifest loaders
(image_folders.py, image_manifest.py) decode their files here and check their splits alike.
``decode_image`` is the one way an image file becomes pixels: training, eval, predict and
explain all call it, so they see the same pixels.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from archlab import fingerprint
from archlab.errors import ArchlabError

# .jfif is a JPEG under the name some browsers save downloads with.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# What PIL raises on a file it cannot read: a truncated or fake image, an unknown format, or one
# over its pixel limit (DecompressionBombError, which is no OSError: a huge scan or panorama).
# Between the limit and twice it PIL only warns, naming no file: an error here too, so that
# such a file is named (or skipped) like one over twice the limit.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


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
    # Per image, a hash of its bytes (the file's, or the array's for npz and digits): images
    # with equal digests are the same picture, kept in one split when splits are carved.
    digests: list[str] | None = None
    files: list[str] | None = None  # per image, the file it was decoded from (not arrays)
    encoding: str = ""  # a manifest's text encoding (data.json), "" for images alone
    notes: list[str] = field(default_factory=list)  # first lines about reading (an encoding)
    colour_images: int | None = None  # data.channels=auto: how many images have colour
    native_side: int | None = None  # data.size=auto: the images' median shorter side (pixels)


# data.size=0 (auto) resizes to the images' median shorter side held to this range (rounded
# down to a multiple of 8): under 32 the networks' poolings run out of pixels (MIN_SIZE); over
# 64 an epoch on CPU costs (size / 32)² times one at 32 (64 already ~3.5x) for detail that 2
# cores cannot afford to learn from. data.size=N sets any size.
AUTO_SIZE = (32, 64)


def auto_size(side: int) -> int:
    """data.size=0: the size images of this (median) shorter side are resized to."""
    return int(np.clip(side, *AUTO_SIZE)) // 8 * 8


def size_note(size: int, side: int) -> str:
    """The first line of a run whose data.size was auto."""
    lo, hi = AUTO_SIZE
    return (
        f"data: images resized to {size}x{size} (data.size=auto: their median shorter side is "
        f"{side} px, held to {lo}..{hi}; data.size=N sets it)"
    )


def digest(data: bytes) -> str:
    """A content hash of an image's bytes (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


def check_train_has_every_class(
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
    check_every_class_has_images(source, names, have)


def check_every_class_has_images(
    source: Path, names: Sequence[str], have: dict[str, set[str]]
) -> None:
    """Refuse a class (folder or label) with no image in any split (``have``: split -> the
    classes with images there)."""
    empty = [n for n in names if not any(n in h for h in have.values())]
    if empty:
        raise ArchlabError(f"{source}: class(es) {empty} have no images")


def file_notes(
    root: Path, skipped: Sequence[str], ignored: Sequence[Path], beside: Sequence[Path] = ()
) -> list[str]:
    """The run's first lines on files left out: unreadable ones skipped (data.skip_corrupt),
    non-image files beside the images, and files beside the class folders (``beside``: in no
    class), each with its count and the first names."""
    notes = []
    if skipped:
        notes.append(f"data: skipped {len(skipped)} unreadable file(s) (data.skip_corrupt=true): "
                     f"{_first_names(root, skipped)}")  # fmt: skip
    if ignored:
        exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        notes.append(f"data: ignored {len(ignored)} non-image file(s) "
                     f"({_first_names(root, ignored)}); images are {exts}")  # fmt: skip
    if beside:
        # Photos dropped at the top level (not yet sorted) are the likeliest: say how to use them.
        images = any(Path(p).suffix.lower() in IMAGE_EXTENSIONS for p in beside)
        hint = "; an image there has no class: move it into a class folder to use it" * images
        notes.append(f"data: {root}: {len(beside)} file(s) beside the class folders left out "
                     f"({_first_names(root, beside)}){hint}")  # fmt: skip
    return notes


def conflict_note(digests: Sequence[str], labels: np.ndarray, names: Sequence[str]) -> str:
    """A first-line warning where byte-identical images carry different labels (one photo
    filed under two classes): the network learns both and is scored on both, one always
    wrong; "" if none. ``names``: each image as the line shows it (a path). Nothing is
    dropped: which label is right is the user's call, and the split stays as it was."""
    if len(set(digests)) == len(digests):
        return ""
    groups: dict[str, dict[int, int]] = {}  # digest -> label -> its first image
    for i, d in enumerate(digests):
        groups.setdefault(d, {}).setdefault(int(labels[i]), i)
    clashes = [" = ".join(names[i] for i in g.values()) for g in groups.values() if len(g) > 1]
    if not clashes:
        return ""
    more = ", ..." if len(clashes) > 2 else ""
    return (f"data: warning: {len(clashes)} group(s) of identical images carry different labels "
            f"({', '.join(clashes[:2])}{more}); each copy is learnt and scored under its own "
            "label: keep each picture under one")  # fmt: skip


def _first_names(root: Path, paths: Sequence[str | Path], shown: int = 3) -> str:
    """The first ``shown`` of ``paths``, relative to ``root`` where they lie under it."""
    names = []
    for p in paths[:shown]:
        try:
            names.append(str(Path(p).relative_to(root)))
        except ValueError:
            names.append(str(p))
    return ", ".join(names) + (", ..." if len(paths) > shown else "")


# PIL modes of 16-bit grayscale; their values run 0..65535 and are scaled to 0..255 by that
# format maximum (65535 -> 255), the same for every image, as 16-bit RGB PNGs are read by PIL
# (high byte). convert("L") would clip every value above 255 to white.
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
UINT16_MAX = 65535
EXIF_ORIENTATION = 0x0112


def decode_reason(e: Exception) -> str:
    """Why PIL could not read a file, in words where its exception's name says little."""
    if isinstance(e, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"over PIL's pixel limit: {str(e).split(', could')[0]}"
    if isinstance(e, FileNotFoundError):
        name = e.filename
        if name and os.path.islink(name):  # a link into a data cache that is not there
            return f"a broken symbolic link, to {os.readlink(name)}"
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "a folder, not an image file"
    if type(e) is OSError and e.args:  # PIL's own reason: "image file is truncated ..."
        return f"OSError: {str(e.args[0])[:100]}"
    return e.__class__.__name__


def decode_image(
    path: Path | BinaryIO, channels: int, size: int, data: bytes | None = None
) -> np.ndarray:
    """One image file or open binary file (its ``data`` when already read) as (size, size,
    channels) uint8.

    EXIF orientation is applied. Palette and gray+alpha images go through RGBA (so a
    transparent palette entry keeps its colour); alpha is dropped; 16-bit grayscale is scaled
    by 65535, not clipped. Raises PIL's errors for unreadable files, ArchlabError for pixel
    types archlab does not read.
    """
    mode = "L" if channels == 1 else "RGB"
    with Image.open(io.BytesIO(data) if data is not None else path) as im:
        limit = Image.MAX_IMAGE_PIXELS  # PIL only warns below twice it (whatever the filters)
        if limit and im.width * im.height > limit:
            raise Image.DecompressionBombError(
                f"Image size ({im.width * im.height} pixels) exceeds limit of {limit} pixels"
            )
        # A phone stores a photo as the sensor read it, with the turn to show it upright in EXIF
        # (tag 0x0112); viewers honour it, so the model must too. Checked first: exif_transpose
        # copies every image, turned or not.
        if im.getexif().get(EXIF_ORIENTATION, 1) != 1:
            im = ImageOps.exif_transpose(im)
        if im.mode in MODES_16BIT or im.mode == "I":
            arr = np.asarray(im).astype(np.int64)
            # Mode I (32-bit) is how PIL opens some 16-bit files; larger values are no 16-bit
            # image, and no scale would be right for every file.
            if arr.size and (arr.min() < 0 or arr.max() > UINT16_MAX):
                raise ArchlabError(
                    f"{path}: 32-bit integer pixels ({arr.min()}..{arr.max()}); archlab reads "
                    "8-bit and 16-bit images: save it as 8- or 16-bit"
                )
            gray = np.round(arr * (255.0 / UINT16_MAX)).astype(np.uint8)
            im = Image.fromarray(gray).convert(mode)
        elif im.mode == "F":
            raise ArchlabError(
                f"{path}: 32-bit float pixels (PIL mode F) have no fixed range; archlab reads "
                "8-bit and 16-bit images: save it as 8- or 16-bit"
            )
        elif im.mode in ("P", "PA", "LA"):
            im = im.convert("RGBA").convert(mode)
        else:
            im = im.convert(mode)
        im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)


class Decoded(NamedTuple):
    """Decoded files: (N, C, size, size) uint8, labels, skipped paths, kept rows, digests, and
    the file of each image."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[str]
    keep: np.ndarray
    digests: list[str]
    native_side: int | None  # size=0 (auto): the median shorter side it was chosen from
    paths: list[str]


def decode_files(
    root: Path,
    files: list[tuple[Path, int]],
    channels: int,
    size: int,
    skip_corrupt: bool,
) -> Decoded:
    """Decode (path, label) pairs, hashing each file's bytes as it is read; ``size`` 0: at
    auto_size of their shorter sides (read from the files' headers first)."""
    side = None
    if not size:
        side = _median_side([p for p, _ in files])
        size = auto_size(side)

    def decode(p: Path) -> tuple[np.ndarray, str]:
        st = p.stat()
        data = p.read_bytes()
        sha = digest(data)
        fingerprint.known(p, sha, st)  # the run's fingerprint need not read it again
        return decode_image(p, channels, size, data), sha

    for p, _ in files:  # here, not in the pool: its threads do not see the recording context
        fingerprint.record(p)
    items = [(str(p), functools.partial(decode, p), y) for p, y in files]
    return _decode_all(root, items, skip_corrupt, side)


def decode_blobs(
    root: Path,
    blobs: list[tuple[str, bytes, int]],
    channels: int,
    size: int,
    skip_corrupt: bool,
) -> Decoded:
    """Decode (name, encoded bytes, label) triples (images kept in a table) as files are."""
    side = None
    if not size:
        side = _median_side([io.BytesIO(b) for _, b, _ in blobs])
        size = auto_size(side)

    def decode(name: str, data: bytes) -> tuple[np.ndarray, str]:
        return decode_image(Path(name), channels, size, data), digest(data)

    items = [(n, functools.partial(decode, n, b), y) for n, b, y in blobs]
    return _decode_all(root, items, skip_corrupt, side)


def _decode_all(
    root: Path,
    items: list[tuple[str, Callable[[], tuple[np.ndarray, str]], int]],
    skip_corrupt: bool,
    side: int | None,
) -> Decoded:
    """Run each item's decoding (name, decode, label) on 4 threads (PIL releases the GIL);
    an undecodable one is one line naming it, or skipped."""

    def run(item: tuple[str, Callable[[], tuple[np.ndarray, str]], int]) -> Any:
        try:
            return item[1]()
        except DECODE_ERRORS as e:
            if skip_corrupt:
                return None
            raise ArchlabError(
                f"{item[0]}: cannot decode image ({decode_reason(e)}); remove it, or train with "
                "data.skip_corrupt=true to skip unreadable files (eval follows the run's setting)"
            ) from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(run, items))
    keep = [i for i, a in enumerate(decoded) if a is not None]
    skipped = [items[i][0] for i, a in enumerate(decoded) if a is None]
    if not keep:
        raise ArchlabError(f"{root}: no image could be decoded")
    pairs = [decoded[i] for i in keep]
    images = np.ascontiguousarray(np.stack([a for a, _ in pairs]).transpose(0, 3, 1, 2))
    labels = np.array([items[i][2] for i in keep], dtype=np.int64)
    paths = [items[i][0] for i in keep]
    return Decoded(images, labels, skipped, np.array(keep), [h for _, h in pairs], side, paths)


def _median_side(paths: Sequence[Path | BinaryIO]) -> int:
    """The median shorter side of the images (headers only; unreadable files left to the
    decoding, which reports or skips them)."""

    def side(p: Path | BinaryIO) -> int | None:
        try:
            with Image.open(p) as im:
                return min(im.size)
        except DECODE_ERRORS:
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        sides = [v for v in pool.map(side, paths) if v is not None]
    return int(np.median(sides)) if sides else AUTO_SIZE[0]
