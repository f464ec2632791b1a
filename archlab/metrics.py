"""Metrics as pure functions over whole-epoch outputs (torchmetrics, checked against sklearn).

torchmetrics' functional API with argument validation off: these run on every epoch's train
and validation outputs, where scikit-learn's per-call overhead (~10-20 ms) showed up in
bench/overhead.py; the inputs are ours and already valid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro and per-class precision/recall/F1 (``per_class``
    keys), and the confusion matrix (rows = true).

    Balanced accuracy is the mean recall over the classes present in ``y_true``, as
    ``sklearn.metrics.balanced_accuracy_score``: on imbalanced data it shows what plain accuracy
    hides (always answering the majority class scores 1 / number of classes). The macro
    averages are over those classes too (so recall_macro is balanced accuracy): a class with no
    sample in this split has no recall to average, and counting it as 0 would cap a perfect
    model's score; its per-class values stay, with support 0.
    """
    k = len(class_names)
    t = torch.from_numpy(np.array(y_true, dtype=np.int64))
    p = torch.from_numpy(np.array(y_pred, dtype=np.int64))
    kw: dict[str, Any] = {"num_classes": k, "average": "none", "validate_args": False}
    prec = multiclass_precision(p, t, **kw).double().numpy()  # 0 where a class is never predicted
    rec = multiclass_recall(p, t, **kw).double().numpy()
    f1 = multiclass_f1_score(p, t, **kw).double().numpy()
    cm = multiclass_confusion_matrix(p, t, k, validate_args=False)
    support = cm.sum(1)
    present = support.numpy() > 0
    out: dict[str, Any] = {
        "accuracy": float(cm.diagonal().sum() / max(len(t), 1)),
        "balanced_accuracy": float(rec[present].mean()) if len(t) else 0.0,
        "precision_macro": float(prec[present].mean()) if len(t) else 0.0,
        "recall_macro": float(rec[present].mean()) if len(t) else 0.0,
        "f1_macro": float(f1[present].mean()) if len(t) else 0.0,
        "confusion_matrix": cm.tolist(),
    }
    for i, name in enumerate(class_names):  # "class_": a class named "macro" left f1_macro be
        out[per_class("precision", name)] = float(prec[i])
        out[per_class("recall", name)] = float(rec[i])
        out[per_class("f1", name)] = float(f1[i])
        out[per_class("support", name)] = int(support[i])
    return out


def per_class(metric: str, name: str) -> str:
    """The key of one class's score: ``f1_class_NAME``, apart from the averages' keys."""
    return f"{metric}_class_{name}"


def wmae(y_true: np.ndarray, y_pred: np.ndarray, is_holiday: np.ndarray) -> float:
    """Weighted MAE of the Walmart competition: weight 5 for holiday weeks, 1 otherwise."""
    w = np.where(np.asarray(is_holiday, dtype=bool), 5.0, 1.0)
    return float(np.sum(w * np.abs(np.asarray(y_true) - np.asarray(y_pred))) / np.sum(w))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (in float64); R² is NaN on fewer than two values (a sparse panel's
    validation span can hold one target), where it is not defined."""
    t = torch.from_numpy(np.array(y_true, dtype=np.float64))
    p = torch.from_numpy(np.array(y_pred, dtype=np.float64))
    return {
        "mae": float(mean_absolute_error(p, t)),
        "rmse": float(mean_squared_error(p, t, squared=False)),
        "r2": float(r2_score(p, t)) if len(t) >= 2 else float("nan"),
    }


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The subset of a metrics dict that fits in one history row (numbers only)."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
