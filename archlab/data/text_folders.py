"""Text folders: ``root/<class>/<file>`` or ``root/{train,val,test}/<class>/<file>``, a text a file.

The layout of IMDb's aclImdb, the BBC news set and 20 Newsgroups: each file holds one text
(``.txt``, ``.text`` or no suffix), its class folder names its label, and split folders (the
names image folders take) give the data's own split. The result is the table a text CSV
reads into, so cleaning, grouping and splitting are the CSV's.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from archlab import fingerprint
from archlab.data.csv_format import UTF16_BOMS
from archlab.data.folders import (
    decoded_name,
    empty_classes,
    files_under,
    is_hidden,
    nested_note,
    split_folders,
    subdirs,
)
from archlab.errors import ArchlabError
from archlab.utils import count

TEXT_SUFFIXES = ("", ".txt", ".text")
SPLIT_TAG = "split"  # df.attrs key: each row's split (train/val/test); None: no split folders
SPLIT_ORIGIN = "split_origin"  # df.attrs key: split -> the folder(s) it came from


def folder_stats(root: Path) -> str:
    """A digest of every file's path, size and modification time under ``root``: a cache key
    for what reading it gives, which a file edited, added, moved or removed changes."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        with contextlib.suppress(OSError):  # a broken link: the reader's concern
            if p.is_file():
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "replace"))
    return h.hexdigest()


def _decode(data: bytes, encoding: str) -> tuple[str, bool]:
    """The text of a file's bytes, and whether ``auto`` found it not UTF-8 (then cp1252, else
    latin-1, as for CSVs)."""
    if data.startswith(UTF16_BOMS):  # a byte-order mark says it, whatever the setting
        return data.decode("utf-16"), False
    if encoding != "auto":
        return data.decode(encoding), False
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252"), True
        except UnicodeDecodeError:
            return data.decode("latin-1"), True


class _Reader:
    """Reads the text files of a folder, one text a file, keeping count of what it left out."""

    def __init__(self, root: Path, encoding: str) -> None:
        self.root, self.encoding = root, encoding
        self.read: list[str] = []
        self.ignored: dict[str, list[Path]] = {"binary (not text)": [], "not text files": [],
                                               "broken links": []}  # fmt: skip
        self.not_utf8 = 0

    def texts(self, d: Path) -> list[tuple[Path, str]]:
        """(file, text) of every text file under ``d``; a file of another suffix, or binary,
        is left out and counted."""
        out = []
        for p in files_under(d):
            if p.suffix.lower() not in TEXT_SUFFIXES:
                self.ignored["not text files"].append(p)
                continue
            if p.is_symlink() and not p.exists():  # into a data cache that is not there
                self.ignored["broken links"].append(p)
                continue
            data = p.read_bytes()
            fingerprint.record(p)
            self.read.append(str(p))
            if b"\0" in data and not data.startswith(UTF16_BOMS):
                self.ignored["binary (not text)"].append(p)
                continue
            try:
                text, fallback = _decode(data, self.encoding)
            except UnicodeDecodeError as e:
                raise ArchlabError(
                    f"{p}: cannot decode as {self.encoding} (byte 0x{data[e.start]:02x} at "
                    f"offset {e.start}); set the files' encoding, e.g. --set data.encoding=latin-1"
                ) from None
            self.not_utf8 += fallback
            out.append((p, text))
        return out

    def notes(self) -> tuple[str, list[str]]:
        """The first line on files not UTF-8 ("" if none), and one per kind of file left out."""
        enc = (f"data: {self.root}: {count(self.not_utf8, 'file')} not UTF-8, read as cp1252 "
               "(else latin-1; data.encoding=auto: set data.encoding=NAME to read them "
               "otherwise)") if self.not_utf8 else ""  # fmt: skip
        notes = []
        for what, files in self.ignored.items():
            if files:
                names = ", ".join(str(p.relative_to(self.root)) for p in files[:3])
                more = ", ..." if len(files) > 3 else ""
                hint = "; a text file ends in .txt or .text, or has no suffix" * (
                    what == "not text files"
                )
                notes.append(f"data: {self.root}: ignored {count(len(files), 'file')}, {what} "
                             f"({names}{more}){hint}")  # fmt: skip
        return enc, notes


def read_text_folder(
    root: Path,
    text_column: str,
    label_column: str,
    encoding: str,
    held_out: bool = False,
    layout: str = "auto",
) -> pd.DataFrame:
    """The folder as a table of ``text_column`` and ``label_column`` (strings), one row a file;
    ``df.attrs``: each row's split (SPLIT_TAG, None without split folders) and the folder it
    came from (SPLIT_ORIGIN), the codec, first lines on files not UTF-8 and on files left out,
    and the files read. ``layout``: data.layout, as for image folders."""
    splits = split_folders(root, held_out, layout, files=_text_files)
    classes = (
        [(sp, c) for sp, d in splits.items() for c in subdirs(d)]
        if splits
        else [(None, c) for c in subdirs(root)]
    )
    if not classes:
        where = "root/<split>/<class>/<file>" if splits else "root/<class>/<file>"
        raise ArchlabError(
            f"{root}: a folder without class sub-folders (expected {where}, a text a file; "
            "or give a CSV file)"
        )
    label = {d: decoded_name(d.name) for _, d in classes}  # a class folder's label
    every: dict[str, list[Path]] = {}  # each class's folders, in every split
    for _, d in classes:
        every.setdefault(label[d], []).append(d)
    empty, empty_note = empty_classes(root, every)  # said, as for images
    classes = [(sp, d) for sp, d in classes if label[d] not in empty]
    reader = _Reader(root, encoding)
    rows = [(t, label[d], sp) for sp, d in classes for _, t in reader.texts(d)]
    if not rows:
        raise ArchlabError(
            f"{root}: no text files in its class folders (a text a file: .txt, .text or no suffix)"
        )
    # Files beside the class folders (aclImdb's README and imdb.vocab) are the set's, not texts.
    reader.ignored["outside the class folders"] = [
        p for d in [root, *splits.values()] for p in sorted(d.iterdir())
        if p.is_file() and not is_hidden(p.name)
    ]  # fmt: skip
    texts, labels, tags = zip(*rows, strict=True)
    df = pd.DataFrame({text_column: texts, label_column: labels}, dtype=object)
    enc_note, notes = reader.notes()
    notes += [*empty_note, *nested_note(root, [d for _, d in classes])]
    df.attrs.update(
        columns=[text_column, label_column],
        encoding=encoding if encoding != "auto" else "cp1252" if reader.not_utf8 else "utf-8",
        encoding_note=enc_note,
        file_notes=notes,
        files=reader.read,
    )
    if splits and not held_out:  # a held-out set is scored whole: its split folders give none
        df.attrs[SPLIT_TAG] = np.array(tags, dtype=object)
        df.attrs[SPLIT_ORIGIN] = {sp: f"{d.name}/" for sp, d in splits.items()}
    return df


def _text_files(d: Path) -> list[str]:
    """The text files right in ``d``: a split-named folder holding them is a class's (a class
    named train beside bus/ and car/)."""
    found = [p for p in sorted(d.iterdir()) if p.is_file() and not is_hidden(p.name)]
    return [p.name for p in found if p.suffix.lower() in TEXT_SUFFIXES]


def folder_texts(root: Path, encoding: str) -> tuple[list[tuple[Path, str]], list[str]]:
    """Every text file under ``root`` (predict's and explain's ``--file FOLDER``), with the
    first lines on files left out."""
    reader = _Reader(root, encoding)
    found = reader.texts(root)
    # An empty file is no text: training drops empty texts, so the network never learnt one.
    reader.ignored["empty (no text)"] = [p for p, t in found if not t.strip()]
    found = [(p, t) for p, t in found if t.strip()]
    if not found:
        raise ArchlabError(f"{root}: no text files in it with a text (.txt, .text or no suffix)")
    enc_note, notes = reader.notes()
    return found, [n for n in (enc_note, *notes) if n]
