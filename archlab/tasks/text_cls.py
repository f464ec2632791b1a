"""Text classification (study part IV): grouped split, fitted tokenizer, loss, baselines, files."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from archlab.config import RunConfig
from archlab.data.embeddings import peek_dim
from archlab.data.pretrained_vocab import PretrainedVocabulary, pretrained_vocabulary
from archlab.data.splits import (
    Named,
    check_run_classes,
    class_weights,
    held_out_split,
    stratified_split,
    stratified_subset,
    to_run_classes,
)
from archlab.data.text import (
    CHOOSE_COLUMNS,
    UNK,
    TextTable,
    dropped_rows,
    encode,
    entities_in,
    for_run,
    frequent_mentions,
    is_csv_name,
    load_text_table,
    normalization_counts,
    read_input_texts,
    rows_note,
    train_tokenizer,
)
from archlab.data.text_folders import folder_texts
from archlab.errors import ArchlabError
from archlab.metrics import classification_metrics
from archlab.models import MODELS
from archlab.rundir import FITTED, require_fitted
from archlab.task_configs import TextDataConfig, TextModelConfig
from archlab.tasks import text_blend
from archlab.tasks.base import (
    Batches,
    DataBundle,
    InputFile,
    held_out_info,
    predict_row,
    split_note,
    split_source,
    unscored_notes,
)
from archlab.tasks.tfidf import (
    class_probs,
    distill_targets,
    load_tfidf,
    save_tfidf,
    tfidf_baseline,
)
from archlab.utils import sha256_array, write_text_atomic

TOKENIZER_FILE = "tokenizer.json"
TFIDF_FILE = "tfidf.npz"  # the TF-IDF model of a run that blends with it (save_tfidf)


@dataclass(frozen=True)
class TextFitted:
    """What text classification learns from its training texts: classes and the tokenizer."""

    kind: ClassVar[str] = "text"
    class_names: tuple[str, ...]
    tokenizer: Tokenizer = field(compare=False)
    text_column: str = "text"
    embed_dim: int | None = None  # the pretrained vectors' size, when data.embeddings is set
    class_weights: tuple[float, ...] | None = None  # cross-entropy weights (data.class_weights)
    # The initial embedding from the vectors (training only; a restored run has its weights).
    pretrained: torch.Tensor | None = field(default=None, compare=False, repr=False)
    # The blend with TF-IDF chosen on validation after training (archlab/tasks/text_blend.py)
    # with the validation macro-F1 it rests on; {} until then, in older runs and without one.
    chosen: dict[str, Any] = field(default_factory=dict)
    # The TF-IDF model blended in (TFIDF_FILE in the run dir); None without a blend.
    tfidf: Any = field(default=None, compare=False, repr=False)

    @property
    def blend_weight(self) -> float:
        """The network's weight in the predicted probabilities (1: the network alone)."""
        w = self.chosen.get("blend_weight", 1.0)
        return w if self.tfidf is not None else 1.0

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "text_column": self.text_column,
            "embed_dim": self.embed_dim,
            "class_weights": None if self.class_weights is None else list(self.class_weights),
            "tokenizer": json.loads(self.tokenizer.to_str(pretty=False)),
            "chosen": self.chosen,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextFitted:
        w = d.get("class_weights")
        tokenizer = Tokenizer.from_str(json.dumps(d["tokenizer"]))
        vocab = tokenizer.get_vocab()
        # The embedding has one row per id: an id past the vocabulary would index out of it.
        if vocab and not (min(vocab.values()) >= 0 and max(vocab.values()) < len(vocab)):
            word = max(vocab, key=vocab.__getitem__)
            raise ArchlabError(
                f"{FITTED}: the tokenizer's word {word!r} has id {vocab[word]}, outside "
                f"0..{len(vocab) - 1} for its {len(vocab)} words; the run's fitted state is damaged"
            )
        return cls(
            class_names=tuple(d["class_names"]),
            tokenizer=tokenizer,
            text_column=d.get("text_column", "text"),
            embed_dim=d.get("embed_dim"),
            class_weights=None if w is None else tuple(float(v) for v in w),
            chosen=dict(d.get("chosen") or {}),
        )


@dataclass(frozen=True)
class TextContext:
    """The texts and split behind a bundle, for the TF-IDF baseline and the prediction files."""

    texts: list[str]
    labels: np.ndarray
    split: dict[str, np.ndarray]
    # Distillation: the teacher's cross-fitted train accuracy; {} in a bundle built from a
    # saved run's fitted state (eval, ensemble, explain), which never computes the teacher.
    teacher: dict[str, float] = field(default_factory=dict)
    # data.weight_column's per-text weights (a training run only), for the weighted baseline.
    weights: np.ndarray | None = None


TextBundle = DataBundle[TextFitted, TextContext]


class _Tokens(NamedTuple):
    """A run's tokenizer, the vectors behind it (None without), data.json keys and notes."""

    tokenizer: Tokenizer
    vectors: PretrainedVocabulary | None
    info: dict[str, Any]
    notes: list[str]


def _check_embed_dim(embeddings: str, embed_dim: int | None) -> None:
    dim = peek_dim(embeddings)
    if embed_dim is not None and embed_dim != dim:
        raise ArchlabError(
            f"model.embed_dim={embed_dim} conflicts with data.embeddings={embeddings} "
            f"({dim}-dimensional vectors); drop model.embed_dim or set it to {dim}"
        )


def _weights_info(column: str, tw: np.ndarray) -> tuple[dict[str, Any], str]:
    """data.json's summary of the training texts' weights (data.weight_column), and its line."""
    w = {
        "column": column,
        "train_mean": float(tw.mean()),
        "train_min": float(tw.min()),
        "train_max": float(tw.max()),
        "train_zero": int((tw == 0).sum()),
    }
    note = (
        f"training weights from column {column!r}: mean {w['train_mean']:.3f} "
        f"(min {w['train_min']:.3g}, max {w['train_max']:.3g}) over {len(tw)} training "
        f"texts, {w['train_zero']} at 0; validation and test are scored unweighted"
    )
    return w, note


def _batches(
    idx: np.ndarray,
    x: torch.Tensor,
    lengths: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None = None,
) -> Batches:
    """Batches of the texts ``idx`` with their labels ``y`` (one per text), or with
    ``targets`` (the training targets, in the order of ``idx``) where given."""
    sel = torch.from_numpy(idx)
    device = x.device

    def fetch(
        i: torch.Tensor, gen: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        j = sel[i]
        n = lengths[j]
        # Pad per batch: trim to the longest text in this batch, not in the data set.
        jd = j.to(device, non_blocking=True)  # a batch of indices, not of data
        return x[jd, : int(n.max())], n, (y[jd] if targets is None else targets[i.to(device)])

    return Batches(len(idx), fetch)


def _text_info(
    c: TextDataConfig,
    table: TextTable,
    tok: _Tokens,
    labels: np.ndarray,
    lengths: torch.Tensor,
    split: dict[str, np.ndarray],
    truncated: int,
) -> dict[str, Any]:
    """data.json's record of a text run's table, tokenizer and splits."""
    names = table.class_names
    counts = {k: np.bincount(labels[v], minlength=len(names)).tolist() for k, v in split.items()}
    return {
        "source": table.source,
        "encoding": table.encoding,
        "class_names": names,
        "text_column": "the files" if table.text_files else table.columns[0],
        "label_column": "the class folders" if table.text_files else table.columns[1],
        "vocab_size": tok.tokenizer.get_vocab_size(),
        "rows": table.counts,
        "conflicts": f"repeated texts with differing labels: {c.conflicts} (ties dropped)",
        "n_samples": len(labels),
        "split_sizes": {k: len(v) for k, v in split.items()},
        "split_source": split_source(
            table.split_origin if table.provided_split is not None else {},
            c.val_fraction,
            c.test_fraction,
            "all the distinct texts, stratified",
            len(labels),
            len(names),
        ),
        "class_counts": counts,
        "train_class_counts": counts["train"],
        "mean_tokens": float(lengths.float().mean()),
        "truncated_texts": truncated,
        "split_sha256": {k: sha256_array(v) for k, v in split.items()},
        **tok.info,
    }


def _truncated(tok: Tokenizer, texts: list[str], lengths: torch.Tensor, max_length: int) -> int:
    """How many texts have more than ``max_length`` tokens (cut by encode); only those that
    reached it are encoded again."""
    full = [texts[i] for i in torch.nonzero(lengths >= max_length).flatten().tolist()]
    return sum(
        len(e.ids) > max_length for e in tok.encode_batch_fast(full, add_special_tokens=False)
    )


# The training texts did not split into words where at least this share of their tokens is
# [UNK] (seen under data.min_frequency times), over a vocabulary this small or this many texts.
UNK_SHARE, FEW_WORDS, MANY_TEXTS, MIN_TEXTS = 0.5, 50, 100, 20


def _few_words_note(
    tok: Tokenizer, x: torch.Tensor, lengths: torch.Tensor, train: np.ndarray
) -> str:
    """A first-line warning where the training texts do not split into words (Chinese or
    Japanese without spaces: each sentence is one rare 'word', so nearly every token is
    [UNK]); "" otherwise. Tokenizing by character is not offered."""
    if len(train) < MIN_TEXTS:
        return ""
    idx = torch.from_numpy(train)
    n = lengths[idx]
    real = torch.arange(x.shape[1]) < n[:, None]  # not padding
    unk = float((x[idx].eq(tok.token_to_id(UNK)) & real).sum()) / max(int(n.sum()), 1)
    words = tok.get_vocab_size() - 2  # without [PAD] and [UNK]
    mean = float(n.float().mean())
    if unk < UNK_SHARE or (words >= FEW_WORDS and len(train) < MANY_TEXTS):
        return ""
    return (
        f"warning: the training texts do not split into words: {words} words besides "
        f"[PAD]/[UNK] from {len(train):,} texts, {unk:.0%} of their tokens [UNK], {mean:.1f} "
        "tokens per text (text without spaces, such as Chinese or Japanese?); the network "
        "will be weak (words are split at spaces and punctuation; the TF-IDF baseline's "
        "character n-grams still see the text)"
    )


class TextData:
    """Reads a text CSV, splits it by distinct text, and fits (or reuses) the tokenizer.

    Fitting (``fitted`` None: a training run) also makes the distillation targets when
    data.distill > 0; a bundle that reuses a run's fitted state is for evaluation, and its
    train batches hold the plain labels.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.data_cfg: TextDataConfig = cfg.data
        self.model_cfg: TextModelConfig = cfg.model
        self.seed = cfg.seed
        self.split_seed = cfg.data_seed

    def build(
        self, device: torch.device, fitted: TextFitted | None = None, score_all: bool = False
    ) -> TextBundle:
        """The bundle (see TaskData.build); ``score_all``: every usable row of the CSV in the
        test split, labelled by the run's classes, each row a sample of its own."""
        c = self.data_cfg
        if score_all and fitted is None:
            raise ValueError("score_all scores data with a saved run's fitted state: give it")
        if c.embeddings and fitted is None:  # one line read: fail before the CSV is read
            _check_embed_dim(c.embeddings, self.model_cfg.embed_dim)
        table, keep, split = self._rows(fitted, score_all)
        texts = [table.texts[i] for i in keep]
        labels = table.labels[keep]
        sample_w = None if table.weights is None else table.weights[keep]
        tok = self._tokenizer(texts, [texts[i] for i in split["train"]], fitted)
        x, lengths = encode(tok.tokenizer, texts, c.max_length)
        truncated = _truncated(tok.tokenizer, texts, lengths, c.max_length)
        info = _text_info(c, table, tok, labels, lengths, split, truncated)
        if score_all:
            unit = "texts" if table.text_files else "rows"  # a folder's files, a table's rows
            info["scored_all"] = held_out_info(
                labels, len(table.class_names), unit, dropped_rows(table.counts)
            )
        notes = [
            rows_note(table.source, table.counts, truncated, c.max_length),
            *table.notes,
            "" if score_all else split_note(table.class_names, info["class_counts"], "texts"),
            *unscored_notes(table.class_names, info["class_counts"], "texts"),
        ]
        if table.provided_split is not None and not score_all:
            where = "; ".join(f"{k}: {v}" for k, v in info["split_source"].items())
            notes.append(f"data: splits from the data: {where}")
        if fitted is None:  # a tokenizer fitted now: does the text split into words?
            notes.append(_few_words_note(tok.tokenizer, x, lengths, split["train"]))
        notes = [n for n in (*notes, *tok.notes) if n]
        # Tokens and labels live on the device once; lengths stay on the CPU, where
        # pack_padded_sequence wants them, so a batch costs no host-to-device copy.
        x, y = x.to(device), torch.from_numpy(labels).to(device)
        names = table.class_names
        tr = split["train"]
        tw = None if sample_w is None else sample_w[tr]  # the training texts' weights
        if tw is not None:
            info["weights"], note = _weights_info(c.weight_column, tw)
            notes.append(note)
        teacher: dict[str, float] = {}
        train_y = None  # the distillation targets, in train order
        if fitted is None:
            fitted = TextFitted(
                class_names=tuple(names),
                tokenizer=tok.tokenizer,
                text_column=c.text_column,
                embed_dim=tok.vectors.info["dim"] if tok.vectors is not None else None,
                class_weights=class_weights(info["train_class_counts"], c.class_weight_power)
                if c.class_weights
                else None,
                pretrained=tok.vectors.weight if tok.vectors is not None else None,
            )
            train_y, teacher = self._train_targets(
                [texts[i] for i in tr], labels[tr], tw, len(names), device
            )
        return DataBundle(
            train=_batches(split["train"], x, lengths, y, train_y),
            val=_batches(split["val"], x, lengths, y),
            test=_batches(split["test"], x, lengths, y),
            fitted=fitted,
            info=info,
            splits={k: v.tolist() for k, v in split.items()},
            notes=notes,
            context=TextContext(texts, labels, split, teacher, sample_w),
        )

    def _rows(
        self, fitted: TextFitted | None, score_all: bool
    ) -> tuple[TextTable, np.ndarray, dict[str, np.ndarray]]:
        """The table, the rows of it kept (data.subset) and their split, as indices into
        those rows; ``score_all``: every row, all in the test split, in the run's classes."""
        c = self.data_cfg
        # Weights only shape training: eval and ensemble (fitted given) never need the column.
        table = load_text_table(
            c.path,
            c.text_column,
            c.label_column,
            c.encoding,
            c.labels,
            c.conflicts,
            weight_column=c.weight_column if fitted is None else "",
            held_out=score_all,
            split_column=c.split_column,
            layout=c.layout,
            fix=CHOOSE_COLUMNS if fitted is None else for_run(c.text_column, c.label_column),
        )
        if score_all:
            assert fitted is not None
            table = _as_run_classes(table, fitted)
            n = len(table.labels)
            return table, np.arange(n), held_out_split(n)  # no subset, no split, no strata
        check_run_classes(c.path, table.class_names, None if fitted is None else fitted.class_names)
        keep = stratified_subset(table.labels, c.subset, self.split_seed)
        # One sample per distinct cleaned text, so a text can never be in two splits; split
        # folders give the data's own split (a missing val/ or test/ is carved from train/).
        provided = None if table.provided_split is None else table.provided_split[keep]
        named = Named(table.source, "texts", tuple(table.class_names))
        # table.notes is this read's own copy: a split raised to one text per class is said there
        split = stratified_split(table.labels[keep], c.val_fraction, c.test_fraction,
                                 self.split_seed, provided, named=named,
                                 notes=table.notes)  # fmt: skip
        return table, keep, split

    def _tokenizer(
        self, texts: list[str], train_texts: list[str], fitted: TextFitted | None
    ) -> _Tokens:
        """The run's tokenizer: a saved run's (eval, ensemble: no vectors file read), else
        fitted on the training texts (with the vectors' words under data.embeddings), with
        the mentions kept and the HTML entities unescaped, and what was folded."""
        c = self.data_cfg
        if fitted is not None:  # a saved run's tokenizer keeps the rules it was saved with
            return _Tokens(fitted.tokenizer, None, {}, [])
        mentions = None  # data.mentions=drop: every @mention is <user>
        if c.mentions == "keep":
            mentions = frequent_mentions(train_texts, c.mention_min_count)
        kept = {} if mentions is None else {"mentions_kept": list(mentions)}
        # The HTML entities the tokenizer unescapes: those of the training texts and the
        # common ones.
        entities = entities_in(train_texts)
        folded = normalization_counts(texts, entities)
        notes = [_normalization_note(folded, len(texts))]
        if not c.embeddings:
            tokenizer = train_tokenizer(
                train_texts, c.vocab_size, c.min_frequency, mentions=mentions, entities=entities
            )
            return _Tokens(tokenizer, None, {**kept, "normalization": folded}, notes)
        vectors = pretrained_vocabulary(
            train_texts,
            c.embeddings,
            vocab_size=c.vocab_size,
            min_frequency=c.min_frequency,
            first_words=c.embeddings_words,
            seed=self.seed,
            source=c.path,
            mentions=mentions,
            entities=entities,
        )
        info = {"embeddings": vectors.info, **kept, "normalization": folded}  # data.json's order
        return _Tokens(vectors.tokenizer, vectors, info, [*notes, vectors.note(c.embeddings)])

    def _train_targets(
        self,
        texts: list[str],
        labels: np.ndarray,
        weights: np.ndarray | None,
        n_classes: int,
        device: torch.device,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """What the loss reads beyond the label (TrainTargets, packed; None: the label alone):
        the text's weight and the soft targets (the distillation blend, or with weights alone
        the label's one-hot); and the teacher's cross-fitted scores."""
        c = self.data_cfg
        teacher: dict[str, float] = {}
        if c.distill > 0:
            rows, teacher = distill_targets(
                texts, labels, n_classes, c.distill, c.distill_folds, self.split_seed, weights
            )
        elif weights is not None:
            rows = np.concatenate([labels[:, None], np.eye(n_classes)[labels]], 1)
        else:
            return None, teacher
        rows_t = torch.from_numpy(rows.astype(np.float32))
        w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        targets = TrainTargets(label=rows_t[:, 0].long(), weight=w, soft=rows_t[:, 1:])
        return targets.pack().to(device), teacher

    def restore(self, run_dir: Path) -> TextFitted:
        """Classes and the fitted tokenizer from a run dir, without the training data."""
        run_dir = Path(run_dir)
        fitted = TextFitted.from_dict(require_fitted(run_dir, TextFitted.kind))
        if fitted.chosen.get("blend_weight", 1.0) < 1:  # the blend's TF-IDF model
            if not (run_dir / TFIDF_FILE).exists():
                raise ArchlabError(
                    f"{run_dir / TFIDF_FILE}: missing; the run blends its network with this "
                    f"TF-IDF model (blend_weight {fitted.chosen['blend_weight']:g}): restore the "
                    "file from the run's copy, or train again"
                )
            fitted = replace(fitted, tfidf=load_tfidf(run_dir / TFIDF_FILE))
        return fitted


def _as_run_classes(table: TextTable, fitted: TextFitted) -> TextTable:
    """A held-out table's labels as indices into the run's classes (eval --all); a label the
    run never learnt is refused."""
    labels = to_run_classes(table.source, table.class_names, table.labels, fitted.class_names)
    return replace(table, labels=labels, class_names=list(fitted.class_names))


def _normalization_note(folded: dict[str, Any], n_texts: int) -> str:
    """The run's first-lines summary of what the tokenizer's normalization folds."""

    def top(kinds: dict[str, int]) -> str:
        shown = ", ".join(f"{k} {v:,}" for k, v in list(kinds.items())[:4])
        return f" ({shown}{', ...' if len(kinds) > 4 else ''})" if kinds else ""

    return (
        f"text normalization over {n_texts:,} texts: {folded['html_entities']:,} HTML "
        f"entities unescaped{top(folded['html_entities_by_kind'])}, {folded['urls']:,} URLs "
        f"folded into <url>, {folded['placeholders']:,} placeholders folded into <url> or "
        f"<user>{top(folded['placeholders_by_kind'])}"
    )


class TrainTargets(NamedTuple):
    """A training batch's targets where a label alone will not do: the label, the text's weight
    (data.weight_column) and the soft targets (distillation's blend, else the label's one-hot).
    The Trainer carries them as one float tensor (``pack``); the loss reads them back by name
    with the layout the run's config declares, never by the tensor's width."""

    label: torch.Tensor  # (B,) class index
    weight: torch.Tensor | None  # (B,) the text's weight; None without data.weight_column
    soft: torch.Tensor  # (B, classes) a distribution over the classes

    def pack(self) -> torch.Tensor:
        cols = [self.label[:, None].float()]
        cols += [] if self.weight is None else [self.weight[:, None].float()]
        return torch.cat([*cols, self.soft.float()], 1)

    @classmethod
    def unpack(cls, packed: torch.Tensor, weighted: bool) -> TrainTargets:
        soft = packed[:, 2:] if weighted else packed[:, 1:]
        return cls(packed[:, 0].long(), packed[:, 1] if weighted else None, soft)


class TextClassification:
    """Cross-entropy classification of tokenized short texts with packed sequences."""

    name = "text"
    outputs = "logits"  # how `archlab ensemble` averages members: see archlab/ensemble.py
    cpu_amp = True  # bf16 may pay: auto times it (bench/cpu_precision.py)

    def __init__(self, cfg: RunConfig, fitted: TextFitted) -> None:
        self.cfg = cfg
        self.fitted = fitted
        self.data_cfg: TextDataConfig = cfg.data
        self.model_cfg: TextModelConfig = cfg.model
        self.reg = cfg.reg
        w = fitted.class_weights
        self.weight = None if w is None else torch.tensor(w, dtype=torch.float32)

    def callbacks(self) -> list[Any]:
        """Training callbacks this task adds: the embedding freeze, if configured."""
        from archlab.train.callbacks import FreezeParameters  # the trainer's layer, used lazily

        m = self.model_cfg
        if not m.freeze_embeddings:
            return []
        return [FreezeParameters("embedding.", m.freeze_epochs)]

    def lr_scale(self, name: str) -> float:
        return 1.0

    # --- model, loss, metrics ---
    def build_model(self) -> nn.Module:
        m = self.model_cfg
        sizes = {"embed_dim": m.embed_dim, "hidden_size": m.hidden_size, "num_layers": m.num_layers}
        if self.fitted.embed_dim is not None:  # the vectors' size (a conflict is an error)
            sizes["embed_dim"] = self.fitted.embed_dim
        return MODELS[m.name].build(
            vocab_size=self.fitted.vocab_size,
            num_classes=len(self.fitted.class_names),
            dropout=self.reg.dropout,
            padding_idx=0,
            pooling=m.pooling,
            pretrained=self.fitted.pretrained,
            **{k: v for k, v in sizes.items() if v is not None},
        )

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, lengths, y = batch
        return model(tokens, lengths), y

    def _targets(self, targets: torch.Tensor) -> TrainTargets | None:
        """Packed training targets read back by name; None for plain labels."""
        if targets.dim() == 1:
            return None
        return TrainTargets.unpack(targets, weighted=bool(self.data_cfg.weight_column))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(outputs.device)
        t = self._targets(targets)
        if t is None:
            return F.cross_entropy(
                outputs, targets, weight=weight, label_smoothing=self.reg.label_smoothing
            )
        per_text = F.cross_entropy(
            outputs,
            t.soft,
            weight=weight,
            label_smoothing=self.reg.label_smoothing,
            reduction="none" if t.weight is not None else "mean",
        )
        if t.weight is None:
            return per_text
        return (t.weight * per_text).sum() / t.weight.sum().clamp_min(1e-12)  # weighted mean

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        pred = outputs.argmax(1).numpy()
        t = self._targets(targets)
        if t is not None:  # training targets: scored against the label
            targets = t.label
        return classification_metrics(targets.numpy(), pred, list(self.fitted.class_names))

    # --- artefacts and prediction ---
    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: TextBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab import plots

        run_dir = Path(run_dir)
        ctx = data.context
        names = list(self.fitted.class_names)
        cm = np.asarray(self.metrics(outputs, targets)["confusion_matrix"])
        blends = self.fitted.blend_weight < 1
        plots.confusion_matrix(cm, names, run_dir / "plots" / "confusion_matrix.png",
                               "The network's test predictions"
                               + (" (predict answers the blend's)" if blends else ""))  # fmt: skip
        # The tokenizer alone in Hugging Face's format, for use outside archlab (archlab itself
        # restores it from fitted.json).
        tok = self.fitted.tokenizer.to_str(pretty=False)
        write_text_atomic(run_dir / TOKENIZER_FILE, tok)
        if self.fitted.blend_weight < 1:  # predict, serve and eval blend with it
            save_tfidf(run_dir / TFIDF_FILE, self.fitted.tfidf)
        probs = outputs.softmax(1).numpy()
        test = ctx.split["test"]
        table = pd.DataFrame(
            {
                "text": [ctx.texts[i] for i in test],
                "true": [names[t] for t in targets.numpy()],
                "pred": [names[p] for p in probs.argmax(1)],
                "confidence": probs.max(1),
                **{f"p_{n}": probs[:, k] for k, n in enumerate(names)},
            }
        )
        if (w := self.fitted.blend_weight) < 1:  # what predict answers for each test text
            peer = class_probs(self.fitted.tfidf, list(table["text"]), len(names))
            mix = text_blend.blend(w, probs.astype(np.float64), peer)
            table["blend_pred"] = [names[p] for p in mix.argmax(1)]
            cm = classification_metrics(targets.numpy(), mix.argmax(1), names)["confusion_matrix"]
            plots.confusion_matrix(np.asarray(cm), names, run_dir / "plots" /
                                   "confusion_matrix_blend.png",
                                   f"The blend's test predictions ({w:g} x network + {1 - w:g} "
                                   "x TF-IDF): what predict answers")  # fmt: skip
            blend_p = {f"blend_p_{n}": mix[:, k] for k, n in enumerate(names)}
            table = pd.concat([table, pd.DataFrame(blend_p, index=table.index)], axis=1)
        write_text_atomic(run_dir / "test_predictions.csv", table.to_csv(index=False))
        wrong = table[table["true"] != table["pred"]].sort_values("confidence", ascending=False)
        write_text_atomic(run_dir / "confident_mistakes.csv", wrong.head(25).to_csv(index=False))

    def test_sources(self, data: TextBundle, n: int) -> list[dict[str, Any]]:
        """The first ``n`` test texts (each the first raw text of its group of rows) and their
        labels, in test-split order (tasks/base.py's Sourced)."""
        ctx, names = data.context, self.fitted.class_names
        return [{"text": ctx.texts[i], "label": names[int(ctx.labels[i])]}
                for i in ctx.split["test"][:n]]  # fmt: skip

    def baselines(self, data: TextBundle) -> dict[str, Any]:
        """The TF-IDF baseline on the same split, and the distillation teacher's train fit."""
        ctx = data.context
        names = list(self.fitted.class_names)
        base, _ = tfidf_baseline(ctx.texts, ctx.labels, ctx.split, names, ctx.weights)
        return {**base, **ctx.teacher}

    # --- the blend with TF-IDF (archlab/tasks/text_blend.py), chosen after training ---
    def tune(self, model: nn.Module, data: TextBundle) -> tuple[TextClassification, list[str]]:
        """This task with the blend weight chosen on validation, and the line saying so."""
        c, ctx = self.data_cfg, data.context
        if c.tfidf_blend == 1.0 or not data.val.n:
            return self, []
        names = list(self.fitted.class_names)
        net, labels = text_blend.network_probs(model, data.val)
        _, clf = tfidf_baseline(ctx.texts, ctx.labels, ctx.split, names, ctx.weights)
        peer = class_probs(clf, [ctx.texts[i] for i in ctx.split["val"]], len(names))
        chosen, lines = text_blend.choose(c.tfidf_blend, net, peer, labels, names)
        fitted = replace(self.fitted, chosen=chosen, tfidf=clf)
        return TextClassification(self.cfg, fitted), lines

    def tuned_metrics(self, model: nn.Module, data: TextBundle) -> dict[str, Any]:
        """The chosen weight with its validation macro-F1, and test_blend_* (the hybrid)."""
        out = {k: v for k, v in self.fitted.chosen.items() if not k.endswith("_by_weight")}
        if "blend_weight" not in out:
            return out
        ctx, w = data.context, self.fitted.blend_weight
        probs, labels = text_blend.network_probs(model, data.test)
        if w < 1:  # at 1 the blend is the network alone: its test_blend_* are test_*
            texts = [ctx.texts[i] for i in ctx.split["test"]]
            peer = class_probs(self.fitted.tfidf, texts, probs.shape[1])
            probs = text_blend.blend(w, probs, peer)
        m = classification_metrics(labels, probs.argmax(1), list(self.fitted.class_names))
        out.update({f"test_blend_{k}": v for k, v in m.items()})
        return out

    def read_inputs(self, inputs: list[str]) -> list[str]:
        """The texts of predict's and explain's inputs (see ``_inputs``)."""
        return [t for t, _ in self._inputs(inputs)]

    def _inputs(self, inputs: list[str]) -> list[tuple[str, str | None]]:
        """Each text of the inputs and the file it is from (None: typed, or a line or row of a
        file): a ``--file`` (an InputFile, always read: a folder's text files, a CSV's text
        column, else one text per line) or a CSV path given as an input, and texts as they
        are; an empty text is refused (training drops empty texts), and one that is not valid
        Unicode."""
        from archlab.data.text import lone_surrogate

        out: list[tuple[str, str | None]] = []
        for k, item in enumerate(inputs, 1):
            if isinstance(item, InputFile) and Path(item).is_dir():
                found, notes = folder_texts(Path(item), self.data_cfg.encoding)
                for n in notes:
                    print(f"archlab: note: {n.removeprefix('data: ')}", file=sys.stderr)
                out += [(t, str(p)) for p, t in found]
            elif isinstance(item, InputFile) or (is_csv_name(item) and Path(item).is_file()):
                col, encoding = self.fitted.text_column, self.data_cfg.encoding
                texts = read_input_texts(item, col, encoding)
                if not texts:  # a header line alone: nothing printed, exit 0 was no answer
                    raise ArchlabError(f"{item}: no texts to predict (a header line alone?)")
                out += [(t, None) for t in texts]
            elif is_csv_name(item) and " " not in item and not os.path.exists(item):
                # A mistyped file name was predicted as a text, with a confident label.
                raise ArchlabError(f"{item}: no such file")
            elif not item.strip():
                # Counted: an error line may show a run of spaces as one.
                shown = f"{len(item)} space(s)" if item and set(item) == {" "} else ascii(item)
                raise ArchlabError(
                    f"an empty text ({shown}): nothing to predict; training drops empty "
                    "texts, so the network never learnt one"
                )
            elif (at := lone_surrogate(item)) is not None:
                # A byte of an argument that is not UTF-8 arrives as U+DC80..U+DCFF.
                byte = ord(item[at]) - 0xDC00
                why = (f"byte 0x{byte:02x} at character {at + 1} is not UTF-8: the terminal or "
                       "script sends another encoding; pass UTF-8 text" if 0x80 <= byte <= 0xFF
                       else f"a lone surrogate at character {at + 1}")  # fmt: skip
                raise ArchlabError(f"input {k} is not valid Unicode ({why})")
            else:
                if item == "-" or (" " not in item and os.path.exists(item)):
                    # A path meant as a file (a folder, a .txt) or stdin is predicted as a text:
                    # said, since its label is then of the name, not the contents.
                    what = "a file or folder here" if item != "-" else "not stdin"
                    print(f"archlab: note: input {k} ({item!r}) is {what}: read as a text; "
                          "--file PATH reads the texts of a file or folder",
                          file=sys.stderr)  # fmt: skip
                out.append((item, None))
        return out

    def probabilities(self, model: nn.Module, texts: list[str]) -> torch.Tensor:
        """(n, K) class probabilities as predict and serve answer: the network's softmax,
        blended with the run's TF-IDF model where validation chose so."""
        x, lengths = encode(self.fitted.tokenizer, texts, self.data_cfg.max_length)
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            probs = model(x.to(device), lengths).float().softmax(1).cpu()
        if (w := self.fitted.blend_weight) < 1:  # the hybrid the run chose on validation
            peer = class_probs(self.fitted.tfidf, texts, probs.shape[1])
            probs = torch.from_numpy(text_blend.blend(w, probs.double().numpy(), peer)).float()
        return probs

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Label and class probabilities for texts, or for every text of a file (``--file``)."""
        found = self._inputs(inputs)
        if not found:
            return []
        probs = self.probabilities(model, [t for t, _ in found])
        names = list(self.fitted.class_names)
        return [
            predict_row({**({"file": f} if f else {}), "input": t, "label": names[int(p.argmax())]},
                        names, p.tolist())
            for (t, f), p in zip(found, probs, strict=True)
        ]  # fmt: skip
