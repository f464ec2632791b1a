"""Ablation: each regularization technique alone, over N seeds, tabulated with mean ± std and,
from 2 seeds on, each technique's paired difference from the baseline (archlab.stats).

A grid outgrows one machine: with a shared storage (``--storage URL``, the database sweeps
use) any number of workers take the next unfinished (technique, seed) cell until none is left;
the one that finishes the last cell writes the table, and any worker run after that prints it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from archlab import fingerprint, plots, rundir
from archlab.config import RegConfig, RunConfig, apply_overrides, labelled
from archlab.errors import ArchlabError
from archlab.presets import RESET_REG, STUDY_SELECTION, TECHNIQUES
from archlab.runner import config_changes, load_config, train_at
from archlab.stats import PairedDiff, paired_difference
from archlab.storage import file_lock, open_storage, sqlite_lock_path
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


# The metric each technique is compared with the baseline on, and whether higher is better.
COMPARE: dict[str, tuple[str, bool]] = {
    "images": ("test_accuracy", True),
    "text": ("test_accuracy", True),
    "sales": ("test_wmae", False),
}
BASELINE = "baseline"


def technique_configs(base: RunConfig, techniques: list[str]) -> dict[str, RunConfig]:
    """One config per technique: the base (every regularizer off for RESET_REG tasks) under the
    study's protocol (every epoch trained, the last scored: STUDY_SELECTION) + that one."""
    known = TECHNIQUES.get(base.task, {})
    unknown = [t for t in techniques if t not in known]
    if unknown:
        raise ArchlabError(
            f"unknown technique(s) {unknown} for task {base.task}; valid: {', '.join(known)}"
        )
    start = base
    if base.task in RESET_REG:
        start = labelled(replace(base, reg=RegConfig()), base, "ablation: every regularizer off")
    start = apply_overrides(start, STUDY_SELECTION, "ablation: the study's protocol")
    return {t: apply_overrides(start, known[t], f"ablation: {t}") for t in techniques}


def cells(base: RunConfig, techniques: list[str], seeds: int) -> dict[str, RunConfig]:
    """Every (technique, seed) run of the ablation by its run-dir name, e.g. 'l2-s1'."""
    if seeds < 1:
        raise ArchlabError(f"--seeds {seeds}: must be >= 1")
    return {
        f"{tech}-s{base.seed + s}": replace(cfg, seed=base.seed + s)
        for tech, cfg in technique_configs(base, techniques).items()
        for s in range(seeds)
    }


# A committed cell (a finished run's statistics, no weights; e.g. bench/ablation.py --cells)
# stands for a run when it was trained on the same data with the same config, up to these
# keys: where the data lives, and how the machine ran it (precision, threads, progress...).
CELL_FILES = ("config.yaml", "data.json", "history.csv", "metrics.json", "inputs.json")
CELL_MARK = "committed_cell.json"  # in a run dir filled from a committed cell: where from
_MACHINE_KEYS = ("data.path", "train.amp", "train.channels_last", "train.device",
                 "train.compile", "train.eval_batch_size")  # fmt: skip


def committed_cell(cell: Path, cfg: RunConfig) -> str | None:
    """Why ``cell`` may stand for a run of ``cfg`` (None: it may not, or is not complete)."""
    if not all((cell / f).is_file() for f in CELL_FILES) or not Path(cfg.data.path).is_file():
        return None  # a data folder would be hashed file by file: train instead
    saved = load_config(cell)
    changes = [c for c in config_changes(saved, cfg) if c.split(":")[0] not in _MACHINE_KEYS]
    if changes:
        return None
    old = json.loads((cell / rundir.INPUTS).read_text())
    if fingerprint.differences(old, fingerprint.fingerprint([cfg.data.path])):
        return None
    return f"{cell} (same config and data SHA-256; trained with train.amp={saved.train.amp})"


def run_ablation(
    base: RunConfig,
    techniques: list[str],
    seeds: int,
    out_dir: Path,
    *,
    cells_from: Path | None = None,
) -> Path:
    """Train every technique x seed in ``out_dir`` (resumable), then write the table and curves.

    With ``cells_from``, a cell found there (``<cells_from>/<name>``) for the same config and
    data is copied instead of trained (``committed_cells`` lists them afterwards)."""
    grid = cells(base, techniques, seeds)
    for name, cfg in grid.items():
        run_dir = out_dir / name
        if (run_dir / CELL_MARK).exists():
            continue
        why = (
            None
            if cells_from is None or run_dir.exists()
            else committed_cell(cells_from / name, cfg)
        )
        if why is not None:
            run_dir.mkdir(parents=True)
            for f in CELL_FILES:
                (run_dir / f).write_bytes((cells_from / name / f).read_bytes())
            write_text_atomic(run_dir / CELL_MARK, json.dumps({"from": why}) + "\n")
            continue
        train_at(cfg, run_dir, command=f"ablate {name.rsplit('-s', 1)[0]}")
    summarize(_runs(grid, out_dir), base.task, out_dir)
    return out_dir


def committed_cells(out_dir: Path) -> dict[str, str]:
    """{cell name: where it came from} for the cells of ``out_dir`` read, not trained."""
    return {
        p.parent.name: json.loads(p.read_text())["from"]
        for p in sorted(Path(out_dir).glob(f"*/{CELL_MARK}"))
    }


def _runs(grid: dict[str, RunConfig], out_dir: Path) -> dict[str, list[Path]]:
    runs: dict[str, list[Path]] = {}
    for name in grid:
        runs.setdefault(name.rsplit("-s", 1)[0], []).append(out_dir / name)
    return runs


HEARTBEAT_S = 30  # a worker's trial records it is alive this often while its cell trains
GRACE_S = 180  # a cell whose worker was silent this long is taken up again by another


def study_name(base: RunConfig, techniques: list[str], seeds: int) -> str:
    """One study per ablation: the same base config, techniques and seeds share it."""
    key = f"{base.to_yaml()}|{','.join(techniques)}|{seeds}".encode()
    return f"ablate-{base.task}-{base.model.name}-{hashlib.sha256(key).hexdigest()[:10]}"


def run_shared_ablation(
    base: RunConfig, techniques: list[str], seeds: int, out_dir: Path, storage: str
) -> int:
    """Take cells from the study in ``storage`` until none is waiting; train each in
    ``out_dir`` (a folder every worker sees). Returns the cells not finished yet (0: the
    table is written)."""
    grid = cells(base, techniques, seeds)
    lock = sqlite_lock_path(storage)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _quiet_optuna(), file_lock(lock):  # a fresh SQLite file must not get its tables twice
        db = open_storage(storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        study = optuna.create_study(storage=db, study_name=study_name(base, techniques, seeds),
                                    direction="maximize", load_if_exists=True)  # fmt: skip
    worker = f"{socket.gethostname()}:{os.getpid()}"
    key, higher = COMPARE.get(base.task) or COMPARE["images"]
    while True:
        with _quiet_optuna(), file_lock(lock):
            optuna.storages.fail_stale_trials(study)  # cells of workers that died
            _enqueue_missing(study, grid)
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                break
            trial = study.ask()
        cell = trial.user_attrs.get("cell")
        if cell not in grid:  # a server storage: another worker took the last cell first
            study.tell(trial, state=TrialState.FAIL)
            break
        trial.set_user_attr("worker", worker)
        try:
            with _heartbeat(db, trial):
                d = train_at(grid[cell], out_dir / cell, command=f"ablate {cell}")
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)  # waiting again at the next claim
            raise
        value = rundir.read_metrics(d).get(key)
        study.tell(trial, float(value if value is not None else 0.0) * (1 if higher else -1))
    done = {t.user_attrs.get("cell") for t in study.get_trials(states=(TrialState.COMPLETE,))}
    left = len(set(grid) - done)
    if not left:
        summarize(_runs(grid, out_dir), base.task, out_dir)
    return left


def _enqueue_missing(study: optuna.Study, grid: dict[str, RunConfig]) -> None:
    """Queue every cell that is neither finished, waiting nor running (new or failed ones)."""
    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    have = {t.user_attrs.get("cell") for t in study.get_trials(deepcopy=False, states=live)}
    for name in grid:
        if name not in have:
            study.enqueue_trial({}, user_attrs={"cell": name})


@contextlib.contextmanager
def _heartbeat(db: optuna.storages.RDBStorage, trial: optuna.Trial) -> Iterator[None]:
    """Record that ``trial`` is alive every HEARTBEAT_S seconds while the block runs."""
    stop = threading.Event()
    trial_id = trial._trial_id  # the storage's id; optuna.Trial keeps it private

    def beat() -> None:
        while True:
            db.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="archlab-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's heartbeat is 'experimental' and meant for Study.optimize; we drive it with
    ask/tell, so its warnings would be noise on the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        yield


def summarize(runs: dict[str, list[Path]], task: str, out_dir: Path) -> list[dict[str, Any]]:
    """Mean ± std per technique from the runs' metrics.json, and from 2 seeds on each
    technique's paired difference from the baseline; as CSV, Markdown and JSON."""
    cols = COLUMNS.get(task) or COLUMNS["images"]
    metrics = {tech: [rundir.read_metrics(d) for d in dirs] for tech, dirs in runs.items()}
    rows = []
    for tech, ms in metrics.items():
        row: dict[str, Any] = {"technique": tech, "seeds": len(ms)}
        for key in cols:
            vals = np.array([m[key] for m in ms if m.get(key) is not None], dtype=float)
            row[f"{key}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            # one seed has no spread (not a spread of 0): None, and no "±" in the table
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        rows.append(row)
    key, higher = COMPARE.get(task) or COMPARE["images"]
    diffs = paired_diffs(runs, metrics, key, higher)
    for row in rows:
        if (p := diffs.get(row["technique"])) is not None:
            row.update(diff_metric=key, diff_mean=p.diff_mean, diff_ci95=list(p.diff_ci),
                       verdict=p.verdict, pairs=p.n)  # fmt: skip
    write_text_atomic(out_dir / "ablation.csv", _csv(rows))
    write_text_atomic(out_dir / "ablation.json", json.dumps(rows, indent=2) + "\n")
    write_text_atomic(out_dir / "ablation.md", _markdown(rows, cols, key if diffs else None))
    curves = {t: rundir.read_history(dirs[0] / rundir.HISTORY) for t, dirs in runs.items()}
    metric = "accuracy" if task in ("images", "text") else "wmae"
    plots.learning_curves(curves, out_dir / "ablation_curves.png", metrics=("loss", metric))
    return rows


def paired_diffs(
    runs: dict[str, list[Path]],
    metrics: dict[str, list[dict[str, Any]]],
    key: str,
    higher_is_better: bool,
) -> dict[str, PairedDiff]:
    """Each technique's ``key`` minus the baseline's, paired by seed (the same split).

    Empty without a baseline; a technique with fewer than 2 pairs is left out. A pair whose
    split hashes differ is an error: its difference would mix in the split-to-split spread.
    """
    if BASELINE not in runs:
        return {}
    base = _by_seed(runs[BASELINE], metrics[BASELINE])
    out = {}
    for tech, dirs in runs.items():
        if tech == BASELINE:
            continue
        pairs = []
        for seed, (d, split, m) in sorted(_by_seed(dirs, metrics[tech]).items()):
            if seed not in base:
                continue
            bd, bsplit, bm = base[seed]
            if split != bsplit:
                raise ArchlabError(
                    f"{d}: its split differs from {bd}'s (seed {seed}); a paired difference "
                    "needs both runs on the same split"
                )
            if m.get(key) is not None and bm.get(key) is not None:
                pairs.append((m[key], bm[key]))
        if len(pairs) >= 2:
            treated, baseline = zip(*pairs, strict=True)
            out[tech] = paired_difference(treated, baseline, higher_is_better=higher_is_better)
    return out


def _by_seed(dirs: list[Path], ms: list[dict[str, Any]]) -> dict[int, tuple[Path, Any, dict]]:
    """seed -> (run dir, split hashes from data.json or None, metrics)."""
    out = {}
    for d, m in zip(dirs, ms, strict=True):
        path = d / rundir.DATA
        info = json.loads(path.read_text()) if path.exists() else {}
        out[load_config(d).seed] = (d, info.get("split_sha256"), m)
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    flat = []
    for r in rows:
        r = dict(r)
        if "diff_ci95" in r:
            r["diff_ci95_low"], r["diff_ci95_high"] = r.pop("diff_ci95")
        flat.append(r)
    fields = list(dict.fromkeys(k for r in flat for k in r))  # the baseline row has no diff
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(flat)
    return buf.getvalue()


def _cell(key: str, mean: float, std: float | None) -> str:
    """ "mean ± std", the mean alone for one seed; a count (epochs run) as a whole number."""
    whole = key in COUNTS and float(mean).is_integer() and not std

    def num(v: float) -> str:
        return f"{v:.0f}" if whole else f"{v:.4f}"

    return num(mean) if std is None else f"{num(mean)} ± {num(std)}"


COUNTS = ("epochs_run", "scored_epoch")  # columns that count: "3", not "3.0000"


def _markdown(rows: list[dict[str, Any]], cols: dict[str, str], diff_key: str | None) -> str:
    """The table; the paired columns go right after the metric they compare (wide tables
    scroll sideways in the report, and these two are what the ablation is for)."""
    keys = list(cols)
    at = keys.index(diff_key) + 1 if diff_key in cols else len(keys)
    head = list(cols.values())
    if diff_key:
        head[at:at] = [f"Δ {cols.get(diff_key, diff_key)} vs baseline (95% CI)", "verdict"]
    md = ["| technique | seeds | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
    for r in rows:
        cells = [_cell(k, r[f"{k}_mean"], r[f"{k}_std"]) for k in keys]
        if diff_key and "diff_mean" in r:
            lo, hi = r["diff_ci95"]
            cells[at:at] = [f"{r['diff_mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]", r["verdict"]]
        elif diff_key:  # the baseline itself, or too few pairs
            cells[at:at] = ["—", "—"]
        md.append(f"| {r['technique']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"
