"""What every image loader returns, and the steps they share: decoding files, split names.

``ImageSet`` is one uint8 array (N, C, H, W) with labels; the folder and manifest loaders
(image_folders.py, image_manifest.py) decode their files here and check their splits alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from archlab import fingerprint
from archlab.errors import ArchlabError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
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
    empty = [n for n in names if not any(n in h for h in have.values())]
    if empty:
        raise ArchlabError(f"{source}: class(es) {empty} have no images")


def decode_files(
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

    for p, _ in files:  # here, not in the pool: its threads do not see the recording context
        fingerprint.record(p)
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL releases the GIL while decoding
        decoded = list(pool.map(decode, [p for p, _ in files]))
    keep = [i for i, a in enumerate(decoded) if a is not None]
    skipped = [str(files[i][0]) for i, a in enumerate(decoded) if a is None]
    if not keep:
        raise ArchlabError(f"{root}: no image could be decoded")
    images = np.ascontiguousarray(np.stack([decoded[i] for i in keep]).transpose(0, 3, 1, 2))
    labels = np.array([files[i][1] for i in keep], dtype=np.int64)
    return images, labels, skipped, np.array(keep)
