"""The report's tables of numbers: one row per experiment (summary), one column per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from archlab import rundir

# metrics.json keys shown per part, in order, when present.
COLUMNS = {
    "images": [
        "test_accuracy",
        "test_balanced_accuracy",
        "test_f1_macro",
        "test_precision_macro",
        "test_recall_macro",
        "baseline_pixels_accuracy",
        "baseline_pixels_f1_macro",
        "epochs_run",
        "scored_epoch",
        "train_seconds",
    ],
    "text": [
        "test_accuracy",
        "test_balanced_accuracy",
        "test_f1_macro",
        "baseline_tfidf_accuracy",
        "baseline_tfidf_f1_macro",
        "test_blend_accuracy",  # the hybrid of network and TF-IDF, the weight chosen on validation
        "test_blend_f1_macro",
        "blend_weight",
        "epochs_run",
        "scored_epoch",
        "train_seconds",
    ],
    "sales": [
        "test_wmae",
        "test_mae",
        "test_rmse",
        "test_r2",
        "test_rmse_std",
        "test_r2_std",
        "baseline_last_step_wmae",
        "baseline_seasonal_naive_wmae",
        "baseline_mean_wmae",
        # horizon runs (data.horizon > 1): their baselines on the same test rows
        "baseline_seasonal_naive_3wk_wmae",
        "baseline_svd_seasonal_naive_wmae",
        "baseline_level_seasonal_naive_wmae",
        "baseline_last_value_wmae",
        "baseline_mstl_ets_wmae",  # the statistical peer (data.peer) and its fit's CPU time
        "baseline_mstl_ets_fit_seconds",
        "test_blend_wmae",  # the hybrid of network and peer, and what was chosen on validation
        "blend_weight",
        "correction_scale",
        "test_backtest_wmae_mean",
        "epochs_run",
        "train_seconds",
    ],
}
MAIN_METRIC = {"images": "test_accuracy", "text": "test_accuracy", "sales": "test_wmae"}


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4f}"
    return str(v)


def mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return fmt(float(arr[0]))
    return f"{fmt(float(arr.mean()))} ± {fmt(float(arr.std(ddof=1)))}"


def network_unused(metrics: dict[str, Any]) -> bool:
    """A sales run that chose correction scale 0: its forecasts are the naive base alone, so its
    numbers are the base's (`archlab explain` says the same in its note)."""
    return metrics.get("correction_scale") == 0


UNUSED = " (network not used)"  # beside such an experiment's summary rows


def blend_without_network(metrics: dict[str, Any]) -> bool:
    """A sales run whose network corrects its own forecasts but whose blend with the peer
    (what `predict` answers) chose correction scale 0: the blend is base and peer alone."""
    return metrics.get("blend_correction_scale") == 0 and not network_unused(metrics)


NO_NET_BLEND = " (its blend does not use the network)"


def _flag(ms: list[dict[str, Any]]) -> str:
    """What a summary row adds where every run of an experiment left its network out."""
    if ms and all(network_unused(m) for m in ms):
        return UNUSED
    return NO_NET_BLEND if ms and all(blend_without_network(m) for m in ms) else ""


def run_dirs(out: Path, exp: dict[str, Any]) -> dict[str, list[Path]]:
    base = out / exp["part"] / exp["key"]
    return {t: [base / r for r in runs] for t, runs in exp["runs"].items()}


def read_metrics(dirs: list[Path]) -> list[dict[str, Any]]:
    return [rundir.read_metrics(d) for d in dirs]


def summary_rows(out: Path, manifest: dict[str, Any], study: dict[str, Any]) -> list[list[str]]:
    """One row per experiment (per study number it is compared with)."""
    rows = []
    for exp in manifest["experiments"]:
        dirs = run_dirs(out, exp)
        if exp["kind"] == "ablation":
            key = MAIN_METRIC[exp["part"]]
            means = {t: float(np.mean([m[key] for m in read_metrics(d)])) for t, d in dirs.items()}
            pick = min if key.endswith("wmae") else max
            best = pick(means, key=means.__getitem__)
            flag = _flag([m for d in dirs.values() for m in read_metrics(d)])
            tied = [t for t in means if fmt(means[t]) == fmt(means[best])]  # equal as shown
            said = f"best: {best}" if len(tied) == 1 else f"tied: {', '.join(tied)}"
            rows.append([exp["title"] + flag, key, f"{said} {fmt(means[best])}", "—", "—"])
            continue
        ms = read_metrics(dirs[""])
        flag = _flag(ms)
        keys = [study["results"][s]["metric"] for s in exp["study"]] or [MAIN_METRIC[exp["part"]]]
        ens = ensemble_metrics(out, exp)
        for i, key in enumerate(keys):
            vals = [m[key] for m in ms if m.get(key) is not None]
            variants = [(exp["title"] + flag, vals, mean_std(vals) if vals else "n/a")]
            if ens.get(key) is not None:
                title = f"{exp['title']}, {len(ms)} seeds averaged{flag}"
                variants.append((title, [ens[key]], fmt(ens[key])))
            for title, values, ours in variants:
                if not exp["study"]:
                    rows.append([title, key, ours, "—", "—"])
                    continue
                ref = study["results"][exp["study"][i]]
                diff = float(np.mean(values)) - ref["value"] if values else float("nan")
                better = (diff < 0) if ref.get("lower_is_better") else (diff > 0)
                rows.append([title, key, ours, fmt(ref["value"]),
                             f"{diff:+.4f} ({'better' if better else 'worse'})"])  # fmt: skip
    return rows


def ensemble_metrics(out: Path, exp: dict[str, Any]) -> dict[str, float]:
    """The test metrics of the seeds' averaged prediction (reproduce.seed_ensemble), or {}."""
    if not exp.get("ensemble"):
        return {}
    path = out / exp["part"] / exp["key"] / exp["ensemble"]
    return json.loads(path.read_text())["ensemble"] if path.exists() else {}


def run_table(part: str, dirs: list[Path], ens: dict[str, float]) -> list[list[str]]:
    """One row per metric, one column per run (then mean ± std and the seeds' average).

    Metrics down and runs across: a part has up to a dozen metrics (baselines, epochs_run,
    train_seconds) but only a few seeds, so the table stays as narrow as the page.
    """
    ms = read_metrics(dirs)  # read each metric file once
    cols = [c for c in COLUMNS[part] if any(c in m for m in ms)]
    head = ["metric", *[d.name for d in dirs]]
    if len(ms) > 1:
        head.append("mean ± std")
    if ens:  # metrics of the averaged prediction; baselines and timings are per run
        head.append("seeds averaged")
    table = [head]
    for c in cols:
        row = [c, *[fmt(m.get(c)) for m in ms]]
        if len(ms) > 1:
            row.append(mean_std([m[c] for m in ms if c in m]))
        if ens:
            row.append(fmt(ens[c]) if c in ens else "—")
        table.append(row)
    return table
