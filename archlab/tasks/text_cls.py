"""Text classification (study part IV): config sections, grouped split, tokens, loss, artefacts."""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from archlab.config import RunConfig
from archlab.data.embeddings import load_vectors, peek_dim
from archlab.data.splits import stratified_split, stratified_subset
from archlab.data.text import (
    clean_tokens,
    encode,
    extend_vocabulary,
    load_text_table,
    read_csv,
    train_tokenizer,
)
from archlab.errors import ArchlabError
from archlab.metrics import classification_metrics
from archlab.models import MODELS
from archlab.task_configs import TextDataConfig, TextModelConfig
from archlab.tasks.base import Batches, DataBundle
from archlab.utils import sha256_array, write_text_atomic

TOKENIZER_FILE = "tokenizer.json"


class TextClassification:
    """Cross-entropy classification of tokenized short texts with packed sequences."""

    name = "text"
    monitor = ("val_loss", "min")
    outputs = "logits"  # how `archlab ensemble` averages members: see archlab/ensemble.py

    def __init__(self, cfg: RunConfig) -> None:
        self.data_cfg: TextDataConfig = cfg.data
        self.model_cfg: TextModelConfig = cfg.model
        self.reg = cfg.reg
        self.seed = cfg.seed
        self.split_seed = cfg.data_seed
        self.quiet = cfg.train.progress == "off"
        self.pretrained: torch.Tensor | None = None  # initial embedding, training only
        self.info: dict[str, Any] = {}
        self.tokenizer: Tokenizer | None = None
        self.texts: list[str] = []
        self.labels = np.zeros(0, dtype=np.int64)
        self.split: dict[str, np.ndarray] = {}
        self.weight: torch.Tensor | None = None
        self.teacher: dict[str, Any] = {}  # distillation: cross-fit accuracy, for metrics.json
        self.fitted: Tokenizer | None = None  # the run's tokenizer, when re-evaluating a run
        self.saved_info: dict[str, Any] = {}

    # --- data ---
    def build_data(self, device: torch.device) -> DataBundle:
        c = self.data_cfg
        if c.embeddings and self.fitted is None:  # one line read: fail before the CSV is read
            dim = peek_dim(c.embeddings)
            if self.model_cfg.embed_dim is not None and self.model_cfg.embed_dim != dim:
                raise ArchlabError(
                    f"model.embed_dim={self.model_cfg.embed_dim} conflicts with "
                    f"data.embeddings={c.embeddings} ({dim}-dimensional vectors); drop "
                    f"model.embed_dim or set it to {dim}"
                )
        table = load_text_table(
            c.path, c.text_column, c.label_column, c.encoding, c.labels, c.conflicts
        )
        keep = stratified_subset(table.labels, c.subset, self.split_seed)
        self.texts = [table.texts[i] for i in keep]
        self.labels = table.labels[keep]
        # One sample per distinct cleaned text, so a text can never be in two splits.
        self.split = stratified_split(self.labels, c.val_fraction, c.test_fraction, self.split_seed)
        train_texts = [self.texts[i] for i in self.split["train"]]
        vectors_info: dict[str, Any] = {}
        if self.fitted is not None:  # eval/ensemble: the run's own vocabulary, no vectors file
            self.tokenizer = self.fitted
        elif c.embeddings:
            vectors_info = self._pretrained_vocabulary(train_texts)
        else:
            self.tokenizer = train_tokenizer(train_texts, c.vocab_size, c.min_frequency)
        assert self.tokenizer is not None
        x, lengths = encode(self.tokenizer, self.texts, c.max_length)
        # Tokens and labels live on the device once; lengths stay on the CPU, where
        # pack_padded_sequence wants them, so a batch costs no host-to-device copy.
        x, y = x.to(device), torch.from_numpy(self.labels).to(device)
        names = table.class_names
        train_counts = np.bincount(self.labels[self.split["train"]], minlength=len(names))
        self._set_weight(train_counts, device)
        self.info = {
            "source": table.source,
            "class_names": names,
            "text_column": c.text_column,
            "label_column": c.label_column,
            "vocab_size": self.tokenizer.get_vocab_size(),
            "rows": table.counts,
            "conflicts": f"repeated texts with differing labels: {c.conflicts} (ties dropped)",
            "n_samples": len(self.texts),
            "split_sizes": {k: len(v) for k, v in self.split.items()},
            "class_counts": {
                k: np.bincount(self.labels[v], minlength=len(names)).tolist()
                for k, v in self.split.items()
            },
            "train_class_counts": train_counts.tolist(),
            "mean_tokens": float(lengths.float().mean()),
            "truncated_texts": int((lengths >= c.max_length).sum()),
            "split_sha256": {k: sha256_array(v) for k, v in self.split.items()},
        }
        if vectors_info:
            self.info["embeddings"] = vectors_info
        elif self.fitted is not None and "embeddings" in self.saved_info:
            self.info["embeddings"] = self.saved_info["embeddings"]

        # Distillation targets, computed at the first training batch: `archlab eval` and
        # `predict` rebuild the data but never need the teacher.
        train_targets = functools.cache(lambda: self._distill_targets().to(device))

        def make(idx: np.ndarray, distill: bool = False) -> Batches:
            sel = torch.from_numpy(idx)

            def fetch(
                i: torch.Tensor, gen: torch.Generator | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                j = sel[i]
                n = lengths[j]
                # Pad per batch: trim to the longest text in this batch, not in the data set.
                jd = j.to(device, non_blocking=True)  # a batch of indices, not of data
                return (
                    x[jd, : int(n.max())],
                    n,
                    (train_targets()[i.to(device)] if distill else y[jd]),
                )

            return Batches(len(idx), fetch)

        return DataBundle(
            train=make(self.split["train"], distill=c.distill > 0),
            val=make(self.split["val"]),
            test=make(self.split["test"]),
            info=self.info,
            splits={k: v.tolist() for k, v in self.split.items()},
        )

    def _pretrained_vocabulary(self, train_texts: list[str]) -> dict[str, Any]:
        """Fit the GloVe-style tokenizer, add the words that have vectors, build the initial
        embedding (``self.pretrained``); returns what data.json records about the vectors."""
        c = self.data_cfg
        tok = train_tokenizer(train_texts, c.vocab_size, c.min_frequency, style="glove")
        counts = Counter(t for text in train_texts for t in clean_tokens(text, "glove"))
        vec = load_vectors(c.embeddings, set(counts), c.embeddings_words)
        row = {w: i for i, w in enumerate(vec.words)}
        covered = [w for w in counts if w in row]
        if not covered:
            sample = ", ".join(list(counts)[:5])
            raise ArchlabError(
                f"{c.embeddings}: no word in common with the training texts of {c.path} (e.g. "
                f"{sample}); is it a vectors file for this language and lower-cased?"
            )
        # Training words below min_frequency that have a vector still get their own row.
        rare = sorted((w for w in covered if tok.token_to_id(w) is None), key=lambda w: -counts[w])
        n_train_vocab = tok.get_vocab_size()
        self.tokenizer = extend_vocabulary(tok, [*rare, *vec.words])
        vocab = self.tokenizer.get_vocab()
        ids = np.fromiter(vocab.values(), np.int64, len(vocab))
        have = np.array([w in row for w in vocab])
        # Words without a vector start random at the vectors' own scale; padding stays zero.
        gen = np.random.default_rng(self.seed)
        std = float(vec.matrix.std())
        weight = gen.normal(0.0, std, (len(vocab), vec.dim)).astype(np.float32)
        weight[ids[have]] = vec.matrix[[row[w] for w, h in zip(vocab, have, strict=True) if h]]
        weight[0] = 0.0
        self.pretrained = torch.from_numpy(weight)
        total = sum(counts.values())
        info = {
            **vec.info,
            "dim": vec.dim,
            "lines": vec.lines,
            "rows_kept": len(vec.words),
            "duplicate_words": vec.duplicates,
            "first_duplicate_line": vec.first_duplicate_line,
            "tokens": "glove (clitics split: can't -> ca n't)",
            "vocab_from_training": n_train_vocab,
            "vocab_with_vector": int(have.sum()),
            "vocab_added_from_vectors": len(vocab) - n_train_vocab,
            "train_token_coverage": sum(counts[w] for w in covered) / total,
            "train_word_coverage": len(covered) / len(counts),
            "init_std": std,
        }
        if not self.quiet:
            dup = (f"; {vec.duplicates} repeated words, first kept (first repeat at line "
                   f"{vec.first_duplicate_line})" if vec.duplicates else "")  # fmt: skip
            print(
                f"vectors {c.embeddings}: {vec.dim}-d, {len(vec.words):,} of {vec.lines:,} rows "
                f"kept; {info['train_token_coverage']:.1%} of training tokens and "
                f"{info['train_word_coverage']:.1%} of distinct training words have a vector; "
                f"vocabulary {len(vocab):,} ({info['vocab_added_from_vectors']:,} words from "
                f"the vectors only){dup}",
                file=sys.stderr,
                flush=True,
            )
        return info

    def _distill_targets(self) -> torch.Tensor:
        """(n_train, 1 + classes): the label, then the blended soft targets, in train order."""
        c = self.data_cfg
        tr = self.split["train"]
        labels = self.labels[tr]
        k = len(self.info["class_names"])
        probs = cross_fitted_probs([self.texts[i] for i in tr], labels, k, c.distill_folds,
                                   self.split_seed)  # fmt: skip
        self.teacher = {
            "baseline_tfidf_crossfit_train_accuracy": float((probs.argmax(1) == labels).mean())
        }
        soft = (1 - c.distill) * np.eye(k)[labels] + c.distill * probs
        return torch.from_numpy(np.concatenate([labels[:, None], soft], 1).astype(np.float32))

    def _set_weight(self, train_counts: np.ndarray, device: torch.device) -> None:
        if not self.data_cfg.class_weights:
            self.weight = None
            return
        # Inverse frequency, scaled so a balanced data set gets weight 1 per class.
        counts = np.maximum(train_counts, 1).astype(np.float64)
        w = counts.sum() / (len(counts) * counts)
        self.weight = torch.tensor(w, dtype=torch.float32, device=device)

    def use_fitted(self, run_dir: Path) -> None:
        """Rebuild data with the run's own tokenizer (eval, ensemble), not a refitted one: with
        pretrained vectors the vocabulary came from the vectors file, which is not needed."""
        path = Path(run_dir) / TOKENIZER_FILE
        if path.exists():
            self.fitted = Tokenizer.from_file(str(path))
            self.saved_info = json.loads((Path(run_dir) / "data.json").read_text())

    def callbacks(self) -> list[Any]:
        """Training callbacks this task adds: the embedding freeze, if configured."""
        from archlab.train.callbacks import FreezeParameters  # the trainer's layer, used lazily

        m = self.model_cfg
        if not m.freeze_embeddings:
            return []
        return [FreezeParameters("embedding.", m.freeze_epochs)]

    def restore(self, run_dir: Path) -> None:
        """Classes and the fitted tokenizer from a run dir, without the training data."""
        run_dir = Path(run_dir)
        self.info = json.loads((run_dir / "data.json").read_text())
        path = run_dir / TOKENIZER_FILE
        if not path.exists():
            raise ArchlabError(f"{run_dir}: no {TOKENIZER_FILE} (the run did not finish)")
        self.tokenizer = Tokenizer.from_file(str(path))

    # --- model, loss, metrics ---
    def build_model(self) -> nn.Module:
        m = self.model_cfg
        sizes = {"embed_dim": m.embed_dim, "hidden_size": m.hidden_size, "num_layers": m.num_layers}
        if "embeddings" in self.info:  # the vectors' size (a conflicting embed_dim is an error)
            sizes["embed_dim"] = self.info["embeddings"]["dim"]
        return MODELS[m.name].build(
            vocab_size=self.info["vocab_size"],
            num_classes=len(self.info["class_names"]),
            dropout=self.reg.dropout,
            padding_idx=0,
            pooling=m.pooling,
            pretrained=self.pretrained,
            **{k: v for k, v in sizes.items() if v is not None},
        )

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, lengths, y = batch
        return model(tokens, lengths), y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(outputs.device)
        if targets.dim() == 2:  # distillation: column 0 is the label, the rest soft targets
            targets = targets[:, 1:]
        return F.cross_entropy(
            outputs, targets, weight=weight, label_smoothing=self.reg.label_smoothing
        )

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        pred = outputs.argmax(1).numpy()
        if targets.dim() == 2:  # distillation targets: score against the label (column 0)
            targets = targets[:, 0].long()
        return classification_metrics(targets.numpy(), pred, self.info["class_names"])

    # --- artefacts and prediction ---
    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: DataBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> dict[str, Any]:
        from archlab import plots

        assert self.tokenizer is not None
        run_dir = Path(run_dir)
        names = self.info["class_names"]
        cm = np.asarray(self.metrics(outputs, targets)["confusion_matrix"])
        plots.confusion_matrix(cm, names, run_dir / "plots" / "confusion_matrix.png")
        write_text_atomic(run_dir / TOKENIZER_FILE, self.tokenizer.to_str(pretty=False))
        probs = outputs.softmax(1).numpy()
        test = self.split["test"]
        table = pd.DataFrame(
            {
                "text": [self.texts[i] for i in test],
                "true": [names[t] for t in targets.numpy()],
                "pred": [names[p] for p in probs.argmax(1)],
                "confidence": probs.max(1),
                **{f"p_{n}": probs[:, k] for k, n in enumerate(names)},
            }
        )
        write_text_atomic(run_dir / "test_predictions.csv", table.to_csv(index=False))
        wrong = table[table["true"] != table["pred"]].sort_values("confidence", ascending=False)
        write_text_atomic(run_dir / "confident_mistakes.csv", wrong.head(25).to_csv(index=False))
        return {**self.tfidf_baseline(), **self.teacher}

    def tfidf_baseline(self) -> dict[str, float]:
        """TF-IDF (word 1-2-grams + char 2-5-grams) + logistic regression on the same split."""

        def texts(part: str) -> list[str]:
            return [self.texts[i] for i in self.split[part]]

        clf = tfidf_model()
        clf.fit(texts("train"), self.labels[self.split["train"]])
        pred = clf.predict(texts("test"))
        m = classification_metrics(self.labels[self.split["test"]], pred, self.info["class_names"])
        return {
            "baseline_tfidf_accuracy": m["accuracy"],
            "baseline_tfidf_balanced_accuracy": m["balanced_accuracy"],
            "baseline_tfidf_f1_macro": m["f1_macro"],
        }

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Label and class probabilities for texts, or for every row of a CSV (``--file``)."""
        assert self.tokenizer is not None
        texts: list[str] = []
        for item in inputs:
            if item.lower().endswith(".csv") and Path(item).is_file():
                col = self.info.get("text_column", self.data_cfg.text_column)
                df = read_csv(item, [col], self.data_cfg.encoding)
                texts.extend(df[col].tolist())
            else:
                texts.append(item)
        if not texts:
            return []
        x, lengths = encode(self.tokenizer, texts, self.data_cfg.max_length)
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            probs = model(x.to(device), lengths).softmax(1).cpu()
        names = self.info["class_names"]
        return [
            {
                "input": t,
                "label": names[int(p.argmax())],
                **{n: float(v) for n, v in zip(names, p, strict=True)},
            }
            for t, p in zip(texts, probs, strict=True)
        ]


def tfidf_model() -> Any:
    """The TF-IDF baseline: word 1-2-grams + char 2-5-grams -> logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    return make_pipeline(features, LogisticRegression(C=4.0, max_iter=2000))


def cross_fitted_probs(
    texts: list[str], labels: np.ndarray, n_classes: int, folds: int, seed: int
) -> np.ndarray:
    """(n, n_classes) TF-IDF probabilities, each from a model fitted on the other folds only."""
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(np.bincount(labels, minlength=n_classes).min()))
    if folds < 2:
        raise ArchlabError("data.distill needs >= 2 training texts of every class")
    probs = np.zeros((len(texts), n_classes))
    arr = np.array(texts, dtype=object)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(arr, labels):
        clf = tfidf_model().fit(list(arr[fit]), labels[fit])
        probs[np.ix_(held, clf.classes_)] = clf.predict_proba(list(arr[held]))
    return probs
