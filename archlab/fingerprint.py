"""Data fingerprints: which input files a run read, with their sizes and content hashes.

Readers call ``record(path)`` for every user file they open (CSV tables, images, vectors);
while a ``recording()`` block is active those paths are collected, and ``fingerprint`` hashes
them. A run keeps its fingerprint (inputs.json), so a resume, ``eval`` or ``ensemble`` on data
that changed since is refused with the files that differ, instead of training on or scoring
against other numbers under the old fitted scalers and vocabulary.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any


class Reads(set[str]):
    """The absolute paths read; ``aux``: those of them a run needs for training only (word
    vectors), which evaluating it does not read again."""

    def __init__(self) -> None:
        super().__init__()
        self.aux: set[str] = set()


_reads: ContextVar[Reads | None] = ContextVar("archlab_reads", default=None)


def record(path: str | Path, aux: bool = False) -> None:
    """Note that ``path`` was read as input (no-op outside ``recording()``); ``aux``: a file
    training alone reads (see Reads)."""
    reads = _reads.get()
    if reads is not None:
        reads.add(os.path.abspath(path))
        if aux:
            reads.aux.add(os.path.abspath(path))


@contextlib.contextmanager
def recording() -> Iterator[Reads]:
    """Collect the absolute paths ``record`` sees inside the block."""
    reads = Reads()
    token = _reads.set(reads)
    try:
        yield reads
    finally:
        _reads.reset(token)


# Hashes computed here or by readers from the bytes they read anyway (image folders hash every
# file to find duplicates), keyed by path, size and modification time so a changed file is
# hashed again.
_KNOWN: dict[tuple[str, int, int], str] = {}


def known(path: str | Path, sha256: str, stat: os.stat_result) -> None:
    """Remember the SHA-256 of ``path``'s bytes as read when it had ``stat``."""
    _KNOWN[(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)] = sha256


def _sha256(path: str) -> str:
    st = os.stat(path)
    if (hit := _KNOWN.get((path, st.st_size, st.st_mtime_ns))) is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    # Kept: the trials of one `train --budget` or the cells of one ablation read the same files.
    _KNOWN[(path, st.st_size, st.st_mtime_ns)] = h.hexdigest()
    return h.hexdigest()


def fingerprint(paths: Iterable[str]) -> dict[str, Any]:
    """Size and sha256 of each file, and one digest over all of them (sorted by path).

    Paths are kept relative to their common folder, so a data set moved or copied elsewhere
    as a whole keeps its fingerprint. Files ``paths.aux`` names are marked ``aux`` (not in
    the digest, which old fingerprints share).
    """
    aux = getattr(paths, "aux", set())
    files = sorted(set(paths))
    if not files:
        return {"files": {}, "sha256": hashlib.sha256().hexdigest(), "root": ""}
    root = os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0])
    entries = {
        os.path.relpath(p, root): {"bytes": os.path.getsize(p), "sha256": _sha256(p)}
        | ({"aux": True} if p in aux else {})
        for p in files
    }
    total = hashlib.sha256()
    for name, e in entries.items():
        # surrogateescape: a file name that is no UTF-8 (a Latin-1 archive's caf\xe9.png) is
        # hashed as its bytes, where encode() raised
        total.update(f"{name}\0{e['sha256']}\n".encode("utf-8", "surrogateescape"))
    return {"files": entries, "sha256": total.hexdigest(), "root": root}


def differences(old: dict[str, Any], new: dict[str, Any], *, subset: bool = False,
                most: int = 3) -> list[str]:  # fmt: skip
    """What changed between two fingerprints, a few files named (empty: the same data).

    A file is matched by its absolute path, else by its path within the data's folder (a data
    set moved as a whole). ``subset``: ``new`` may read fewer files than ``old``: not
    those marked ``aux`` (word vectors), nor a folder of them (``eval --data DIR/test`` reads
    one split folder), but all of each folder it reads (a file deleted from the data set is a
    difference).
    """
    if old.get("sha256") == new.get("sha256"):
        return []
    a, b = old.get("files", {}), new.get("files", {})
    by_abs = {os.path.join(old.get("root", ""), n): n for n in a}
    changed, added, matched = [], [], set()
    for name, e in b.items():
        was = by_abs.get(os.path.join(new.get("root", ""), name), name if name in a else None)
        if was is None:
            added.append(name)
            continue
        matched.add(was)
        if a[was]["sha256"] != e["sha256"]:
            changed.append((name, a[was]["bytes"], e["bytes"]))
    read = {os.path.dirname(n) for n in matched}
    gone = [n for n in a if n not in matched
            and not (subset and (a[n].get("aux") or os.path.dirname(n) not in read))]  # fmt: skip
    out = [f"{n} changed ({x} -> {y} bytes)" if x != y else f"{n} changed (same size, {x} "
           "bytes, other content)" for n, x, y in changed[:most]]  # fmt: skip
    if len(changed) > most:
        out.append(f"{len(changed) - most} more changed file(s)")
    if gone:
        out.append(f"{len(gone)} file(s) no longer read (e.g. {gone[0]})")
    if added:
        out.append(f"{len(added)} new file(s) read (e.g. {added[0]})")
    return out
