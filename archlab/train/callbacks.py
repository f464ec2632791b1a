"""Optional parts of training as callbacks: history, early stop, checkpoint, progress, TB."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from archlab import rundir
from archlab.errors import ArchlabError

if TYPE_CHECKING:
    from archlab.threads import ThreadGovernor
    from archlab.train.trainer import Trainer


class Callback:
    """Hooks the Trainer calls; override what you need. State must be plain values/tensors."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_interrupt(self, trainer: Trainer) -> None:
        """Ctrl-C stopped training after a step; the state is consistent at that boundary."""

    def on_fit_abort(self, trainer: Trainer) -> None:
        """An exception (error, Ctrl-C) is leaving fit(); finish what must not be lost."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FreezeParameters(Callback):
    """Keep the parameters whose names start with ``prefix`` (one or several; with
    ``others=True``: every parameter whose name does not) fixed for the first ``epochs``
    epochs (0 = the whole run), then train them.

    They stay in the optimizer: a parameter without a gradient is skipped by torch optimizers
    (no step, no weight decay), and one that gets gradients again is updated from then on. The
    state follows the epoch count, so a resumed run freezes or not as the original did.
    """

    def __init__(self, prefix: str | tuple[str, ...], epochs: int = 0, *, others: bool = False):
        self.prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
        self.epochs = epochs
        self.others = others

    def _set(self, trainer: Trainer) -> None:
        assert trainer.model is not None
        frozen = self.epochs == 0 or trainer.state.epoch < self.epochs
        for name, p in trainer.model.named_parameters():
            if name.startswith(self.prefixes) != self.others:
                p.requires_grad_(not frozen)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._set(trainer)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        self._set(trainer)


class AutoThreads(Callback):
    """``train.threads=0``: re-fit torch's thread count to the CPUs other jobs leave free.

    Checks at the start and then every ``every_s`` seconds of training (a /proc read).
    """

    def __init__(self, governor: ThreadGovernor, every_s: float = 2.0) -> None:
        self.governor, self.every_s = governor, every_s
        self._next = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.governor.adjust()
        self._next = time.monotonic() + self.every_s

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if time.monotonic() >= self._next:
            self.governor.adjust()
            self._next = time.monotonic() + self.every_s


class HistoryWriter(Callback):
    """Rewrite history.csv after every epoch (atomically)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / rundir.HISTORY

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        rundir.write_history(trainer.state.history, self.path)


class BestWeights(Callback):
    """Track the best epoch by ``monitor``; with ``restore``, end the fit on its weights; with
    ``patience`` set, stop after that many epochs without improvement.

    ``restore=False`` only tracks (the last epoch is scored), so the history still says which
    epoch was best. Best weights live in memory and in best.safetensors (for resume).
    """

    def __init__(
        self,
        monitor: tuple[str, str],
        patience: int | None,
        min_delta: float = 0.0,
        run_dir: Path | None = None,
        restore: bool = True,
    ) -> None:
        self.key, self.mode = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore = restore
        self.path = Path(run_dir) / rundir.BEST if run_dir else None
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self._weights: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        value = row[self.key]
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, int(row["epoch"]), 0
            if self.restore:
                assert trainer.model is not None
                self._weights = {
                    k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()
                }
                if self.path is not None:
                    rundir.save_weights(trainer.model, self.path)
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs > self.patience:
            trainer.state.stop = trainer.state.stopped_early = True

    def _say_stopped(self, trainer: Trainer) -> None:
        """After the last epoch's line: the log ended on 'epoch 7/8' with no word why."""
        if trainer.dist.is_main and trainer.cfg.progress != "off":
            best = (f"; its best, {self.best:.4g}, was epoch {self.best_epoch}"
                    if self.best_epoch else "")  # fmt: skip
            print(f"archlab: stopped early: {self.key} has not improved for "
                  f"{self.bad_epochs} epochs (more than reg.patience={self.patience}){best}",
                  file=sys.stderr)  # fmt: skip

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.state.stopped_early and self.patience is not None:
            self._say_stopped(trainer)
        if not self.restore or trainer.model is None:
            return
        if self._weights is None and self.path is not None and self.path.exists():
            rundir.load_weights(trainer.model, self.path)  # resumed after the best epoch
        elif self._weights is not None:
            trainer.model.load_state_dict(self._weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = (
            state["best"],
            state["best_epoch"],
            state["bad_epochs"],
        )


class Checkpoint(Callback):
    """Write resume state (state.pt) at epoch ends (every ``every_s`` seconds) and on Ctrl-C.

    The state is snapshotted in line (a copy on the CPU) and written by a background thread,
    so training does not wait for serialization and hashing (bench/overhead.py: up to 3 s per
    epoch for VGG-13 otherwise). A failed write keeps the previous file and is raised at the
    next checkpoint or at the end of the fit. Under DDP every rank builds the state (it may be
    a collective) and only the writer (rank 0) saves it.
    """

    def __init__(self, run_dir: Path, write: bool = True, every_s: float = 0.0) -> None:
        self.path = Path(run_dir) / rundir.STATE
        self.write = write
        self.every_s = every_s  # 0: every epoch; else only once this long since the last write
        self._last = time.monotonic()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()  # set when the write in flight is over
        self._error: BaseException | None = None
        self.saved_epoch = -1  # the epoch whose end state.pt holds, once written (-1: none)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._last = time.monotonic()

    def _save(self, trainer: Trainer, background: bool) -> None:
        if not self.write and not trainer.state.batch:
            return  # only a mid-epoch state needs every rank (it gathers their partials)
        state = trainer.state_dict()
        if not self.write:
            return
        self.join()
        epoch = -1 if trainer.state.batch else trainer.state.epoch  # mid-epoch: no epoch's end
        if not background:
            rundir.save_state(state, self.path)
            self.saved_epoch = epoch
            return

        def write() -> None:
            try:
                rundir.save_state(state, self.path)
                self.saved_epoch = epoch
            except OSError as e:  # handed to the training thread by join()
                self._error = ArchlabError(
                    f"{self.path}: could not write the checkpoint ({e}); the previous one is "
                    "kept (free disk space or choose a writable --out, then --resume)"
                )
            except BaseException as e:
                self._error = e
            finally:
                self._done.set()

        self._done.clear()
        self._thread = threading.Thread(target=write, name="archlab-checkpoint", daemon=False)
        self._thread.start()

    def join(self) -> None:
        """Wait for the write in flight; re-raise its error here, in the training thread.
        The wait is on an event, not Thread.join: a Ctrl-C inside Thread.join marks the
        thread as stopped while it still writes (CPython bpo-45274), and the process would
        then exit under it, leaving state.pt and checkpoint.json apart."""
        if self._thread is not None:
            self._done.wait()
            self._thread.join()  # the write is over: at once
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.every_s and time.monotonic() - self._last < self.every_s:
            return  # the VGG-13 state is ~465 MB: writing it every short epoch costs seconds
        self._last = time.monotonic()
        self._save(trainer, background=True)

    def on_interrupt(self, trainer: Trainer) -> None:
        if self.write:
            self.join()
        if not trainer.state.batch and self.saved_epoch == trainer.state.epoch:
            return  # at an epoch's end whose state the background write just saved
        self._save(trainer, background=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.join()

    def on_fit_abort(self, trainer: Trainer) -> None:
        # The last good checkpoint must be on disk before the error is reported; a write in
        # flight is waited for even through Ctrl-C (it takes a second or two): cut off, it
        # would leave state.pt and checkpoint.json apart.
        while self._thread is not None and not self._done.is_set():
            with contextlib.suppress(KeyboardInterrupt):
                self._done.wait()
        try:
            self.join()
        except ArchlabError as e:
            print(f"archlab: warning: {e}", file=sys.stderr)


class _EtaColumn(ProgressColumn):
    """Time left in the epoch from the mean step time so far (rich's own ETA needs two updates
    and a steady rate, so it showed -:--:-- for a whole epoch of slow steps). Rich redraws it
    ten times a second, so it moves while a long step runs."""

    def render(self, task: Task) -> Text:
        done = task.completed - task.fields.get("first", 0)
        if done <= 0 or task.total is None or task.elapsed is None:
            return Text("eta -:--", style="progress.remaining")
        left = task.elapsed / done * max(0.0, task.total - task.completed)
        minutes, seconds = divmod(int(left + 0.5), 60)
        hours, minutes = divmod(minutes, 60)
        text = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
        return Text(f"eta {text}", style="progress.remaining")


class _FieldColumn(ProgressColumn):
    """One task field as text ("" while unset): a missing field must never break a redraw,
    which runs in rich's refresh thread."""

    def __init__(self, name: str, template: str = "{}") -> None:
        super().__init__()
        self.name, self.template = name, template

    def render(self, task: Task) -> Text:
        value = task.fields.get(self.name)
        return Text("" if value in (None, "") else self.template.format(value))


class Progress(Callback):
    """A rich progress bar on a terminal (stderr); one plain line per epoch otherwise (CI logs).

    The bar advances every step; the loss it shows is read at most every ``loss_every_s``
    seconds (reading it is a device sync on a GPU) and is blank until the first step ends.
    """

    def __init__(
        self, mode: str = "auto", total_epochs: int = 0, loss_every_s: float = 0.5
    ) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self.total_epochs = total_epochs
        self.loss_every_s = loss_every_s
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._loss_read = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.mode != "bar":
            return
        self._bar = RichProgress(
            _FieldColumn("epoch", f"epoch {{}}/{self.total_epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            _FieldColumn("loss", "loss {:.4f}"),
            _EtaColumn(),
            console=Console(stderr=True, highlight=False),
            transient=True,
        )
        self._bar.start()
        start = trainer.state.batch  # > 0 when resuming a Ctrl-C checkpoint mid-epoch
        self._task = self._bar.add_task(
            "train", total=trainer.steps_per_epoch, completed=start,
            **self._fields(trainer.state.epoch + 1, start),
        )  # fmt: skip
        self._loss_read = 0.0

    @staticmethod
    def _fields(epoch: int, first: int = 0, loss: float | None = None) -> dict[str, Any]:
        # Every field a column reads, each time: reset() replaces the whole dict (and takes
        # "start" for itself). "first": the step this epoch started at (resume mid-epoch).
        return {"epoch": epoch, "first": first, "loss": loss}

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if self._bar is None or self._task is None:
            return
        now = time.monotonic()
        if now - self._loss_read >= self.loss_every_s:
            self._loss_read = now
            self._bar.update(self._task, completed=step + 1, loss=float(loss.item()))
        else:
            self._bar.update(self._task, completed=step + 1)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.mode == "off":
            return
        keys = [k for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy") if k in row]
        parts = " ".join(f"{k}={row[k]:.4f}" for k in keys)
        line = f"epoch {int(row['epoch'])}/{self.total_epochs} {parts} ({row['seconds']:.1f}s)"
        if self._bar is not None and self._task is not None:
            self._bar.console.print(line, soft_wrap=True)
            if trainer.state.epoch < self.total_epochs and not trainer.state.stop:
                self._bar.reset(self._task, **self._fields(int(row["epoch"]) + 1))
            self._loss_read = 0.0
        else:
            print(line, file=sys.stderr, flush=True)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def on_fit_end(self, trainer: Trainer) -> None:
        self._stop()

    def on_fit_abort(self, trainer: Trainer) -> None:
        self._stop()  # the error or the interrupt message then prints on a clean line


class TensorBoard(Callback):
    """Log every history column to TensorBoard under run_dir/tensorboard."""

    def __init__(self, run_dir: Path) -> None:
        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        for k, v in row.items():
            if k != "epoch":
                self._writer.add_scalar(k, v, int(row["epoch"]))
        self._writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
