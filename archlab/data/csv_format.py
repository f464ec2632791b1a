"""The format of a user's CSV: its text encoding (a byte-order mark skipped, UTF-8 or a western
Windows/latin encoding told apart from the bytes: ``data.encoding=auto``) and its field
separator (a comma, or the tab, semicolon or bar its header line is split by)."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archlab.errors import ArchlabError


@contextlib.contextmanager
def past_bom(path: Path) -> Iterator[BinaryIO]:
    """The file opened for reading past a UTF-8 byte-order mark, whatever data.encoding says
    (pandas drops one only when it decodes UTF-8: read as latin-1 it became 'ï»¿text')."""
    with open(path, "rb") as f:
        if f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        yield f


def resolve_encoding(path: Path, encoding: str = "auto") -> tuple[str, str]:
    """The codec to read ``path`` (plain or .gz) with, and a first-line note where ``auto``
    found it not UTF-8. auto: UTF-8 when every byte decodes as UTF-8 (a file in another
    encoding almost never does), else cp1252 (what Windows tools export in western Europe and
    the Americas), else latin-1 (which decodes any byte)."""
    if encoding != "auto":
        return encoding, ""
    if _head(path).startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", ""  # Excel's "Unicode text" export
    where = _first_bad_byte(path, "utf-8")
    if not where:
        return "utf-8", ""
    codec = "latin-1" if _first_bad_byte(path, "cp1252") else "cp1252"
    note = (f"data: {path} is not UTF-8 ({where}): read as {codec} (data.encoding=auto; set "
            "data.encoding=NAME to read it otherwise)")  # fmt: skip
    return codec, note


def check_text_file(path: Path) -> None:
    """Refuse a file that is not text: a zip archive (an Excel .xlsx workbook is one) or binary
    content (a NUL byte in its first 4 KiB, decompressed for .gz; UTF-16 text, which has
    them, is recognized by its byte-order mark)."""
    head = _head(path)
    if head.startswith(b"PK\x03\x04"):
        raise ArchlabError(
            f"{path}: a zip archive, not a CSV file (an Excel .xlsx workbook is one): save it "
            "as CSV"
        )
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in head and not utf16:
        raise ArchlabError(f"{path}: not a CSV file (binary content)")


def _head(path: Path) -> bytes:
    """The first 4 KiB of ``path`` (decompressed for .gz; b"" where it cannot be read: the
    reader then names the file)."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return f.read(4096)
    except (OSError, EOFError):
        return b""


def _first_bad_byte(path: Path, codec: str) -> str:
    """Where the first byte of ``path`` that ``codec`` cannot decode is ("" if none), read in
    1 MiB chunks: a file of any size costs no more memory than one chunk."""
    dec = codecs.getincrementaldecoder(codec)()
    seen = 0  # bytes read before this chunk
    with gzip.open(path, "rb") if path.suffix == ".gz" else past_bom(path) as f:
        while True:
            chunk = f.read(1 << 20)
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                held = len(e.object) - len(chunk)  # bytes of a character the last chunk began
                return f"byte 0x{e.object[e.start]:02x} at offset {seen - held + e.start}"
            if not chunk:
                return ""
            seen += len(chunk)


SEPARATORS = (",", "\t", ";", "|")


def sniff_separator(path: Path) -> str:
    """The field separator of ``path`` (plain or .gz): the one of SEPARATORS its header line
    holds most outside quotes, a comma on a tie or where it holds none. Tab-separated exports
    and the semicolon files of locales with a decimal comma then read without a flag."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as g:
                head = g.readline(1 << 16)
        else:
            with past_bom(path) as f:
                head = f.readline(1 << 16)
    except (OSError, EOFError):
        return ","  # unreadable: the reader says so, naming the file
    line = head.decode("latin-1")  # separators are ASCII in every encoding read here
    line = re.sub(r'"[^"]*"', "", line)  # a quoted column name may hold any of them
    best = max(SEPARATORS, key=line.count)  # max keeps the first of equals: a comma
    return best if line.count(best) else ","
