"""The generic Trainer: overfitting, early stopping with best-weight restore, resume, NaN stop."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from archlab import rundir, runner
from archlab.config import OptimConfig, RegConfig, apply_overrides
from archlab.errors import NonFiniteLossError
from archlab.presets import PRESETS
from archlab.train.callbacks import BestWeights, Callback, Checkpoint
from archlab.train.protocol import Batches, Splits
from archlab.train.trainer import Trainer
from tests.helpers import ToyTask, toy_trainer


def test_overfits_one_small_batch_with_a_registered_model() -> None:
    from archlab.models import MODELS

    torch.manual_seed(0)
    x = torch.randn(16, 1, 32, 32)
    y = torch.arange(16) % 3

    class One(ToyTask):
        def build_data(self, device):
            b = Batches(16, lambda i, g: (x[i], y[i]))
            return Splits(b, b, b)

    task = One()
    trainer = toy_trainer(40, 1e-3)
    model = trainer.fit(task, task.build_data(torch.device("cpu")), MODELS["resnet18"].build(1, 3))
    hist = trainer.state.history
    assert hist[-1]["train_loss"] < 0.05 < hist[0]["train_loss"]
    assert (
        trainer.evaluate(task, Batches(16, lambda i, g: (x[i], y[i])), model)[1]["accuracy"] == 1.0
    )


def test_early_stopping_fires_and_restores_best_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = ToyTask(flip_val=True)
    data = task.build_data(torch.device("cpu"))
    best = BestWeights(("val_loss", "min"), patience=2, run_dir=tmp_path)
    trainer = toy_trainer(50, 0.05, [best], progress="lines")
    model = trainer.fit(task, data, task.build_model())
    hist = trainer.state.history
    assert trainer.state.stopped_early and len(hist) < 50
    assert len(hist) == best.best_epoch + 3  # stopped after patience + 1 bad epochs
    # said where the epoch lines are: the last one was epoch N, then only epochs_run=N
    said = (f"archlab: stopped early: val_loss has not improved for 3 epochs (more than "
            f"reg.patience=2); its best, {best.best:.4g}, was epoch {best.best_epoch}")  # fmt: skip
    assert capsys.readouterr().err.splitlines()[-1] == said  # the fit's last line
    best_val = min(r["val_loss"] for r in hist)
    assert best.best == best_val and hist[best.best_epoch - 1]["val_loss"] == best_val
    assert trainer.evaluate(task, data.val, model)[0] == pytest.approx(best_val, rel=1e-6)
    saved = load_file(str(tmp_path / rundir.BEST))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    task = ToyTask(nan_after_steps=6)  # 4 steps per epoch: epoch 1 is fine, epoch 2 poisons
    trainer = toy_trainer(5, 0.01, [Checkpoint(tmp_path)])
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 3"):
        trainer.fit(task, task.build_data(torch.device("cpu")), task.build_model())
    state = rundir.load_state(tmp_path / rundir.STATE)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())


class _Interrupt(Callback):
    def __init__(self, after: int) -> None:
        self.after = after

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.state.epoch == self.after:
            raise KeyboardInterrupt


def _strip(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if "seconds" not in k}


def test_resume_equals_uninterrupted(tmp_path: Path, image_folder: Path) -> None:
    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"],
        [f"data.path={image_folder}", "data.size=32", "train.epochs=3", "reg.dropout=0.3",
         "reg.augment=crop", "optim.schedule=cosine", "reg.early_stop=true", "reg.patience=5",
         "train.checkpoint_every_s=0"],
    )  # fmt: skip
    full = runner.train(cfg, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "b", callbacks=[_Interrupt(after=2)])
    interrupted = next((tmp_path / "b").iterdir())
    assert not (interrupted / rundir.METRICS).exists()
    assert rundir.load_state(interrupted / rundir.STATE)["epoch"] == 2
    resumed = runner.train(None, tmp_path / "b", resume_dir=interrupted)
    m_full = json.loads((full / rundir.METRICS).read_text())
    m_res = json.loads((resumed / rundir.METRICS).read_text())
    assert _strip(m_full) == _strip(m_res)
    w_full = load_file(str(full / rundir.WEIGHTS))
    w_res = load_file(str(resumed / rundir.WEIGHTS))
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    h_full = rundir.read_history(full / rundir.HISTORY)
    h_res = rundir.read_history(resumed / rundir.HISTORY)
    assert [_strip(r) for r in h_full] == [_strip(r) for r in h_res]


def test_l2_modes_differ_as_documented() -> None:
    from archlab.train.optim import build_optimizer, l2_penalty

    model = nn.Linear(3, 2)
    reg = RegConfig(weight_decay=0.1)
    assert type(build_optimizer(model, OptimConfig(), reg)) is torch.optim.Adam
    assert build_optimizer(model, OptimConfig(), reg).param_groups[0]["weight_decay"] == 0.1
    assert build_optimizer(model, OptimConfig(), reg).param_groups[1]["weight_decay"] == 0.0
    dec = replace(reg, l2_mode="decoupled")
    assert type(build_optimizer(model, OptimConfig(), dec)) is torch.optim.AdamW
    pen = replace(reg, l2_mode="penalty")
    assert build_optimizer(model, OptimConfig(), pen).param_groups[0]["weight_decay"] == 0.0
    expected = 0.5 * 0.1 * model.weight.pow(2).sum()
    assert torch.allclose(l2_penalty(model, pen), expected)


@pytest.mark.parametrize(
    ("n", "bs", "sizes"),
    [(14, 13, [14]), (27, 13, [13, 14]), (26, 13, [13, 13]), (1, 4, [1]), (5, 2, [2, 3])],
)
def test_a_trailing_training_batch_of_one_joins_the_previous_one(
    n: int, bs: int, sizes: list[int]
) -> None:
    # BatchNorm cannot train on a batch of one; evaluation batches are left as they are.
    b = Batches(n, lambda idx, gen: idx)
    got = [len(x) for x in b.iterate(bs, shuffle=True, seed=1)]
    assert got == sizes and b.num_batches(bs) == len(sizes)
    assert sorted(torch.cat(list(b.iterate(bs, shuffle=True, seed=1))).tolist()) == list(range(n))
    assert [len(x) for x in b.iterate(bs)][-1] == (n % bs or bs)


def test_two_callbacks_of_one_class_keep_their_own_resume_state() -> None:
    class Counter(Callback):
        def __init__(self, step: int) -> None:
            self.step, self.total = step, 0

        def on_epoch_end(self, trainer, row) -> None:
            self.total += self.step

        def state_dict(self) -> dict[str, Any]:
            return {"total": self.total}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.total = state["total"]

    task = ToyTask()
    trainer = toy_trainer(2, 1e-2, [Counter(1), Counter(10)])
    trainer.fit(task, task.build_data(torch.device("cpu")), task.build_model())
    state = trainer.state_dict()
    assert state["callbacks"] == {"Counter": {"total": 2}, "Counter#2": {"total": 20}}
    again = toy_trainer(3, 1e-2, [Counter(1), Counter(10)])
    again.fit(task, task.build_data(torch.device("cpu")), task.build_model(), resume=state)
    assert [cb.total for cb in again.callbacks] == [3, 30]  # each resumed from its own count
