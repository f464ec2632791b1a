"""The generic Trainer: fit a Task's model epoch by epoch; everything optional is a callback.

It knows nothing of images, sales or tweets: batches go to ``task.step`` and outputs to
``task.loss``/``task.metrics``. Resume state holds tensors and plain values only. Under torchrun
the model is wrapped in DistributedDataParallel and every rank trains on its shard of each epoch;
validation runs whole on every rank (identical weights give identical metrics, so early-stopping
decisions agree without communication). Ctrl-C finishes the current step, saves a checkpoint and
stops; resuming continues from that step. The arithmetic (fp32 or bf16 autocast, see
precision.py) is chosen in ``setup`` and kept in the resume state.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from archlab.config import OptimConfig, RegConfig, TrainConfig
from archlab.errors import ArchlabError, NonFiniteLossError
from archlab.metrics import scalar_metrics
from archlab.train import distributed
from archlab.train import precision as amp
from archlab.train.callbacks import Callback
from archlab.train.distributed import Dist
from archlab.train.optim import LrScale, build_optimizer, build_scheduler, l2_penalty
from archlab.train.protocol import Batches, Splits, TrainTask
from archlab.utils import autocast


def _cpu_copy(x: Any) -> Any:
    """A CPU copy of every tensor in nested dicts/lists (optimizer state), plain values as-is."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: _cpu_copy(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_cpu_copy(v) for v in x)
    return x


@dataclass
class FitState:
    """Progress of a fit; ``epoch`` counts completed epochs, ``batch`` steps of the current one."""

    epoch: int = 0
    step: int = 0
    batch: int = 0  # > 0 only in a checkpoint written by Ctrl-C mid-epoch
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
        dist: Dist = distributed.SINGLE,
        cpu_amp: bool = True,
        precision: amp.Precision | None = None,
        lr_scale: LrScale | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """``cpu_amp=False``: the task's networks stay fp32 on a CPU under ``train.amp=auto``;
        ``precision``: a saved run's (evaluation), else chosen when fitting; ``lr_scale``: a
        factor on the learning rate per parameter name (a fine-tuned body's lower rate);
        ``say``: prints a note line (a search's says each line once), else stderr."""
        self.cfg, self.optim_cfg, self.reg = train, optim, reg
        self.seed = seed
        self.device = device
        self.callbacks = list(callbacks)
        self.dist = dist
        self.state = FitState()
        self.model: nn.Module | None = None
        self.train_model: nn.Module | None = None  # the DDP wrapper under torchrun
        self.interrupted = False
        self._unsaid = ""  # the Ctrl-C's line, when it came inside a write to stderr
        self.interrupt_saved = False  # its checkpoint written (not aborted by a second Ctrl-C)
        self._partial: dict[str, Any] | None = None  # a mid-epoch checkpoint's accumulators
        self._epoch_t0 = 0.0  # perf_counter() at the epoch's start (less a resumed part's time)
        self.replica_digests: list[str] = []  # per-rank weight digests after a DDP fit
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.cpu_amp = cpu_amp
        self.precision = precision
        self.lr_scale = lr_scale
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    def autocast(self) -> contextlib.AbstractContextManager:
        """The arithmetic the run trains and evaluates in (bf16 autocast or none): a task's
        post-hoc choices on validation use it too, as predict does (runner.inference)."""
        if self.precision is None:  # evaluating without a fit or a saved choice: no timing
            fp32 = amp.Precision(amp.FP32, "auto: not timed")
            self.precision = amp.fixed(self.cfg, self.device) or fp32
        return autocast(self.device, self.precision.bf16)

    def setup(
        self, task: TrainTask, data: Splits, model: nn.Module, saved: amp.Precision | None = None
    ) -> None:
        """Move the model to the device, choose the precision (``saved``: a resumed run's)
        and build optimizer and schedule for ``data.train``."""
        model = model.to(self.device)
        steps = data.train.num_batches(self.batch_size)
        if self.cfg.max_steps_per_epoch:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        self.precision = saved or self._choose_precision(task, data, model, steps)
        if self.dist.is_main and self.cfg.progress != "off":
            self.say(f"archlab: precision: {self.precision.describe()}")
        if self.cfg.channels_last or self.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.train_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = build_optimizer(self.model, self.optim_cfg, self.reg, self.lr_scale)
        self.steps_per_epoch = steps
        self._sync_every = 1 if self.device.type == "cpu" else 16  # see _check
        self._bad: torch.Tensor | None = None
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.cfg.epochs, steps)

    def _choose_precision(
        self, task: TrainTask, data: Splits, model: nn.Module, steps_per_epoch: int
    ) -> amp.Precision:
        """``train.amp``'s precision; for ``auto`` on a CPU with bf16 units, the fastest of
        fp32, bf16 (and bf16 + channels_last for convnets) over a few timed training steps."""
        if self.precision is not None:
            return self.precision
        if (p := amp.fixed(self.cfg, self.device)) is not None:
            return p
        if not self.cpu_amp:
            return amp.Precision(amp.FP32, "auto: this task's networks train in fp32 on a CPU")
        conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        candidates = [amp.FP32, amp.BF16, *([amp.BF16_CL] if conv else [])]
        if (p := amp.too_short(candidates, self.cfg.epochs * steps_per_epoch)) is not None:
            return p
        batch = next(iter(data.train.iterate(self.batch_size, shuffle=True, seed=self.seed)))
        key = None
        if not self.dist.enabled:  # under DDP rank 0's timings decide (broadcast below)
            key = amp.shape_key(model, batch, candidates, self.device, self.optim_cfg.name)
            if (ms := amp.CALIBRATED.lookup(key)) is not None:  # a search's later trial
                return amp.pick(ms, "auto: calibrated earlier in this process")

        def make_step(choice: str) -> Any:
            # A copy with its own optimizer: the run's weights, optimizer and BatchNorm
            # statistics are untouched, and fork_rng below restores the RNG dropout draws from.
            m = copy.deepcopy(model).train()
            if choice == amp.BF16_CL:
                m = m.to(memory_format=torch.channels_last)
            opt = build_optimizer(m, self.optim_cfg, self.reg)

            def step() -> None:
                with autocast(self.device, choice != amp.FP32):
                    out, y = task.step(m, batch)
                loss = task.loss(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return step

        with torch.random.fork_rng(devices=[]):
            step_ms = amp.time_steps({c: make_step(c) for c in candidates})
        if key is not None:
            amp.CALIBRATED.put(key, step_ms)
        # Under DDP every rank must train alike: rank 0's timings decide for all.
        return amp.pick(distributed.broadcast(step_ms if self.dist.is_main else None, self.dist))

    @property
    def batch_size(self) -> int:
        """Per-rank batch: ``train.batch_size`` is the global batch, split over the ranks."""
        return self.cfg.batch_size // self.dist.world

    def fit(
        self, task: TrainTask, data: Splits, model: nn.Module, resume: dict | None = None
    ) -> nn.Module:
        """Train until ``train.epochs`` or a callback stops; returns the model to evaluate."""
        saved = None
        if resume is not None:  # the resumed run keeps its precision (no re-timing)
            p = resume.get("precision")
            saved = amp.legacy(self.cfg, self.device) if p is None else amp.Precision.from_dict(p)
        self.setup(task, data, model, saved)
        assert self.model is not None and self.optimizer is not None
        if resume is not None:
            self.load_state_dict(resume)
        try:
            # Inside: a Ctrl-C in a slow on_fit_start (after the progress bar's) still stops
            # the bar, which kept drawing over the interrupt's line with the cursor hidden.
            for cb in self.callbacks:
                cb.on_fit_start(self)
            # The handler covers the fit's end too: a first Ctrl-C while the last checkpoint
            # write is waited for is a stop after it (the runner keeps the finished training).
            with self._sigint_checkpoints():
                self._fit_epochs(task, data)
                for cb in self.callbacks:
                    cb.on_fit_end(self)
            if self.interrupted:
                self._say_unsaid()
                raise KeyboardInterrupt
        except BaseException:
            self._abort()
            raise
        self._sync_buffers()
        self._check_replicas()
        return self.model

    def _abort(self) -> None:
        """Every callback's on_fit_abort, each whatever the others raise (the checkpoint
        writer's join must not be skipped: a write cut short leaves state.pt and
        checkpoint.json apart)."""
        for cb in self.callbacks:
            try:
                cb.on_fit_abort(self)
            except BaseException as e:
                print(f"archlab: warning: {type(cb).__name__} on abort: {e!r}", file=sys.stderr)

    def _sync_buffers(self) -> None:
        """Under DDP, end every rank on rank 0's buffers (the weights it saves): BatchNorm's
        running statistics follow each rank's own batches since DDP last broadcast them, at the
        last training forward, so the replicas' digests could never match."""
        if not self.dist.enabled or self.model is None:
            return
        for b in self.model.buffers():
            torch.distributed.broadcast(b.data, src=0)

    def _check_replicas(self) -> None:
        """Under DDP, prove every rank ends with bitwise identical weights (digests gathered)."""
        if not self.dist.enabled:
            return
        assert self.model is not None
        h = hashlib.sha256()
        for v in self.model.state_dict().values():
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        self.replica_digests = distributed.gather(h.hexdigest(), self.dist)
        if len(set(self.replica_digests)) > 1:
            raise ArchlabError(f"DDP replicas diverged: weight digests {self.replica_digests}")

    @contextlib.contextmanager
    def _sigint_checkpoints(self) -> Iterator[None]:
        """First Ctrl-C: finish the step, checkpoint, stop. A second one aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:
                # Only a second Ctrl-C aborts: SIGTERM and SIGHUP come again on their own (a
                # closed terminal's shell forwards SIGHUP, then the kernel sends it too).
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                return
            self.interrupted = True
            if self.dist.is_main:  # SIGTERM comes here too (the CLI passes it on as signum)
                what = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}.get(signum, "Ctrl-C")
                self._unsaid = (f"archlab: {what}: saving a checkpoint after this step (Ctrl-C "
                                "to abort without it)")  # fmt: skip
                self._say_unsaid()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _fit_epochs(self, task: TrainTask, data: Splits) -> None:
        assert self.optimizer is not None
        while self.state.epoch < self.cfg.epochs and not self.state.stop:
            # A mid-epoch checkpoint's epoch counts the seconds it had run before its Ctrl-C.
            self._epoch_t0 = t0 = time.perf_counter() - (self._partial or {}).get("seconds", 0.0)
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
            # A Ctrl-C during validation (no step left to stop after): stop at the epoch's end.
            if self._stop_requested(-1):
                for cb in self.callbacks:
                    cb.on_interrupt(self)
                self.interrupt_saved = True
                raise KeyboardInterrupt

    def _train_epoch(self, task: TrainTask, batches: Batches) -> dict[str, float]:
        model, opt = self.train_model, self.optimizer
        assert model is not None and opt is not None
        model.train()
        epoch, start = self.state.epoch, self.state.batch
        # Batch order and augmentation depend on (seed, epoch) only, so resume replays them.
        it = batches.iterate(
            self.batch_size,
            shuffle=True,
            seed=self.seed * 100_003 + epoch,
            max_batches=self.cfg.max_steps_per_epoch,
        )
        total, count = torch.zeros((), device=self.device), 0
        outs, targets = [], []
        if self._partial is not None:  # resuming a Ctrl-C checkpoint taken mid-epoch
            total += self._partial["total"].to(self.device)
            count = self._partial["count"]
            outs, targets = list(self._partial["outs"]), list(self._partial["targets"])
            self._partial = None
        for i, batch in enumerate(it):
            if i < start:
                continue  # fetched anyway: it advances the augmentation generator
            with self.autocast():
                out, y = task.step(model, batch)
            loss = task.loss(out.float(), y)  # reduced in fp32, whatever autocast computed
            penalty = l2_penalty(self.model, self.reg)
            objective = loss if penalty is None else loss + penalty
            self._check(objective, epoch, i)
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
            if self._stop_requested(i):
                self.state.batch = i + 1
                self._partial = {"total": total.detach().cpu(), "count": count,
                                 "seconds": time.perf_counter() - self._epoch_t0,
                                 "outs": [o.cpu() for o in outs],
                                 "targets": [t.cpu() for t in targets]}  # fmt: skip
                for cb in self.callbacks:
                    cb.on_interrupt(self)
                self.interrupt_saved = True
                raise KeyboardInterrupt
        self._check(total, epoch, self.steps_per_epoch - 1, flush=True)
        self.state.batch = 0
        # Under DDP every rank saw a shard: sum the loss, gather outputs for exact train metrics.
        sums = distributed.all_sum(
            torch.stack([total, torch.tensor(float(count), device=total.device)]), self.dist
        )
        row = {"train_loss": float(sums[0].item() / max(sums[1].item(), 1))}
        if outs:
            out_all = torch.cat([o.cpu() for o in outs])
            y_all = torch.cat([t.cpu() for t in targets])
            if self.dist.enabled:
                shards = distributed.gather((out_all, y_all), self.dist)
                out_all = torch.cat([o for o, _ in shards])
                y_all = torch.cat([t for _, t in shards])
            m = task.metrics(out_all, y_all)
            row.update({f"train_{k}": v for k, v in scalar_metrics(m).items()})
        return row

    def _check(self, objective: torch.Tensor, epoch: int, i: int, flush: bool = False) -> None:
        """Stop on a non-finite loss, before the step is applied; under DDP all ranks agree.

        On a GPU, reading the flag is a host sync, so flags are OR-ed on the device and read
        every ``sync_every`` steps and at the epoch's end (the message then gives a step range).
        """
        if not flush:
            bad = ~torch.isfinite(objective.detach())
            self._bad = bad if self._bad is None else self._bad | bad
            if (i + 1) % self._sync_every:
                return
        if self._bad is None:
            return
        flag, self._bad = self._bad.float(), None
        if distributed.all_sum(flag, self.dist).item() > 0:
            first = max(1, i + 2 - self._sync_every) if self._sync_every > 1 else i + 1
            where = f"step {i + 1}" if first == i + 1 else f"steps {first}-{i + 1}"
            raise NonFiniteLossError(
                f"loss became non-finite at epoch {epoch + 1}, {where}; stopped, the last good "
                "checkpoint is kept (try a lower optim.lr or optim.grad_clip)"
            )

    def _say_unsaid(self) -> None:
        """The Ctrl-C's line, unless the signal came inside a write to stderr (an epoch's line
        to a slow `2>&1 | tee`): printing there raised "reentrant call" (exit 1, no checkpoint),
        so the line waits for the step's end (``_stop_requested``)."""
        if not self._unsaid:
            return
        try:
            print(self._unsaid, file=sys.stderr, flush=True)
        except RuntimeError:  # the buffered stream's own check; it is left as it was
            return
        self._unsaid = ""

    def _stop_requested(self, i: int) -> bool:
        """Ctrl-C seen (on any rank: under DDP the ranks must stop at the same step, so they
        agree by an all-reduce every ``sync_every`` steps, and at each epoch's end, ``i`` -1)."""
        self._say_unsaid()
        if not self.dist.enabled:
            return self.interrupted
        if i >= 0 and (i + 1) % self._sync_every:
            return False
        flag = torch.tensor([float(self.interrupted)], device=self.device)
        return bool(distributed.all_sum(flag, self.dist).item() > 0)

    @torch.no_grad()
    def evaluate(
        self, task: TrainTask, batches: Batches, model: nn.Module | None = None
    ) -> tuple[float, dict[str, Any], torch.Tensor, torch.Tensor]:
        """Loss and metrics over a whole split (exact F1/confusion), plus the raw outputs."""
        model = model or self.model
        assert model is not None
        ctx = self.autocast()
        if self.precision is not None and self.precision.channels_last:  # as it was trained
            model = model.to(memory_format=torch.channels_last)
        was_training = model.training
        model.eval()
        outs, targets = [], []
        for batch in batches.iterate(self.cfg.eval_batch_size):
            with ctx:
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
        """Resume state; a Ctrl-C checkpoint also holds the epoch's partial accumulators.

        Under DDP this is a collective (every rank calls it): the partial accumulators are
        per rank. RNG streams are identical on every rank, so rank 0's stand for all.
        """
        assert self.model is not None and self.optimizer is not None
        partial = distributed.gather(self._partial, self.dist) if self.state.batch else []
        return {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "batch": self.state.batch,
            "partial": partial,
            "world": self.dist.world,
            "history": self.state.history,
            "stop": self.state.stop,
            "stopped_early": self.state.stopped_early,
            "model": _cpu_copy(self.model.state_dict()),
            # A copy: the optimizer's state dict references live tensors, and the checkpoint
            # is written by a background thread while training goes on.
            "optimizer": _cpu_copy(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "callbacks": {k: cb.state_dict() for k, cb in self._keyed_callbacks()},
            "precision": None if self.precision is None else self.precision.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.model is not None and self.optimizer is not None
        world = state.get("world", 1)
        if state.get("batch", 0) and world != self.dist.world:
            raise ArchlabError(
                f"this checkpoint was taken mid-epoch by {world} process(es); resume it with "
                f"the same number (now {self.dist.world})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = FitState(
            epoch=state["epoch"],
            step=state["step"],
            history=list(state["history"]),
            batch=state.get("batch", 0),
            stop=state["stop"],
            stopped_early=state["stopped_early"],
        )
        self._partial = state["partial"][self.dist.rank] if self.state.batch else None
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        for key, cb in self._keyed_callbacks():
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])

    def _keyed_callbacks(self) -> list[tuple[str, Callback]]:
        """Each callback under a key of its own: its class name, then ``#2``, ``#3``... for
        further instances of the class (in order), so two of a kind keep separate state."""
        seen: dict[str, int] = {}
        out = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cb))
        return out
