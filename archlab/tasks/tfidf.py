"""TF-IDF + logistic regression on the text split: the text task's baseline, peer and teacher.

The baseline is fitted on the training texts and scored on the test texts; the same fit is the
network's peer in the blend chosen on validation (archlab/tasks/text_blend.py), saved in the run
dir as plain arrays; the distillation teacher gives each training text probabilities from a
model that never saw it (cross-fitting), blended with its label into the soft targets a
distilled network trains on.
"""

from __future__ import annotations

import hashlib
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from archlab.errors import ArchlabError
from archlab.metrics import classification_metrics
from archlab.utils import ContentCache, atomic_path

# scikit-learn's words (2+ letters or digits), and what stands in where the texts have none
# (emoji only, say: the word vocabulary would be empty, and fitting fails): any run of
# non-space characters.
WORDS, NON_SPACE = r"(?u)\b\w\w+\b", r"(?u)\S+"


def tfidf_model(texts: list[str] | None = None) -> Any:
    """The TF-IDF baseline: word 1-2-grams + char 2-5-grams -> logistic regression.

    Words are scikit-learn's, unless none of ``texts`` (those it will be fitted on) holds
    one: then runs of non-space characters."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    words = re.compile(WORDS)
    pattern = WORDS if texts is None or any(map(words.search, texts)) else NON_SPACE
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, token_pattern=pattern),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    return make_pipeline(features, LogisticRegression(C=4.0, max_iter=2000))


def tfidf_baseline(
    texts: list[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    names: list[str],
    weights: np.ndarray | None = None,
) -> tuple[dict[str, float], Any]:
    """``baseline_tfidf_*`` test metrics of the TF-IDF model fitted on the training split, and
    that (unweighted) model: the network's peer in the blend (archlab/tasks/text_blend.py).

    With per-text ``weights`` (data.weight_column) a second fit that uses them adds
    ``baseline_tfidf_weighted_*``, so a weighted network meets a baseline that saw the same.
    """
    key = _content_key(texts, labels, split, names, weights)
    metrics, model = _FITTED.get(key, lambda: _fit(texts, labels, split, names, weights))
    return dict(metrics), model


def _fit(
    texts: list[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    names: list[str],
    weights: np.ndarray | None,
) -> tuple[dict[str, float], Any]:
    def part(p: str) -> list[str]:
        return [texts[i] for i in split[p]]

    # Two minutes on 100,000 texts: said where the fit happens (the blend's choice comes
    # first), once (the fit is cached).
    print(f"archlab: fitting the TF-IDF baseline on {len(split['train']):,} training texts",
          file=sys.stderr, flush=True)  # fmt: skip
    out: dict[str, float] = {}
    fits = {"baseline_tfidf": None}
    if weights is not None:
        fits["baseline_tfidf_weighted"] = weights[split["train"]]
    models = {}
    for key, w in fits.items():
        clf = models[key] = tfidf_model(part("train"))
        clf.fit(part("train"), labels[split["train"]], logisticregression__sample_weight=w)
        m = classification_metrics(labels[split["test"]], clf.predict(part("test")), names)
        for name in ("accuracy", "balanced_accuracy", "f1_macro"):
            out[f"{key}_{name}"] = m[name]
    return out, models["baseline_tfidf"]


def class_probs(clf: Any, texts: list[str], n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities of a fitted TF-IDF model; a class it never saw gets 0.

    Cached by content (the model's weights and the texts): a run's test texts are scored for
    test_predictions.csv and again for test_blend_* (a copy is handed out)."""
    lr = clf.steps[1][1]
    h = hashlib.sha256(f"{n_classes}".encode())
    for a in (lr.coef_, lr.intercept_, lr.classes_):
        h.update(np.ascontiguousarray(a).tobytes())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return _PROBS.get(h.hexdigest(), lambda: _class_probs(clf, texts, n_classes)).copy()


_PROBS: ContentCache[np.ndarray] = ContentCache(keep=4)


def _class_probs(clf: Any, texts: list[str], n_classes: int) -> np.ndarray:
    out = np.zeros((len(texts), n_classes))
    if texts:
        out[:, clf.classes_] = clf.predict_proba(texts)
    return out


def save_tfidf(path: Path, clf: Any) -> None:
    """A fitted TF-IDF model as plain arrays (no pickle): each vectorizer's vocabulary, idf
    and token pattern, and the logistic regression's weights (npz, compressed)."""
    union, lr = clf.steps[0][1], clf.steps[1][1]
    arrays: dict[str, np.ndarray] = {}
    for i, (_, v) in enumerate(union.transformer_list):
        arrays[f"vocab{i}"] = np.array(sorted(v.vocabulary_, key=v.vocabulary_.get))
        arrays[f"idf{i}"] = v.idf_
        arrays[f"pattern{i}"] = np.array(v.token_pattern or "")
    arrays.update(coef=lr.coef_, intercept=lr.intercept_, classes=lr.classes_)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_tfidf(path: Path) -> Any:
    """The model ``save_tfidf`` wrote, predicting as the fitted one did."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        template = tfidf_model().steps[0][1].transformer_list
        vectorizers = []
        for i, (_, v) in enumerate(template):
            params = {**v.get_params(), "vocabulary": a[f"vocab{i}"].tolist()}
            if str(a[f"pattern{i}"]):
                params["token_pattern"] = str(a[f"pattern{i}"])
            fitted = v.set_params(**params)
            fitted.idf_ = a[f"idf{i}"]
            vectorizers.append(fitted)
        lr = LogisticRegression()
        lr.coef_, lr.intercept_, lr.classes_ = a["coef"], a["intercept"], a["classes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ArchlabError(
            f"{path}: not a TF-IDF model archlab wrote ({e.__class__.__name__}); the run's "
            "files are damaged"
        ) from None
    return make_pipeline(make_union(*vectorizers), lr)


# The baseline is a pure function of its inputs, and a fit can take a minute (character
# n-grams, many classes). Runs in one process on the same split (the trials of
# `train --budget`, an ablation's techniques) reuse it instead of refitting.
_FITTED: ContentCache[tuple[dict[str, float], Any]] = ContentCache()


def _content_key(
    texts: list[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    names: list[str],
    weights: np.ndarray | None,
) -> str:
    h = hashlib.sha256()
    for p in ("train", "test"):
        idx = np.asarray(split[p], dtype=np.int64)
        h.update(p.encode() + idx.tobytes())
        h.update(np.asarray(labels)[idx].astype(np.int64).tobytes())
        for i in idx:
            h.update(texts[i].encode("utf-8", "surrogatepass") + b"\0")
    h.update("\0".join(names).encode())
    if weights is not None:
        h.update(np.asarray(weights, dtype=np.float64).tobytes())
    return h.hexdigest()


def cross_fitted_probs(
    texts: list[str],
    labels: np.ndarray,
    n_classes: int,
    folds: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """(n, n_classes) TF-IDF probabilities, each from a model fitted on the other folds only.

    Cached like the baseline: the distilled trials of a budget search and an ablation's
    techniques on one split share one teacher (a copy is handed out)."""
    h = hashlib.sha256(f"{n_classes}|{folds}|{seed}".encode())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    if weights is not None:
        h.update(np.asarray(weights, dtype=np.float64).tobytes())
    key = h.hexdigest()
    return _TEACHER.get(
        key, lambda: _cross_fit(texts, labels, n_classes, folds, seed, weights)
    ).copy()


_TEACHER: ContentCache[np.ndarray] = ContentCache(keep=2)


def _cross_fit(
    texts: list[str],
    labels: np.ndarray,
    n_classes: int,
    folds: int,
    seed: int,
    weights: np.ndarray | None,
) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(np.bincount(labels, minlength=n_classes).min()))
    if folds < 2:
        raise ArchlabError("data.distill needs >= 2 training texts of every class")
    probs = np.zeros((len(texts), n_classes))
    arr = np.array(texts, dtype=object)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(arr, labels):
        w = None if weights is None else weights[fit]
        fold = list(arr[fit])
        clf = tfidf_model(fold).fit(fold, labels[fit], logisticregression__sample_weight=w)
        probs[np.ix_(held, clf.classes_)] = clf.predict_proba(list(arr[held]))
    return probs


def distill_targets(
    texts: list[str],
    labels: np.ndarray,
    n_classes: int,
    blend: float,
    folds: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """The training texts' targets and the teacher's fit, for data.distill=``blend``.

    Targets are float32 (n, 1 + n_classes): the label, then ``(1 - blend)`` of its one-hot
    plus ``blend`` of the cross-fitted teacher's probabilities. The fit is the teacher's
    cross-fitted accuracy on those texts (a metrics.json baseline key). ``weights`` (per
    text) weight the teacher's fits.
    """
    probs = cross_fitted_probs(texts, labels, n_classes, folds, seed, weights)
    fit = {"baseline_tfidf_crossfit_train_accuracy": float((probs.argmax(1) == labels).mean())}
    soft = (1 - blend) * np.eye(n_classes)[labels] + blend * probs
    return np.concatenate([labels[:, None], soft], 1).astype(np.float32), fit
