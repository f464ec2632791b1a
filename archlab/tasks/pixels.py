"""A linear classifier on downsampled pixels: the image task's classical baseline.

Ridge regression on one-hot targets (sklearn's RidgeClassifier) over standardized 16 x 16
pixels, fitted on the training split, its L2 strength chosen on the validation split (by
macro-F1, the networks' monitor) and scored on the test rows the network is scored on. Ridge,
not logistic regression: on images3 (12,600 training images) each logistic fit took 8-23 s of
CPU against 0.3-0.4 s, for the same validation macro-F1 (0.647 against 0.648;
bench/pixel_baseline.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from archlab.metrics import classification_metrics

SIDE = 16  # pixels per side the images are averaged down to (smaller images are kept as they are)
ALPHAS = (1.0, 100.0, 10_000.0)  # L2 strengths tried (standardized features)


def pixel_features(images: torch.Tensor, side: int = SIDE) -> np.ndarray:
    """uint8 N x C x H x W -> float32 N x (C * side * side): area-averaged, scaled to [0, 1]."""
    x = images.float() / 255.0
    if min(x.shape[-2:]) > side:
        x = F.adaptive_avg_pool2d(x, side)
    return x.flatten(1).cpu().numpy()


def pixels_baseline(
    images: torch.Tensor, labels: np.ndarray, split: dict[str, np.ndarray], names: list[str]
) -> dict[str, float]:
    """``baseline_pixels_*`` test metrics, and the validation macro-F1 and alpha it was
    chosen by."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(pixel_features(images[split["train"]]))

    def features(part: str) -> np.ndarray:
        return scaler.transform(pixel_features(images[split[part]]))

    x_train, x_val, x_test = features("train"), features("val"), features("test")
    y_train, y_val = labels[split["train"]], labels[split["val"]]
    best: tuple[float, float, RidgeClassifier] | None = None
    for alpha in ALPHAS:
        clf = RidgeClassifier(alpha=alpha).fit(x_train, y_train)
        f1 = classification_metrics(y_val, clf.predict(x_val), names)["f1_macro"]
        if best is None or f1 > best[0]:
            best = (f1, alpha, clf)
    assert best is not None
    val_f1, alpha, clf = best
    m = classification_metrics(labels[split["test"]], clf.predict(x_test), names)
    out = {f"baseline_pixels_{k}": m[k] for k in ("accuracy", "balanced_accuracy", "f1_macro")}
    out.update(baseline_pixels_val_f1_macro=val_f1, baseline_pixels_alpha=alpha)
    return out
