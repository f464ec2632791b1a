"""Ablation: each regularization technique alone, over N seeds, tabulated with mean ± std."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from archlab.config import RegConfig, RunConfig, apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import RESET_REG, TECHNIQUES
from archlab.report import artifacts, plots
from archlab.runner import train_at
from archlab.utils import write_text_atomic

# Columns of the table: metrics.json key -> column title.
COLUMNS: dict[str, dict[str, str]] = {
    "images": {
        "test_accuracy": "test accuracy",
        "test_balanced_accuracy": "balanced accuracy",
        "test_f1_macro": "macro F1",
        "final_train_loss": "final train loss",
        "final_val_loss": "final val loss",
        "epochs_run": "epochs run",
    },
    "text": {
        "test_accuracy": "test accuracy",
        "test_balanced_accuracy": "balanced accuracy",
        "test_f1_macro": "macro F1",
        "baseline_tfidf_accuracy": "TF-IDF accuracy",
        "baseline_tfidf_f1_macro": "TF-IDF macro F1",
        "final_train_loss": "final train loss",
        "final_val_loss": "final val loss",
        "epochs_run": "epochs run",
    },
    "sales": {
        "test_wmae": "test WMAE",
        "test_rmse": "test RMSE",
        "test_r2": "test R²",
        "baseline_last_step_wmae": "last-step WMAE",
        "baseline_seasonal_naive_wmae": "seasonal-naive WMAE",
        "baseline_mean_wmae": "mean-baseline WMAE",
        "final_train_loss": "final train loss",
        "final_val_loss": "final val loss",
        "epochs_run": "epochs run",
    },
}


def technique_configs(base: RunConfig, techniques: list[str]) -> dict[str, RunConfig]:
    """One config per technique: the base (every regularizer off for RESET_REG tasks) + that one."""
    known = TECHNIQUES.get(base.task, {})
    unknown = [t for t in techniques if t not in known]
    if unknown:
        raise ArchlabError(
            f"unknown technique(s) {unknown} for task {base.task}; valid: {', '.join(known)}"
        )
    start = replace(base, reg=RegConfig()) if base.task in RESET_REG else base
    return {t: apply_overrides(start, known[t]) for t in techniques}


def run_ablation(base: RunConfig, techniques: list[str], seeds: int, out_dir: Path) -> Path:
    """Train every technique x seed in ``out_dir`` (resumable), then write the table and curves."""
    if seeds < 1:
        raise ArchlabError(f"--seeds {seeds}: must be >= 1")
    cfgs = technique_configs(base, techniques)
    runs: dict[str, list[Path]] = {}
    for tech, cfg in cfgs.items():
        for s in range(seeds):
            run_cfg = replace(cfg, seed=base.seed + s)
            d = train_at(run_cfg, out_dir / f"{tech}-s{base.seed + s}", command=f"ablate {tech}")
            runs.setdefault(tech, []).append(d)
    summarize(runs, base.task, out_dir)
    return out_dir


def summarize(runs: dict[str, list[Path]], task: str, out_dir: Path) -> list[dict[str, Any]]:
    """Mean ± std per technique from the runs' metrics.json, as CSV, Markdown and JSON."""
    cols = COLUMNS.get(task) or COLUMNS["images"]
    rows = []
    for tech, dirs in runs.items():
        ms = [artifacts.read_metrics(d) for d in dirs]
        row: dict[str, Any] = {"technique": tech, "seeds": len(ms)}
        for key in cols:
            vals = np.array([m[key] for m in ms if m.get(key) is not None], dtype=float)
            row[f"{key}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(out_dir / "ablation.csv", buf.getvalue())
    write_text_atomic(out_dir / "ablation.json", json.dumps(rows, indent=2) + "\n")
    md = [
        "| technique | seeds | " + " | ".join(cols.values()) + " |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for r in rows:
        cells = [f"{r[f'{k}_mean']:.4f} ± {r[f'{k}_std']:.4f}" for k in cols]
        md.append(f"| {r['technique']} | {r['seeds']} | " + " | ".join(cells) + " |")
    write_text_atomic(out_dir / "ablation.md", "\n".join(md) + "\n")
    curves = {t: artifacts.read_history(dirs[0] / artifacts.HISTORY) for t, dirs in runs.items()}
    metric = "accuracy" if task in ("images", "text") else "wmae"
    plots.learning_curves(curves, out_dir / "ablation_curves.png", metrics=("loss", metric))
    return rows
