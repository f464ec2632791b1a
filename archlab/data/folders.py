"""Data laid out in folders: the names of split folders and what is never the user's data."""

from __future__ import annotations

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
