"""Model selection on validation: which epoch a run scores (reg.select, reg.early_stop) and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archlab import rundir, runner
from archlab.ablate import technique_configs
from archlab.config import apply_overrides, selection
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.train.callbacks import BestWeights, Callback
from archlab.train.trainer import Trainer
from tests.helpers import ToyTask, toy_trainer


@pytest.mark.parametrize(
    ("preset", "sets", "best", "patience"),
    [
        ("images-resnet18", (), True, None),  # one-cycle schedule: runs to its end
        ("images-vgg13", (), True, None),  # cosine schedule: runs to its end
        ("images-resnet18-study", (), True, 3),  # the study's early stopping
        ("text-bilstm", (), True, 5),  # constant learning rate: patience 5
        ("text-bilstm-glove-distill", (), True, 5),
        ("text-bilstm", ("reg.early_stop=false",), True, None),
        ("text-bilstm", ("reg.select=last",), False, None),
        ("images-resnet18", ("reg.early_stop=true", "reg.patience=2"), True, 2),
        ("sales-rnn", (), False, None),  # sales keeps its last epoch
        ("sales-rnn", ("reg.early_stop=true",), True, 5),  # ... unless it stops early
        ("sales-rnn", ("reg.select=best",), True, None),  # cosine: no stop
        ("images-vgg13-baseline", (), False, None),  # the study's ablation protocol
        ("images-vgg13-early_stop", (), True, 3),
    ],
)
def test_selection_resolves_auto_per_task_and_schedule(
    preset: str, sets: tuple[str, ...], best: bool, patience: int | None
) -> None:
    sel = selection(apply_overrides(PRESETS[preset], sets))
    assert (sel.best, sel.patience) == (best, patience)
    assert sel.why.startswith("reg.select=")


def test_last_epoch_with_early_stopping_is_refused() -> None:
    with pytest.raises(ArchlabError, match=r"reg\.early_stop=true keeps the best epoch"):
        apply_overrides(PRESETS["text-bilstm"], ["reg.select=last", "reg.early_stop=true"])


@pytest.mark.parametrize("preset", ["images-resnet18", "text-bilstm", "sales-rnn"])
def test_ablations_keep_the_study_protocol(preset: str) -> None:
    """The baseline trains every epoch and scores the last; early stopping keeps the best."""
    techs = ["baseline", "early_stop"] if preset != "sales-rnn" else ["baseline", "dropout"]
    cfgs = technique_configs(PRESETS[preset], techs)
    assert not selection(cfgs["baseline"]).best and selection(cfgs["baseline"]).patience is None
    if "early_stop" in cfgs:
        assert (selection(cfgs["early_stop"]).best, selection(cfgs["early_stop"]).patience) == (
            True,
            3,
        )


def test_best_epoch_restored_without_stopping(tmp_path: Path) -> None:
    """patience None + restore: every epoch runs, the best one's weights end the fit."""
    task = ToyTask(flip_val=True)  # validation labels flipped: val loss rises as training goes
    data = task.build_data(torch.device("cpu"))
    best = BestWeights(("val_loss", "min"), None, run_dir=tmp_path, restore=True)
    trainer = toy_trainer(12, 0.05, [best])
    model = trainer.fit(task, data, task.build_model())
    hist = trainer.state.history
    assert len(hist) == 12 and not trainer.state.stopped_early
    assert best.best_epoch < 12
    assert trainer.evaluate(task, data.val, model)[0] == pytest.approx(best.best, rel=1e-6)
    saved = load_file(str(tmp_path / rundir.BEST))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert runner.scored(trainer, best, "why")["scored_epoch"] == best.best_epoch


def test_last_epoch_kept_without_restore() -> None:
    task = ToyTask(flip_val=True)
    data = task.build_data(torch.device("cpu"))
    best = BestWeights(("val_loss", "min"), None, restore=False)
    trainer = toy_trainer(6, 0.05, [best])
    model = trainer.fit(task, data, task.build_model())
    assert trainer.evaluate(task, data.val, model)[0] == pytest.approx(
        trainer.state.history[-1]["val_loss"], rel=1e-6
    )
    s = runner.scored(trainer, best, "reg.select=last")
    assert (s["scored_epoch"], s["selection_metric"]) == (6, "last")
    assert s["selection_reason"] == "last epoch (reg.select=last)"


class _EachEpoch(Callback):
    """Each epoch's weights, as training ended it."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        assert trainer.model is not None
        self.weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})


@pytest.mark.parametrize(
    ("sets", "metric"),
    [((), "val_f1_macro"), (("reg.early_stop=false", "reg.select=last"), "last")],
)
def test_run_records_the_scored_epoch(
    tmp_path: Path, image_folder: Path, sets: tuple[str, ...], metric: str
) -> None:
    cfg = apply_overrides(
        PRESETS["images-resnet18-study-smoke"],
        [f"data.path={image_folder}", "data.size=32", "train.epochs=3", "train.progress=off",
         *sets],
    )  # fmt: skip
    epochs = _EachEpoch()
    run = runner.train(cfg, tmp_path, callbacks=[epochs])
    m = json.loads((run / rundir.METRICS).read_text())
    hist = rundir.read_history(run / rundir.HISTORY)
    assert m["selection_metric"] == metric
    # The tested weights are the scored epoch's; a finished run keeps no resume files.
    tested = load_file(str(run / rundir.WEIGHTS))
    scored = epochs.weights[m["scored_epoch"] - 1]
    assert tested.keys() == scored.keys() and all(torch.equal(scored[k], tested[k]) for k in tested)
    assert not (run / rundir.BEST).exists() and not (run / rundir.STATE).exists()
    assert set(json.loads((run / rundir.MANIFEST).read_text())) >= {rundir.WEIGHTS}
    assert not {rundir.BEST, rundir.STATE} & set(json.loads((run / rundir.MANIFEST).read_text()))
    if metric == "last":
        assert m["scored_epoch"] == m["epochs_run"] == len(hist)
        assert m["selection_reason"].startswith("last epoch (reg.select=last")
        return
    key = metric
    best_value = max(r[key] for r in hist)
    assert m["scored_epoch"] == m["best_epoch"] and hist[m["scored_epoch"] - 1][key] == best_value
    assert f"at epoch {m['scored_epoch']} of {len(hist)} run" in m["selection_reason"]
