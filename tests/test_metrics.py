"""Metrics against scikit-learn references, on random labels and values (hypothesis)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from archlab.metrics import classification_metrics, regression_metrics, wmae


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5).flatmap(
    lambda k: st.tuples(st.just(k), st.lists(st.tuples(st.integers(0, k - 1),
                                                       st.integers(0, k - 1)), min_size=1,
                                             max_size=200))))  # fmt: skip
def test_classification_metrics_match_sklearn(case: tuple[int, list[tuple[int, int]]]) -> None:
    k, pairs = case
    y, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    names = [f"c{i}" for i in range(k)]
    m = classification_metrics(y, p, names)
    labels = list(range(k))
    pr, rc, f1, sup = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    with warnings.catch_warnings():  # sklearn warns when y_pred holds a class y_true lacks
        warnings.simplefilter("ignore", UserWarning)
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    # Macro averages over the classes present in y (sklearn's labels=those classes).
    assert m["precision_macro"] == pytest.approx(pr[sup > 0].mean())
    assert m["recall_macro"] == pytest.approx(rc[sup > 0].mean())
    assert m["recall_macro"] == pytest.approx(m["balanced_accuracy"])
    assert m["f1_macro"] == pytest.approx(f1[sup > 0].mean())
    assert m["confusion_matrix"] == skm.confusion_matrix(y, p, labels=labels).tolist()
    for i, n in enumerate(names):
        assert m[f"f1_class_{n}"] == pytest.approx(f1[i])
        assert m[f"support_class_{n}"] == sup[i]


def test_classes_named_like_the_averages_leave_them_be() -> None:
    # A class named "macro" wrote its own F1 over f1_macro: the run printed 0.0 for a
    # macro-F1 of 0.36, and chose its epoch and its blend on that one class.
    y, p = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    names = ["macro", "accuracy", "balanced_accuracy"]
    m = classification_metrics(y, p, names)
    want = skm.precision_recall_fscore_support(y, p, zero_division=0)
    assert m["f1_macro"] == pytest.approx(want[2].mean())
    assert m["precision_macro"] == pytest.approx(want[0].mean())
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1_class_macro"] == pytest.approx(want[2][0])
    assert len(m) == 6 + 4 * len(names)  # no key written twice


def test_balanced_accuracy_exposes_a_majority_class_guesser() -> None:
    y = np.array([0] * 90 + [1] * 10)
    m = classification_metrics(y, np.zeros(100, int), ["common", "rare"])
    assert m["accuracy"] == pytest.approx(0.9) and m["balanced_accuracy"] == pytest.approx(0.5)


def test_macro_averages_leave_out_a_class_without_samples() -> None:
    # A test split without any 'dog': a perfect model scores 1, not 1/2, and dog keeps its
    # per-class keys with support 0 (every class present: the plain mean over all, as before).
    y = np.array([0, 0, 0, 2, 2])
    m = classification_metrics(y, y, ["cat", "dog", "eel"])
    for k in ("f1_macro", "precision_macro", "recall_macro", "balanced_accuracy"):
        assert m[k] == pytest.approx(1.0), k
    assert m["support_class_dog"] == 0 and m["f1_class_dog"] == 0.0
    p = np.array([0, 1, 0, 2, 0])  # a wrong 'dog' lowers cat's recall, not the average's size
    m = classification_metrics(y, p, ["cat", "dog", "eel"])
    want = skm.f1_score(y, p, labels=[0, 2], average="macro", zero_division=0)
    assert m["f1_macro"] == pytest.approx(want)
    assert m["recall_macro"] == pytest.approx(m["balanced_accuracy"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=2, max_size=100))
def test_regression_metrics_match_sklearn(pairs: list[tuple[float, float]]) -> None:
    y, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-9, abs=1e-6)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-9, abs=1e-6)
    # R² is undefined for a constant target; torchmetrics treats a total sum of squares
    # within 1e-4 of 0 as constant (y = [0, 0.0078125] returns 1.0 where sklearn says -1).
    if np.sum((y - y.mean()) ** 2) > 1e-3:
        assert m["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-6, abs=1e-6)


def test_r2_of_one_value_is_nan_not_an_error() -> None:
    # a sparse panel's validation span can hold one target: the run goes on
    m = regression_metrics(np.array([3.0]), np.array([2.0]))
    assert (m["mae"], m["rmse"]) == (1.0, 1.0) and np.isnan(m["r2"])


def test_wmae_weights_holidays_five_times() -> None:
    y, p = np.array([10.0, 20.0]), np.array([11.0, 24.0])
    assert wmae(y, p, np.array([False, True])) == pytest.approx((1 + 5 * 4) / 6)
