"""`archlab train --budget`: duration parsing, the plan, the declared spaces, a real search."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from archlab import budget, rundir, runner
from archlab.cli import main
from archlab.config import apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.task_configs import TextDataConfig
from archlab.train.callbacks import Callback
from tests.helpers import write_tweets


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1h", 3600), ("2m30s", 150), ("45", 45),
     ("0.5m", 30), (" 20M ", 1200)],
)  # fmt: skip
def test_parse_budget(text: str, seconds: float) -> None:
    assert budget.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "20x", "m", "-5", "0", "0m", "inf", "nan", "20 m"])
def test_parse_budget_refuses(text: str) -> None:
    with pytest.raises(ArchlabError, match="--budget"):
        budget.parse_budget(text)


PROBE = budget.Probe(setup_s=2.0, step_s=0.1, eval_s=1.0, steps_per_epoch=90, wall_s=6.0)


def test_plan_fits_min_trials_at_full_length() -> None:
    assert PROBE.epoch_s == pytest.approx(10.0)
    p = budget.plan(1200, 1190, PROBE, ceiling=15)
    assert p == budget.Plan(epochs=15, trials=budget.MIN_TRIALS)  # 15 x 10 s x 6 < 1190 s
    p = budget.plan(600, 590, PROBE, ceiling=15)
    assert p.trials == budget.MIN_TRIALS and p.epochs == 9  # 590/6 - 3 = 95 s: 9 epochs
    assert budget.MIN_TRIALS * PROBE.trial_s(p.epochs) <= 590


def test_plan_prefers_fewer_trials_to_too_few_epochs() -> None:
    p = budget.plan(100, 95, PROBE, ceiling=15)  # 6 trials would get 1 epoch each
    assert p.epochs >= budget.MIN_EPOCHS and p.trials * PROBE.trial_s(p.epochs) <= 95
    p = budget.plan(30, 25, PROBE, ceiling=15)  # not even 3 epochs: one trial of what fits
    assert p == budget.Plan(epochs=2, trials=1)


def test_plan_keeps_time_to_train_the_best_config_at_length_when_trials_get_short() -> None:
    # 6 full trials would get 9 of 30 epochs: under half, so the search gets what a refit at
    # up to half the time left does not need, and the best config trains again for 29.
    p = budget.plan(600, 590, PROBE, ceiling=30)
    assert p == budget.Plan(epochs=4, trials=budget.MIN_TRIALS, refit_epochs=29)
    assert p.trials * PROBE.trial_s(p.epochs) + PROBE.trial_s(p.refit_epochs) <= 590
    # Trials at half the config's epochs or more: no refit, as before.
    assert budget.plan(600, 590, PROBE, ceiling=18).refit_epochs == 0
    # No room for a search beside a refit: the plain plan.
    assert budget.plan(100, 95, PROBE, ceiling=30).refit_epochs == 0


def test_the_refit_of_the_best_trial_is_chosen_only_when_better_on_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = write_tweets(tmp_path / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(base, ["train.epochs=3", "train.threads=1", "train.progress=off"])
    monkeypatch.setattr(budget, "plan", lambda *a: budget.Plan(1, 1, refit_epochs=3))
    # Every key fixed: one trial (the config as given), then its refit with the time left; a
    # search of several trials would leave the refit a time that depends on the machine's load.
    fixed = budget.space_for(base)
    res = budget.run_budget(base, 60.0, tmp_path / "runs", "refit", fixed=fixed)
    rec = json.loads((res.search_dir / budget.SEARCH).read_text())
    refit, chosen = rec["refit"], rec["chosen"]
    done = [t for t in rec["trials"] if t["state"] == "complete"]
    best = max(done, key=lambda t: (t["value"], -t["trial"]))
    assert refit["trial"] == best["trial"] and refit["params"] == best["params"]
    assert refit["epochs"] == 3 and all(t["epochs_run"] <= 1 for t in done)
    trained = runner.load_config(Path(refit["run_dir"]))
    trial = runner.load_config(Path(best["run_dir"]))
    assert trained == replace(trial, train=replace(trial.train, epochs=3))  # all else the same
    rows = rundir.read_history(Path(refit["run_dir"]) / rundir.HISTORY)
    assert refit["value"] == pytest.approx(max(r["val_f1_macro"] for r in rows))
    assert chosen["refit"] == (refit["value"] > best["value"])
    assert res.run_dir == Path(chosen["run_dir"])
    assert res.run_dir == Path(refit["run_dir"] if chosen["refit"] else best["run_dir"])
    kept = [d for d in [*res.search_dir.glob("trial-*"), Path(refit["run_dir"])]
            if (d / rundir.WEIGHTS).exists()]  # fmt: skip
    assert kept == [res.run_dir]  # only the chosen run keeps its weights
    assert runner.load_config(res.run_dir).train.epochs == (3 if chosen["refit"] else 1)


def test_ctrl_c_during_the_refit_keeps_the_best_trial_and_the_refits_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_tweets(tmp_path / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(base, ["train.epochs=3", "train.threads=1", "train.progress=off"])
    monkeypatch.setattr(budget, "plan", lambda *a: budget.Plan(1, 1, refit_epochs=3))

    class CtrlC(Callback):  # what the trainer's SIGINT handler does on a first Ctrl-C
        def on_batch_end(self, trainer: Any, step: int, loss: Any) -> None:
            trainer.interrupted = True

    train_at = runner.train_at

    def pressed_in_refit(cfg: Any, run_dir: Path, **kw: Any) -> Path:
        if run_dir.name == "refit":
            kw["callbacks"] = [*kw.get("callbacks", []), CtrlC()]
        return train_at(cfg, run_dir, **kw)

    monkeypatch.setattr(runner, "train_at", pressed_in_refit)
    with pytest.raises(KeyboardInterrupt):
        budget.run_budget(base, 60.0, tmp_path / "runs", "stop", fixed=budget.space_for(base))
    (search_dir,) = (tmp_path / "runs").iterdir()
    rec = json.loads((search_dir / budget.SEARCH).read_text())
    refit, chosen = rec["refit"], rec["chosen"]
    assert rec["stopped_by"] == "Ctrl-C" and refit["stopped"] and refit["value"] is None
    assert chosen["trial"] == 0 and not chosen["refit"]  # the finished trial, with its weights
    assert (Path(chosen["run_dir"]) / rundir.WEIGHTS).exists()
    assert (Path(refit["run_dir"]) / rundir.STATE).exists()  # the refit can be resumed
    assert f"--resume {refit['run_dir']}" in capsys.readouterr().err


def _one_epoch_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A tiny text config whose searches plan trials of one epoch."""
    csv = write_tweets(tmp_path / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    monkeypatch.setattr(budget, "plan", lambda *a: budget.Plan(1, 1))
    return apply_overrides(base, ["train.epochs=1", "train.threads=1", "train.progress=off"])


def test_a_ctrl_c_python_swallowed_between_trials_still_stops_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import os
    import signal

    base = _one_epoch_text(tmp_path, monkeypatch)
    measured, calls = budget.measured, []
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the runner started us in background

    def swallowing(pr: Any, seen: list[float]) -> Any:
        calls.append(1)
        if len(calls) == 2:  # after trial 0: a Ctrl-C lands where Python drops it
            with contextlib.suppress(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        return measured(pr, seen)

    monkeypatch.setattr(budget, "measured", swallowing)
    with pytest.raises(KeyboardInterrupt):
        budget.run_budget(base, 600.0, tmp_path / "runs", "stop")
    (search_dir,) = (tmp_path / "runs").iterdir()
    rec = json.loads((search_dir / budget.SEARCH).read_text())
    assert rec["stopped_by"] == "Ctrl-C" and len(rec["trials"]) == 2  # stopped at the next one
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_a_ctrl_c_in_the_probes_last_step_stops_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The step that ended the probe swallowed the Ctrl-C ("saving a checkpoint after this
    # step"), and the whole search ran to its end with exit 0.
    base = _one_epoch_text(tmp_path, monkeypatch)

    def ctrl_c_then_done(self: Any, trainer: Any, step: int, loss: Any) -> None:
        trainer.interrupted = True  # as the trainer's SIGINT handler sets it
        raise budget._ProbeDone

    monkeypatch.setattr(budget._StepClock, "on_batch_end", ctrl_c_then_done)
    with pytest.raises(KeyboardInterrupt):
        budget.run_budget(base, 600.0, tmp_path / "runs", "stop")
    err = capsys.readouterr().err
    assert "the --budget search stopped while timing its first steps, before any trial" in err
    assert "--resume" not in err and not list((tmp_path / "runs").iterdir())  # nothing left


def test_the_trials_measured_epochs_replace_the_probes_either_way() -> None:
    assert budget.measured(PROBE, []) == PROBE
    # Trials in bf16 (train.amp=auto calibrates them; the probe's one epoch timed fp32): faster.
    assert budget.measured(PROBE, [6.0, 6.5, 7.0]).epoch_s == pytest.approx(6.5)
    assert budget.measured(PROBE, [14.0, 15.0, 30.0]).epoch_s == pytest.approx(15.0)  # busy


def test_the_last_trial_takes_the_epochs_that_still_fit() -> None:
    # PROBE: a trial of e epochs costs 2 + 10 e + 1 s.
    assert budget.next_epochs(200.0, PROBE, planned=15) == 15  # 153 s: a full trial fits
    assert budget.next_epochs(100.0, PROBE, planned=15) == 9  # one last trial of what fits
    assert budget.next_epochs(35.0, PROBE, planned=10) == 3  # MIN_EPOCHS: one last trial
    assert budget.next_epochs(32.0, PROBE, planned=10) == 0  # under MIN_EPOCHS: stop
    assert budget.next_epochs(20.0, PROBE, planned=2) == 0  # a plan of 2: a trial of 1 won't do


def test_a_shorter_trial_runs_where_a_full_one_no_longer_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = write_tweets(tmp_path / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(
        base, ["train.epochs=4", "reg.early_stop=false", "train.threads=1", "train.progress=off"]
    )
    monkeypatch.setattr(budget, "plan", lambda *a: budget.Plan(4, 1))

    # Epochs priced at 25 s: after trial 0 (seconds here) 75-100 s are left, under a full
    # trial's 100 s, over 3 epochs' 75 s; then at 50 s, so that no third trial fits.
    def priced(pr: budget.Probe, seen: list[float]) -> budget.Probe:
        step_s = 25.0 if len(seen) <= 4 else 50.0
        return budget.Probe(setup_s=0.0, step_s=step_s, eval_s=0.0, steps_per_epoch=1, wall_s=0.0)

    monkeypatch.setattr(budget, "measured", priced)
    res = budget.run_budget(base, 100.0, tmp_path / "runs", "last")
    rec = json.loads((res.search_dir / budget.SEARCH).read_text())
    assert [t["epochs_run"] for t in rec["trials"]] == [4, 3]
    last = runner.load_config(Path(rec["trials"][1]["run_dir"]))
    assert last.train.epochs == 3
    assert rec["wall_s"] < 100.0


def test_plan_refuses_a_budget_below_one_epoch() -> None:
    with pytest.raises(ArchlabError, match=r"too small for one epoch .* about 10s.*at least"):
        budget.plan(10, 4, PROBE, ceiling=15)


def test_spaces_cover_each_classifier_and_refuse_sales() -> None:
    for task in budget.SPACES:
        preset = {"images": "images-resnet18", "text": "text-bilstm"}[task]
        base = PRESETS[preset]
        space = budget.space_for(base)
        assert "optim.lr" in space and "reg.weight_decay" in space
        # a constant rate or a cosine decay, and the recipe's own (one-cycle for ResNet-18)
        assert {"none", "cosine", base.optim.schedule} == set(space["optim.schedule"].choices)
        lr = space["optim.lr"]
        assert lr.low < base.optim.lr < lr.high  # relative to the recipe, not a data set
        trial0 = budget.base_params(base, space)
        for key, value in trial0.items():  # trial 0 is the config as given
            section, _, name = key.partition(".")
            own = getattr(getattr(base, section), name)
            assert value == (max(own, 1e-6) if key == "reg.weight_decay" else own), key
    with pytest.raises(ArchlabError, match="--budget searches images and text runs"):
        budget.space_for(PRESETS["sales-gru"])


def test_fixed_keys_are_not_searched_and_glove_adds_freezing() -> None:
    base = PRESETS["text-bilstm"]
    space = budget.space_for(base, fixed=["optim.lr", "data.class_weights"])
    assert "optim.lr" not in space and "data.class_weights" not in space
    # Class weights full or their square root; moot (not searched) when fixed off.
    assert set(budget.space_for(base)["data.class_weight_power"].choices) == {0.5, 1.0}
    assert "data.class_weight_power" not in space  # text-bilstm's weights are off
    on = apply_overrides(base, ["data.class_weights=true"])
    assert "data.class_weight_power" in budget.space_for(on, fixed=["data.class_weights"])
    assert "model.freeze_embeddings" not in space
    assert "model.freeze_embeddings" in budget.space_for(PRESETS["text-bilstm-glove"])
    # Distillation from the TF-IDF teacher is searched, from the recipe's own weight.
    assert set(budget.space_for(base)["data.distill"].choices) == {0.0, 0.5, 0.8}
    distilled = PRESETS["text-bilstm-glove-distill"]
    assert budget.base_params(distilled, budget.space_for(distilled))["data.distill"] == 0.8


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> budget.BudgetResult:
    tmp = tmp_path_factory.mktemp("budget")
    csv = write_tweets(tmp / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(base, ["train.epochs=2", "train.threads=1", "train.progress=off"])
    return budget.run_budget(base, 20.0, tmp / "runs", "text-smoke")


@pytest.mark.xdist_group("budget")  # one worker builds the module's search
def test_search_chooses_on_validation_within_the_budget(searched: budget.BudgetResult) -> None:
    rec = json.loads((searched.search_dir / budget.SEARCH).read_text())
    assert rec == json.loads((searched.run_dir / budget.SEARCH).read_text())
    assert (searched.run_dir / budget.TRIALS).read_text().startswith("number,state,value")
    trials = rec["trials"]
    assert len(trials) >= 2  # the config as given, then sampled ones
    assert trials[0]["params"] == budget.base_params(
        apply_overrides(PRESETS["text-bilstm-smoke"], []),
        budget.space_for(PRESETS["text-bilstm-smoke"]),
    )
    done = [t for t in trials if t["state"] == "complete"]
    best = max(t["value"] for t in done)
    assert rec["chosen"]["value"] == best
    first_best = min(t["trial"] for t in done if t["value"] == best)
    assert rec["chosen"]["trial"] == first_best  # ties go to the earlier trial
    # The value it chose on is the chosen run's best validation macro-F1, not a test score.
    rows = rundir.read_history(searched.run_dir / rundir.HISTORY)
    assert rec["chosen"]["value"] == pytest.approx(max(r["val_f1_macro"] for r in rows))
    m = rundir.read_metrics(searched.run_dir)
    assert "test_f1_macro" in m and m["selection_metric"] == "val_f1_macro"
    assert rec["plan"]["epochs"] <= 2 and all(t["epochs_run"] <= 2 for t in done)
    # The budget holds to within one planned trial's training (the run stops between epochs).
    assert rec["wall_s"] <= rec["budget_s"] + rec["probe"]["epoch_s"] + 5
    assert 0 <= rec["overhead_fraction"] < 1


@pytest.mark.xdist_group("budget")
def test_only_the_chosen_trial_keeps_weights(searched: budget.BudgetResult) -> None:
    assert (searched.run_dir / rundir.WEIGHTS).exists()
    others = [d for d in searched.search_dir.glob("trial-*") if d != searched.run_dir]
    assert others
    for d in others:
        assert (d / rundir.METRICS).exists() or not (d / rundir.HISTORY).exists()
        assert not (d / rundir.WEIGHTS).exists()
    assert not (searched.search_dir / "probe" / rundir.WEIGHTS).exists()


def test_keep_weights_keeps_every_finished_trials_weights(tmp_path: Path) -> None:
    csv = write_tweets(tmp_path / "tweets.csv")
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(base, ["train.epochs=1", "train.threads=1", "train.progress=off"])
    res = budget.run_budget(base, 20.0, tmp_path / "runs", "keep", keep_weights=True)
    rec = json.loads((res.search_dir / budget.SEARCH).read_text())
    done = [t for t in rec["trials"] if t["state"] == "complete"]
    assert len(done) >= 2  # a second finished trial, whose weights would otherwise go
    for t in done:
        assert (Path(t["run_dir"]) / rundir.WEIGHTS).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "20x"], "--budget '20x': give a duration like 20m"),
        (["--budget", "1s"], "--budget 1s: too small for one epoch"),
        (["--budget", "5m", "--resume", "runs/x"], "cannot --resume"),
        (["--budget", "5m", "--preset", "sales-gru-smoke"], "--budget searches images and text"),
    ],
)
def test_budget_bad_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    csv = write_tweets(tmp_path / "tweets.csv")
    if "--preset" not in args and "--resume" not in args:
        args = [*args, "--preset", "text-bilstm-smoke", "--data", str(csv)]
    rc = main(["train", *args, "--set", "train.threads=1", "--out", "runs"])
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("archlab: error:") and message in last, err[-2000:]
    assert "Traceback" not in err
    assert not list((tmp_path / "runs").glob("*/*")), "a refused search left files behind"


def test_fine_tuning_adds_the_freeze_schedule_to_the_image_space(tmp_path: Path) -> None:
    base = apply_overrides(PRESETS["images-resnet18"], [f"model.init={tmp_path}", "train.epochs=9"])
    space = budget.space_for(base)
    assert space["model.freeze_epochs"].choices == (0, 3)
    assert budget.base_params(base, space)["model.freeze_epochs"] == 0
    assert space["model.body_lr_scale"].choices == (1.0, 0.1)
    assert budget.base_params(base, space)["model.body_lr_scale"] == 1.0
    plain = budget.space_for(PRESETS["images-resnet18"])
    assert "model.freeze_epochs" not in plain and "model.body_lr_scale" not in plain


def test_probe_stops_inside_a_long_epoch_and_times_validation(tmp_path: Path) -> None:
    csv = write_tweets(tmp_path / "tweets.csv", n_per_class=100)
    base = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(csv)))
    base = apply_overrides(base, ["train.batch_size=4", "train.max_steps_per_epoch=0",
                                  "train.threads=1"])  # fmt: skip
    pr = budget.probe(base, tmp_path / "probe", target_s=0.0)
    assert pr.steps_per_epoch > budget.PROBE_STEPS  # the epoch is longer than the probe
    assert pr.steps_timed == budget.PROBE_STEPS - 3  # gaps between steps 3..12
    assert pr.step_s > 0 and pr.eval_s > 0 and pr.setup_s > 0
    assert not (tmp_path / "probe").exists()


def test_plan_line_says_one_step_and_a_sub_second_epoch_as_they_are() -> None:
    pr = budget.Probe(setup_s=2.0, step_s=0.3, eval_s=0.1, steps_per_epoch=1, wall_s=3.0)
    line = budget._plan_line(pr, budget.Plan(epochs=1, trials=8, refit_epochs=1), {})
    assert "about 0.4s (1 step of 300 ms" in line and "trials of 1 epoch," in line
    assert "(about 1 epoch)" in line and "steps" not in line
    # Trial 0 is the config as given, but a value outside a searched range (0 on a log scale)
    base = apply_overrides(PRESETS["text-bilstm-smoke"], ["reg.weight_decay=0"])
    line = budget._plan_line(pr, budget.Plan(1, 8), budget.space_for(base), base)
    assert line.endswith(
        "; trial 0 is the config as given, but reg.weight_decay 0.0 enters as 1e-06"
    )
    # Never "about 0s": under a second keeps a tenth (and at least one).
    assert [budget._clock(s) for s in (0.01, 0.4, 0.96, 12.4, 65)] == [
        "0.1s", "0.4s", "1s", "12s", "1m05s",
    ]  # fmt: skip


def test_during_the_search_only_the_best_finished_trial_keeps_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _one_epoch_text(tmp_path, monkeypatch)
    real, seen = budget._keep_best_weights, []

    def spy(study: Any, monitor: Any) -> None:
        real(study, monitor)
        dirs = {t.number: t.user_attrs.get("run_dir") for t in study.get_trials(deepcopy=False)}
        have = [n for n, d in dirs.items() if d and (Path(d) / rundir.WEIGHTS).exists()]
        best = budget._best(study, monitor)
        seen.append((have, best.number if best else None))

    monkeypatch.setattr(budget, "_keep_best_weights", spy)
    res = budget.run_budget(base, 25.0, tmp_path / "runs", "w")
    assert len(seen) >= 2 and all(have == ([] if b is None else [b]) for have, b in seen)
    assert (res.search_dir / budget.SEARCH).exists()
