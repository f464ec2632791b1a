"""Explanations of parity sales runs (the study's row-per-sample framing): permutation
importance and integrated gradients per input feature (a one-hot feature is one feature).

Both read the test rows, as the run's test WMAE does: an explanation chooses nothing."""

from __future__ import annotations

from typing import Any

from torch import nn

from archlab.explain import ExplainRequest, subset
from archlab.explain.sales_common import (
    Forecast,
    bar_chart,
    completeness,
    gap_summary,
    integrated_gradients,
    load_split,
    wmae_permutation_view,
)
from archlab.tasks.sales_common import SalesTargets


def feature_columns(numeric: tuple[str, ...], onehot: dict[str, int]) -> dict[str, list[int]]:
    """Feature -> its input columns: each numeric feature one, each one-hot feature its block
    (the parity framing's layout: the numeric features, then the one-hot blocks in order)."""
    cols: dict[str, list[int]] = {n: [i] for i, n in enumerate(numeric)}
    at = len(numeric)
    for name, size in onehot.items():
        cols[name] = list(range(at, at + size))
        at += size
    return cols


def explain(
    req: ExplainRequest, cfg: Any, task: Any, model: nn.Module, bundle: Any
) -> dict[str, Any]:
    fit = task.fitted
    sizes = {k: len(v) for k, v in zip(fit.onehot_features, fit.onehot_vocab, strict=True)}
    features = feature_columns(fit.numeric_features, sizes)
    data = load_split(bundle.test)
    net = Forecast(model, task)
    out: dict[str, Any] = {
        "framing": "parity",
        "model": cfg.model.name,
        "rows": "test rows (the random split the run's test WMAE scores)",
        # The columns of each feature: a one-hot feature's are named by their values.
        "groups": {
            **{k: [k] for k in fit.numeric_features},
            **{k: [f"{k}={v}" for v in vs]
               for k, vs in zip(fit.onehot_features, fit.onehot_vocab, strict=True)},
        },
        "files": [],
        "n_test": len(data.x),
    }  # fmt: skip
    if "ig" in req.methods:
        sel = subset(len(data.x), req.limit).to(data.x.device)
        args = (data.cats[sel], data.base[sel])
        attr, delta = integrated_gradients(net, data.x[sel], args, req.steps)
        # scaled target x its std: sales units
        a = attr * SalesTargets.unpack(data.targets[sel]).scale[:, None, None]
        per = {k: float(a[:, :, c].sum((1, 2)).abs().mean()) for k, c in features.items()}
        out["ig_mean_abs_sales"] = per
        out.update(gap_summary(completeness(net, data.x[sel], args, delta)))
        out["n_ig"] = len(sel)
        path = req.out / "ig_features.png"
        bar_chart(per, None, "mean |IG attribution| per row (sales units)",
                  "Integrated gradients by feature (test rows)", path)  # fmt: skip
        out["files"].append(path.name)
    if "permutation" in req.methods:
        wmae_permutation_view(req, net, task, data, features, out, rows="test rows",
                              title="Permutation importance by feature")  # fmt: skip
    return out
