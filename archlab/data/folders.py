"""Data laid out in folders: the names of split folders and what is never the user's data."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from archlab.data.csv_format import listing
from archlab.errors import ArchlabError

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


def decoded_name(folder: str) -> str:
    """A folder's name as text: a name that is no UTF-8 (``d\xf6g`` from a Latin-1 or Windows
    archive, which Python holds as a lone surrogate that no file can be written with) read as
    Windows-1252, the likeliest source (``dög``)."""
    raw = os.fsencode(folder)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def class_name(folder: str) -> str:
    """The class a folder's name stands for: ``decoded_name``, in composed Unicode
    (``gru\u0308n``, as macOS writes names, is ``grün``)."""
    return unicodedata.normalize("NFC", decoded_name(folder))


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
    nested = {d: [s for s in sorted(d.iterdir()) if s.is_dir() and not is_hidden(s.name)
                  and not _holds(s, d)] for d in class_dirs}  # fmt: skip
    nested = {d: subs for d, subs in nested.items() if subs}
    if not nested:
        return []
    d, subs = next(iter(nested.items()))
    names = ", ".join(str(s.relative_to(root)) for s in subs[:3])
    return [
        f"data: warning: {len(nested)} class folder(s) hold folders (e.g. {names}), read as "
        f"the class {d.name!r}; if those folders are the classes, give --data {d}"
    ]


def empty_classes(root: Path, classes: dict[str, list[Path]]) -> tuple[list[str], list[str]]:
    """The classes (name -> its folders) whose folders hold no file at all (hidden ones aside),
    and a first line naming them: a folder with nothing in it is not a class (nothing to learn
    or score), so it is left out, for images and text alike, rather than refused."""
    empty = [n for n, dirs in classes.items()
             if all(next(_walk_files(d), None) is None for d in dirs)]  # fmt: skip
    if not empty:
        return [], []
    shown = listing([str(d.relative_to(root)) for n in empty for d in classes[n]])
    return empty, [f"data: {root}: {len(empty)} class folder(s) hold no files ({shown}): not "
                   "classes, left out"]  # fmt: skip


def _holds(link: Path, d: Path) -> bool:
    """Whether folder ``link`` (a link to a parent) holds ``d``: not read as part of ``d``."""
    real = os.path.realpath(link)
    return os.path.realpath(d) == real or os.path.realpath(d).startswith(real + os.sep)


def subdirs(d: Path) -> list[Path]:
    """The folders right in ``d``, sorted, hidden ones aside."""
    return sorted(p for p in d.iterdir() if p.is_dir() and not is_hidden(p.name))


def split_tables(root: Path, is_table: Callable[[str], bool]) -> dict[str, list[Path]]:
    """A folder's tables (``is_table`` of a file name) named by their split, by split:
    ``train.csv`` and ``test.csv`` (Kaggle), ``train-00000-of-00002.parquet`` (the Hugging Face
    Hub: a split's shards), or names ending in the split (``imdb_train.csv``); those in its
    ``data/`` folder where that is its only folder (a Hub repository: README.md beside data/).
    {} without a train table."""
    found: dict[str, list[Path]] = {}
    inner = subdirs(root)
    for d in [root, *(inner if [d.name for d in inner] == ["data"] else [])]:
        for p in sorted(d.iterdir()):
            if p.is_file() and not is_hidden(p.name) and (sp := split_named(p.name, is_table)):
                found.setdefault(sp, []).append(p)
        if "train" in found:
            return found
        found = {}
    return {}


def split_named(name: str, is_table: Callable[[str], bool]) -> str | None:
    """The split a table's file name names by its first or last word (None: none, or not a
    table)."""
    if not is_table(name):
        return None
    stem = re.sub(r"(\.[a-z]+)?(\.gz)?$", "", name.lower())
    words = re.split(r"[-_. ]+", stem)
    return SPLIT_NAMES.get(words[0]) or SPLIT_NAMES.get(words[-1])


def files_beside(dirs: Sequence[Path]) -> list[Path]:
    """The files right in ``dirs`` (--data and its split folders), hidden ones aside: beside
    the class folders, so in no class (a README, or photos not yet sorted into one)."""
    return [
        p for d in dirs for p in sorted(d.iterdir()) if p.is_file() and not is_hidden(p.name)
    ]  # fmt: skip


def files_under(d: Path) -> list[Path]:
    """Every file anywhere under ``d`` (sorted), none hidden or under a hidden folder (Jupyter's
    checkpoint copies would be duplicates). Linked folders are followed (a class folder linking
    into a data cache), each real folder once (a link to a parent is no loop); a broken link is
    listed, for its reader to name."""
    return sorted(_walk_files(d))


def _walk_files(d: Path) -> Iterator[Path]:
    """The files of files_under, unsorted, found as the walk goes (next() stops at the first)."""
    seen = {os.path.realpath(d)}
    for top, dirs, files in os.walk(d, followlinks=True):
        keep = []
        for x in dirs:
            real = os.path.realpath(os.path.join(top, x))
            # a folder read already, or one holding ``d`` (a link to a parent: its other
            # folders are other classes) is not read again
            if is_hidden(x) or real in seen or _holds(Path(real), d):
                continue
            seen.add(real)
            keep.append(x)
        dirs[:] = keep
        yield from (Path(top) / f for f in files if not is_hidden(f))


def split_folders(
    root: Path,
    held_out: bool = False,
    layout: str = "auto",
    loose: Callable[[Path], list[str]] = lambda d: [],
    files: Callable[[Path], list[str]] | None = None,
) -> dict[str, Path]:
    """archlab split -> folder when ``root`` holds train/val/test folders ({} = class folders).
    ``held_out`` (a set a saved run scores whole, eval --all): no train/ folder is needed.
    ``layout`` "split" requires split folders, "classes" reads none; ``loose``: the data files
    right in a folder, which a split folder may not hold (they have no class); ``files`` (else
    ``loose``): those that make a split-named folder look like a class (data.layout=classes)."""
    if layout == "classes":
        return {}
    dirs = subdirs(root)
    tagged = split_tags(dirs)
    has_train = any(sp == "train" for sp in tagged.values())
    only_splits = bool(tagged) and len(tagged) == len(dirs)  # e.g. val/ and test/ alone
    if layout == "auto" and not has_train and not (held_out and only_splits):
        if only_splits:
            raise ArchlabError(
                f"{root}: holds split folders ({', '.join(d.name for d in tagged)}) but no "
                "train/ folder; the training split needs root/train/<class>/..."
            )
        return {}
    if not has_train and not (held_out and tagged):
        raise ArchlabError(
            f"{root}: data.layout=split but there is no train/ folder "
            "(expected root/train/<class>/..., optionally val/ and test/ beside it)"
        )
    other = [d.name for d in dirs if d not in tagged]
    if other:
        # Split folders hold class folders; a "train" folder of files is a class (of trains).
        classes = any((files or loose)(d) for d in tagged)
        hint = ", or set data.layout=classes to read every folder as a class" if classes else ""
        raise ArchlabError(
            f"{root}: split folders ({', '.join(d.name for d in tagged)}) beside other folders "
            f"{other}; move those out{hint}"
        )
    out: dict[str, Path] = {}
    for d, sp in tagged.items():
        if sp in out:
            raise ArchlabError(
                f"{root}: both {out[sp].name}/ and {d.name}/ name the {sp} split; keep one"
            )
        out[sp] = d
    for sp, d in out.items():
        if found := loose(d):  # only images name it: a text folder's files are not checked
            # Kaggle's layout: train/ of images and a CSV of their labels beside it.
            tables = sorted(p.name for p in root.glob("*.csv"))
            csv = (f"; if {tables[0]} labels them, read it as a manifest: --data "
                   f"{root / tables[0]} --set data.image_root={d}" if tables else "")  # fmt: skip
            raise ArchlabError(
                f"{d}: holds images ({found[0]}, ...) outside class folders; a labelled {sp} "
                f"split needs {d.name}/<class>/<image> (move unlabelled images out){csv}"
            )
    return out
