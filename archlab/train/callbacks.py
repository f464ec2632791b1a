"""Optional parts of training as callbacks: history, early stop, checkpoint, progress, TB."""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from archlab.errors import ArchlabError
from archlab.report import artifacts

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
        self.path = Path(run_dir) / artifacts.HISTORY

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        artifacts.write_history(trainer.state.history, self.path)


class BestWeights(Callback):
    """Track the best epoch by ``monitor``; with ``patience`` set, stop early; restore the best.

    ``patience=None`` only tracks (no stopping, no restore), so the history still says which
    epoch was best. Best weights live in memory and in best.safetensors (for resume).
    """

    def __init__(
        self,
        monitor: tuple[str, str],
        patience: int | None,
        min_delta: float = 0.0,
        run_dir: Path | None = None,
    ) -> None:
        self.key, self.mode = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.path = Path(run_dir) / artifacts.BEST if run_dir else None
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
            if self.patience is not None:
                assert trainer.model is not None
                self._weights = {
                    k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()
                }
                if self.path is not None:
                    artifacts.save_weights(trainer.model, self.path)
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs > self.patience:
            trainer.state.stop = trainer.state.stopped_early = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.patience is None or trainer.model is None:
            return
        if self._weights is None and self.path is not None and self.path.exists():
            artifacts.load_weights(trainer.model, self.path)  # resumed after the best epoch
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
        self.path = Path(run_dir) / artifacts.STATE
        self.write = write
        self.every_s = every_s  # 0: every epoch; else only once this long since the last write
        self._last = time.monotonic()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._last = time.monotonic()

    def _save(self, trainer: Trainer, background: bool) -> None:
        if not self.write and not trainer.state.batch:
            return  # only a mid-epoch state needs every rank (it gathers their partials)
        state = trainer.state_dict()
        if not self.write:
            return
        self.join()
        if not background:
            artifacts.save_state(state, self.path)
            return

        def write() -> None:
            try:
                artifacts.save_state(state, self.path)
            except OSError as e:  # handed to the training thread by join()
                self._error = ArchlabError(
                    f"{self.path}: could not write the checkpoint ({e}); the previous one is "
                    "kept (free disk space or choose a writable --out, then --resume)"
                )
            except BaseException as e:
                self._error = e

        self._thread = threading.Thread(target=write, name="archlab-checkpoint", daemon=False)
        self._thread.start()

    def join(self) -> None:
        """Wait for the write in flight; re-raise its error here, in the training thread."""
        if self._thread is not None:
            self._thread.join()
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
        self._save(trainer, background=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.join()

    def on_fit_abort(self, trainer: Trainer) -> None:
        try:  # the last good checkpoint must be on disk before the error is reported
            self.join()
        except ArchlabError as e:
            print(f"archlab: warning: {e}", file=sys.stderr)


class Progress(Callback):
    """A rich progress bar on a terminal; one plain line per epoch otherwise (CI logs)."""

    def __init__(self, mode: str = "auto", total_epochs: int = 0) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self.total_epochs = total_epochs
        self._bar: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.mode != "bar":
            return
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn(f"epoch {{task.fields[epoch]}}/{self.total_epochs}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "train", total=trainer.steps_per_epoch, epoch=trainer.state.epoch + 1, loss=float("nan")
        )

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if self._bar is not None and step % 10 == 0:
            self._bar.update(self._task, completed=step + 1, loss=float(loss.item()))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.mode == "off":
            return
        keys = [k for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy") if k in row]
        parts = " ".join(f"{k}={row[k]:.4f}" for k in keys)
        line = f"epoch {int(row['epoch'])}/{self.total_epochs} {parts} ({row['seconds']:.1f}s)"
        if self._bar is not None:
            self._bar.console.print(line)
            self._bar.reset(self._task, epoch=int(row["epoch"]) + 1)
        else:
            print(line, file=sys.stderr, flush=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.stop()


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
