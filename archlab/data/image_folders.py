"""Image folders: ``root/<class>/...``, or split folders ``root/{train,val,test}/<class>/...``."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np

from archlab.data import folders
from archlab.data.csv_format import case_note, listing
from archlab.data.folders import (
    class_name,
    decoded_name,
    empty_classes,
    files_beside,
    files_under,
    is_hidden,
    nested_note,
    subdirs,
)
from archlab.data.image_set import (
    IMAGE_EXTENSIONS,
    Decoded,
    ImageSet,
    check_every_class_has_images,
    check_train_has_every_class,
    conflict_note,
    decode_files,
    file_notes,
)
from archlab.errors import ArchlabError


def _class_files(d: Path) -> tuple[list[Path], list[Path]]:
    """Image files anywhere under class folder ``d`` (sorted), and the other files there."""
    found = files_under(d)
    imgs = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
    return imgs, [p for p in found if p.suffix.lower() not in IMAGE_EXTENSIONS]


def split_folders(root: Path, layout: str, held_out: bool = False) -> dict[str, Path]:
    """archlab split -> folder when ``root`` holds train/val/test folders ({} = class folders);
    see folders.split_folders."""
    return folders.split_folders(root, held_out, layout, _loose_images)


def _loose_images(d: Path) -> list[str]:
    """Names of the images right in folder ``d`` (not in a sub-folder; hidden ones aside)."""
    return [
        p.name for p in sorted(d.iterdir())
        if p.is_file() and not is_hidden(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS
    ]  # fmt: skip


def load_folder(
    root: Path,
    channels: int,
    size: int,
    skip_corrupt: bool,
    layout: str = "auto",
    held_out: bool = False,
) -> ImageSet:
    """``root``'s class folders, or its split folders' (``held_out``: see split_folders)."""
    splits = split_folders(root, layout, held_out)
    if splits:
        return _load_split_folders(root, splits, channels, size, skip_corrupt, held_out)
    class_dirs = subdirs(root)
    if not class_dirs:
        raise ArchlabError(f"{root}: no class sub-folders found (expected root/<class>/<image>)")
    groups = _by_name(class_dirs)
    empty, empty_note = empty_classes(root, groups)
    groups = {n: dirs for n, dirs in groups.items() if n not in empty}
    if not groups:
        raise ArchlabError(
            f"{root}: its class folders hold no files (expected root/<class>/<image>)"
        )
    files: list[tuple[Path, int]] = []
    ignored: list[Path] = []
    for label, dirs in enumerate(groups.values()):
        imgs, others = _files_of(dirs)
        ignored += others
        if not imgs:
            raise ArchlabError(
                f"{dirs[0]}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += [(p, label) for p in imgs]
    dec = decode_files(root, files, channels, size, skip_corrupt)
    names = list(groups)
    return ImageSet(
        images=dec.images,
        labels=dec.labels,
        class_names=names,
        source=str(root),
        skipped=dec.skipped,
        ignored=len(ignored),
        layout="class_folders",
        digests=dec.digests,
        files=dec.paths,
        native_side=dec.native_side,
        notes=[
            *file_notes(root, dec.skipped, ignored, files_beside([root])),
            *empty_note,
            *nested_note(root, class_dirs),
            *_label_notes(root, names, files, dec),
            *composed_note(root, class_dirs),
        ],
    )


def _by_name(dirs: list[Path]) -> dict[str, list[Path]]:
    """Class folders by class name: a name in decomposed Unicode (``gru\u0308n``, as macOS
    writes names) is its composed form (``grün``), one class with a folder named so."""
    groups: dict[str, list[Path]] = {}
    for d in dirs:
        groups.setdefault(class_name(d.name), []).append(d)
    for name, ds in groups.items():  # a Latin-1 d\xf6g beside a UTF-8 dög: two classes, surely
        spelt = sorted({d.name for d in ds}, key=os.fsencode)
        if len(spelt) > 1 and any(decoded_name(n) != n for n in spelt):
            raise ArchlabError(
                f"{ds[0].parent}: class folders {' and '.join(ascii(n) for n in spelt)} both read "
                f"as {name!r} (one name is no UTF-8, read as Windows-1252); rename one"
            )
    return groups


def _files_of(dirs: list[Path]) -> tuple[list[Path], list[Path]]:
    """``_class_files`` of one class's folders, together."""
    imgs: list[Path] = []
    others: list[Path] = []
    for d in dirs:
        i, o = _class_files(d)
        imgs, others = imgs + i, others + o
    return imgs, others


def composed_note(root: Path, dirs: list[Path]) -> list[str]:
    """First lines naming class folders whose names were read in composed Unicode, or (no
    UTF-8) as Windows-1252."""
    notes = []
    if odd := [d.name for d in dirs if decoded_name(d.name) != d.name]:
        shown = listing([f"{n!a} -> {decoded_name(n)!r}" for n in odd])
        notes.append(f"data: {root}: class folder name(s) that are no UTF-8 read as "
                     f"Windows-1252 (as an old Windows archive writes them): {shown}")  # fmt: skip
    if odd := [n for n in map(decoded_name, (d.name for d in dirs))
               if unicodedata.normalize("NFC", n) != n]:  # fmt: skip
        shown = listing([f"{n!a} -> {unicodedata.normalize('NFC', n)!r}" for n in odd])
        notes.append(f"data: {root}: class folder name(s) in decomposed Unicode (as macOS "
                     f"writes names) read composed, one class with any folder named so: "
                     f"{shown}")  # fmt: skip
    return notes


def _label_notes(
    root: Path, names: list[str], files: list[tuple[Path, int]], dec: Decoded
) -> list[str]:
    """First lines on the classes: folders named alike but for letter case, and identical
    images in two classes' folders (named by their paths under ``root``)."""
    fix = "move their images into one folder to merge them"
    shown = [str(files[i][0].relative_to(root)) for i in dec.keep]
    notes = [case_note(root, names, "class folders", fix),
             conflict_note(dec.digests, dec.labels, shown)]  # fmt: skip
    return [n for n in notes if n]


def _load_split_folders(
    root: Path,
    splits: dict[str, Path],
    channels: int,
    size: int,
    skip_corrupt: bool,
    held_out: bool = False,
) -> ImageSet:
    """``root/<split>/<class>/...``: classes are the union of every split's class folders.
    ``held_out``: scored whole by a saved run, so no split need hold every class, or exist."""
    per_split = {sp: _by_name(subdirs(folder)) for sp, folder in splits.items()}
    every: dict[str, list[Path]] = {}  # each class's folders, in every split
    for classes in per_split.values():
        for n, dirs in classes.items():
            every.setdefault(n, []).extend(dirs)
    empty, empty_note = empty_classes(root, every)
    per_split = {sp: {n: d for n, d in c.items() if n not in empty} for sp, c in per_split.items()}
    if held_out and not any(per_split.values()):
        raise ArchlabError(
            f"{root}: no class sub-folders found in its split folders "
            f"({', '.join(d.name for d in splits.values())}; expected <split>/<class>/<image>)"
        )
    if not held_out and not per_split["train"]:
        raise ArchlabError(
            f"{splits['train']}: no class sub-folders found (expected train/<class>/<image>)"
        )
    names = sorted({n for classes in per_split.values() for n in classes})
    files: list[tuple[Path, int]] = []
    tags: list[str] = []
    ignored: list[Path] = []
    have: dict[str, set[str]] = {sp: set() for sp in splits}
    for sp, classes in per_split.items():
        for n, dirs in classes.items():
            imgs, others = _files_of(dirs)
            ignored += others
            if imgs:
                have[sp].add(n)
            files += [(p, names.index(n)) for p in imgs]
            tags += [sp] * len(imgs)
    if held_out:
        check_every_class_has_images(root, names, have)
    else:
        check_train_has_every_class(root, names, have, "folder")
    dec = decode_files(root, files, channels, size, skip_corrupt)
    tags_kept = np.array(tags)[dec.keep]
    return ImageSet(
        images=dec.images,
        labels=dec.labels,
        class_names=names,
        source=str(root),
        provided_split=tags_kept,
        skipped=dec.skipped,
        ignored=len(ignored),
        notes=[
            *file_notes(root, dec.skipped, ignored, files_beside([root, *splits.values()])),
            *empty_note,
            *_label_notes(root, names, files, dec),
            *composed_note(root, [d for c in per_split.values() for ds in c.values() for d in ds]),
        ],
        layout="split_folders",
        files=dec.paths,
        # An empty val/ or test/ folder gives no split: that split is carved from train/.
        split_origin={sp: f"{d.name}/" for sp, d in splits.items() if (tags_kept == sp).any()},
        digests=dec.digests,
        native_side=dec.native_side,
    )
