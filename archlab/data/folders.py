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
