"""Explanations of horizon sales runs (data.horizon > 1): integrated gradients of each forecast
step by feature group, and permutation importance on the horizon WMAE, overall and per step.

Both read the test split at the test origin: the forecasts whose WMAE the run reports (its
backtest origins are left out). An explanation chooses nothing, so reading test rows leaks
nothing into the run; the validation split would show less, since it scores only the first
data.val_steps of the H steps (the rest are masked).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from archlab.explain import ExplainRequest, subset
from archlab.explain.sales_common import (
    PERMUTATION_SAMPLES,
    Forecast,
    SalesTensors,
    bar_chart,
    completeness,
    feature_groups,
    gap_summary,
    heatmap,
    integrated_gradients,
    load_split,
    permutation_importance,
    series_rows,
    step_words,
)

ROWS = "test split, test origin only (the forecasts the run's test WMAE scores)"
# Every test sample is forecast from the same origin, so they share the dates.
SHARED = (
    "shuffling moves samples across series at one origin: a group every series shares on "
    "those dates (calendar, holidays, a covariate common to all stores) shows no rise; "
    "integrated gradients still show what the network reads from it"
)


def _at_test_origin(data: SalesTensors) -> SalesTensors:
    """The samples forecast from the test origin: targets (N, H, 6) carry each sample's backtest
    number in their last column, 0 for the test origin (archlab/tasks/sales_horizon.py)."""
    keep = torch.nonzero(data.targets[:, 0, 5] == 0).squeeze(1)
    return SalesTensors(*(t[keep] for t in data))


def _ig_by_step(
    req: ExplainRequest,
    model: nn.Module,
    task: Any,
    data: SalesTensors,
    groups: dict[str, list[int]],
    signed: bool,
) -> tuple[np.ndarray, torch.Tensor]:
    """(groups, H): per forecast step, each group's IG attribution summed over its columns and
    every input position, in sales units: the mean over samples of its absolute value, or
    (``signed``) of the value itself; and the relative completeness gaps of all (sample, step)."""
    H = data.targets.shape[1]
    scale = data.targets[:, 0, 1]
    args = (data.cats, data.base)
    grid, gaps = np.zeros((len(groups), H)), []
    for h in range(H):
        net = Forecast(model, task, h)
        attr, delta = integrated_gradients(net, data.x, args, req.steps)
        a = attr * scale[:, None, None]
        for i, cols in enumerate(groups.values()):
            per = a[:, :, cols].sum((1, 2))
            grid[i, h] = float((per if signed else per.abs()).mean())
        gaps.append(completeness(net, data.x, args, delta))
    return grid, torch.cat(gaps)


def explain(
    req: ExplainRequest, cfg: Any, task: Any, model: nn.Module, bundle: Any
) -> dict[str, Any]:
    fz = task.fitted.featurizer
    names = list(fz.feature_names)
    data = _at_test_origin(load_split(bundle.test))
    H = data.targets.shape[1]
    words = step_words(fz.step_days, fz.season, H)
    groups = feature_groups(
        names, fz.covariates, cfg.data.markdown_columns, words, fz.known_covariates
    )
    labels = [str(h + 1) for h in range(H)]
    xlabel = f"forecast step ({words.step}s after the origin)"
    out: dict[str, Any] = {
        "framing": "horizon",
        "model": cfg.model.name,
        "horizon": H,
        "words": words._asdict(),
        "rows": ROWS,
        "groups": {g: [names[i] for i in c] for g, c in groups.items()},
        "files": [],
        "n_test": len(data.x),
    }
    if "ig" in req.methods:
        sel = subset(len(data.x), req.limit).to(data.x.device)
        part = SalesTensors(*(t[sel] for t in data))
        grid, gaps = _ig_by_step(req, model, task, part, groups, signed=False)
        rows = list(zip(groups, grid, strict=True))
        out["ig_by_step"] = {g: [round(float(v), 3) for v in r] for g, r in rows}
        out["ig_mean_abs_sales"] = {g: float(r.mean()) for g, r in rows}
        out.update(gap_summary(gaps))
        out["n_ig"] = len(sel)
        path = req.out / "ig_horizon_steps.png"
        heatmap(grid, list(groups), labels, xlabel, "mean |IG attribution| (sales units)",
                f"Integrated gradients per forecast step and group ({len(sel):,} test series)",
                path, signed=False)  # fmt: skip
        out["files"].append(path.name)
        path = req.out / "ig_feature_groups.png"
        bar_chart(out["ig_mean_abs_sales"], None,
                  "mean |IG attribution| per forecast (sales units, mean over the steps)",
                  "Integrated gradients by feature group (test split)", path)  # fmt: skip
        out["files"].append(path.name)
        label, one = _series_sample(bundle.context, req.series, len(data.x))
        single = SalesTensors(*(t[one] for t in data))
        grid1, _ = _ig_by_step(req, model, task, single, groups, signed=True)
        path = req.out / "ig_series_horizon.png"
        heatmap(grid1, list(groups), labels, xlabel, "IG attribution (sales units)",
                f"Series {label}: attribution per forecast step and group", path)  # fmt: skip
        out["series"] = {
            "label": label,
            "by_group_and_step": {g: [round(float(v), 3) for v in r]
                                  for g, r in zip(groups, grid1, strict=True)},
        }  # fmt: skip
        out["files"].append(path.name)
    if "permutation" in req.methods:
        sel = subset(len(data.x), PERMUTATION_SAMPLES if req.limit else 0).to(data.x.device)
        part = SalesTensors(*(t[sel] for t in data))
        t_part = part.targets.cpu()

        def score(o: torch.Tensor) -> list[float]:
            m = task.metrics(o.cpu(), t_part)
            by = [np.nan if v is None else v for v in m["wmae_by_step"]]
            return [m["wmae"], *by, *[np.nan] * (H - len(by))]  # steps without rows: NaN

        imp = permutation_importance(
            Forecast(model, task), part, groups, score,
            identity=len(getattr(model, "embeddings", ())) > 0,
        )  # fmt: skip
        ref = imp.pop("_reference")
        out["permutation"] = imp
        out["test_wmae"] = ref["wmae"]
        out["test_wmae_by_step"] = ref["wmae_by_step"]
        out["n_permutation"] = len(sel)
        out["permutation_note"] = SHARED
        path = req.out / "permutation_importance.png"
        bar_chart(
            {g: v["wmae_rise"] for g, v in imp.items()},
            {g: v["std"] for g, v in imp.items()},
            f"rise in horizon WMAE when shuffled ({len(sel):,} test series, "
            f"WMAE {ref['wmae']:,.0f})",
            f"Permutation importance by feature group ({H}-step horizon)",
            path,
        )
        out["files"].append(path.name)
        rise = np.array(
            [[np.nan if v is None else v for v in imp[g]["wmae_rise_by_step"]] for g in imp]
        )
        path = req.out / "permutation_by_step.png"
        heatmap(rise, list(imp), labels, xlabel, "rise in WMAE of the step",
                "Permutation importance per forecast step", path)  # fmt: skip
        out["files"].append(path.name)
    return out


def _series_sample(context: Any, series: str, n: int) -> tuple[str, torch.Tensor]:
    """The test-origin sample of ``series`` ("" = the largest by test sales). The context's
    rows at the test origin list each series' scored steps in the samples' order (by series)."""
    rows = context.rows[context.rows.origin == 0]
    label, idx = series_rows(rows, tuple(context.keys), series)
    order = rows[context.keys].astype(str).agg(",".join, axis=1)
    firsts = order.drop_duplicates()
    assert len(firsts) == n, "one test-origin sample per series with a scored step"
    at = int(np.flatnonzero(firsts.index == rows.index[int(idx[0])])[0])
    return label, torch.tensor([at])
