"""Data laid out in folders: the names of split folders and what is never the user's data."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

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
# Folder names (lower-cased) read as a split: the manifest's split names but "dev" (a likelier
# class name), and Kaggle's "<name>_set" (training_set/ + test_set/ in cats-vs-dogs).
SPLIT_FOLDERS = {
    **{n: sp for n, sp in SPLIT_NAMES.items() if n != "dev"},
    **{f"{n}_set": sp for n, sp in SPLIT_NAMES.items() if n != "dev"},
}
# A zip made on macOS and extracted elsewhere holds __MACOSX/ (its "._" resource forks only).
MACOS_ZIP_FOLDER = "__MACOSX"


def is_hidden(name: str) -> bool:
    """A dot-file or dot-folder (.ipynb_checkpoints, .DS_Store, ._x.png) or __MACOSX: tools'
    copies and metadata, never the user's data."""
    return name.startswith(".") or name == MACOS_ZIP_FOLDER


def split_tags(dirs: Sequence[Path]) -> dict[Path, str]:
    """The folders of ``dirs`` that name a split, with the split: by a SPLIT_FOLDERS name, or,
    when every folder's name ends with a split's word (20 Newsgroups' ``20news-bydate-train``
    beside ``20news-bydate-test``), by that word; a class named ``bullet_train`` beside other
    classes stays a class."""
    exact = {d: SPLIT_FOLDERS[d.name.lower()] for d in dirs if d.name.lower() in SPLIT_FOLDERS}
    last = {d: SPLIT_FOLDERS.get(re.split(r"[-_. ]", d.name.lower())[-1]) for d in dirs}
    if dirs and all(last.values()):
        return {d: sp for d, sp in last.items() if sp}
    return exact


def nested_note(root: Path, class_dirs: Sequence[Path]) -> list[str]:
    """A first-line warning where class folders hold folders of their own: their files are read
    as the outer class, which is wrong where the inner folders are the classes (a set nested
    one level deeper than --data, ``seg_train/seg_train/<class>``)."""
    nested = {d: [s for s in sorted(d.iterdir()) if s.is_dir() and not is_hidden(s.name)]
              for d in class_dirs}  # fmt: skip
    nested = {d: subs for d, subs in nested.items() if subs}
    if not nested:
        return []
    d, subs = next(iter(nested.items()))
    names = ", ".join(str(s.relative_to(root)) for s in subs[:3])
    return [
        f"data: warning: {len(nested)} class folder(s) hold folders (e.g. {names}), read as "
        f"the class {d.name!r}; if those folders are the classes, give --data {d}"
    ]
