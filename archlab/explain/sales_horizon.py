"""Explanations of horizon sales runs (data.horizon > 1): integrated gradients of each forecast
step by feature group, and permutation importance on the horizon WMAE, overall and per step.

Both read the test split at the test origin: the forecasts whose WMAE the run reports (its
backtest origins are left out). An explanation chooses nothing, so reading test rows leaks
nothing into the run; the validation split would show less, since it scores only the first
data.val_steps of the H steps (the rest are masked).
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

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
    gap_summary,
    heatmap,
    input_steps_heatmap,
    integrated_gradients,
    load_split,
    permutation_importance,
    run_groups,
    series_rows,
    step_words,
)
from archlab.tasks.sales_common import SalesTargets
from archlab.tasks.sales_horizon_data import rolling

ROWS = "test split, test origin only (the forecasts the run's test WMAE scores)"
ROWS_ROLLING = "test split, each test step forecast from the step before it (as the test WMAE)"
# Every test sample is forecast from the same origin, so they share the dates.
SHARED = (
    "shuffling moves samples across series at one origin: a group every series shares on "
    "those dates (calendar, holidays, a covariate common to all stores) shows no rise; "
    "integrated gradients still show what the network reads from it"
)


def _at_test_origin(data: SalesTensors) -> SalesTensors:
    """The samples forecast from the test origin: their targets' origin is 0 (backtests are
    1, 2, ...)."""
    keep = torch.nonzero(SalesTargets.unpack(data.targets, horizon=True).origin[:, 0] == 0)
    keep = keep.squeeze(1)
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
    scale = SalesTargets.unpack(data.targets, horizon=True).scale[:, 0]
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


class _View(NamedTuple):
    """What both views of one run share."""

    req: ExplainRequest
    model: nn.Module
    task: Any
    data: SalesTensors  # the test origin's samples
    groups: dict[str, list[int]]
    labels: list[str]  # the forecast steps, "1".."H"
    xlabel: str


def explain(
    req: ExplainRequest, cfg: Any, task: Any, model: nn.Module, bundle: Any
) -> dict[str, Any]:
    fz = task.fitted.featurizer
    names = list(fz.feature_names)
    data = _at_test_origin(load_split(bundle.test))
    H = data.targets.shape[1]
    roll = rolling(task.data_cfg)
    words = step_words(fz.step_days, fz.season, H, fz.weekdays)
    groups = run_groups(task, cfg, words)
    view = _View(req, model, task, data, groups, [str(h + 1) for h in range(H)],
                 f"forecast step ({words.step}s after the origin)")  # fmt: skip
    out: dict[str, Any] = {
        "framing": "forecast" if roll else "horizon",
        "model": cfg.model.name,
        "horizon": H,
        "words": words._asdict(),
        "rows": ROWS_ROLLING if roll else ROWS,
        "groups": {g: [names[i] for i in c] for g, c in groups.items()},
        "files": [],
        "n_test": len(data.x),
    }
    notes = []
    if task.correction_scale == 0:  # chosen on validation: the forecast is the base alone
        notes.append(
            "the run's correction scale is 0 (chosen on validation): its forecasts are last "
            "season's base alone, so no input of the network moves them (attributions 0)"
        )
    w = task.fitted.chosen.get("blend_weight")
    if isinstance(w, int | float) and w < 1:  # what predict and serve answer is the blend
        peer = task.data_cfg.peer
        notes.append(
            f"the explanations (and the forecasts beside them) are of the network's forecast; "
            f"predict and serve answer its blend with the {peer} peer ({w:g} x network), "
            "which no attribution here covers"
        )
    if notes:
        out["note"] = "; ".join(notes)
    if "ig" in req.methods:
        _ig_views(view, bundle.context, out)
    if "permutation" in req.methods:
        _permutation_views(view, out)
    if "note" in out:  # said once the views are written, beside the files they explain
        print(f"archlab: note: {out['note']}", file=sys.stderr)
    return out


def _ig_views(v: _View, context: Any, out: dict[str, Any]) -> None:
    """IG per forecast step and group over ``--limit`` series, and signed for ``--series``."""
    sel = subset(len(v.data.x), v.req.limit).to(v.data.x.device)
    part = SalesTensors(*(t[sel] for t in v.data))
    grid, gaps = _ig_by_step(v.req, v.model, v.task, part, v.groups, signed=False)
    rows = list(zip(v.groups, grid, strict=True))
    out["ig_by_step"] = {g: [round(float(x), 3) for x in r] for g, r in rows}
    out["ig_mean_abs_sales"] = {g: float(r.mean()) for g, r in rows}
    out.update(gap_summary(gaps))
    out["n_ig"] = len(sel)
    roll = rolling(v.task.data_cfg)
    # --series first: a series it cannot name is an error before any figure is written
    label, one = _series_sample(context, v.req.series, len(v.data.x), roll)
    if not roll:  # one forecast step: the bar chart below says it all
        path = v.req.out / "ig_horizon_steps.png"
        heatmap(grid, list(v.groups), v.labels, v.xlabel, "mean |IG attribution| (sales units)",
                f"Integrated gradients per forecast step and group ({len(sel):,} test series)",
                path, signed=False)  # fmt: skip
        out["files"].append(path.name)
    path = v.req.out / "ig_feature_groups.png"
    bar_chart(out["ig_mean_abs_sales"], None,
              "mean |IG attribution| per forecast (sales units, mean over the steps)",
              "Integrated gradients by feature group (test split)", path)  # fmt: skip
    out["files"].append(path.name)
    single = SalesTensors(*(t[one] for t in v.data))
    if roll:  # the series' next-step forecasts: attribution per group and input step
        _series_steps(v, single, label, out)
        return
    grid1, _ = _ig_by_step(v.req, v.model, v.task, single, v.groups, signed=True)
    path = v.req.out / "ig_series_horizon.png"
    heatmap(grid1, list(v.groups), v.labels, v.xlabel, "IG attribution (sales units)",
            f"Series {label}: attribution per forecast step and group", path)  # fmt: skip
    out["series"] = {
        "label": label,
        "samples": len(one),
        "by_group_and_step": {g: [round(float(x), 3) for x in r]
                              for g, r in zip(v.groups, grid1, strict=True)},
    }  # fmt: skip
    out["files"].append(path.name)


def _series_steps(v: _View, single: SalesTensors, label: str, out: dict[str, Any]) -> None:
    """One series' mean attribution per group and input step over its next-step forecasts."""
    scale = SalesTargets.unpack(single.targets, horizon=True).scale[:, 0]
    net = Forecast(v.model, v.task, 0)
    a, _ = integrated_gradients(net, single.x, (single.cats, single.base), v.req.steps)
    a = (a * scale[:, None, None]).mean(0).cpu().numpy()  # (L, F) sales units
    grid = np.stack([a[:, c].sum(1) for c in v.groups.values()])  # (groups, L)
    fz = v.task.fitted.featurizer
    words = step_words(fz.step_days, fz.season, weekdays=fz.weekdays)
    path = v.req.out / "ig_series_steps.png"
    input_steps_heatmap(grid, list(v.groups), label, words.target, path)
    out["series"] = {
        "label": label,
        "samples": len(single.x),
        "by_group_and_step": {g: [round(float(x), 3) for x in r]
                              for g, r in zip(v.groups, grid, strict=True)},
    }  # fmt: skip
    out["files"].append(path.name)


def _permutation_views(v: _View, out: dict[str, Any]) -> None:
    """Permutation importance on the horizon WMAE, overall and per forecast step."""
    H = len(v.labels)
    sel = subset(len(v.data.x), PERMUTATION_SAMPLES if v.req.limit else 0).to(v.data.x.device)
    part = SalesTensors(*(t[sel] for t in v.data))
    t_part = part.targets.cpu()

    def score(o: torch.Tensor) -> list[float]:
        m = v.task.metrics(o.cpu(), t_part)
        by = [np.nan if x is None else x for x in m["wmae_by_step"]]
        return [m["wmae"], *by, *[np.nan] * (H - len(by))]  # steps without rows: NaN

    imp = permutation_importance(
        Forecast(v.model, v.task), part, v.groups, score,
        identity=len(getattr(v.model, "embeddings", ())) > 0,
    )  # fmt: skip
    ref = imp.pop("_reference")
    out["permutation"] = imp
    out["test_wmae"] = ref["wmae"]
    out["test_wmae_by_step"] = ref["wmae_by_step"]
    out["n_permutation"] = len(sel)
    roll = rolling(v.task.data_cfg)
    if not roll:  # rolling origins' samples span the test dates
        out["permutation_note"] = SHARED
    path = v.req.out / "permutation_importance.png"
    # Rolling origins: a sample is one (series, test date) forecast one step ahead.
    what = (
        ("one-step test forecasts", "test WMAE", "one step ahead")
        if roll
        else ("test series", "horizon WMAE", f"{H}-step horizon")
    )
    bar_chart(
        {g: x["wmae_rise"] for g, x in imp.items()},
        {g: x["std"] for g, x in imp.items()},
        f"rise in {what[1]} when shuffled ({len(sel):,} {what[0]}, WMAE {ref['wmae']:,.0f})",
        f"Permutation importance by feature group ({what[2]})",
        path,
    )
    out["files"].append(path.name)
    if roll:  # one forecast step: no per-step view
        return
    rise = np.array(
        [[np.nan if x is None else x for x in imp[g]["wmae_rise_by_step"]] for g in imp]
    )
    path = v.req.out / "permutation_by_step.png"
    heatmap(rise, list(imp), v.labels, v.xlabel, "rise in WMAE of the step",
            "Permutation importance per forecast step", path)  # fmt: skip
    out["files"].append(path.name)


def _series_sample(context: Any, series: str, n: int, roll: bool) -> tuple[str, torch.Tensor]:
    """The test-origin sample of ``series`` ("" = the largest by test sales). The context's
    rows at the test origin list each series' scored steps in the samples' order (by series);
    with rolling origins (H = 1) row i is sample i, and the series has one per test step."""
    rows = context.rows[context.rows.origin == 0]
    label, idx = series_rows(rows, tuple(context.keys), series)
    if roll:
        assert len(rows) == n, "one test row per sample with rolling origins"
        return label, torch.as_tensor(np.asarray(idx))
    firsts = rows.index[~rows[context.keys].astype(str).duplicated()]
    assert len(firsts) == n, "one test-origin sample per series with a scored step"
    at = int(np.flatnonzero(firsts == rows.index[int(idx[0])])[0])
    return label, torch.tensor([at])
