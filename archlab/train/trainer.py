"""The generic Trainer: fit a Task's model epoch by epoch; everything optional is a callback.

It knows nothing of images, sales or tweets: batches go to ``task.step`` and outputs to
``task.loss``/``task.metrics``. Resume state holds tensors and plain values only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from archlab.config import OptimConfig, RegConfig, TrainConfig
from archlab.errors import NonFiniteLossError
from archlab.metrics import scalar_metrics
from archlab.tasks.base import Batches, DataBundle, Task
from archlab.train.callbacks import Callback
from archlab.train.optim import build_optimizer, build_scheduler, l2_penalty


@dataclass
class FitState:
    """Progress of a fit; ``epoch`` counts completed epochs."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    stopped_early: bool = False


class Trainer:
    """Fit/evaluate loop shared by every task."""

    def __init__(
        self,
        train: TrainConfig,
        optim: OptimConfig,
        reg: RegConfig,
        *,
        seed: int,
        device: torch.device,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.cfg, self.optim_cfg, self.reg = train, optim, reg
        self.seed = seed
        self.device = device
        self.callbacks = list(callbacks)
        self.state = FitState()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.amp == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def setup(self, task: Task, data: DataBundle, model: nn.Module) -> None:
        """Move the model to the device and build optimizer and schedule for ``data.train``."""
        if self.cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, self.optim_cfg, self.reg)
        steps = data.train.num_batches(self.cfg.batch_size)
        if self.cfg.max_steps_per_epoch:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        self.steps_per_epoch = steps
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.cfg.epochs, steps)

    def fit(
        self, task: Task, data: DataBundle, model: nn.Module, resume: dict | None = None
    ) -> nn.Module:
        """Train until ``train.epochs`` or a callback stops; returns the model to evaluate."""
        self.setup(task, data, model)
        assert self.model is not None and self.optimizer is not None
        if resume is not None:
            self.load_state_dict(resume)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while self.state.epoch < self.cfg.epochs and not self.state.stop:
            t0 = time.perf_counter()
            row = {"epoch": self.state.epoch + 1, **self._train_epoch(task, data.train)}
            val_loss, val_metrics, _, _ = self.evaluate(task, data.val)
            row["val_loss"] = val_loss
            row.update({f"val_{k}": v for k, v in scalar_metrics(val_metrics).items()})
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            row["seconds"] = time.perf_counter() - t0
            self.state.epoch += 1
            self.state.history.append(row)
            for cb in self.callbacks:
                cb.on_epoch_end(self, row)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.model

    def _train_epoch(self, task: Task, batches: Batches) -> dict[str, float]:
        model, opt = self.model, self.optimizer
        assert model is not None and opt is not None
        model.train()
        epoch = self.state.epoch
        # Batch order and augmentation depend on (seed, epoch) only, so resume replays them.
        it = batches.iterate(
            self.cfg.batch_size,
            shuffle=True,
            seed=self.seed * 100_003 + epoch,
            max_batches=self.cfg.max_steps_per_epoch,
        )
        total, count = torch.zeros((), device=self.device), 0
        outs, targets = [], []
        for i, batch in enumerate(it):
            with self._autocast():
                out, y = task.step(model, batch)
                loss = task.loss(out, y)
            penalty = l2_penalty(model, self.reg)
            objective = loss if penalty is None else loss + penalty
            if not torch.isfinite(objective):
                raise NonFiniteLossError(
                    f"loss became {objective.item()} at epoch {epoch + 1}, step {i + 1}; stopped, "
                    "the last good checkpoint is kept (try a lower optim.lr or optim.grad_clip)"
                )
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if self.optim_cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), self.optim_cfg.grad_clip)
            opt.step()
            self.scheduler.step()
            self.state.step += 1
            n = len(y)
            total += loss.detach() * n
            count += n
            outs.append(out.detach().float())
            targets.append(y.detach())
            for cb in self.callbacks:
                cb.on_batch_end(self, i, loss)
        row = {"train_loss": float(total.item() / max(count, 1))}
        if outs:
            m = task.metrics(torch.cat(outs).cpu(), torch.cat(targets).cpu())
            row.update({f"train_{k}": v for k, v in scalar_metrics(m).items()})
        return row

    @torch.no_grad()
    def evaluate(
        self, task: Task, batches: Batches, model: nn.Module | None = None
    ) -> tuple[float, dict[str, Any], torch.Tensor, torch.Tensor]:
        """Loss and metrics over a whole split (exact F1/confusion), plus the raw outputs."""
        model = model or self.model
        assert model is not None
        was_training = model.training
        model.eval()
        outs, targets = [], []
        for batch in batches.iterate(self.cfg.eval_batch_size):
            with self._autocast():
                out, y = task.step(model, batch)
            outs.append(out.float())
            targets.append(y)
        model.train(was_training)
        out, y = torch.cat(outs), torch.cat(targets)
        loss = float(task.loss(out, y).item())
        out, y = out.cpu(), y.cpu()
        return loss, task.metrics(out, y), out, y

    # --- resume state: tensors and plain values only (loadable with weights_only=True) ---
    def state_dict(self) -> dict[str, Any]:
        assert self.model is not None and self.optimizer is not None
        return {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "history": self.state.history,
            "stop": self.state.stop,
            "stopped_early": self.state.stopped_early,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.model is not None and self.optimizer is not None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = FitState(
            epoch=state["epoch"],
            step=state["step"],
            history=list(state["history"]),
            stop=state["stop"],
            stopped_early=state["stopped_early"],
        )
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        for cb in self.callbacks:
            if type(cb).__name__ in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][type(cb).__name__])
