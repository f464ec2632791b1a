"""Short-text CSVs: reading with clear errors, meaning-keeping cleaning, grouping, tokenizers.

Cleaning and token splitting live inside the Hugging Face tokenizer (normalizer and
pre-tokenizer), so the saved tokenizer.json reproduces them exactly at predict time.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import html
import io
import itertools
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from archlab import fingerprint
from archlab.data.csv_format import (
    case_note,
    first_bad_byte,
    header,
    is_table_name,
    label_spellings,
    listing,
    past_bom,
    read_text_csv,
)
from archlab.data.folders import SPLIT_NAMES, is_hidden, split_named, split_tables
from archlab.data.text_folders import SPLIT_ORIGIN, SPLIT_TAG, folder_stats, read_text_folder
from archlab.errors import ArchlabError
from archlab.utils import ContentCache, count, file_key

PAD, UNK = "[PAD]", "[UNK]"
URL, USER = "<url>", "<user>"
_NUMBER = re.compile(r"\s*[-+]?[\d.,]+(?:[eE][-+]?\d+)?\s*")

# Tokens that carry sentiment are kept whole: placeholders, emoticons (:) ;-( =D :/ <3),
# words with apostrophes (won't), runs of !/? and ellipses; any other symbol (emoji, #, &)
# becomes its own token. Applied after lowercasing, so ':D' arrives as ':d'.
_TOKEN = r"<url>|<user>|[:;=][\-o']?[)(\]\[dpo/\\|*3]|<3|\w+(?:'\w+)?|[!?]+|\.{2,}|[^\w\s]"
# Tokens as GloVe's (Stanford tokenizer) vocabulary has them: clitics split off (can't -> ca n't,
# it's -> it 's, i'm -> i 'm), and no emoticon inside a time (10:30 is not '10' ':3' '0').
_GLOVE_TOKEN = (
    r"<url>|<user>|(?<!\d)[:;=][\-o']?[)(\]\[dpo/\\|*3]|<3|\w+?(?=n't\b)|n't\b"
    r"|'(?:s|m|d|ll|re|ve)\b|\w+|[!?]+|\.{2,}|[^\w\s]"
)
TokenStyle = Literal["tweet", "glove"]

# The normalization of tokenizers fitted now (``entities`` given below; a tokenizer saved before
# keeps the rules it was saved with, and grouping repeated texts keeps the original ones, so
# splits do not move). HTML entities are unescaped as html.unescape does, for the entities the
# training texts hold plus these common ones (the rules are the tokenizer's, so predict and
# explain unescape the same); placeholders of anonymized corpora ({link}, {user}) become <url>
# and <user>.
COMMON_ENTITIES = ("&quot;", "&apos;", "&#39;", "&nbsp;", "&lt;", "&gt;", "&amp;")
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_URL = r"https?://\S+|www\.\S+"
# Placeholders that stand for a link or a user (matched in any case). Only these: a word in
# braces can be the text's own ('{sigh}' in the airline tweets).
URL_PLACEHOLDERS = ("link", "url")
USER_PLACEHOLDERS = ("user", "username", "mention")
_PLACEHOLDER = re.compile(
    r"\{(?:" + "|".join((*URL_PLACEHOLDERS, *USER_PLACEHOLDERS)) + r")\}", re.IGNORECASE
)


def entities_in(texts: list[str]) -> tuple[str, ...]:
    """COMMON_ENTITIES and every other HTML entity in ``texts`` that html.unescape changes,
    ``&amp;`` last: unescaped once, as html.unescape does (``&amp;quot;`` is ``&quot;``)."""
    found = {m for t in texts for m in _ENTITY.findall(t) if html.unescape(m) != m}
    found.update(COMMON_ENTITIES)
    found.discard("&amp;")
    return (*sorted(found), "&amp;")


def _normalizer(
    style: TokenStyle = "tweet",
    mentions: tuple[str, ...] | None = None,
    entities: tuple[str, ...] | None = None,
) -> normalizers.Normalizer:
    """``mentions`` None: every @mention becomes <user>; a tuple (lower-case, without '@'):
    those mentions stay as tokens ('@united') and every other one becomes <user>.
    ``entities`` None: the original rules (&amp; &lt; &gt; only, placeholders kept as text); a
    tuple (entities_in): those entities unescaped first, then URL and user placeholders folded
    (with the URLs and the @mentions)."""
    # GloVe's vocabulary spells apostrophes ASCII; tweets often use typographic ones.
    quotes = [normalizers.Replace("\u2019", "'"), normalizers.Replace("\u2018", "'")]
    url = normalizers.Replace(Regex(_URL), f" {URL} ")
    html_rules = [  # Tweets arrive HTML-escaped ('&lt;3' is a heart).
        normalizers.Replace("&amp;", "&"),
        normalizers.Replace("&lt;", "<"),
        normalizers.Replace("&gt;", ">"),
    ]
    head = [normalizers.NFKC(), *(quotes if style == "glove" else [])]
    if entities is not None:
        # Unescaped before anything else ('&quot;' inside a URL is the URL's), and the old
        # rules' job is done.
        head = [*(normalizers.Replace(e, html.unescape(e)) for e in entities), *head]
        head.append(url)
        url = _placeholders()
        html_rules = []
    if mentions is None:
        # URLs and @mentions are replaced before lowercasing; their content is noise. (The
        # order of the original tokenizers, kept so that their tokenizer.json is unchanged.)
        user = normalizers.Replace(Regex(r"@\w+"), f" {USER} ")
        return normalizers.Sequence([*head, url, user, *html_rules, normalizers.Lowercase()])
    # Kept mentions are matched after lowercasing (@United is @united); the rest are noise.
    kept = f"(?!(?:{'|'.join(mentions)})\\b)" if mentions else ""
    user = normalizers.Replace(Regex(rf"@{kept}\w+"), f" {USER} ")
    return normalizers.Sequence([*head, url, *html_rules, normalizers.Lowercase(), user])


def _placeholders() -> normalizers.Normalizer:
    """{link}/{url} -> <url>, {user}/{username}/{mention} -> <user>, in any case."""
    rules = ((URL_PLACEHOLDERS, URL), (USER_PLACEHOLDERS, USER))
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(rf"(?i)\{{(?:{'|'.join(names)})\}}"), f" {token} ")
            for names, token in rules
        ]
    )


def normalization_counts(texts: list[str], entities: tuple[str, ...]) -> dict[str, Any]:
    """How often the fitted rules fold each kind in ``texts``: HTML entities (per entity),
    URLs, placeholders (per placeholder), for the run's first lines and data.json."""
    ents = Counter(m for t in texts for m in _ENTITY.findall(t) if m in entities)
    places = Counter(m.lower() for t in texts for m in _PLACEHOLDER.findall(t))
    return {
        "html_entities": sum(ents.values()),
        "html_entities_by_kind": dict(ents.most_common()),
        "urls": sum(len(re.findall(_URL, t)) for t in texts),
        "placeholders": sum(places.values()),
        "placeholders_by_kind": dict(places.most_common()),
    }


def _pre_tokenizer(
    style: TokenStyle = "tweet", mentions: tuple[str, ...] | None = None
) -> pre_tokenizers.PreTokenizer:
    pattern = _GLOVE_TOKEN if style == "glove" else _TOKEN
    if mentions:  # a kept mention is one token ('@united', not '@' 'united')
        pattern = rf"@\w+|{pattern}"
    return pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)


_MENTION = re.compile(r"@(\w+)")


def frequent_mentions(texts: list[str], min_count: int) -> tuple[str, ...]:
    """The @mentions (lower-case, without '@') seen at least ``min_count`` times in ``texts``,
    most frequent first (ties alphabetical), for data.mentions=keep."""
    norm = normalizers.NFKC()
    counts = Counter(m.lower() for t in texts for m in _MENTION.findall(norm.normalize_str(t)))
    return tuple(
        sorted((m for m, n in counts.items() if n >= min_count), key=lambda m: (-counts[m], m))
    )


@functools.lru_cache(maxsize=8)
def _cleaner(
    style: TokenStyle, mentions: tuple[str, ...] | None, entities: tuple[str, ...] | None
) -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    """Built once per (style, kept mentions, entities): clean_tokens runs once per text."""
    return _normalizer(style, mentions, entities), _pre_tokenizer(style, mentions)


def clean_tokens(
    text: str,
    style: TokenStyle = "tweet",
    mentions: tuple[str, ...] | None = None,
    entities: tuple[str, ...] | None = None,
) -> list[str]:
    """The cleaned word tokens of ``text`` (what the tokenizer sees before its vocabulary);
    the defaults are the original rules, which group repeated texts."""
    norm, pre = _cleaner(style, mentions, entities)
    return [t for t, _ in pre.pre_tokenize_str(norm.normalize_str(text))]


def tokenizer_words(tok: Tokenizer, text: str) -> list[str]:
    """The word tokens ``tok`` splits ``text`` into, by its own saved cleaning rules."""
    return [t for t, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))]


def train_tokenizer(
    texts: list[str],
    vocab_size: int = 20_000,
    min_frequency: int = 2,
    style: TokenStyle = "tweet",
    mentions: tuple[str, ...] | None = None,
    entities: tuple[str, ...] | None = None,
) -> Tokenizer:
    """Fit a word-level tokenizer on ``texts`` (the training split only).

    Word-level because its trainer breaks frequency ties deterministically, so a resumed run
    rebuilds the same vocabulary (the BPE trainer does not). Id 0 is padding, id 1 unknown.
    ``style='glove'`` splits tokens as pretrained GloVe vectors have them; ``mentions`` keeps
    those @mentions as their own tokens; ``entities`` (entities_in) turns on the unescaping and
    placeholder folding (see _normalizer). All are saved in the tokenizer.
    """
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = _normalizer(style, mentions, entities)
    tok.pre_tokenizer = _pre_tokenizer(style, mentions)
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, UNK],
        show_progress=False,  # its own bar would leak onto the terminal beside archlab's
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def extend_vocabulary(tok: Tokenizer, words: list[str]) -> Tokenizer:
    """``tok`` with ``words`` appended after its own vocabulary (ids of known words unchanged).

    Used for words that have a pretrained vector but are missing from the training split.
    """
    vocab = tok.get_vocab()
    for w in words:
        vocab.setdefault(w, len(vocab))
    out = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    out.normalizer = tok.normalizer
    out.pre_tokenizer = tok.pre_tokenizer
    return out


# A lone UTF-16 surrogate, which no tokenizer (nor UTF-8) takes: half of an emoji that a
# JavaScript client cut (a slice ending inside it, sent as JSON "\ud83d"), or a command-line
# byte that was not UTF-8 (Python keeps it as U+DC80..U+DCFF, "surrogateescape").
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in ``text``, or None."""
    m = _SURROGATE.search(text)
    return None if m is None else m.start()


def check_unicode(texts: list[str]) -> None:
    """Refuse, in one line naming it, the first text that is not valid Unicode."""
    for k, t in enumerate(texts):
        if (at := lone_surrogate(t)) is not None:
            raise ArchlabError(
                f"text {k + 1} is not valid Unicode (a lone surrogate at character {at + 1})"
            )


def encode(tok: Tokenizer, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (N x longest, truncated to ``max_length``) and lengths (>= 1).

    A text with no tokens becomes a single unknown token, so packing never sees length 0.
    """
    check_unicode(texts)  # the tokenizer's own error is a TypeError naming no text
    unk = tok.token_to_id(UNK)
    # encode_batch_fast skips character offsets, which we never use (about 30% faster).
    encs = tok.encode_batch_fast(texts, add_special_tokens=False)
    ids = [e.ids[:max_length] or [unk] for e in encs]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    width = int(lengths.max()) if len(ids) else 1
    x = np.zeros((len(ids), width), dtype=np.int64)
    # Scatter all ids at once: row-major order of the mask matches the concatenated lists.
    x[np.arange(width) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum())
    )
    return torch.from_numpy(x), torch.from_numpy(lengths)


@dataclass
class TextTable:
    """Grouped samples: one row per distinct cleaned text, with its majority label."""

    texts: list[str]  # first raw text of each group
    labels: np.ndarray  # class index per group
    class_names: list[str]
    source: str
    counts: dict[str, int] = field(default_factory=dict)  # rows read, merged, dropped (and why)
    encoding: str = "utf-8"  # the codec the file was read with
    # First lines on what reading found: a file not UTF-8 (data.encoding=auto), labels that
    # differ only in letter case.
    notes: list[str] = field(default_factory=list)
    # Per-group training weights (data.weight_column): the mean over the group's rows that carry
    # its kept label; None without a weight column.
    weights: np.ndarray | None = None
    # Per-group split tag (train/val/test) from split folders; None: the run draws the split.
    provided_split: np.ndarray | None = None
    split_origin: dict[str, str] = field(default_factory=dict)  # split -> its folder(s)
    # The files of a folder read (its fingerprint): text files, or split tables; () for a CSV
    files: tuple[str, ...] = ()
    # The file's own text and label columns: data.*_column, or the columns read where the
    # file lacks their defaults (data.json records them; config.yaml keeps what was asked).
    columns: tuple[str, str] = ("", "")

    @property
    def text_files(self) -> bool:
        """Whether each sample is a text file of a folder (not a row of a table)."""
        return bool(self.files) and not is_csv_name(self.files[0])


# What a missing column's error tells a user to do; a saved run's reading says FOR_RUN instead.
CHOOSE_COLUMNS = "choose one with --set data.text_column=NAME / data.label_column=NAME"


def for_run(text_column: str, label_column: str) -> str:
    """The fix a saved run's reading of a CSV without its columns names (eval --data)."""
    return (f"the run reads its texts from a column named {_named(text_column)} and its labels "
            f"from one named {_named(label_column)}: name them so in the file")  # fmt: skip


def _named(column: str) -> str:
    """``column`` quoted, and where it is a default, the other names read in its place (a run
    on the defaults reads a file's 'review' or 'label' column as well): the run's config
    names the default, not the column its training file had."""
    others = {DEFAULT_TEXT: TEXT_COLUMNS, STUDY_LABEL: LABEL_COLUMNS}.get(column, ())
    rest = [n for n in others if n != column]
    return f"{column!r} (or {', '.join(rest)}: the first the file has)" if rest else repr(column)


def read_csv(
    path: str | Path,
    columns: list[str],
    encoding: str,
    optional: tuple[str, ...] = (),
    fix: str = CHOOSE_COLUMNS,
) -> pd.DataFrame:
    """Read ``columns`` (and those of ``optional`` the file has) as strings; plain or .gz.

    Quoted fields may hold newlines. Errors name the file, the column or byte, and the fix: a
    row with more fields than the header (an unquoted separator in a text) is one of them.
    """
    path = _existing(path, "a CSV file")

    def read(src: Path, codec: str, sep: str) -> pd.DataFrame:
        with past_bom(src) as f:
            found = [str(c) for c in pd.read_csv(f, nrows=0, encoding=codec, sep=sep).columns]
        for col in columns:
            if col not in found:
                raise ArchlabError(
                    f"{path}: no column {col!r} ({columns_found(found, col)}); {fix}"
                )
        _refuse_malformed_rows(src, codec, sep, len(found))
        # keep_default_na=False: a tweet reading 'NA' or 'null' is text, not a missing value.
        with past_bom(src) as f:
            df = pd.read_csv(
                f,
                usecols=[*columns, *(c for c in optional if c in found and c not in columns)],
                dtype=str,
                encoding=codec,
                sep=sep,
                keep_default_na=False,
            )
        df.attrs["columns"] = found  # every column of the file, not only those kept
        return df

    with _reading(path, encoding):
        df, codec, note = read_text_csv(path, encoding, read)
    df.attrs.update(encoding=codec, encoding_note=note)
    return df


NO_DATA = "no text data given: use --data PATH (a CSV file, or a folder of class folders)"


def _existing(path: str | Path, kind: str) -> Path:
    """``path`` as a Path, recorded for the run's fingerprint; a missing file or a folder is
    one line."""
    path = Path(path)
    if not str(path) or str(path) == ".":
        raise ArchlabError(NO_DATA)
    if path.is_dir():
        raise ArchlabError(f"{path}: is a folder; expected {kind}")
    if not path.is_file():
        raise ArchlabError(f"{path}: no such file")
    fingerprint.record(path)
    return path


@contextlib.contextmanager
def _reading(path: Path, encoding: str) -> Iterator[None]:
    """Reading ``path`` as ``encoding``: what can go wrong becomes one line naming the file."""
    try:
        yield
    except LookupError:
        raise ArchlabError(
            f"unknown encoding {encoding!r}: use a Python codec name, "
            "e.g. --set data.encoding=latin-1"
        ) from None
    except UnicodeError as e:  # also UTF-16's "stream does not start with BOM"
        raise _decode_error(path, encoding, e) from None
    except pd.errors.EmptyDataError:
        raise ArchlabError(f"{path}: the file is empty (expected a header line and rows)") from None
    except (pd.errors.ParserError, csv.Error) as e:
        raise ArchlabError(f"{path}: not a readable CSV ({str(e).splitlines()[0][:120]})") from None
    except (OSError, EOFError, zlib.error) as e:  # a damaged or cut-off .gz
        raise ArchlabError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None


def _decode_error(path: Path, encoding: str, e: UnicodeError) -> ArchlabError:
    # Where in the file (pandas' own offset counts from the chunk it was decoding).
    where = ""
    with contextlib.suppress(UnicodeError, LookupError, OSError):
        where = first_bad_byte(path, encoding)
    if not where and isinstance(e, UnicodeDecodeError):
        where = f"byte 0x{e.object[e.start]:02x}"
    fix = "set the file's encoding, e.g. --set data.encoding=latin-1"
    if "BOM" in str(e):  # 'utf-16' wants a byte-order mark to tell the byte order
        fix = "name its byte order: --set data.encoding=utf-16-le (or utf-16-be)"
    return ArchlabError(f"{path}: cannot decode as {encoding} ({where or str(e)}); {fix}")


def columns_found(found: list[str], wanted: str) -> str:
    """'columns found: ...' with each name quoted (spaces show), and the one that differs from
    ``wanted`` only in letter case or surrounding spaces named."""
    near = [f for f in found if f.strip().casefold() == wanted.strip().casefold()]
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"columns found: {listing([repr(f) for f in found], 20)}{hint}"


def _refuse_malformed_rows(path: Path, codec: str, sep: str, width: int) -> None:
    """Refuse what pandas would read wrong without a word: rows with more fields than the
    header's ``width`` (an unquoted separator inside a text, cut off or taken as an index;
    extra fields all empty, a trailing separator, lose nothing and pass), and a quote mark
    opening a text that is never closed (a raw file whose text starts with ``"``), which glues
    the rows after it into one field up to the next quote mark."""
    first = fields = count = 0
    with past_bom(path) as raw, io.TextIOWrapper(raw, encoding=codec, newline="") as f:
        # strict: a quoted field closed by anything but a separator or a line end is an error
        rows = csv.reader(f, delimiter=sep, strict=True)
        next(rows, None)  # the header
        while True:
            start = rows.line_num + 1
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error:
                if rows.line_num > start:  # the quote ran over line breaks: rows glued
                    _refuse_open_quote(path, start, rows.line_num)
                continue  # "a" b on one line: pandas reads it as the text a b
            if len(row) > width and any(v.strip() for v in row[width:]):
                count += 1
                if not first:
                    first, fields = rows.line_num, len(row)
    if count:
        shown = "a tab" if sep == "\t" else repr(sep)
        raise ArchlabError(
            f"{path}: line {first} has {fields} fields but the header has {width} ({count} "
            f'row(s) with more): a text that holds {shown} must be quoted ("..."); save the '
            "file with a CSV writer (pandas to_csv, csv.writer, a spreadsheet's CSV export)"
        )


def _refuse_open_quote(path: Path, start: int, end: int) -> None:
    raise ArchlabError(
        f'{path}: line {start}: a quote mark (") opens a text that is not closed before a '
        f"separator, so lines {start}-{end} would read as one row: a text starting with a "
        'quote mark must be quoted whole ("""great"" flight"); save the file with a CSV writer '
        "(pandas to_csv, csv.writer, a spreadsheet's CSV export)"
    )


def read_input_texts(path: str | Path, column: str, encoding: str) -> list[str]:
    """The texts of a ``--file``: a CSV's (.csv, .tsv, plain or .gz) column ``column``, else
    one text per line with blank lines skipped. Empty texts are refused (training drops them,
    so the network never learnt what they mean)."""
    path = _existing(path, "a file of texts")
    if is_csv_name(path):
        # predict has no --set: the column is the run's, so the file must use its name (or,
        # for a run on the default, one of the names a training file's texts are read from)
        cols = _csv_header(path) if column == DEFAULT_TEXT else None
        found = _fallback(cols, column, DEFAULT_TEXT, TEXT_COLUMNS, "")
        column = next(iter(found), column)
        fix = f"the run reads its texts from a column named {_named(column)}: name it so"
        texts = read_csv(path, [column], encoding, fix=fix)[column].tolist()
        for i, t in enumerate(texts):
            if not t.strip():
                raise ArchlabError(f"{path}: column {column!r}, data row {i + 1}: an empty "
                                   "text, nothing to predict (remove the row)")  # fmt: skip

        return texts

    def lines(_: Path, codec: str, sep: str) -> list[str]:
        with past_bom(path) as raw, io.TextIOWrapper(raw, encoding=codec) as f:
            return [line for line in f.read().split("\n") if line.strip()]

    with _reading(path, encoding):
        texts = read_text_csv(path, encoding, lines)[0]
    if not texts:
        raise ArchlabError(f"{path}: no text in it (one text a line; blank lines are skipped)")
    return texts


def read_labelled(
    path: str | Path,
    text_column: str,
    label_column: str,
    encoding: str,
    optional: tuple[str, ...] = (),
    held_out: bool = False,
    fix: str = CHOOSE_COLUMNS,
    layout: str = "auto",
) -> pd.DataFrame:
    """The texts and labels of a CSV (read_csv; ``fix`` ends its missing-column error), or of
    a folder of class folders of text files (text_folders.read_text_folder; ``held_out``: its
    split folders give no split; ``layout``: data.layout)."""
    if isinstance(path, str) and not path.strip():  # Path("") is the cwd: its folders
        raise ArchlabError(NO_DATA)
    if Path(path).is_dir():
        if tables := (split_tables(Path(path), is_csv_name) if layout != "classes" else {}):
            return _read_split_tables(
                Path(path), tables, text_column, label_column, encoding, optional, held_out, fix
            )
        return read_text_folder(Path(path), text_column, label_column, encoding, held_out, layout)
    at_default = text_column == DEFAULT_TEXT or label_column == STUDY_LABEL
    cols = _csv_header(Path(path)) if at_default else None  # read once, for both
    text_found = _fallback(cols, text_column, DEFAULT_TEXT, TEXT_COLUMNS, label_column)
    texts = text_found[0] if text_found else ""
    label_found = _fallback(cols, label_column, STUDY_LABEL, LABEL_COLUMNS, texts or text_column)
    labels = label_found[0] if label_found else ""
    if not texts and not labels:
        return read_csv(path, [text_column, label_column], encoding, optional, fix)
    df = read_csv(path, [texts or text_column, labels or label_column], encoding, optional, fix)
    notes = [
        f"data: {path}: no column {want!r} (data.{key}'s default): {what} read from column "
        f"{found[0]!r}" + (f" (also found: {', '.join(map(repr, found[1:]))})"
                           if len(found) > 1 else "") + f"; set data.{key} to choose"
        for want, found, key, what in ((text_column, text_found, "text_column", "texts"),
                                       (label_column, label_found, "label_column", "labels"))
        if found
    ]  # fmt: skip
    attrs = dict(df.attrs)
    # The rest reads the configured names.
    df = df.rename(columns={k: v for k, v in ((texts, text_column), (labels, label_column)) if k})
    df.attrs = {**attrs, "file_notes": [*attrs.get("file_notes", []), *notes],
                "text_from": texts or text_column,
                "label_from": labels or label_column}  # fmt: skip
    return df


def _read_split_tables(
    root: Path,
    tables: dict[str, list[Path]],
    text_column: str,
    label_column: str,
    encoding: str,
    optional: tuple[str, ...],
    held_out: bool,
    fix: str,
) -> pd.DataFrame:
    """The folder's split tables as one table (read_labelled of each; the columns found in the
    train table), each row tagged with its file's split. A table without the label column
    (Kaggle's test.csv, to predict) is left out, said; ``held_out``: read whole, no split."""
    first = read_labelled(tables["train"][0], text_column, label_column, encoding, optional,
                          fix=fix)  # fmt: skip
    text = first.attrs.get("text_from", text_column)  # the files' own names
    label = first.attrs.get("label_from", label_column)
    parts, tags, origin, notes = [], [], {}, list(first.attrs.get("file_notes", []))
    unlabelled: list[str] = []
    for sp, paths in tables.items():
        for p in paths:
            if label not in (header(p) or [label]):
                unlabelled.append(p.name)
                continue
            df = first if p == tables["train"][0] else read_csv(p, [text, label], encoding,
                                                                 optional, fix)  # fmt: skip
            parts.append(df.rename(columns={text: text_column, label: label_column}))
            tags += [sp] * len(df)
            origin[sp] = (
                paths[0].name if len(paths) == 1 else f"{paths[0].name} (+{len(paths) - 1})"
            )
            if df is not first:
                more = [df.attrs.get("encoding_note"), *df.attrs.get("file_notes", [])]
                # said once where every file says it (the Hub's class names)
                same = str(tables["train"][0])
                said = [first.attrs.get("encoding_note"), *notes]
                notes += [n for n in more if n and n.replace(str(p), same) not in said]
    here = tables["train"][0].parent
    other = [p.name for p in sorted(here.iterdir()) if p.is_file() and not is_hidden(p.name)
             and is_csv_name(p.name) and not split_named(p.name, is_csv_name)]  # fmt: skip
    if unlabelled:
        notes.append(f"data: {root}: {listing(unlabelled)} left out: no column {label!r} (no "
                     "labels to score; archlab predict RUN --file FILE labels it)")  # fmt: skip
    if other:
        notes.append(f"data: {root}: {listing(other)} left out: no split in the name")
    df = pd.concat(parts, ignore_index=True)
    read = tuple(str(p) for ps in tables.values() for p in ps if p.name not in unlabelled)
    df.attrs = {**first.attrs, "file_notes": notes, "text_from": text, "label_from": label,
                "files": read}  # fmt: skip
    if not held_out:
        df.attrs[SPLIT_TAG] = np.array(tags, dtype=object)
        df.attrs[SPLIT_ORIGIN] = origin
    return df


# The columns' defaults (text, and the study's label column) and, where a file lacks one, the
# names tried in order for it (any letter case): a generic file (review,sentiment) needs no flag.
DEFAULT_TEXT, STUDY_LABEL = "text", "airline_sentiment"
TEXT_COLUMNS = ("text", "review", "sentence", "content", "comment", "tweet", "message", "body",
                "document")  # fmt: skip
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "category", "target")


def _csv_header(path: Path) -> list[str] | None:
    """The column names of the CSV ``path`` (None: no CSV file, or unreadable)."""
    return header(path) if path.is_file() and is_csv_name(path) else None


def _fallback(
    cols: list[str] | None, wanted: str, default: str, names: tuple[str, ...], other: str
) -> list[str]:
    """The columns to read from where ``wanted`` is its ``default`` and a CSV's header
    ``cols`` lacks it, the one read first: those of ``names`` it has, in that order, any
    letter case, other than ``other`` ([] where it has ``wanted``, or none of them)."""
    if wanted != default or cols is None or wanted in cols:
        return []
    # Per name, the column spelt exactly so first ('label' before 'Label').
    alike = [sorted((c for c in cols if c.strip().casefold() == name and c != other),
                    key=lambda c: c != name) for name in names]  # fmt: skip
    return [c for group in alike for c in group]


CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


def is_csv_name(path: str | Path) -> bool:
    """Whether ``path`` names a table of columns by its name: a CSV (or TSV) file, plain or
    gzipped, or a Parquet or JSON table (read as a CSV is)."""
    return str(path).lower().endswith(CSV_SUFFIXES) or is_table_name(path)


def load_text_table(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "airline_sentiment",
    encoding: str = "auto",
    labels: tuple[str, ...] = (),
    conflicts: Literal["majority", "drop"] = "majority",
    weight_column: str = "",
    held_out: bool = False,
    split_column: str = "",
    fix: str = CHOOSE_COLUMNS,
    layout: str = "auto",
) -> TextTable:
    """Read, drop unusable rows (counted), and merge rows whose cleaned text is identical.

    Exact duplicates and repeated texts become one sample so no text can land in two splits.
    A group whose labels disagree takes the majority label (``conflicts='majority'``; ties are
    dropped) or is dropped entirely (``conflicts='drop'``). With ``weight_column`` each group
    also gets a training weight, the mean of its majority-label rows' numbers. ``held_out``
    (a set a saved run scores whole, eval --all): no split, so every usable row is a sample
    with its own label (nothing merged), and any number of classes will do. ``split_column``
    (or a folder's split folders) tags each row's split: a sample's is train where any of its
    rows is there. ``fix`` ends a missing column's error (a saved run's: ``for_run``).
    ``layout``: a folder's data.layout (auto, split, classes), as for image folders.
    """
    if isinstance(path, str) and not path.strip():  # Path("") is the cwd: its folders
        raise ArchlabError(NO_DATA)
    args = (text_column, label_column, encoding, labels, conflicts, weight_column, held_out,
            split_column, layout)  # fmt: skip
    # A folder's key covers every file in it (a file edited, added or moved changes it).
    key = file_key(path, *args, folder_stats(path) if Path(path).is_dir() else "")
    if key is None:  # no such file: the reader's own error
        return _load_text_table(path, *args, fix)
    t = _TABLES.get(key, lambda: _load_text_table(path, *args, fix))  # fix: errors only
    for f in t.files or (path,):  # a cached read is still a read of the run's input
        fingerprint.record(f)
    return replace(t, texts=list(t.texts), labels=t.labels.copy(), counts=dict(t.counts),
                   class_names=list(t.class_names), notes=list(t.notes),
                   weights=None if t.weights is None else t.weights.copy())  # fmt: skip


# Cleaning and grouping 15k tweets takes ~0.7 s: the runs of one process (reproduce, ablate,
# a budget search, explain after train) read the same table.
_TABLES: ContentCache[TextTable] = ContentCache()


def _load_text_table(
    path: str | Path,
    text_column: str,
    label_column: str,
    encoding: str,
    labels: tuple[str, ...],
    conflicts: Literal["majority", "drop"],
    weight_column: str,
    held_out: bool = False,
    split_column: str = "",
    layout: str = "auto",
    fix: str = CHOOSE_COLUMNS,
) -> TextTable:
    optional = tuple(c for c in (weight_column, split_column) if c)
    df = read_labelled(path, text_column, label_column, encoding, optional, held_out, fix, layout)
    # Where the labels are, in messages: a folder's label column is reading's, not the user's.
    column = df.attrs.get("label_from", label_column)  # the file's own name for it
    where = "its class folders" if Path(path).is_dir() else f"column {column!r}"
    # A held-out set is scored whole, and a folder has split folders: no split column.
    if split_column and not held_out and not Path(path).is_dir():
        df.attrs[SPLIT_TAG], df.attrs[SPLIT_ORIGIN] = _split_tags(df, path, split_column)
    counts: dict[str, int] = {"rows_read": len(df)}
    if df.empty:
        raise ArchlabError(f"{path}: a header line but no rows")
    raw = df[text_column].tolist()
    lab, same_number = label_spellings(path, df[label_column].str.strip().tolist(), labels)
    keys = [" ".join(clean_tokens(t)) for t in raw]
    empty = [not k for k in keys]
    # A number where text should be (e.g. an id column chosen by mistake) is not a text.
    numeric = [bool(k) and _NUMBER.fullmatch(t) is not None for k, t in zip(keys, raw, strict=True)]
    no_label = [not v for v in lab]
    counts["dropped_empty_text"] = int(sum(empty))
    counts["dropped_non_text"] = int(sum(numeric))
    bad_text = [e or n for e, n in zip(empty, numeric, strict=True)]
    counts["dropped_missing_label"] = int(
        sum(n and not b for n, b in zip(no_label, bad_text, strict=True))
    )
    keep = [not (b or n) for b, n in zip(bad_text, no_label, strict=True)]
    if labels:
        if not held_out:  # a held-out set may lack some of the labels
            _check_label_set(path, where, labels, lab, keep)
        outside = [k and v not in labels for k, v in zip(keep, lab, strict=True)]
        counts["dropped_label_not_in_set"] = int(sum(outside))
        keep = [k and not o for k, o in zip(keep, outside, strict=True)]
    if not any(keep):
        text_from = df.attrs.get("text_from", text_column)  # the file's names, as read
        raise ArchlabError(
            f"{path}: no usable rows in columns {text_from!r}/{column!r} "
            f"({counts['dropped_empty_text']} empty texts, {counts['dropped_non_text']} numbers, "
            f"{counts['dropped_missing_label']} missing labels)"
            + _twice(df.attrs.get("columns", []), text_from, "text")
            + _twice(df.attrs.get("columns", []), column, "label")
        )
    row_weights = _row_weights(df, path, weight_column, keep) if weight_column else None
    # Held out: each row is a group of its own (keyed by its position), so none merges.
    groups = [str(i) for i in range(len(keys))] if held_out else keys
    texts, group_labels, group_weights, members = _merge_repeats(
        raw, lab, groups, keep, row_weights, conflicts, counts
    )
    provided, across = _group_splits(df.attrs.get(SPLIT_TAG), members)
    names = list(labels) if labels else sorted(set(group_labels))
    if not held_out:  # a split needs 2+ classes of 3+ texts; scoring a set whole does not
        _check_classes(path, where, names, Counter(group_labels))
    if provided is not None:
        _check_trained_classes(path, group_labels, provided, df.attrs[SPLIT_ORIGIN])
    index = {n: i for i, n in enumerate(names)}
    # With data.labels, every label read: a kept label's other spellings are dropped rows.
    spellings = sorted({v for v in lab if v}) if labels else names
    notes = [df.attrs["encoding_note"], *df.attrs.get("file_notes", []), same_number,
             case_note(path, spellings, kept=labels), _comma_note(path, names), across]  # fmt: skip
    origin = {sp: o for sp, o in (df.attrs.get(SPLIT_ORIGIN) or {}).items()
              if provided is None or (provided == sp).any()}  # fmt: skip
    return TextTable(
        texts=texts,
        labels=np.array([index[v] for v in group_labels], dtype=np.int64),
        class_names=names,
        source=str(path),
        counts=counts,
        weights=None if row_weights is None else np.array(group_weights, dtype=np.float64),
        encoding=df.attrs["encoding"],
        notes=[n for n in notes if n],
        provided_split=provided,
        split_origin=origin,  # the splits that kept a text (a Hub test split's are all -1)
        files=tuple(df.attrs.get("files", ())),
        columns=(df.attrs.get("text_from", text_column), column),
    )


def _comma_note(path: str | Path, names: list[str]) -> str:
    """A first line naming labels that hold a comma ('negative,neutral'), which look like
    several labels: each is a class of its own (multi-label data is not read), and data.labels,
    comma-separated, cannot name it; "" if none."""
    odd = [n for n in names if "," in n]
    if not odd:
        return ""
    return (f"data: {path}: {len(odd)} label(s) hold a comma ({listing(list(map(repr, odd)))}): "
            "each is read as a class of its own, not as several labels (multi-label data is not "
            "read)")  # fmt: skip


def _twice(columns: list[str], name: str, what: str) -> str:
    """Where the header names ``name`` twice (pandas calls the second 'name.1'): which was
    read, and how to read the other ("" otherwise)."""
    if f"{name}.1" not in columns:
        return ""
    return (
        f"; the header names {name!r} twice: the first was read, set "
        f"data.{what}_column={name}.1 to read the second"
    )


def _check_label_set(
    path: str | Path, where: str, labels: tuple[str, ...], lab: list[str], keep: list[bool]
) -> None:
    """Refuse data.labels that no usable row has (a typo, another letter case), naming the
    labels the column does have, most frequent first."""
    have = Counter(v for v, k in zip(lab, keep, strict=True) if k)
    absent = [v for v in labels if v not in have]
    if absent:
        found = listing([f"{v!r} ({n})" for v, n in have.most_common()], 10)
        raise ArchlabError(
            f"{path}: data.labels {', '.join(map(repr, absent))} not in {where} "
            f"(its labels: {found or 'none'}); list labels as the column writes them"
        )


# What load_text_table drops, in the words of the run's first line.
_DROPPED = (
    ("dropped_empty_text", "empty text{s}"),
    ("dropped_non_text", "number{s} as text"),
    ("dropped_missing_label", "without a label"),
    ("dropped_label_not_in_set", "with a label outside data.labels"),
    ("texts_dropped_for_conflicting_labels", "text{s} with conflicting labels"),
)


def _count(n: int, noun: str) -> str:
    """'1 empty text', '2 empty texts': ``noun`` holds '{s}' where the plural adds an s."""
    return f"{n:,} {noun.format(s='' if n == 1 else 's')}"


def dropped_rows(counts: dict[str, int]) -> str:
    """What load_text_table dropped, non-zero counts only ("" if nothing), e.g. '30 empty
    texts, 15 without a label'."""
    return ", ".join(_count(counts[k], what) for k, what in _DROPPED if counts.get(k))


def rows_note(source: str, counts: dict[str, int], truncated: int = 0, max_length: int = 0) -> str:
    """The run's first line on the rows read and what became of them, non-zero counts only
    ("" when every row became a text of its own), e.g. '300 rows read: dropped 30 empty texts,
    15 without a label; 18 repeats merged -> 236 texts'."""
    dropped = dropped_rows(counts)
    merged = counts.get("rows_merged_into_repeated_texts", 0)
    voted = counts.get("texts_with_conflicting_labels", 0) - counts.get(
        "texts_dropped_for_conflicting_labels", 0)  # fmt: skip
    parts = [f"dropped {dropped}"] if dropped else []
    parts += [_count(merged, "repeat{s} merged")] if merged else []
    parts += [_count(voted, "text{s} with conflicting labels took the majority label "
                            "(data.conflicts=drop drops them)")] if voted else []  # fmt: skip
    cut = f"; {_count(truncated, 'text{s}')} cut at data.max_length={max_length} tokens"
    if not parts and not truncated:
        return ""
    return (f"data: {source}: {_count(counts['rows_read'], 'row{s}')} read: "
            f"{'; '.join(parts) or 'all kept'} -> {_count(counts['samples'], 'text{s}')}"
            f"{cut if truncated else ''}")  # fmt: skip


def _merge_repeats(
    raw: list[str],
    lab: list[str],
    keys: list[str],
    keep: list[bool],
    row_weights: np.ndarray | None,
    conflicts: Literal["majority", "drop"],
    counts: dict[str, int],
) -> tuple[list[str], list[str], list[float], list[list[int]]]:
    """One sample per distinct cleaned text (``keys``) among the rows kept: its first row's
    text, its label by majority (a tie, or any conflict under ``drop``, drops it), the mean
    weight of its rows with that label, and its rows; what was merged and dropped goes into
    ``counts``."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if keep[i]:
            groups.setdefault(k, []).append(i)
    texts, group_labels, group_weights, members = [], [], [], []
    merged = conflicting = dropped_conflict = 0
    for rows in groups.values():
        votes = Counter(lab[i] for i in rows).most_common()
        merged += len(rows) - 1
        if len(votes) > 1:
            conflicting += 1
            if conflicts == "drop" or votes[0][1] == votes[1][1]:  # drop, or a tie
                dropped_conflict += 1
                continue
        texts.append(raw[rows[0]])
        members.append(rows)
        group_labels.append(votes[0][0])
        if row_weights is not None:
            group_weights.append(np.mean([row_weights[i] for i in rows if lab[i] == votes[0][0]]))
    counts.update(
        rows_merged_into_repeated_texts=merged,
        texts_with_conflicting_labels=conflicting,
        texts_dropped_for_conflicting_labels=dropped_conflict,
        samples=len(texts),
    )
    return texts, group_labels, group_weights, members


def _split_tags(
    df: pd.DataFrame, path: str | Path, column: str
) -> tuple[np.ndarray, dict[str, str]]:
    """Each row's split from data.split_column (the names split folders take, any case), and
    where each split came from."""
    if column not in df.columns:
        raise ArchlabError(
            f"{path}: no column {column!r} for data.split_column "
            f"({columns_found(df.attrs['columns'], column)})"
        )
    cells = df[column].str.strip()
    tags = cells.str.lower().map(SPLIT_NAMES)
    bad = np.flatnonzero(tags.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: column {column!r}, data row {i + 1}: {cells.iloc[i]!r} names no split "
            f"(use train, val or test; {count(len(bad), 'row')} name none)"
        )
    tags_arr = tags.to_numpy(dtype=object)
    if "train" not in set(tags_arr):
        raise ArchlabError(f"{path}: column {column!r} tags no row train: the run needs some")
    return tags_arr, {sp: f"{column}={sp}" for sp in sorted(set(tags_arr))}


def _check_trained_classes(
    path: str | Path, labels: list[str], splits: np.ndarray, origin: dict[str, str]
) -> None:
    """Refuse a class the data's own split has texts of in val or test but none in train: a
    network cannot learn it, and the scores would count it as always wrong."""
    trained = {v for v, sp in zip(labels, splits, strict=True) if sp == "train"}
    missing = sorted({v for v, sp in zip(labels, splits, strict=True) if sp != "train"} - trained)
    if missing:
        sp = next(sp for v, sp in zip(labels, splits, strict=True) if v == missing[0])
        raise ArchlabError(
            f"{path}: class {missing[0]!r} has texts in {origin[sp]} but none in "
            f"{origin['train']}: a model cannot learn it (classes without training texts: "
            f"{missing}); add training texts, or leave it out with --set data.labels=..."
        )


def _group_splits(
    tags: np.ndarray | None, members: list[list[int]]
) -> tuple[np.ndarray | None, str]:
    """Each sample's split from its rows' split folders (None without them): train where any
    of its rows is in train/, else its first row's; and a first line on texts found in more
    than one split folder (each is one sample, so it is scored or trained on once)."""
    if tags is None:
        return None, ""
    out, across = [], 0
    for rows in members:
        seen = {tags[i] for i in rows}
        across += len(seen) > 1
        out.append("train" if "train" in seen else tags[rows[0]])
    note = (f"data: {count(across, 'text')} found in more than one split: each is one "
            "sample, in train where one copy is there") if across else ""  # fmt: skip
    return np.array(out, dtype=object), note


def _check_classes(path: str | Path, where: str, names: list[str], per_class: Counter[str]) -> None:
    """Refuse labels too few to learn from: one class only, or one with under 3 texts."""
    present = [n for n in names if per_class[n] > 0]
    if len(present) < 2:
        raise ArchlabError(
            # repr: a label read from a broken file can hold newlines; the error is one line
            f"{path}: only one class in {where} "
            f"({', '.join(repr(n)[:80] for n in present) or 'none'}); need at least 2"
        )
    rare = [n for n in names if per_class[n] < 3]
    if rare:
        detail = listing([f"{n[:80]!r} ({per_class[n]})" for n in rare])
        raise ArchlabError(
            f"{path}: label(s) {detail} in {where} have fewer than 3 distinct texts, too few "
            "for a stratified split into train, val and test; remove them or list the labels "
            "to keep with --set data.labels=a,b,c"
        )


def _row_weights(df: pd.DataFrame, path: str | Path, column: str, keep: list[bool]) -> np.ndarray:
    """The weight column as floats; an unusable value in a kept row is a one-line error."""
    if column not in df.columns:  # read_csv kept only the columns it was asked for
        raise ArchlabError(
            f"{path}: no column {column!r} for data.weight_column "
            f"({columns_found(df.attrs['columns'], column)}); name a numeric column, or drop "
            "the setting"
        )
    values = pd.to_numeric(df[column].str.strip(), errors="coerce").to_numpy(np.float64)
    kept = np.asarray(keep, dtype=bool)
    bad = np.flatnonzero((~np.isfinite(values) | (values < 0)) & kept)
    if bad.size:
        i = int(bad[0])
        raise ArchlabError(
            f"{path}: column {column!r}, data row {i + 1}: {df[column].iloc[i]!r} is not a "
            "training weight (a finite number >= 0)"
        )
    if not values[kept].any():
        raise ArchlabError(f"{path}: column {column!r} is 0 in every usable row")
    return values
