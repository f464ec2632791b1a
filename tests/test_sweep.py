"""Sweeps: search-space validation, pruning, best.yaml round trip, two workers on one study."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from archlab.cli import build_config, main
from archlab.config import RunConfig
from archlab.errors import ArchlabError
from archlab.sweep import DEFAULT_SPACE, Param, ReportToTrial, search_space
from tests.conftest import REPO
from tests.helpers import write_tweets

TINY = ["--preset", "text-bilstm-smoke", "--epochs", "2", "--set", "model.embed_dim=8",
        "--set", "model.hidden_size=8", "--set", "model.num_layers=1", "--set", "train.threads=1",
        "--set", "data.min_frequency=1", "--set", "train.progress=off"]  # fmt: skip


@pytest.fixture
def tweets(tmp_path: Path) -> Path:
    return write_tweets(tmp_path / "tweets.csv", n_per_class=10)


def _base(tweets: Path) -> RunConfig:
    return build_config(None, "text-bilstm-smoke", str(tweets), None, 2, None, None)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("- optim.lr\n", ["expected a mapping"]),
        ("optim.lr: [1, 2\n", ["not valid YAML"]),
        ("optim.lrr: {type: float, low: 0.1, high: 1}\n", ["optim.lrr", "valid keys", "lr"]),
        ("optimizer.lr: {type: float, low: 0.1, high: 1}\n", ["'optimizer.lr'", "section"]),
        ("optim.lr: {type: normal, low: 0.1, high: 1}\n", ["optim.lr", "type", "'normal'"]),
        ("optim.lr: {type: float, low: 0.1}\n", ["optim.lr", "high must be a number"]),
        ("optim.lr: {type: float, low: 1, high: 0.1}\n", ["optim.lr", "below high"]),
        ("optim.lr: {type: float, low: 0, high: 0.1, log: true}\n", ["optim.lr", "low > 0"]),
        ("optim.lr: {type: float, low: 0.1, high: 1, step: 2}\n", ["optim.lr", "'step'"]),
        ("optim.lr: 0.1\n", ["optim.lr", "expected a mapping"]),
        ("reg.dropout: {type: float, low: 0, high: 1}\n", ["reg.dropout=1.0", "[0, 1)"]),
        ("reg.patience: {type: int, low: 1, high: 4.5}\n", ["reg.patience", "an integer"]),
        ("optim.name: {type: categorical}\n", ["optim.name", "choices"]),
        ("optim.name: {type: categorical, choices: [adam, rmsprop]}\n", ["'rmsprop'", "adam"]),
        ("optim.name: {type: categorical, choices: [adam], low: 1}\n", ["optim.name", "low"]),
        ("reg.dropout: {type: float, low: 0, high: 0.5, choices: [0.1]}\n", ["reg.dropout"]),
    ],
)
def test_space_file_errors_name_the_key(
    tmp_path: Path, tweets: Path, text: str, needles: list[str]
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ArchlabError) as e:
        search_space(path, _base(tweets))
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path))
    for needle in needles:
        assert needle in message


def test_space_file_parses_and_cli_rejects_bad_space(
    tmp_path: Path, tweets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "space.yaml"
    # PyYAML reads 1e-4 (no dot) as a string; bounds accept it as a number.
    path.write_text(
        "optim.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
        "optim.name: {type: categorical, choices: [adam, sgd]}\n"
        "reg.patience: {type: int, low: 1, high: 3}\n"
    )
    space = search_space(path, _base(tweets))
    assert space == {
        "optim.lr": Param("float", 1e-4, 1e-2, log=True),
        "optim.name": Param("categorical", choices=("adam", "sgd")),
        "reg.patience": Param("int", 1, 3),
    }
    assert search_space(None, _base(tweets)) == DEFAULT_SPACE
    path.write_text("reg.dropout: {type: float, low: 0, high: 2}\n")
    argv = ["sweep", *TINY, "--data", str(tweets), "--trials", "2", "--space", str(path),
            "--out", str(tmp_path / "sweep")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "reg.dropout=2.0" in err
    assert not (tmp_path / "sweep").exists()  # validated before anything was written


def test_pruned_trial_stops_training_but_not_at_the_last_epoch() -> None:
    reported: list[tuple[float, int]] = []
    trial = SimpleNamespace(report=lambda v, step: reported.append((v, step)),
                            should_prune=lambda: True)  # fmt: skip
    trainer = SimpleNamespace(cfg=SimpleNamespace(epochs=3), state=SimpleNamespace(stop=False))
    cb = ReportToTrial(trial, "val_loss")  # type: ignore[arg-type]
    cb.on_epoch_end(trainer, {"epoch": 3, "val_loss": 0.5})  # type: ignore[arg-type]
    assert not cb.pruned and not trainer.state.stop
    cb.on_epoch_end(trainer, {"epoch": 2, "val_loss": 0.7})  # type: ignore[arg-type]
    assert cb.pruned and trainer.state.stop
    assert reported == [(0.5, 3), (0.7, 2)]


def test_sweep_writes_best_yaml_that_trains_again(
    tmp_path: Path, tweets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", *TINY, "--data", str(tweets), "--trials", "3", "--out", str(out)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(out)
    assert lines[-2].startswith("best val_f1_macro=") and str(out / "best.yaml") in lines[-2]

    study = optuna.load_study(study_name="text-bilstm-smoke", storage=f"sqlite:///{out}/sweep.db")
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all((out / f"trial-{n}" / "metrics.json").exists() for n in range(3))
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["number", "state", "value", "optim.lr"]
    assert len(rows) == 4
    # the same study run again with other settings: refused, not mixed into one table
    assert main([*argv, "--set", "reg.dropout=0.1"]) == 2
    err = capsys.readouterr().err
    assert "was run with other settings (reg.dropout: 0.5 -> 0.1)" in err, err

    best = RunConfig.from_yaml((out / "best.yaml").read_text())
    trial_cfg = RunConfig.from_yaml(
        (out / f"trial-{study.best_trial.number}/config.yaml").read_text()
    )
    assert best == trial_cfg
    assert best.optim.lr == study.best_params["optim.lr"] and best.reg.early_stop

    # The best config trains again as it is, and flags still apply on top of it.
    assert main(["train", "--config", str(out / "best.yaml"), "--epochs", "1",
                 "--out", str(tmp_path / "again")]) == 0  # fmt: skip
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    again = RunConfig.from_yaml((run_dir / "config.yaml").read_text())
    assert again.optim == best.optim and again.reg == best.reg and again.train.epochs == 1


def test_train_config_conflicts_with_task(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: no such file" in capsys.readouterr().err
    path = tmp_path / "c.yaml"
    path.write_text(RunConfig.from_dict({"task": "text"}).to_yaml())
    assert main(["train", "--config", str(path), "--task", "text"]) == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.xdist_group("sweep")
def test_two_workers_share_one_study_exactly(tmp_path: Path, tweets: Path) -> None:
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "archlab", "sweep", *TINY, "--data", str(tweets),
            "--trials", "6", "--out", str(out), "--study-name", "shared"]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, err[-2000:]

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{out}/sweep.db")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == 6
    assert sum(t.state.is_finished() for t in study.trials) == 6
    run_dirs = {t.user_attrs["run_dir"] for t in study.trials}
    assert run_dirs == {str((out / f"trial-{n}").resolve()) for n in range(6)}
    assert RunConfig.from_yaml((out / "best.yaml").read_text()).task == "text"


def test_a_searchs_trials_print_the_same_first_lines_once(
    tmp_path: Path, tweets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = [a.replace("train.progress=off", "train.progress=plain") for a in TINY]
    argv = ["sweep", *tiny, "--data", str(tweets), "--trials", "2", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("text normalization over") == 1 and err.count("\\nconfig: ") <= 1
    assert err.count("archlab: precision: ") == 1  # the trainer's note, as the data's
    assert err.count("trial 1: ") == 1  # the second trial ran, and said so


def test_a_resumed_run_of_a_search_does_not_repeat_its_first_lines(
    tmp_path: Path, tweets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab.config import apply_overrides
    from archlab.runner import train_at
    from archlab.train.callbacks import Callback

    class CtrlC(Callback):
        def on_epoch_end(self, trainer: object, row: dict) -> None:
            raise KeyboardInterrupt

    cfg = apply_overrides(_base(tweets), ["train.progress=plain", "train.threads=1"])
    said: set[str] = set()
    train_at(cfg, tmp_path / "a", said=said)  # an earlier trial printed the data's lines
    assert any(line.startswith("text normalization") for line in said)
    with pytest.raises(KeyboardInterrupt):
        train_at(cfg, tmp_path / "b", callbacks=[CtrlC()])
    capsys.readouterr()
    train_at(cfg, tmp_path / "b", said=said)  # resumed (ablations and reproduce do this)
    err = capsys.readouterr().err
    assert (tmp_path / "b" / "metrics.json").exists()
    assert not [line for line in said if line in err.splitlines()]


def test_a_partial_config_changes_the_task_or_presets_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from archlab.cli import build_config

    part = tmp_path / "part.yaml"
    part.write_text("optim:\n  lr: 0.002\ntrain:\n  epochs: 3\n")
    cfg = build_config("text", None, None, None, None, None, ["train.epochs=2"], part)
    assert (cfg.task, cfg.optim.lr, cfg.train.epochs) == ("text", 0.002, 2)  # flags on top
    assert cfg.sources["optim.lr"] == f"config {part}"
    assert main(["train", "--config", str(part)]) == 2
    assert f"--preset NAME: --config {part} names no task" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("task: text\n")
    assert main(["train", "--config", str(tmp_path / "run")]) == 2
    assert "a folder, not a config file; a run's config is" in capsys.readouterr().err
    part.write_text("train:\n  epochs: two\n")
    assert main(["train", "--config", str(part), "--task", "text"]) == 2
    assert "train.epochs='two': expected an integer" in capsys.readouterr().err


def _interrupted_sweep(
    tmp_path: Path, tweets: Path, monkeypatch: pytest.MonkeyPatch, trials: int
) -> tuple[Any, dict[str, Param], Path]:
    """A sweep of ``trials`` whose last trial a Ctrl-C stopped after epoch 1's checkpoint:
    its base config, space and output folder, to run it again."""
    from archlab import sweep
    from archlab.config import apply_overrides

    base = apply_overrides(_base(tweets), [a for a in TINY if "=" in a])
    space = {"optim.lr": Param("float", 1e-3, 1e-2, log=True)}
    out = tmp_path / "s"
    report = ReportToTrial.on_epoch_end

    def ctrl_c_in_the_last(self: ReportToTrial, trainer: object, row: dict) -> None:
        report(self, trainer, row)
        if self.trial.number == trials - 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ReportToTrial, "on_epoch_end", ctrl_c_in_the_last)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(base, space, trials, out, study_name="s")
    monkeypatch.setattr(ReportToTrial, "on_epoch_end", report)
    return base, space, out


def test_an_interrupted_trial_resumes_and_is_not_counted(
    tmp_path: Path, tweets: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from archlab import sweep

    base, space, out = _interrupted_sweep(tmp_path, tweets, monkeypatch, 2)
    # where the trial stopped; how to go on is the sweep's to say (the same command again)
    err = capsys.readouterr().err
    assert re.search(r"^archlab: interrupted trial-1 (at|after) epoch \d[^:\n]*$", err, re.M), err
    assert "train --resume" not in err
    result = sweep.run_sweep(base, space, 2, out, study_name="s")  # the same command again
    assert "trial 2: resumes interrupted trial 1" in capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out}/sweep.db")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"] and result.finished == 2  # of --trials
    assert study.trials[2].params == study.trials[1].params  # the same trial, taken up
    assert study.trials[2].user_attrs["run_dir"] == str((out / "trial-1").resolve())
    assert not (out / "trial-2").exists()
    history = (out / "trial-1" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # a header and epochs 1 and 2: resumed, not restarted
    rows = [r.split(",")[1] for r in (out / "trials.csv").read_text().splitlines()[1:]]
    assert rows == ["complete", "interrupted", "complete"]


def test_a_taken_up_trial_another_process_trains_stays_interrupted(
    tmp_path: Path, tweets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trial's run can be resumed by hand (`train --resume OUT/trial-N`): a sweep run again
    # meanwhile met that run's lock, and the trial counted as failed for good.
    from archlab import rundir, sweep

    base, space, out = _interrupted_sweep(tmp_path, tweets, monkeypatch, 1)
    lock = rundir.lock_training

    def held(run_dir: Path) -> None:
        raise rundir.RunLocked(f"{run_dir}: another process (pid 7) is training this run")

    monkeypatch.setattr(rundir, "lock_training", held)
    with pytest.raises(ArchlabError, match="another process"):
        sweep.run_sweep(base, space, 1, out, study_name="s")
    monkeypatch.setattr(rundir, "lock_training", lock)
    result = sweep.run_sweep(base, space, 1, out, study_name="s")  # the other process ended
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out}/sweep.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert study.trials[2].user_attrs["run_dir"] == str((out / "trial-0").resolve())
    assert result.finished == 1 and "(1 finished)" in result.summary()
