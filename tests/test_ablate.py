"""Ablation tables: mean ± std per technique and, from 2 seeds on, the paired difference from
the baseline with its 95% interval and verdict (summarize on written run dirs, and end to end)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats

from archlab import rundir
from archlab.ablate import summarize
from archlab.cli import main
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.utils import write_json_atomic, write_text_atomic

BASE_ACC = [0.80, 0.82, 0.84]


def _fake_run(root: Path, tech: str, seed: int, acc: float, split: str = "") -> Path:
    """A finished run dir holding what summarize reads: config, data.json, metrics, history."""
    d = root / f"{tech}-s{seed}"
    d.mkdir(parents=True)
    cfg = replace(PRESETS["images-resnet18-smoke"], seed=seed)
    write_text_atomic(d / rundir.CONFIG, cfg.to_yaml())
    write_json_atomic(d / "data.json", {"split_sha256": {"test": split or f"split-of-seed-{seed}"}})
    rundir.write_metrics(
        {"test_accuracy": acc, "test_f1_macro": acc, "final_train_loss": 0.1,
         "final_val_loss": 0.2, "epochs_run": 2}, d)  # fmt: skip
    rundir.write_history(
        [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_accuracy": acc,
          "val_accuracy": acc} for e in (1, 2)], d / rundir.HISTORY)  # fmt: skip
    return d


def _runs(root: Path, accs: dict[str, list[float]]) -> dict[str, list[Path]]:
    return {t: [_fake_run(root, t, s, a) for s, a in enumerate(v)] for t, v in accs.items()}


def test_paired_columns_and_keys(tmp_path: Path) -> None:
    accs = {
        "baseline": BASE_ACC,
        "augment": [a + d for a, d in zip(BASE_ACC, (0.03, 0.04, 0.05), strict=True)],
        "dropout": [a + d for a, d in zip(BASE_ACC, (0.02, -0.03, 0.0), strict=True)],
        "l2": [a - 0.01 for a in BASE_ACC],
    }
    rows = {r["technique"]: r for r in summarize(_runs(tmp_path, accs), "images", tmp_path)}
    assert "diff_mean" not in rows["baseline"]
    aug = rows["augment"]
    # Differences 0.03, 0.04, 0.05: mean 0.04, se 0.01/sqrt(3), t(0.975, 2) = 4.303.
    assert aug["diff_mean"] == pytest.approx(0.04)
    half = 4.303 * 0.01 / 3**0.5
    assert aug["diff_ci95"] == pytest.approx([0.04 - half, 0.04 + half], abs=1e-4)
    assert aug["verdict"] == "helps" and aug["pairs"] == 3 and aug["diff_metric"] == "test_accuracy"
    assert rows["dropout"]["verdict"] == "cannot tell apart"
    assert rows["l2"]["verdict"] == "hurts" and rows["l2"]["diff_ci95"] == pytest.approx(
        [-0.01] * 2
    )
    ref = stats.ttest_rel(accs["dropout"], BASE_ACC).confidence_interval(0.95)
    assert rows["dropout"]["diff_ci95"] == pytest.approx([ref.low, ref.high])

    saved = {r["technique"]: r for r in json.loads((tmp_path / "ablation.json").read_text())}
    assert saved["augment"]["diff_ci95"] == pytest.approx(aug["diff_ci95"])
    with open(tmp_path / "ablation.csv") as f:
        table = {r["technique"]: r for r in csv.DictReader(f)}
    assert table["baseline"]["diff_mean"] == "" and table["l2"]["verdict"] == "hurts"
    assert float(table["augment"]["diff_ci95_low"]) == pytest.approx(aug["diff_ci95"][0])
    md = (tmp_path / "ablation.md").read_text().splitlines()
    assert md[0].startswith(
        "| technique | seeds | test accuracy | Δ test accuracy vs baseline (95% CI) | verdict |"
    )
    assert md[2].startswith("| baseline | 3 | 0.8200 ± 0.0200 | — | — |")
    assert "| +0.0400 [+0.0152, +0.0648] | helps |" in md[3]
    assert len({line.count("|") for line in md}) == 1  # every row has every column


def test_lower_is_better_metric_for_sales(tmp_path: Path) -> None:
    runs = _runs(tmp_path, {"baseline": BASE_ACC, "l2": [a - 0.01 for a in BASE_ACC]})
    for d in runs["baseline"] + runs["l2"]:  # the same numbers as WMAE: lower wins
        acc = rundir.read_metrics(d)["test_accuracy"]
        rundir.write_metrics({"test_wmae": acc, "epochs_run": 2}, d)
        rundir.write_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0,
                                  "val_wmae": acc}], d / rundir.HISTORY)  # fmt: skip
    rows = {r["technique"]: r for r in summarize(runs, "sales", tmp_path)}
    assert rows["l2"]["diff_metric"] == "test_wmae" and rows["l2"]["verdict"] == "helps"


def test_no_paired_columns_without_baseline_or_with_one_seed(tmp_path: Path) -> None:
    one = summarize(_runs(tmp_path / "a", {"baseline": [0.8], "l2": [0.9]}), "images", tmp_path)
    assert all("diff_mean" not in r for r in one)
    md = (tmp_path / "ablation.md").read_text()
    assert "verdict" not in md
    # one seed has no spread: no "± 0.0000", and null in ablation.json
    assert "| baseline | 1 | 0.8000 |" in md and "±" not in md
    assert md.splitlines()[2].endswith("| 2 |")  # epochs run: a count, not 2.0000
    assert one[0]["test_accuracy_std"] is None
    runs = _runs(tmp_path / "b", {"dropout": [0.8, 0.9], "l2": [0.9, 0.8]})
    assert all("diff_mean" not in r for r in summarize(runs, "images", tmp_path))


def test_pairs_on_different_splits_are_refused(tmp_path: Path) -> None:
    runs = _runs(tmp_path, {"baseline": BASE_ACC[:2]})
    runs["l2"] = [_fake_run(tmp_path, "l2", 0, 0.8), _fake_run(tmp_path, "l2", 1, 0.8, "other")]
    with pytest.raises(ArchlabError, match=r"l2-s1: its split differs from .*baseline-s1"):
        summarize(runs, "images", tmp_path)


def test_two_seed_ablation_end_to_end(tmp_path: Path, image_folder: Path, capsys) -> None:
    out = tmp_path / "abl"
    args = ["ablate", "--task", "images", "--model", "resnet18", "--data", str(image_folder),
            "--techniques", "baseline,dropout", "--seeds", "2", "--epochs", "1", "--out", str(out),
            "--set", "train.batch_size=16", "--set", "train.max_steps_per_epoch=2",
            "--set", "train.progress=off", "--set", "train.threads=1"]  # fmt: skip
    assert main(args) == 0
    assert "| Δ test accuracy vs baseline (95% CI) | verdict |" in capsys.readouterr().out
    drop = {r["technique"]: r for r in json.loads((out / "ablation.json").read_text())}["dropout"]
    accs = {
        t: [rundir.read_metrics(out / f"{t}-s{s}")["test_accuracy"] for s in (0, 1)]
        for t in ("baseline", "dropout")
    }
    diffs = [accs["dropout"][s] - accs["baseline"][s] for s in (0, 1)]
    assert drop["pairs"] == 2 and drop["diff_mean"] == pytest.approx(sum(diffs) / 2)
    if diffs[0] != diffs[1]:  # else a zero-width interval, which scipy leaves NaN
        ci = stats.ttest_rel(accs["dropout"], accs["baseline"]).confidence_interval(0.95)
        assert drop["diff_ci95"] == pytest.approx([ci.low, ci.high])
    # Pairing: seed k of every technique trains on the baseline's seed-k split; seeds differ.
    split = {
        (t, s): json.loads((out / f"{t}-s{s}" / "data.json").read_text())["split_sha256"]
        for t in ("baseline", "dropout")
        for s in (0, 1)
    }
    assert split["dropout", 0] == split["baseline", 0]
    assert split["dropout", 1] == split["baseline", 1]
    assert split["baseline", 0] != split["baseline", 1]


def test_report_shows_the_paired_columns(tmp_path: Path) -> None:
    from archlab.reproduce import EXPERIMENTS, run_study
    from tests.helpers import write_panel

    panel = write_panel(tmp_path / "walmart")
    abl = tuple(e for e in EXPERIMENTS if e.key == "rnn-ablation")
    sets = {"sales": ("data.test_steps=8", "data.val_steps=4")}
    report = run_study({"sales": str(panel)}, "smoke", 2, tmp_path / "out", experiments=abl,
                       overrides=sets, log=lambda s: None)  # fmt: skip
    row = json.loads((tmp_path / "out" / "sales" / "rnn-ablation" / "ablation.json").read_text())[1]
    lo, hi = row["diff_ci95"]
    md = (report / "report.md").read_text()
    assert "| test WMAE | Δ test WMAE vs baseline (95% CI) | verdict | test RMSE |" in md
    assert f"{row['diff_mean']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {row['verdict']} |" in md
    assert "95% Student-t interval over those paired differences" in md


def test_two_workers_share_the_cells_through_sqlite(tmp_path: Path, image_folder: Path) -> None:
    """Two `archlab ablate --storage` processes on one SQLite file: every cell is trained once,
    by one of them, and the table is written when the last cell finishes."""
    import sqlite3
    import subprocess
    import sys

    out = tmp_path / "abl"
    db = tmp_path / "abl.db"
    args = [sys.executable, "-m", "archlab", "ablate", "--task", "images", "--model", "resnet18",
            "--data", str(image_folder), "--techniques", "baseline,l2", "--seeds", "2",
            "--epochs", "1", "--out", str(out), "--storage", f"sqlite:///{db}",
            "--set", "train.batch_size=16", "--set", "train.max_steps_per_epoch=1",
            "--set", "train.progress=off", "--set", "train.threads=1"]  # fmt: skip
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]  # fmt: skip
    results = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], results
    names = {"baseline-s0", "baseline-s1", "l2-s0", "l2-s1"}
    assert {p.name for p in out.iterdir() if p.is_dir()} == names
    assert all(rundir.is_finished(out / n) for n in names)
    with sqlite3.connect(db) as con:  # one COMPLETE trial per cell, none trained twice
        done = con.execute(
            "SELECT a.value_json FROM trials t JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id WHERE a.key = 'cell' AND t.state = 'COMPLETE'"
        ).fetchall()
    assert sorted(json.loads(v) for (v,) in done) == sorted(names)
    assert (out / "ablation.md").exists()
    assert any("| l2 | 2 |" in stdout for stdout, _ in results)  # the last worker's table
    # any worker started afterwards finds nothing to train and prints the table
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "| baseline | 2 |" in rerun.stdout, rerun.stderr


def test_a_failed_or_abandoned_cell_is_queued_again(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from archlab.ablate import _enqueue_missing, cells

    grid = cells(PRESETS["images-resnet18-smoke"], ["baseline", "l2"], 1)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'q.db'}", direction="maximize")
    _enqueue_missing(study, grid)
    _enqueue_missing(study, grid)  # idempotent: each cell is queued once
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 2
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)  # a worker's Ctrl-C (or a stale heartbeat)
    _enqueue_missing(study, grid)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["cell"] for t in waiting) == ["baseline-s0", "l2-s0"]


def test_committed_cells_stand_in_for_the_runs_they_match(tmp_path: Path) -> None:
    from archlab.ablate import CELL_FILES, CELL_MARK, committed_cells, run_ablation
    from archlab.config import apply_overrides
    from tests.conftest import write_npz

    npz = write_npz(tmp_path / "set.npz")
    base = apply_overrides(PRESETS["images-resnet18-smoke"],
                           [f"data.path={npz}", "data.size=8", "train.epochs=1",
                            "train.progress=off", "train.threads=1"])  # fmt: skip
    first = tmp_path / "first"
    run_ablation(base, ["baseline", "l2"], 1, first)
    assert committed_cells(first) == {}
    cells = tmp_path / "cells" / base.model.name  # bench/ablation.py --cells keeps these files
    for name in ("baseline-s0", "l2-s0"):
        (cells / name).mkdir(parents=True)
        for f in CELL_FILES:
            (cells / name / f).write_bytes((first / name / f).read_bytes())
    # Same config (threads and precision may differ) and data: read, not trained.
    again = tmp_path / "again"
    runtime = apply_overrides(base, ["train.amp=off", "train.threads=2"])
    run_ablation(runtime, ["baseline", "l2"], 1, again, cells_from=cells)
    used = committed_cells(again)
    assert set(used) == {"baseline-s0", "l2-s0"} and "same config and data" in used["l2-s0"]
    assert not list(again.glob(f"*/{rundir.WEIGHTS}"))  # nothing trained
    assert (again / "ablation.json").read_text() == (first / "ablation.json").read_text()
    run_ablation(runtime, ["baseline", "l2"], 1, again, cells_from=cells)  # a rerun: the same
    assert committed_cells(again) == used
    assert (again / "l2-s0" / CELL_MARK).exists()
    # Another config, or other bytes behind the same path: trained as usual.
    other = apply_overrides(base, ["optim.lr=0.05"])
    run_ablation(other, ["baseline"], 1, tmp_path / "lr", cells_from=cells)
    assert committed_cells(tmp_path / "lr") == {}
    assert (tmp_path / "lr" / "baseline-s0" / rundir.WEIGHTS).exists()
    write_npz(npz, n_per_class=21)
    run_ablation(base, ["baseline"], 1, tmp_path / "data", cells_from=cells)
    assert committed_cells(tmp_path / "data") == {}


def test_ctrl_c_in_an_ablation_says_the_same_command_goes_on(
    tmp_path: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from archlab import ablate

    def stopped(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ablate, "run_ablation", stopped)
    out = tmp_path / "abl"
    args = ["ablate", "--task", "images", "--data", str(image_folder), "--out", str(out)]
    assert main(args) == 130
    assert (
        f"to go on, run this command again with --out {out}: finished runs are kept; one "
        "interrupted resumes" in capsys.readouterr().err
    )
