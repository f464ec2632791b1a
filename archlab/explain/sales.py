"""Sales explanations: integrated gradients over the input features, grouped by meaning;
permutation importance (the rise in test WMAE when one group is shuffled across samples);
and, for one series, the attribution of each group at each input time step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients
from torch import nn

from archlab.data.sales_features import EVENT_FEATURES
from archlab.errors import ArchlabError
from archlab.explain import ExplainRequest, frozen, subset

# Meaning of each per-step column (data/sales_features.py STEP_FEATURES); the run's featurizer
# names every input column (feature_names), covariates and event flags after these.
STEP_GROUPS: dict[str, str] = {
    "sales": "recent sales",
    "observed": "recent sales",
    "group_sales": "recent sales",
    "sales_last_year": "last year's steps",
    "observed_last_year": "last year's steps",
    "sales_last_year_next": "last year's steps",
    "group_sales_last_year": "last year's steps",
    "group_sales_last_year_next": "last year's steps",
    "holiday": "holiday flag",
    "season_sin": "season & target step",
    "season_cos": "season & target step",
    "target_step": "season & target step",
}
IDENTITY = "series identity"  # the store/department embeddings (permutation only: ids)
PERMUTATION_SAMPLES = 10_000  # test windows scored by permutation importance (--limit 0: all)
CHUNK = 4096  # samples per forward pass (and per IG pass, divided by the step count x 8)


def feature_groups(names: Sequence[str], markdowns: Sequence[str]) -> dict[str, list[int]]:
    """Group name -> column indices, in a fixed order of meaning."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if n in STEP_GROUPS:
            g = STEP_GROUPS[n]
        elif n in EVENT_FEATURES:
            g = "event flags"
        elif n in markdowns or n.removesuffix("_missing") in markdowns:
            g = "markdowns"
        else:
            g = "other covariates"
        groups.setdefault(g, []).append(i)
    return groups


class SalesTensors(NamedTuple):
    """The test split as the network sees it."""

    x: torch.Tensor  # (N, L, F) windows
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N,) the baseline the network corrects, scaled units
    targets: torch.Tensor  # (N, 4) scaled target, scale, offset, holiday


def _forward(model: nn.Module, x: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [model(x[i : i + CHUNK], cats[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
        )


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    cats: torch.Tensor,
    steps: int = 50,
    tolerance: float = 0.01,
    max_steps: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L, F) IG of the network's output (scaled units) w.r.t. its inputs against the
    all-zero window (every standardized input at its training mean, no flags), and the (N,)
    completeness gaps. Samples whose gap exceeds ``tolerance`` of their output change are
    redone with twice the steps, up to ``max_steps`` (as for text). Batched: a chunk of
    samples times all steps per pass."""
    model.eval()
    change = _forward(model, x, cats) - _forward(model, torch.zeros_like(x), cats)
    attr, delta = torch.zeros_like(x), torch.zeros(len(x), dtype=torch.float64, device=x.device)
    todo = torch.arange(len(x), device=x.device)
    while len(todo):
        a, d = _ig_pass(model, x[todo], cats[todo], steps)
        attr[todo], delta[todo] = a, d.double()
        if steps >= max_steps:
            break
        # An absolute floor: a sample whose output does not move has nothing to complete.
        todo = todo[d.abs() > tolerance * change[todo].abs() + 1e-6]
        steps = min(2 * steps, max_steps)
    return attr, delta


def _ig_pass(
    model: nn.Module, x: torch.Tensor, cats: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    ig = IntegratedGradients(model)
    chunk = max(1, CHUNK * 8 // steps)
    attrs, deltas = [], []
    # cuDNN's RNN backward refuses eval mode; the native kernels compute the same thing.
    with torch.backends.cudnn.flags(enabled=False), frozen(model):
        for i in range(0, len(x), chunk):
            a, d = ig.attribute(
                x[i : i + chunk],
                baselines=torch.zeros_like(x[i : i + chunk]),
                additional_forward_args=(cats[i : i + chunk],),
                n_steps=steps,
                return_convergence_delta=True,
            )
            attrs.append(a.detach())
            deltas.append(d.detach())
    return torch.cat(attrs), torch.cat(deltas)


def permutation_importance(
    model: nn.Module,
    data: SalesTensors,
    groups: dict[str, list[int]],
    wmae: Any,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per group: the mean (and std over ``repeats`` shuffles) rise in test WMAE when that
    group's columns, at every time step, are shuffled across samples; ``wmae(outputs)`` scores
    outputs on the sales scale. ``IDENTITY`` shuffles the series ids the embeddings read."""
    model.eval()
    ref = wmae(data.base + _forward(model, data.x, data.cats))
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {}
    plan: list[tuple[str, list[int] | None]] = list(groups.items())
    if data.cats.numel() and len(getattr(model, "embeddings", ())):
        plan.append((IDENTITY, None))
    for name, cols in plan:
        rises = []
        for _ in range(repeats):
            perm = torch.randperm(len(data.x), generator=gen).to(data.x.device)
            x, cats = data.x, data.cats
            if cols is None:
                cats = cats[perm]
            else:
                x = x.clone()
                x[:, :, cols] = data.x[perm][:, :, cols]
            rises.append(wmae(data.base + _forward(model, x, cats)) - ref)
        out[name] = {"wmae_rise": float(np.mean(rises)), "std": float(np.std(rises))}
    out["_reference"] = {"wmae_rise": 0.0, "std": 0.0, "wmae": float(ref)}
    return out


# --- run level ---
def _feature_names(run_dir: Path, task: Any) -> list[str]:
    """The run's input columns, named by its featurizer (forecast framing only)."""
    from archlab.tasks.forecast import SalesForecast

    if not isinstance(task, SalesForecast):
        horizon = getattr(getattr(task, "data_cfg", None), "horizon", 1)
        what = (
            f"it forecasts {horizon} steps at once (data.horizon={horizon})"
            if horizon > 1
            else "it uses the study's parity framing (data.framing=parity)"
        )
        raise ArchlabError(
            f"{run_dir}: explain covers next-step sales runs (data.horizon=1, data.framing="
            f"forecast), and {what}"
        )
    return list(task.fitted.featurizer.feature_names)


def explain_run(req: ExplainRequest) -> dict[str, Any]:
    from archlab.runner import load_run

    if req.inputs:
        return _explain_inputs(req)
    cfg, task, model, bundle = load_run(req.run_dir)
    names = _feature_names(req.run_dir, task)
    model.eval()
    parts = list(zip(*bundle.test.iterate(CHUNK), strict=True))
    data = SalesTensors(*(torch.cat(p) for p in parts))
    if len(names) != data.x.shape[-1]:
        raise ArchlabError(
            f"{req.run_dir}: the run's inputs have {data.x.shape[-1]} features per step but "
            f"{len(names)} are named ({', '.join(names)})"
        )
    groups = feature_groups(names, cfg.data.markdown_columns)

    out: dict[str, Any] = {
        "model": cfg.model.name,
        "groups": {g: [names[i] for i in c] for g, c in groups.items()},
        "files": [],
        "n_test": len(data.x),
    }
    scale = data.targets[:, 1]
    if "ig" in req.methods:
        sel = subset(len(data.x), req.limit).to(data.x.device)
        attr, delta = integrated_gradients(model, data.x[sel], data.cats[sel], req.steps)
        # Scaled units times each series' scale: attributions in sales units.
        sales_attr = attr * scale[sel, None, None]
        per_group = {
            g: float(sales_attr[:, :, c].sum((1, 2)).abs().mean()) for g, c in groups.items()
        }
        out["ig_mean_abs_sales"] = per_group
        change = _forward(model, data.x[sel], data.cats[sel]) - _forward(
            model, torch.zeros_like(data.x[sel]), data.cats[sel]
        )
        rel = delta.abs().cpu() / change.abs().cpu().clamp(min=1e-12)
        out["ig_completeness_gap_relative_median"] = float(rel.median())
        out["ig_completeness_gap_relative_max"] = float(rel.max())
        out["n_ig"] = len(sel)
        path = req.out / "ig_feature_groups.png"
        bar_chart(
            per_group,
            None,
            "mean |IG attribution| per sample (sales units)",
            "Integrated gradients by feature group (test split)",
            path,
        )
        out["files"].append(path.name)
        label, rows = _series_rows(bundle.context.test_rows, cfg.data.series_keys, req.series)
        a, _ = integrated_gradients(model, data.x[rows], data.cats[rows], req.steps)
        a = (a * scale[rows, None, None]).mean(0).cpu().numpy()  # (L, F) sales units
        grid = np.stack([a[:, c].sum(1) for c in groups.values()])  # (groups, L)
        path = req.out / "ig_series_steps.png"
        steps_heatmap(grid, list(groups), label, path)
        out["series"] = {
            "label": label,
            "samples": len(rows),
            "by_group_and_step": {
                g: [round(float(v), 3) for v in r] for g, r in zip(groups, grid, strict=True)
            },
        }
        out["files"].append(path.name)
    if "permutation" in req.methods:
        # 25 forward passes over the samples: on the whole Walmart test split (115k windows)
        # that is minutes of CPU per model, so a seeded subset unless --limit 0.
        sel = subset(len(data.x), PERMUTATION_SAMPLES if req.limit else 0).to(data.x.device)
        part = SalesTensors(*(t[sel] for t in data))
        t_part = part.targets.cpu()
        imp = permutation_importance(
            model, part, groups, lambda o: float(task.metrics(o.cpu(), t_part)["wmae"])
        )
        ref = imp.pop("_reference")["wmae"]
        out["permutation"] = imp
        out["test_wmae"] = ref
        out["n_permutation"] = len(sel)
        path = req.out / "permutation_importance.png"
        bar_chart(
            {g: v["wmae_rise"] for g, v in imp.items()},
            {g: v["std"] for g, v in imp.items()},
            f"rise in WMAE when shuffled ({len(sel):,} test samples, WMAE {ref:,.0f})",
            "Permutation importance by feature group",
            path,
        )
        out["files"].append(path.name)
    return out


def _explain_inputs(req: ExplainRequest) -> dict[str, Any]:
    """IG of the next-step forecast of each series in history CSVs (as ``predict`` reads)."""
    from archlab.runner import restore_task

    if "ig" not in req.methods:
        raise ArchlabError(
            "--method permutation needs the test split's actual sales; for history CSVs use ig"
        )
    cfg, task, model = restore_task(req.run_dir)
    names = _feature_names(req.run_dir, task)
    h = task.history_windows(list(req.inputs))
    groups = feature_groups(names, cfg.data.markdown_columns)
    attr, delta = integrated_gradients(model, h.x, h.cats, req.steps)
    with torch.no_grad():
        fc = (h.base + model(h.x, h.cats)).double().numpy() * h.scale + h.offset
    a = attr.double().numpy() * h.scale[:, None, None]  # sales units
    keys = list(task.fitted.featurizer.series_keys)
    out: dict[str, Any] = {"model": cfg.model.name, "files": [], "inputs": []}
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
        steps_heatmap(grid, list(groups), f"{label} (after {row[cfg.data.date_column]})", path)
        out["files"].append(path.name)
    return out


def _series_rows(
    rows: pd.DataFrame, series_keys: tuple[str, ...], series: str
) -> tuple[str, torch.Tensor]:
    """Test rows of the series ``series`` ("Store=1,Dept=1"); "" = the largest by test sales."""
    keys = list(series_keys)
    label_of = rows[keys].astype(str).agg(",".join, axis=1)
    if not series:
        best = rows.groupby(label_of).actual.sum().idxmax()
        want = dict(zip(keys, best.split(","), strict=True))
    else:
        want = {}
        for part in series.split(","):
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in keys:
                raise ArchlabError(
                    f"--series {series}: give KEY=VALUE pairs of the series keys {', '.join(keys)}"
                )
            want[k.strip()] = v.strip()
        missing = [k for k in keys if k not in want]
        if missing:
            raise ArchlabError(f"--series {series}: also give {', '.join(missing)}")
    mask = np.ones(len(rows), bool)
    for k, v in want.items():
        mask &= rows[k].astype(str).to_numpy() == v
    if not mask.any():
        raise ArchlabError(f"--series {series}: no such series in the run's test split")
    label = ",".join(f"{k}={want[k]}" for k in keys)
    return label, torch.from_numpy(np.flatnonzero(mask))


# --- drawing ---
def bar_chart(
    values: dict[str, float], err: dict[str, float] | None, xlabel: str, title: str, path: Path
) -> None:
    from archlab.plots import _save, plt

    names = sorted(values, key=lambda g: values[g])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4))
    ax.barh(
        names, [values[g] for g in names], color="C0", xerr=[err[g] for g in names] if err else None
    )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def steps_heatmap(grid: np.ndarray, groups: list[str], label: str, path: Path) -> None:
    from archlab.plots import _save, plt

    L = grid.shape[1]
    top = float(np.abs(grid).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * L, 0.45 * len(groups) + 1.6))
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
    ax.set_yticks(range(len(groups)), groups, fontsize=8)
    ax.set_xticks(range(L), [f"t-{L - 1 - i}" if i < L - 1 else "t" for i in range(L)], fontsize=8)
    ax.set_xlabel("input step (t = the week being forecast)")
    fig.colorbar(im, ax=ax, label="mean IG attribution (sales units)")
    ax.set_title(f"Series {label}: attribution per group and input step", fontsize=10)
    _save(fig, path)
