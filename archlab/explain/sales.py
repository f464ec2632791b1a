"""Sales explanations, by framing: ``explain_run`` dispatches a run to its framing's view.

Forecast runs (every horizon, next-step forecasting included) are explained in
archlab/explain/sales_horizon.py, parity runs in archlab/explain/sales_parity.py; here, the
integrated gradients of next-step forecasts from history CSVs, per feature group and input
step. What they share (wording, groups, IG, permutation, charts) is in
archlab/explain/sales_common.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from archlab.errors import ArchlabError
from archlab.explain import ExplainRequest, sales_horizon, sales_parity
from archlab.explain.sales_common import (
    Forecast,
    input_steps_heatmap,
    integrated_gradients,
    run_groups,
    step_words,
)


def explain_run(req: ExplainRequest) -> dict[str, Any]:
    from archlab.runner import load_run

    if req.inputs:
        return _explain_inputs(req)
    cfg, task, model, bundle = load_run(req.run_dir, action="explain")
    model.eval()
    return VIEWS[task.fitted.kind](req, cfg, task, model, bundle)


# Each framing's view of a run, by the kind of its fitted state (fitted.json's "kind").
VIEWS: dict[str, Callable[..., dict[str, Any]]] = {
    "sales-horizon": sales_horizon.explain,
    "sales-parity": sales_parity.explain,
}


def _explain_inputs(req: ExplainRequest) -> dict[str, Any]:
    """IG of the next-step forecast of each series in history CSVs (as ``predict`` reads)."""
    from archlab.runner import restore_task

    if "ig" not in req.methods:
        raise ArchlabError(
            "--method permutation needs the test split's actual sales; for history CSVs use ig"
        )
    cfg, task, model = restore_task(req.run_dir)
    fz = getattr(task.fitted, "featurizer", None)
    if getattr(fz, "horizon", 0) != 1:
        what = f"{fz.horizon}-step horizon" if fz is not None else "parity"
        raise ArchlabError(
            f"{req.run_dir}: explaining history CSVs covers next-step runs, and this is a "
            f"{what} run: give no inputs to explain its test split"
        )
    h = task.history_windows(list(req.inputs))
    words = step_words(fz.step_days, fz.season, weekdays=fz.weekdays)
    groups = run_groups(task, cfg, words)
    net = Forecast(model, task, 0)
    model.eval()
    base = h.base
    attr, delta = integrated_gradients(net, h.x, (h.cats, base), req.steps)
    with torch.no_grad():
        fc = net(h.x, h.cats, base).double().numpy() * h.scale + h.offset
    a = attr.double().numpy() * h.scale[:, None, None]  # sales units
    keys = list(fz.series_keys)
    out: dict[str, Any] = {"model": cfg.model.name, "words": words._asdict(), "files": [],
                           "inputs": []}  # fmt: skip
    grids = []
    for i, row in enumerate(h.rows):
        grid = np.stack([a[i][:, c].sum(1) for c in groups.values()])
        grids.append(grid)
        out["inputs"].append({**row, "forecast": float(fc[i]),
                              "ig_by_group": {g: round(float(v), 3)
                                              for g, v in zip(groups, grid.sum(1), strict=True)},
                              "completeness_gap": abs(float(delta[i]))})  # fmt: skip
    for i, (row, grid) in enumerate(list(zip(h.rows, grids, strict=True))[:12]):
        label = ",".join(f"{k}={row[k]}" for k in keys)
        path = req.out / f"ig_inputs_{i + 1}.png"
        label = f"{label} (after {row[cfg.data.date_column]})"
        input_steps_heatmap(grid, list(groups), label, words.target, path)
        out["files"].append(path.name)
    return out
