"""Pretrained word vectors from text files (GloVe; word2vec/fastText ``.vec``), plain or gzipped.

The file is streamed line by line: only the rows kept (words the caller wants, plus the file's
first ``first`` words) are parsed, straight into one preallocated float32 array, so a 2M x 300
file never needs a second copy in memory. Errors name the file and the line.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from archlab import fingerprint
from archlab.errors import ArchlabError
from archlab.utils import file_key, sha256_file

_BINARY_HINT = (
    "binary word2vec is not supported; convert it to text first, e.g. with gensim: "
    "KeyedVectors.load_word2vec_format(PATH, binary=True).save_word2vec_format(OUT)"
)


@dataclass
class Vectors:
    """The kept rows of a vectors file: ``matrix[i]`` is the vector of ``words[i]``."""

    words: list[str]
    matrix: np.ndarray  # (len(words), dim) float32
    dim: int
    lines: int  # vector lines read (the header line not counted)
    duplicates: int = 0  # repeated words: the first one wins
    first_duplicate_line: int = 0  # 1-based line number of the first repeat (0 = none)
    spaced_words: int = 0  # rows whose word holds a space (skipped: no token has one)
    first_spaced_line: int = 0
    info: dict[str, object] = field(default_factory=dict)  # path, bytes, sha256, format


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) pairs; undecodable bytes are an error naming the line.

    Lines are decoded one at a time (not by a buffered text reader) so that the error knows
    its line.
    """
    n = 0
    fingerprint.record(path, aux=True)  # evaluation needs no vectors: the run keeps them
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as raw:
            for n, line in enumerate(raw, 1):
                # utf-8-sig on line 1: a byte-order mark must not become part of the first word
                yield n, line.decode("utf-8-sig" if n == 1 else "utf-8")
    except UnicodeDecodeError:
        hint = f"; {_BINARY_HINT}" if n <= 2 else ""  # binary word2vec: a text header, then bytes
        raise ArchlabError(f"{path}: line {n}: not UTF-8 text{hint}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ArchlabError(f"{path}: line {n + 1}: cannot read ({e})") from None


def _header(parts: list[str]) -> tuple[int, int] | None:
    """(count, dim) if the first line is a word2vec/fastText ``count dim`` header."""
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def peek_dim(path: str | Path) -> int:
    """The vectors' dimension, from the header or the first vector line (reads one line)."""
    path = check_path(path)
    for n, line in _lines(path):
        parts = line.rstrip().split(" ")
        head = _header(parts)
        if head is not None:
            return head[1]
        if len(parts) < 2:
            raise ArchlabError(f"{path}: line {n}: {_expected(line)}")
        return len(parts) - 1
    raise ArchlabError(f"{path}: the file is empty (expected one word and its vector per line)")


def check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise ArchlabError(f"{path}: data.embeddings is a folder; expected a vectors file")
    if not path.is_file():
        raise ArchlabError(
            f"{path}: no such vectors file; point data.embeddings at a GloVe or word2vec text "
            "file (plain or .gz): --set data.embeddings=PATH"
        )
    if path.suffix == ".bin" or path.name.endswith(".bin.gz"):
        raise ArchlabError(f"{path}: {_BINARY_HINT}")
    return path


def load_vectors(path: str | Path, wanted: set[str], first: int = 0) -> Vectors:
    """Vectors of the words in ``wanted`` plus the file's first ``first`` words (-1 = all).

    The file's order is kept (GloVe and fastText files are sorted by frequency). A repeated word
    keeps its first vector; repeats are counted. Ragged rows and non-numbers are errors.
    """
    path = check_path(path)
    words = hashlib.sha256("\0".join(sorted(wanted)).encode()).hexdigest()
    key = file_key(path, words, first)
    if key is not None and _LAST is not None and _LAST[0] == key:
        fingerprint.record(path, aux=True)  # a remembered read is still a read of the input
        v = _LAST[1]
        return replace(v, words=list(v.words), matrix=v.matrix.copy(), info=dict(v.info))
    v = _load_vectors(path, wanted, first)
    _remember(key, v)
    return v


# Parsing 100k GloVe lines takes ~2 s: the runs of one process (reproduce, ablate, a budget
# search, explain after train) on one split want the same rows. Only the last result is kept,
# and only when small: a whole 2M-word file would hold gigabytes.
_LAST: tuple[str, Vectors] | None = None
_KEEP_BYTES = 256 << 20


def _remember(key: str | None, v: Vectors) -> None:
    global _LAST
    if key is not None and v.matrix.nbytes <= _KEEP_BYTES:
        _LAST = (key, replace(v, words=list(v.words), matrix=v.matrix.copy(), info=dict(v.info)))


def _load_vectors(path: Path, wanted: set[str], first: int) -> Vectors:
    first = first if first >= 0 else 1 << 62
    dim = count = 0
    matrix = np.empty((0, 0), np.float32)
    words: list[str] = []
    seen: set[str] = set()
    dups = first_dup = lines = spaced = first_spaced = 0
    missing = len(wanted)
    for n, line in _lines(path):
        if n == 1:
            header, count, dim = _first_line(path, line)
            matrix = _alloc(first, len(wanted), count, dim)
            if header:
                continue  # word2vec's 'count dim', not a vector
        if "\0" in line:
            raise ArchlabError(f"{path}: line {n}: NUL bytes, not a text vectors file; "
                               f"{_BINARY_HINT}")  # fmt: skip
        line = line.rstrip()  # fastText writes a trailing space
        if not line:
            continue
        lines += 1
        # Counting separators is a C loop: every line is checked, parsed or not.
        if line.count(" ") > dim and _numbers(line.rsplit(" ", dim)[1:]):
            # A word with a space in it (GloVe 840B has some, e.g. '. . .'): no token can
            # ever match it, so the row is skipped and counted.
            spaced += 1
            first_spaced = first_spaced or n
            continue
        if line.count(" ") != dim:
            raise ArchlabError(
                f"{path}: line {n}: {line.count(' ')} numbers after the word, expected {dim} "
                "(all rows must have the same length)"
            )
        word = line[: line.index(" ")]
        if word in seen:
            dups += 1
            first_dup = first_dup or n
            continue
        keep = len(words) < first or word in wanted
        if not keep:
            if missing == 0 and len(words) >= first:
                break  # everything wanted is found and the first rows are taken
            continue
        seen.add(word)
        if word in wanted:
            missing -= 1
        if len(words) == len(matrix):  # more rows than the bound: grow (a rare, bounded copy)
            matrix = np.resize(matrix, (2 * len(matrix) + 1, dim))
        try:
            matrix[len(words)] = line.split(" ")[1:]
        except ValueError:
            bad = next(p for p in line.split(" ")[1:] if not _is_number(p))
            raise ArchlabError(f"{path}: line {n}: {bad[:40]!r} is not a number") from None
        words.append(word)
    _check_read(path, lines, words, matrix)
    return Vectors(
        words=words,
        matrix=matrix[: len(words)],
        dim=dim,
        lines=lines,
        duplicates=dups,
        first_duplicate_line=first_dup,
        spaced_words=spaced,
        first_spaced_line=first_spaced,
        info={
            "path": str(path.resolve()),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "format": "word2vec text (count dim header)" if count else "GloVe text (no header)",
        },
    )


def _expected(line: str) -> str:
    """What a vector line must be, and why this one is not (tabs are the usual reason)."""
    tabs = " (this line separates them by tabs)" if "\t" in line else ""
    return f"expected a word and its numbers, separated by single spaces{tabs}"


def _first_line(path: Path, line: str) -> tuple[bool, int, int]:
    """(True, count, dim) of a word2vec header, or (False, 0, dim) of a first vector row."""
    parts = line.rstrip().split(" ")
    head = _header(parts)
    if head is not None:
        if head[1] < 1:
            raise ArchlabError(f"{path}: line 1: header 'count dim' has dimension 0")
        return True, *head
    if len(parts) < 2 or parts[0] == "":
        raise ArchlabError(f"{path}: line 1: {_expected(line)}")
    return False, 0, len(parts) - 1


def _check_read(path: Path, lines: int, words: list[str], matrix: np.ndarray) -> None:
    """Refuse an empty file and vectors holding nan or inf (named by their word)."""
    if lines == 0:
        raise ArchlabError(f"{path}: the file is empty (expected one word and its vector per line)")
    if not np.isfinite(matrix[: len(words)]).all():
        row = int(np.flatnonzero(~np.isfinite(matrix[: len(words)]).all(1))[0])
        raise ArchlabError(f"{path}: word {words[row]!r}: its vector has nan or inf")


def _alloc(first: int, wanted: int, count: int, dim: int) -> np.ndarray:
    """One array for every row that can be kept: np.empty only reserves the pages it touches."""
    rows = min(first, 1 << 20) + wanted
    if count:
        rows = min(rows, count)
    return np.empty((max(rows, 1), dim), np.float32)


def _numbers(parts: list[str]) -> bool:
    return all(_is_number(p) for p in parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
