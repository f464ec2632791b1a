"""The text task's post-hoc knob, chosen on validation after training: the blend with TF-IDF.

A text run's forecast of the class probabilities is ``w x network + (1 - w) x TF-IDF``: the
network's softmax mixed with the TF-IDF + logistic regression model the run fits as its
baseline (on the same training texts), a hybrid of a network and a classical model, as the
sales forecaster blends with its statistical peer. w (data.tfidf_blend) is chosen from a fixed
grid by the validation macro-F1, the quantity text runs select epochs and trials on (ties go to
the lower validation log-loss, so the probabilities returned are the better calibrated ones,
then to the larger network weight), never on the test, unless the config gives a number. The network
alone keeps the test_* metrics; the blend is test_blend_*, and what predict and serve return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from archlab.metrics import classification_metrics
from archlab.tasks.base import Batches

BLEND_WEIGHTS = tuple(i / 10 for i in range(11))  # network weights tried: 0, 0.1, ..., 1


def network_probs(model: nn.Module, split: Batches) -> tuple[np.ndarray, np.ndarray]:
    """The network's class probabilities (n, K) of every text of a split, and their labels."""
    model.eval()
    probs, labels = [], []
    with torch.no_grad():
        for i in torch.arange(split.n).split(512):
            tokens, lengths, y = split.fetch(i, None)
            probs.append(model(tokens, lengths).float().softmax(1).cpu())
            labels.append(y.cpu())
    if not probs:
        return np.zeros((0, 0)), np.zeros(0, np.int64)
    return torch.cat(probs).double().numpy(), torch.cat(labels).numpy()


def choose(
    setting: float | str, net: np.ndarray, peer: np.ndarray, labels: np.ndarray, names: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The blend weight (chosen on the validation texts' ``net`` and ``peer`` probabilities
    unless ``setting`` is a number) with the validation macro-F1 it rests on, and the line that
    says so."""
    curve = [_f1(w * net + (1 - w) * peer, labels, names) for w in BLEND_WEIGHTS]
    if setting == "auto":
        # Equal macro-F1 (the same labels): the weight whose probabilities fit better wins; a
        # network at chance beside a sure TF-IDF would otherwise answer near-uniform ones.
        loss = [_log_loss(w * net + (1 - w) * peer, labels) for w in BLEND_WEIGHTS]
        i = max(range(len(curve)), key=lambda k: (curve[k], -loss[k], BLEND_WEIGHTS[k]))
        w, src = BLEND_WEIGHTS[i], "validation"
    else:
        w, src = float(setting), "config"
    best = _f1(w * net + (1 - w) * peer, labels, names)
    chosen = {
        "blend_weight": w,
        "blend_weight_from": src,
        "blend_val_f1_macro": best,
        "blend_network_val_f1_macro": curve[-1],
        "blend_tfidf_val_f1_macro": curve[0],
        "blend_val_f1_macro_by_weight": curve,
    }
    line = (
        f"chosen: blend {w:g} x network + {1 - w:g} x TF-IDF ({src}; validation macro-F1 "
        f"{best:.4f}; network alone {curve[-1]:.4f}, TF-IDF {curve[0]:.4f})"
    )
    return chosen, [line]


def explain_note(w: float) -> str:
    """Why a blended run's explanations (of the network) may not match its label (the blend's):
    archlab explain's note and served explain's."""
    return (f"the explanations are of the network alone; predict and serve blend it with the "
            f"run's TF-IDF model ({w:g} x network), whose label can differ")  # fmt: skip


def blend(w: float, net: np.ndarray, peer: np.ndarray) -> np.ndarray:
    """The blended class probabilities."""
    return w * net + (1 - w) * peer


def _log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped: a 0 from one model is not
    infinite evidence)."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def _f1(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> float:
    return float(classification_metrics(labels, probs.argmax(1), names)["f1_macro"])
