"""Precision on a CPU: train.amp=auto's calibration, forced bf16, fp32 losses, bf16 resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from archlab import rundir, runner
from archlab.config import OptimConfig, RegConfig, TrainConfig, apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.train import precision as amp
from archlab.train.callbacks import Callback
from archlab.train.protocol import Batches, Splits
from archlab.train.trainer import Trainer
from archlab.utils import ContentCache, cpu_native_bf16


class ConvTask:
    """A tiny convnet with BatchNorm and dropout on random 8x8 images; records autocast."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(48, 3, 8, 8, generator=g)
        self.y = (self.x[:, 0].mean((1, 2)) > 0).long()
        self.seen: list[tuple[bool, torch.dtype]] = []

    def data(self) -> Splits:
        b = Batches(len(self.y), lambda i, g: (self.x[i], self.y[i]))
        return Splits(b, b, b)

    def build_model(self) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, 2),
        )

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = model(x)
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out, y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        assert outputs.dtype == torch.float32  # losses are reduced in fp32
        return F.cross_entropy(outputs, targets)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        assert outputs.dtype == torch.float32
        return {"accuracy": float((outputs.argmax(1) == targets).float().mean())}


def _fit(task: ConvTask, **train: Any) -> Trainer:
    t = Trainer(
        TrainConfig(**{"epochs": 2, "batch_size": 16, "progress": "off", **train}),
        OptimConfig(name="sgd", lr=0.05),
        RegConfig(),
        seed=0,
        device=torch.device("cpu"),
    )
    t.fit(task, task.data(), task.build_model())
    return t


def _no_timing(*args: Any) -> None:
    raise AssertionError("calibration ran")


def test_auto_is_fp32_without_bf16_units_and_times_nothing(monkeypatch) -> None:
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "0")
    monkeypatch.setattr(amp, "RUN_STEPS_PER_CALIBRATION_STEP", 0)  # long enough to calibrate
    monkeypatch.setattr(amp, "time_steps", _no_timing)
    task = ConvTask()
    t = _fit(task)
    assert t.precision is not None and t.precision.choice == amp.FP32
    assert "no bf16 units" in t.precision.reason and not t.precision.step_ms
    assert task.seen and not any(on for on, _ in task.seen)


def test_a_short_run_is_fp32_without_timing(monkeypatch) -> None:
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "1")
    monkeypatch.setattr(amp, "time_steps", _no_timing)
    t = _fit(ConvTask())
    assert t.precision is not None and t.precision.choice == amp.FP32
    assert "too few to calibrate" in t.precision.reason


def test_bad_detection_override_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "yes")
    with pytest.raises(ArchlabError, match="ARCHLAB_CPU_BF16='yes'"):
        cpu_native_bf16()


def test_forced_bf16_runs_forward_under_autocast_and_reduces_in_fp32() -> None:
    task = ConvTask()
    t = _fit(task, amp="bf16")
    assert t.precision is not None and t.precision.choice == amp.BF16
    assert task.seen and all(on and dtype == torch.bfloat16 for on, dtype in task.seen)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # fp32 master weights
    assert t.state.history[-1]["train_loss"] == t.state.history[-1]["train_loss"]  # not NaN


def test_calibration_leaves_the_run_as_if_it_had_not_run(monkeypatch) -> None:
    # Timing works on copies and restores the RNG: a calibrated run equals the same run with
    # its choice forced, bitwise.
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "1")
    monkeypatch.setattr(amp, "RUN_STEPS_PER_CALIBRATION_STEP", 0)
    task = ConvTask()
    auto = _fit(task)
    p = auto.precision
    assert p is not None and set(p.step_ms) == {amp.FP32, amp.BF16, amp.BF16_CL}
    assert p.choice in p.step_ms and p.reason == "auto: calibrated"
    monkeypatch.setattr(amp, "pick", lambda ms, why="": amp.Precision(p.choice, "forced", ms))
    monkeypatch.setattr(amp, "CALIBRATED", ContentCache())  # time it again
    again = _fit(ConvTask())  # calibrates again (different timings), then takes p's choice
    forced = _fit(
        ConvTask(),
        amp="off" if p.choice == amp.FP32 else "bf16",
        channels_last=p.choice == amp.BF16_CL,
    )
    for other in (again, forced):
        assert other.state.history[-1]["train_loss"] == auto.state.history[-1]["train_loss"]
        a, b = auto.model.state_dict(), other.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_later_runs_in_a_process_reuse_the_calibration_of_the_same_shapes(monkeypatch) -> None:
    # A --budget search's trials: the same network and batch shape, timed once.
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "1")
    monkeypatch.setattr(amp, "RUN_STEPS_PER_CALIBRATION_STEP", 0)
    first = _fit(ConvTask()).precision
    assert first is not None and first.reason == "auto: calibrated"
    monkeypatch.setattr(amp, "time_steps", _no_timing)
    later = _fit(ConvTask())
    assert later.precision == amp.Precision(
        first.choice, "auto: calibrated earlier in this process", first.step_ms
    )
    # Another batch shape is timed afresh.
    monkeypatch.setattr(amp, "time_steps", lambda steps: {k: 1.0 for k in steps})
    other = _fit(ConvTask(), batch_size=8).precision
    assert other is not None and other.reason == "auto: calibrated"


class _Interrupt(Callback):
    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.state.epoch == 2:
            raise KeyboardInterrupt


def _strip(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if "seconds" not in k}


@pytest.mark.parametrize("choice", [amp.BF16, amp.BF16_CL])
def test_resume_under_bf16_equals_uninterrupted(
    tmp_path: Path, image_folder: Path, monkeypatch, choice: str
) -> None:
    # auto picks `choice` (timings faked); the resumed run keeps it without timing again.
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "1")
    monkeypatch.setattr(amp, "RUN_STEPS_PER_CALIBRATION_STEP", 0)
    monkeypatch.setattr(amp, "time_steps", lambda steps: {k: 1.0 for k in steps})
    monkeypatch.setattr(
        amp, "pick", lambda ms, why="auto: calibrated": amp.Precision(choice, why, ms)
    )
    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"],
        [f"data.path={image_folder}", "data.size=32", "train.epochs=3", "reg.dropout=0.3",
         "reg.augment=crop", "train.checkpoint_every_s=0", "train.amp=auto"],
    )  # fmt: skip
    full = runner.train(cfg, tmp_path / "a")
    monkeypatch.setattr(amp, "CALIBRATED", ContentCache())  # as in a process of its own
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "b", callbacks=[_Interrupt()])
    interrupted = next((tmp_path / "b").iterdir())
    monkeypatch.setattr(amp, "time_steps", _no_timing)
    resumed = runner.train(None, tmp_path / "b", resume_dir=interrupted)
    m_full = json.loads((full / rundir.METRICS).read_text())
    m_res = json.loads((resumed / rundir.METRICS).read_text())
    assert m_full["amp_choice"] == choice and m_full["amp_step_ms_fp32"] == 1.0
    assert _strip(m_full) == _strip(m_res)
    w_full = load_file(str(full / rundir.WEIGHTS))
    w_res = load_file(str(resumed / rundir.WEIGHTS))
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    # eval repeats the run's test metrics in the arithmetic it was trained in
    assert runner.evaluate(full)["test_loss"] == m_full["test_loss"]


def test_sales_tasks_do_not_time_bf16_on_a_cpu() -> None:
    from archlab.tasks.image_cls import ImageClassification
    from archlab.tasks.sales_horizon import HorizonForecast
    from archlab.tasks.sales_parity import SalesParity
    from archlab.tasks.text_cls import TextClassification

    assert not SalesParity.cpu_amp and not HorizonForecast.cpu_amp
    assert ImageClassification.cpu_amp and TextClassification.cpu_amp


def test_a_checkpoint_from_before_precisions_resumes_in_fp32_on_a_cpu(monkeypatch) -> None:
    monkeypatch.setenv("ARCHLAB_CPU_BF16", "1")
    monkeypatch.setattr(amp, "RUN_STEPS_PER_CALIBRATION_STEP", 0)
    monkeypatch.setattr(amp, "time_steps", _no_timing)
    task = ConvTask()
    state = _fit(task, amp="off").state_dict()
    del state["precision"]
    state["epoch"], state["history"] = 1, state["history"][:1]
    t = Trainer(
        TrainConfig(epochs=2, batch_size=16, progress="off"),
        OptimConfig(name="sgd", lr=0.05),
        RegConfig(),
        seed=0,
        device=torch.device("cpu"),
    )
    t.fit(task, task.data(), task.build_model(), resume=state)
    assert t.precision is not None and t.precision.choice == amp.FP32
    assert t.precision.reason == "as the run was trained" and t.state.epoch == 2


@pytest.mark.parametrize("amp_setting", ["bf16", "off"])
def test_predict_computes_in_the_arithmetic_the_run_was_tested_in(
    tmp_path: Path, image_folder: Path, capsys, amp_setting: str
) -> None:
    from archlab.cli import main

    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"],
        [f"data.path={image_folder}", "data.size=32", "train.epochs=1", "train.progress=off",
         f"train.amp={amp_setting}"],
    )  # fmt: skip
    run = runner.train(cfg, tmp_path / "runs")
    files = sorted(str(p) for p in (image_folder / "dog").glob("*.png"))[:4]
    cfg, task, model = runner.restore_task(run)
    x = task.normalize(task.read_images(files))
    with torch.no_grad():
        fp32 = model(x).softmax(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x).float().softmax(1)
    assert not torch.allclose(fp32, bf16, atol=1e-6)  # the two arithmetics differ here
    want = bf16 if amp_setting == "bf16" else fp32
    assert main(["predict", str(run), *files]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = torch.tensor([[r[c] for c in task.fitted.class_names] for r in rows])
    assert torch.allclose(got, want, atol=1e-6)
