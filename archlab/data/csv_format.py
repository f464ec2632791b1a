"""The format of a user's CSV: text or not, its field separator (a comma, or the tab, semicolon
or bar its header line is split by) and its text encoding (``data.encoding=auto``: UTF-8, or,
where that fails, a western Windows/latin encoding, said in a first line). A byte-order mark is
skipped whatever the encoding. Parquet and JSON tables (the Hugging Face Hub's and pandas'
exports) are read with pandas and handed to the CSV readers as a UTF-8 CSV, so every check and
note of a CSV applies to them unchanged."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import json
import math
import re
import tempfile
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import numpy as np
import pandas as pd

from archlab.errors import ArchlabError

T = TypeVar("T")
SEPARATORS = (",", "\t", ";", "|")
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # Excel's "Unicode text" export


GZIP_MAGIC = b"\x1f\x8b"
# Codecs whose text holds NUL bytes: a file the user says is in one is not refused as binary.
WIDE_CODECS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")


@contextlib.contextmanager
def past_bom(path: Path) -> Iterator[BinaryIO]:
    """The file (decompressed for .gz) opened for reading past a UTF-8 byte-order mark,
    whatever data.encoding says (pandas drops one only when it decodes UTF-8: read as latin-1
    it became 'ï»¿text')."""
    with _open(path) as f:
        if f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        yield f


def _open(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed where its name ends in .gz."""
    return cast(BinaryIO, gzip.open(path, "rb")) if path.suffix == ".gz" else open(path, "rb")


PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = tuple(f"{s}{z}" for s in (".jsonl", ".ndjson", ".json") for z in ("", ".gz"))
TABLE_SUFFIXES = PARQUET_SUFFIXES + JSON_SUFFIXES


def is_table_name(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet or JSON table (not CSV text) by its name."""
    return str(path).lower().endswith(TABLE_SUFFIXES)


def read_table(path: Path, rows: int | None = None) -> tuple[pd.DataFrame, str]:
    """A Parquet or JSON file (JSON lines, or an array of records) as a DataFrame of its own
    types (JSON strings stay strings: ids keep leading zeros), its first ``rows`` rows where
    given; and a first-line note where a column of Hugging Face class ids was read as the names
    the file's metadata gives them."""
    try:
        if str(path).lower().endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq

            f = pq.ParquetFile(path)
            table = next(f.iter_batches(rows)) if rows else f.read()
            names = hf_class_names(f.schema_arrow.metadata or {})
            return _class_names(path, table.to_pandas(), names)
        lines = not str(path).lower().endswith((".json", ".json.gz"))
        args = dict(dtype=False, lines=lines)  # no conversion: a date-like id stays text
        if rows and lines:
            return pd.read_json(path, nrows=rows, **args), ""
        try:
            return pd.read_json(path, **args), ""
        except ValueError:  # a .json file of JSON lines
            if lines:
                raise
            return pd.read_json(path, **{**args, "lines": True}), ""
    except ImportError:
        raise ArchlabError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    except (ValueError, OSError, EOFError, zlib.error, StopIteration) as e:  # ArrowInvalid too
        kind = "Parquet" if str(path).lower().endswith(PARQUET_SUFFIXES) else "JSON"
        why = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
        raise ArchlabError(f"{path}: cannot be read as {kind} ({why})") from None


def hf_class_names(metadata: dict[bytes, bytes]) -> dict[str, list[str]]:
    """The class names of each ClassLabel column in a Hugging Face dataset's Parquet metadata."""
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        feats = json.loads(metadata[b"huggingface"])["info"]["features"]
        return {
            k: [str(n) for n in v["names"]]
            for k, v in feats.items()
            if isinstance(v, dict) and v.get("_type") == "ClassLabel" and v.get("names")
        }
    return {}


def _class_names(
    path: Path, df: pd.DataFrame, names: dict[str, list[str]]
) -> tuple[pd.DataFrame, str]:
    """``df`` with each integer column of ``names`` read as its class names (-1, the Hub's "no
    label", is empty), and a note saying so."""
    done = []
    for col, classes in names.items():
        if col in df.columns and pd.api.types.is_integer_dtype(df[col]) and df[col].notna().all():
            ids = df[col].to_numpy(np.int64)
            if ids.max(initial=-1) < len(classes):
                df[col] = [classes[i] if i >= 0 else "" for i in ids]
                done.append(f"{col!r} ({', '.join(classes[:10])}{', ...' * (len(classes) > 10)})")
    note = (f"data: {path}: class ids read as the names its Hugging Face metadata gives them: "
            f"{'; '.join(done)}") if done else ""  # fmt: skip
    return df, note


@contextlib.contextmanager
def _table_as_csv(path: Path) -> Iterator[tuple[Path, str]]:
    """A Parquet or JSON table written to a temporary UTF-8 CSV (removed after), and its note."""
    df, note = read_table(path)
    if df.empty and not len(df.columns):
        raise ArchlabError(f"{path}: the file is empty (expected a table with rows)")
    with tempfile.TemporaryDirectory(prefix="archlab-table-") as tmp:
        out = Path(tmp) / "table.csv"
        df.to_csv(out, index=False)
        yield out, note


def read_text_csv(
    path: Path, encoding: str, read: Callable[[Path, str, str], T]
) -> tuple[T, str, str]:
    """``read(source, codec, separator)`` of the CSV ``path`` (plain or .gz; ``source`` is
    ``path``, or for a Parquet or JSON table the CSV it was written to), a zip archive or
    binary content refused first; returns what it read, the codec and a first-line note.

    ``encoding`` auto: UTF-16 by its byte-order mark (or, without one, by the NUL byte beside
    each ASCII character, said), else UTF-8; where reading as UTF-8 fails,
    cp1252 (what Windows tools export in western Europe and the Americas), else latin-1 (which
    decodes any byte), with a note naming the first byte UTF-8 could not decode. Only then is
    the file scanned: a UTF-8 file is read once."""
    if is_table_name(path):
        with _table_as_csv(path) as (src, note):
            return read(src, "utf-8", ","), "utf-8", note
    head = _head(path)
    order = utf16_order(head) if encoding == "auto" and not head.startswith(UTF16_BOMS) else ""
    _refuse_binary(path, head, wide=_is_wide(encoding) or bool(order))
    sep = _separator(head)
    if encoding != "auto":
        return read(path, encoding, sep), encoding, ""
    if head.startswith(UTF16_BOMS):
        return read(path, "utf-16", sep), "utf-16", ""
    if order:
        codec = f"utf-16-{order}"
        note = (f"data: {path} has no byte-order mark but reads as UTF-16 ({codec}; "
                "data.encoding=auto; set data.encoding=NAME to read it otherwise)")  # fmt: skip
        return read(path, codec, sep), codec, note
    with contextlib.suppress(UnicodeDecodeError):
        return read(path, "utf-8", sep), "utf-8", ""
    where = first_bad_byte(path, "utf-8")
    codec = "latin-1" if first_bad_byte(path, "cp1252") else "cp1252"
    note = (f"data: {path} is not UTF-8 ({where}): read as {codec} (data.encoding=auto; set "
            "data.encoding=NAME to read it otherwise)")  # fmt: skip
    return read(path, codec, sep), codec, note


def header(path: Path) -> list[str] | None:
    """The column names of the CSV ``path``; None where it is binary or cannot be read (a
    reader that needs it then names the file)."""
    if is_table_name(path):
        with contextlib.suppress(ArchlabError):
            return [str(c) for c in read_table(path, rows=1)[0].columns]
        return None
    head = _head(path)
    order = "" if head.startswith(UTF16_BOMS) else utf16_order(head)
    try:
        _refuse_binary(path, head, wide=bool(order))
        codec = "utf-16" if head.startswith(UTF16_BOMS) else f"utf-16-{order}" if order else "utf-8"
        names = pd.read_csv(io.BytesIO(head), nrows=0, sep=_separator(head), encoding=codec,
                            encoding_errors="replace").columns  # fmt: skip
    except (ArchlabError, ValueError, pd.errors.ParserError):
        return None
    return [str(c) for c in names]


def _is_wide(encoding: str) -> bool:
    """Whether ``encoding`` names a UTF-16/32 codec (an unknown name is not; reading it then
    fails with the reader's own line)."""
    try:
        return codecs.lookup(encoding).name in WIDE_CODECS
    except LookupError:
        return False


def _head(path: Path) -> bytes:
    """The first 64 KiB of ``path`` (decompressed for .gz; b"" where it cannot be read: the
    reader then names the file)."""
    try:
        with _open(path) as f:
            return f.read(1 << 16)
    except (OSError, EOFError, zlib.error):
        return b""


def _refuse_binary(path: Path, head: bytes, wide: bool = False) -> None:
    """A zip archive (an Excel .xlsx workbook is one), gzip data under a name without .gz, or
    binary content (a NUL byte in the first 4 KiB; UTF-16 text, which has them, is told by its
    byte-order mark or by ``wide``, a UTF-16/32 data.encoding): one line."""
    if head.startswith(b"PK\x03\x04"):
        raise ArchlabError(
            f"{path}: a zip archive, not a CSV file (an Excel .xlsx workbook is one): save it "
            "as CSV"
        )
    if head.startswith(GZIP_MAGIC):  # .gz files arrive decompressed: this one is misnamed
        raise ArchlabError(
            f"{path}: gzip-compressed data under a name that does not end in .gz: rename it "
            "(e.g. data.csv.gz) to have it decompressed, or decompress it"
        )
    if (at := head.find(b"\x00", 0, 4096)) >= 0 and not head.startswith(UTF16_BOMS) and not wide:
        # Where: a text file with a stray NUL byte is fixed by removing it (tr -d '\000').
        line = head[:at].count(b"\n") + 1
        raise ArchlabError(
            f"{path}: not a CSV file (binary content: a NUL byte at line {line}, offset {at}); "
            "if it is text, remove the NUL bytes: tr -d '\\000' < in.csv > out.csv"
        )


def utf16_order(head: bytes) -> str:
    """ "le" or "be" where every other byte of ``head`` is NUL and the others are not (mostly
    ASCII text in UTF-16 without a byte-order mark, as some Windows tools save "Unicode
    text"); else ""."""
    even, odd = head[:4096:2], head[1:4096:2]
    for order, nul, text in (("le", odd, even), ("be", even, odd)):
        if nul and nul.count(0) >= 0.9 * len(nul) and text.count(0) <= 0.1 * len(text):
            return order
    return ""


def _separator(head: bytes) -> str:
    """The one of SEPARATORS the header line holds most outside quotes (a quoted column name
    may hold any); a comma on a tie or where it holds none. Tab-separated exports and the
    semicolon files of locales with a decimal comma then read without a flag."""
    line = head.split(b"\n", 1)[0].decode("latin-1")  # separators are ASCII in every encoding
    line = re.sub(r'"[^"]*"', "", line)
    best = max(SEPARATORS, key=line.count)  # max keeps the first of equals: a comma
    return best if line.count(best) else ","


def first_bad_byte(path: Path, codec: str) -> str:
    """Where the first byte of ``path`` that ``codec`` cannot decode is ("" if none), read in
    1 MiB chunks: a file of any size costs no more memory than one chunk. Offsets count from
    the start of the (decompressed) file, past a UTF-8 byte-order mark."""
    dec = codecs.getincrementaldecoder(codec)()
    seen = 0  # bytes read before this chunk
    with past_bom(path) as f:
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


def listing(items: list[str], limit: int = 5) -> str:
    """``items`` joined by commas, the first ``limit`` only and then how many more: a message
    stays one readable line however many values a broken file has."""
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# Label cells that mean "no label" (pandas' usual spellings of a missing value): dropped and
# counted with the empty ones, unless data.labels names one. Texts keep them ('NA' is a word).
MISSING_LABELS = frozenset({"nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None",
                            "<NA>", "#N/A"})  # fmt: skip


def label_spellings(
    path: str | Path, lab: list[str], labels: tuple[str, ...]
) -> tuple[list[str], str]:
    """The label column with invisible format characters at the ends removed (as spaces are),
    missing-value spellings emptied, labels in decomposed Unicode composed (``gru\u0308n``, as
    macOS writes text, is ``grün``: they look the same) and, where every label is a number, one
    spelling per number ('0' and '0.0' are one class: ``labels``' spelling, else the shortest),
    and a first line naming what was merged ("" if nothing)."""
    lab, invisible = _visible(lab)
    lab = ["" if v in MISSING_LABELS and v not in labels else v for v in lab]
    lab, composed = _composed(lab)
    lab, numbers = _same_numbers(lab, labels)
    parts = [p for p in (invisible, numbers, composed) if p]
    return lab, f"data: {path}: {'; '.join(parts)}" if parts else ""


def _trim(v: str) -> str:
    """``v`` without spaces and invisible format characters (Unicode category Cf: U+200B zero
    width space, U+FEFF, U+200E, ...) at either end."""
    i, j = 0, len(v)
    while i < j and (v[i].isspace() or unicodedata.category(v[i]) == "Cf"):
        i += 1
    while j > i and (v[j - 1].isspace() or unicodedata.category(v[j - 1]) == "Cf"):
        j -= 1
    return v[i:j]


def _visible(lab: list[str]) -> tuple[list[str], str]:
    """``lab`` with invisible format characters at the ends removed as spaces are, and what
    was: text copied from a web page ends in a zero-width space, which prints as nothing, so
    'negative\u200b' would be a class that looks like 'negative'."""
    out = [_trim(v) for v in lab]
    odd = [v for v, t in zip(lab, out, strict=True) if v.strip() != t]
    n = len(odd)
    if not odd:
        return lab, ""
    # t is the middle of v: what is left without it is what was removed
    cut = [v.replace(t, "", 1) if t else v for v, t in zip(lab, out, strict=True)]
    chars = Counter(c for v in cut for c in v if unicodedata.category(c) == "Cf")
    kinds = ", ".join(f"U+{ord(c):04X} {n:,}" for c, n in chars.most_common())
    odd = sorted(set(odd), key=lambda v: (_trim(v), v))  # by the label they are
    shown = listing([f"{v.strip()!a} -> {_trim(v)!r}" for v in odd])
    return out, (f"{n:,} label(s) held invisible format characters ({kinds}), removed "
                 f"as spaces are: {shown}")  # fmt: skip


def _same_numbers(lab: list[str], labels: tuple[str, ...]) -> tuple[list[str], str]:
    """``lab`` with one spelling per number where every label is one, and what was merged."""
    parsed = {v: as_number(v) for v in set(lab) - {""}}
    values = {v: n for v, n in parsed.items() if n is not None}
    if not values or len(values) < len(parsed):  # not every label is a number
        return lab, ""
    # data.labels' (first) spelling of each number names its class
    named = {n: v for v in reversed(labels) if (n := as_number(v)) is not None}
    by: dict[float, list[str]] = {}
    for v in sorted(values, key=lambda v: (len(v), v)):  # the shortest spelling first
        by.setdefault(values[v], []).append(v)
    rename = {v: named.get(n, vs[0]) for n, vs in by.items() for v in vs}
    rename = {v: to for v, to in rename.items() if v != to}
    if not rename:
        return lab, ""
    merged = [" / ".join(map(repr, vs)) + f" -> {rename.get(vs[0], vs[0])!r}"
              for vs in by.values() if any(v in rename for v in vs)]  # fmt: skip
    said = f"labels that are the same number are one class: {listing(merged)}"
    return [rename.get(v, v) for v in lab], said


def _composed(lab: list[str]) -> tuple[list[str], str]:
    """``lab`` in composed Unicode (NFC), and what was read so."""
    nfc = [unicodedata.normalize("NFC", v) for v in lab]
    odd = sorted({v for v, c in zip(lab, nfc, strict=True) if v != c})
    if not odd:
        return lab, ""
    shown = listing([f"{v!a} -> {unicodedata.normalize('NFC', v)!r}" for v in odd])
    return nfc, ("labels in decomposed Unicode (as macOS writes text) read composed, one class "
                 f"with any label written so: {shown}")  # fmt: skip


def as_number(value: str) -> float | None:
    """``value`` as a finite number, else None."""
    try:
        n = float(value)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def case_note(
    source: str | Path,
    names: Sequence[str],
    what: str = "labels",
    fix: str = "write each label one way in the file to merge them",
    kept: tuple[str, ...] = (),
) -> str:
    """A first line naming classes (``what``: "labels", "class folders") whose names differ
    only in letter case (``Dog`` and ``dog``): each is a class of its own, which is rarely
    what the data meant; "" if none. Not merged: which spelling is right is the user's call.
    With data.labels (``kept``), only groups holding a kept label, whose other spellings'
    rows are dropped."""
    by: dict[str, list[str]] = {}
    for n in names:
        by.setdefault(n.casefold(), []).append(n)
    alike = [" / ".join(map(repr, v)) for v in by.values()
             if len(v) > 1 and (not kept or set(v) & set(kept))]  # fmt: skip
    if not alike:
        return ""
    fate = ("only the spellings data.labels names are kept, the others' rows are dropped"
            if kept else "are classes of their own")  # fmt: skip
    return f"data: {source}: {what} {'; '.join(alike)} differ only in letter case and {fate}; {fix}"
