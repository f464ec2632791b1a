"""What every sales explanation shares: wording that follows the data's step, feature groups,
the run's forecast as one module, integrated gradients, permutation importance and the charts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients
from torch import nn

from archlab.data.sales import BUSINESS, months_per_step, step_unit
from archlab.errors import ArchlabError
from archlab.explain import ExplainRequest, frozen, subset

IDENTITY = "series identity"  # the store/department embeddings (permutation only: ids)
PERMUTATION_SAMPLES = 10_000  # test samples scored by permutation importance (--limit 0: all)
CHUNK = 4096  # samples per forward pass
# Input positions (samples x IG steps x sequence length) per IG pass: what its backward keeps
# grows with all three. 2**19 is a next-step Walmart window (17 steps) x 50 IG steps x 617
# samples; a 39-week horizon window (55 steps) then takes 190 samples per pass.
IG_POSITIONS = 1 << 19


# --- wording ---
class StepWords(NamedTuple):
    """How explanations name time, from the run's saved step length and season."""

    step: str  # "week", "day", "month", "quarter", "3-day step"
    season_ago: str  # the seasonal reference: "same week last year", "same day last week"
    target: str  # "the week being forecast"


_CYCLES = (("week", 7.0), ("month", 30.44), ("quarter", 91.31), ("year", 365.25))  # days


def step_words(step_days: int, season: int, horizon: int = 1, weekdays: int = 7) -> StepWords:
    """Words for a panel of ``step_days``-day steps whose season is ``season`` steps. With a
    horizon longer than the season, later steps' references lie more than a season back."""
    k, unit = months_per_step(step_days), step_unit(step_days, weekdays)
    per_step = 30.44 * k if k else 7 / BUSINESS if weekdays == BUSINESS else step_days
    span = season * per_step  # the season's length in days
    # Within 5% of a calendar cycle (52 weeks = 364 days is a year) the cycle names it.
    cycle = next((c for c, d in _CYCLES if abs(span - d) <= 0.05 * d and c != unit), None)
    if cycle and unit in ("day", "week", "4-week period", "month", "quarter", "half-year"):
        ago = f"same {unit} last {cycle}"
    elif cycle and unit == "business day":
        ago = f"same day last {cycle}"
    else:
        ago = f"{season} steps earlier" if season != 1 else "the step before"
    if horizon > season:
        ago += " or earlier"
    return StepWords(unit, ago, f"the {unit} being forecast")


# --- feature groups ---
RECENT, HOLIDAY, EVENTS = "recent sales", "holiday flag", "event flags"
CALENDAR, LEVEL, SEASON = "calendar & position", "level shift", "season ago"
# Meaning of each input column the featurizer names (data/sales_horizon.py; the former
# next-step featurizer's names too); SEASON is worded per run (step_words).
NAME_GROUPS: dict[str, str] = {
    "sales": RECENT,
    "observed": RECENT,
    "group_sales": RECENT,
    "sales_last_year": SEASON,
    "observed_last_year": SEASON,
    "sales_last_year_next": SEASON,
    "group_sales_last_year": SEASON,
    "group_sales_last_year_next": SEASON,
    "ref_sales": SEASON,
    "ref_observed": SEASON,
    "ref_smoothed": SEASON,
    "ref_group_smoothed": SEASON,
    "holiday": HOLIDAY,
    "event": EVENTS,
    "event_last_year": EVENTS,
    "ref_event": EVENTS,
    "season_sin": CALENDAR,
    "season_cos": CALENDAR,
    "target_step": CALENDAR,
    "future": CALENDAR,
    "steps_ahead": CALENDAR,
    "level_shift": LEVEL,
}


def feature_groups(
    names: Sequence[str],
    covariates: Sequence[str],
    markdowns: Sequence[str],
    words: StepWords,
    known: Sequence[str] | None = None,
    holiday: bool = True,
) -> dict[str, list[int]]:
    """Group name -> column indices, in the order the groups first occur. Covariates are
    grouped as markdowns (``markdowns`` and their ``_missing`` flags) or, for a horizon run
    (``known`` given), by role: known in advance or past-only. Without a holiday column in
    the data (``holiday`` False) its all-zero flag is no group."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if NAME_GROUPS.get(n) == HOLIDAY and not holiday:
            continue
        if n in markdowns or (n.endswith("_missing") and n.removesuffix("_missing") in markdowns):
            g = "markdowns"
        elif n in covariates or n.removesuffix("_missing") in covariates:
            if known is None:
                g = "covariates"
            else:
                g = "known covariates" if n in known else "past-only covariates"
        else:
            g = NAME_GROUPS.get(n, "other inputs")
            if g == SEASON:
                g = words.season_ago
        groups.setdefault(g, []).append(i)
    return groups


def run_groups(task: Any, cfg: Any, words: StepWords) -> dict[str, list[int]]:
    """``feature_groups`` of a sales run's inputs, from its featurizer and resolved config."""
    fz = task.fitted.featurizer
    holiday = bool(task.data_cfg.holiday_column)
    return feature_groups(list(fz.feature_names), fz.covariates, cfg.data.markdown_columns, words,
                          fz.known_covariates, holiday=holiday)  # fmt: skip


# --- the run's forecast ---
class SalesTensors(NamedTuple):
    """A split as the network sees it (the batches of every sales framing)."""

    x: torch.Tensor  # (N, L, F) inputs
    cats: torch.Tensor  # (N, k) series ids
    base: torch.Tensor  # (N,) or (N, H): the baseline the network corrects, scaled units
    targets: torch.Tensor  # the framing's targets (scaled target, scale, offset, ...)


class Forecast(nn.Module):
    """The run's forecast in scaled units as its task computes it (the base plus the network's
    correction, as scaled at evaluation), so explanations see what the run scores; ``step``
    picks one horizon step."""

    def __init__(self, model: nn.Module, task: Any, step: int | None = None) -> None:
        super().__init__()
        self.model, self.task, self.step = model, task, step

    def forward(self, x: torch.Tensor, cats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        out, _ = self.task.step(self.model, (x, cats, base, None))
        return out if self.step is None else out[:, self.step]


def forward(net: Callable[..., torch.Tensor], x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    """``net(x, *args)`` in chunks of CHUNK samples, without gradients."""
    with torch.no_grad():
        parts = [net(x[i : i + CHUNK], *(a[i : i + CHUNK] for a in args))
                 for i in range(0, len(x), CHUNK)]  # fmt: skip
        return torch.cat(parts)


def load_split(batches: Any) -> SalesTensors:
    """All samples of a split's Batches, in order."""
    parts = list(zip(*batches.iterate(CHUNK), strict=True))
    return SalesTensors(*(torch.cat(p) for p in parts))


def integrated_gradients(
    net: nn.Module,
    x: torch.Tensor,
    args: tuple[torch.Tensor, ...] = (),
    steps: int = 50,
    tolerance: float = 0.01,
    max_steps: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IG of ``net(x, *args)`` ((N,) outputs) w.r.t. ``x`` against the all-zero input (every
    standardized input at its training mean, no flags), and the (N,) completeness gaps.
    Samples whose gap exceeds ``tolerance`` of their output change are redone with twice the
    steps, up to ``max_steps`` (as for text). Batched: a chunk of samples times all steps."""
    net.eval()
    change = forward(net, x, *args) - forward(net, torch.zeros_like(x), *args)
    attr, delta = torch.zeros_like(x), torch.zeros(len(x), dtype=torch.float64, device=x.device)
    todo = torch.arange(len(x), device=x.device)
    while len(todo):
        a, d = _ig_pass(net, x[todo], tuple(t[todo] for t in args), steps)
        attr[todo], delta[todo] = a, d.double()
        if steps >= max_steps:
            break
        # An absolute floor: a sample whose output does not move has nothing to complete.
        todo = todo[d.abs() > tolerance * change[todo].abs() + 1e-6]
        steps = min(2 * steps, max_steps)
    return attr, delta


def _ig_pass(
    net: nn.Module, x: torch.Tensor, args: tuple[torch.Tensor, ...], steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    ig = IntegratedGradients(net)
    chunk = max(1, IG_POSITIONS // (steps * x.shape[1]))
    attrs, deltas = [], []
    # cuDNN's RNN backward refuses eval mode; the native kernels compute the same thing.
    with torch.backends.cudnn.flags(enabled=False), frozen(net):
        for i in range(0, len(x), chunk):
            a, d = ig.attribute(
                x[i : i + chunk],
                baselines=torch.zeros_like(x[i : i + chunk]),
                additional_forward_args=tuple(t[i : i + chunk] for t in args),
                n_steps=steps,
                return_convergence_delta=True,
            )
            attrs.append(a.detach())
            deltas.append(d.detach())
    return torch.cat(attrs), torch.cat(deltas)


def completeness(
    net: nn.Module, x: torch.Tensor, args: tuple[torch.Tensor, ...], delta: torch.Tensor
) -> torch.Tensor:
    """Each sample's IG completeness gap relative to its output change."""
    change = forward(net, x, *args) - forward(net, torch.zeros_like(x), *args)
    return delta.abs().cpu() / change.abs().cpu().double().clamp(min=1e-12)


def gap_summary(rel: torch.Tensor) -> dict[str, float]:
    return {
        "ig_completeness_gap_relative_median": float(rel.median()),
        "ig_completeness_gap_relative_max": float(rel.max()),
    }


def permutation_importance(
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    data: SalesTensors,
    groups: dict[str, list[int]],
    score: Callable[[torch.Tensor], float | Sequence[float]],
    identity: bool = False,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per group: the mean (and std over ``repeats`` shuffles) rise in WMAE when that group's
    columns, at every input position, are shuffled across samples. ``predict(x, cats, base)``
    gives outputs and ``score(outputs)`` their WMAE, or [WMAE, WMAE of step 1, ...] for a
    horizon run (then the rise per step too). ``identity`` also shuffles the series ids the
    embeddings read (``IDENTITY``)."""

    def scores(x: torch.Tensor, cats: torch.Tensor) -> np.ndarray:
        out = forward(predict, x, cats, data.base)
        return np.array(np.atleast_1d(score(out)), dtype=float)  # None (no rows) -> nan

    ref = scores(data.x, data.cats)
    gen = torch.Generator().manual_seed(seed)
    plan: list[tuple[str, list[int] | None]] = list(groups.items())
    if identity and data.cats.numel():
        plan.append((IDENTITY, None))
    out: dict[str, dict[str, Any]] = {}
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
            rises.append(scores(x, cats) - ref)
        r = np.array(rises)
        out[name] = {"wmae_rise": float(r[:, 0].mean()), "std": float(r[:, 0].std())}
        if r.shape[1] > 1:
            out[name]["wmae_rise_by_step"] = [_finite(v) for v in r[:, 1:].mean(0)]
    out["_reference"] = {"wmae_rise": 0.0, "std": 0.0, "wmae": float(ref[0])}
    if len(ref) > 1:
        out["_reference"]["wmae_by_step"] = [_finite(v) for v in ref[1:]]
    return out


def wmae_permutation_view(
    req: ExplainRequest,
    net: Forecast,
    task: Any,
    data: SalesTensors,
    groups: dict[str, list[int]],
    out: dict[str, Any],
    *,
    rows: str = "test samples",
    title: str = "Permutation importance by feature group",
) -> None:
    """Permutation importance of each group on the test WMAE, into ``out`` and a chart."""
    # 25 forward passes over the samples: on the whole Walmart test split (115k windows)
    # that is minutes of CPU per model, so a seeded subset unless --limit 0.
    sel = subset(len(data.x), PERMUTATION_SAMPLES if req.limit else 0).to(data.x.device)
    part = SalesTensors(*(t[sel] for t in data))
    t_part = part.targets.cpu()
    imp = permutation_importance(
        net,
        part,
        groups,
        lambda o: float(task.metrics(o.cpu(), t_part)["wmae"]),
        identity=len(getattr(net.model, "embeddings", ())) > 0,
    )
    ref = imp.pop("_reference")["wmae"]
    out["permutation"] = imp
    out["test_wmae"] = ref
    out["n_permutation"] = len(sel)
    path = req.out / "permutation_importance.png"
    bar_chart(
        {g: v["wmae_rise"] for g, v in imp.items()},
        {g: v["std"] for g, v in imp.items()},
        f"rise in WMAE when shuffled ({len(sel):,} {rows}, WMAE {ref:,.0f})",
        title,
        path,
    )
    out["files"].append(path.name)


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None  # JSON has no NaN (a step without rows)


def series_rows(
    rows: pd.DataFrame, series_keys: tuple[str, ...], series: str
) -> tuple[str, torch.Tensor]:
    """Test rows of the series ``series`` ("Store=1,Dept=1"); "" = the largest by test sales.

    A value may hold commas ("shop=Main St, Springfield"): ``series`` is split only at the
    commas that start another key's pair."""
    keys = list(series_keys)
    if not series:
        by_key = rows[keys].astype(str)
        best = rows.groupby([by_key[k] for k in keys]).actual.sum().idxmax()
        want = dict(zip(keys, best if isinstance(best, tuple) else (best,), strict=True))
    else:
        want = {}
        starts = "|".join(re.escape(k) for k in keys)
        for part in re.split(rf",(?=\s*(?:{starts})\s*=)", series):
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in keys:
                first = rows[keys].astype(str).iloc[0]  # an example from the run's own series
                eg = ",".join(f"{k}={first[k]}" for k in keys)
                raise ArchlabError(
                    f"--series {series}: give KEY=VALUE pairs of the series keys "
                    f"{', '.join(keys)}, e.g. --series {eg}"
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


def heatmap(
    grid: np.ndarray,
    rows: list[str],
    columns: list[str],
    xlabel: str,
    colorbar: str,
    title: str,
    path: Path,
    signed: bool = True,
) -> None:
    """``grid`` (rows x columns) as a heatmap: diverging around 0 when ``signed``."""
    from archlab.plots import _save, plt

    n = grid.shape[1]
    top = float(np.nanmax(np.abs(grid))) if grid.size else 0.0
    top = top or 1.0
    fig, ax = plt.subplots(figsize=(1.6 + 0.4 * max(n, 6), 0.45 * len(rows) + 1.6))
    cmap, lo = ("RdBu_r", -top) if signed else ("viridis", 0.0)
    im = ax.imshow(grid, cmap=cmap, vmin=lo, vmax=top, aspect="auto")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    every = max(1, n // 20)  # at most ~20 labels on a long horizon
    ax.set_xticks(range(0, n, every), columns[::every], fontsize=8)
    ax.set_xlabel(xlabel)
    fig.colorbar(im, ax=ax, label=colorbar)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def input_steps_heatmap(
    grid: np.ndarray, groups: list[str], label: str, target: str, path: Any
) -> None:
    """One series' mean attribution per group (rows) and input step (columns, t = target)."""
    L = grid.shape[1]
    heatmap(
        grid,
        groups,
        [f"t-{L - 1 - i}" if i < L - 1 else "t" for i in range(L)],
        f"input step (t = {target})",
        "mean IG attribution (sales units)",
        f"Series {label}: attribution per group and input step",
        path,
    )
