"""The vocabulary and initial embedding of a text run with pretrained word vectors.

The GloVe-style tokenizer is fitted on the training texts, then extended by the training words
below min_frequency that have a vector and by the vectors file's own first words; the
embedding starts from those vectors (random at their scale for words without one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from archlab.data.embeddings import load_vectors
from archlab.data.text import clean_tokens, extend_vocabulary, train_tokenizer
from archlab.errors import ArchlabError


@dataclass(frozen=True)
class PretrainedVocabulary:
    """The extended tokenizer, its initial embedding, and what data.json records about both."""

    tokenizer: Tokenizer
    weight: torch.Tensor = field(repr=False)  # (vocab, dim) float32; row 0 (padding) is zero
    info: dict[str, Any] = field(default_factory=dict)

    def note(self, vectors: str | Path) -> str:
        """The run's first line about the vectors: size, rows kept, coverage, vocabulary."""
        i = self.info
        dup = (f"; {i['duplicate_words']} repeated words, first kept (first repeat at line "
               f"{i['first_duplicate_line']})" if i["duplicate_words"] else "")  # fmt: skip
        if i.get("spaced_words"):
            dup += (f"; {i['spaced_words']} rows skipped whose word holds a space (first at "
                    f"line {i['first_spaced_line']})")  # fmt: skip
        return (
            f"vectors {vectors}: {i['dim']}-d, {i['rows_kept']:,} of {i['lines']:,} rows "
            f"kept; {i['train_token_coverage']:.1%} of training tokens and "
            f"{i['train_word_coverage']:.1%} of distinct training words have a vector; "
            f"vocabulary {len(self.tokenizer.get_vocab()):,} "
            f"({i['vocab_added_from_vectors']:,} "
            f"word{'' if i['vocab_added_from_vectors'] == 1 else 's'} from the vectors only){dup}"
        )


def pretrained_vocabulary(
    train_texts: list[str],
    vectors: str,
    *,
    vocab_size: int,
    min_frequency: int,
    first_words: int,
    seed: int,
    source: str,
    mentions: tuple[str, ...] | None = None,
    entities: tuple[str, ...] | None = None,
) -> PretrainedVocabulary:
    """Fit the tokenizer on ``train_texts``, add the words that have vectors, build the weight.

    ``first_words`` is data.embeddings_words (the vectors file's first rows kept whatever the
    texts hold); ``seed`` draws the rows of words without a vector; ``source`` names the CSV in
    the error raised when no training word has a vector; ``mentions`` are the @mentions kept as
    tokens (data.mentions=keep; None maps them all to <user>); ``entities`` the HTML entities
    unescaped (archlab.data.text.entities_in; None: the original rules).
    """
    tok = train_tokenizer(train_texts, vocab_size, min_frequency, "glove", mentions, entities)
    counts = Counter(
        t for text in train_texts for t in clean_tokens(text, "glove", mentions, entities)
    )
    vec = load_vectors(vectors, set(counts), first_words)
    row = {w: i for i, w in enumerate(vec.words)}
    covered = [w for w in counts if w in row]
    if not covered:
        sample = ", ".join(list(counts)[:5])
        raise ArchlabError(
            f"{vectors}: no word in common with the training texts of {source} (e.g. "
            f"{sample}); is it a vectors file for this language and lower-cased?"
        )
    # Training words below min_frequency that have a vector still get their own row.
    rare = sorted((w for w in covered if tok.token_to_id(w) is None), key=lambda w: -counts[w])
    n_train_vocab = tok.get_vocab_size()
    tokenizer = extend_vocabulary(tok, [*rare, *vec.words])
    vocab = tokenizer.get_vocab()
    ids = np.fromiter(vocab.values(), np.int64, len(vocab))
    have = np.array([w in row for w in vocab])
    # Words without a vector start random at the vectors' own scale; padding stays zero.
    gen = np.random.default_rng(seed)
    std = float(vec.matrix.std())
    weight = gen.normal(0.0, std, (len(vocab), vec.dim)).astype(np.float32)
    weight[ids[have]] = vec.matrix[[row[w] for w, h in zip(vocab, have, strict=True) if h]]
    weight[0] = 0.0
    total = sum(counts.values())
    info = {
        **vec.info,
        "dim": vec.dim,
        "lines": vec.lines,
        "rows_kept": len(vec.words),
        "duplicate_words": vec.duplicates,
        "first_duplicate_line": vec.first_duplicate_line,
        "spaced_words": vec.spaced_words,
        "first_spaced_line": vec.first_spaced_line,
        "tokens": "glove (clitics split: can't -> ca n't)",
        "vocab_from_training": n_train_vocab,
        "vocab_with_vector": int(have.sum()),
        "vocab_added_from_vectors": len(vocab) - n_train_vocab,
        "train_token_coverage": sum(counts[w] for w in covered) / total,
        "train_word_coverage": len(covered) / len(counts),
        "init_std": std,
    }
    return PretrainedVocabulary(tokenizer, torch.from_numpy(weight), info)
