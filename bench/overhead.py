"""Overhead benchmark: archlab's Trainer vs a bare PyTorch loop doing the same training (issue 7).

Goal: median ratio trainer/bare <= 1.05 for every model.

Usage:
    python bench/overhead.py [--models resnet18,vgg13,bilstm,rnn] [--steps K | --steps rnn=50,..]
        [--repeats R] [--threads T] [--device auto|cpu|cuda] [--data-dir DIR] [--batch-size B]
        [--val-size N] [--fetch cached|live] [--sales-stores 1,2] [--profile] [--cprofile N]
    e.g. python bench/overhead.py --threads 2 --profile         (defaults: a few minutes, 2 cores)
         python bench/overhead.py --steps 3 --repeats 2 --threads 1   (a smoke run)

Each model runs its study preset (images-resnet18, images-vgg13, text-bilstm, sales-rnn) with
train.epochs=1 and train.max_steps_per_epoch=K (defaults resnet18 10, vgg13 5, bilstm 50, rnn 50:
on CPU a ResNet-18 step takes ~1.7 s and a VGG-13 step ~3 s per core). Images are the images3
.npz under the data dir (grayscale 32x32, as the preset; the built-in scikit-learn digits if the
.npz is missing: the output says which); tweets are twitter_airline/Tweets.csv; sales are walmart/
(all stores unless --sales-stores). The data is built once per model, outside every timer.

What both sides do (the same work):
  * the same model (built from the same seed, outside the timer), moved to the device; the same
    optimizer and per-step schedule (archlab.train.optim.build_optimizer/build_scheduler), loss
    (task.step + task.loss, plus l2_penalty when reg.l2_mode='penalty'), batch size,
    grad clipping (optim.grad_clip) and autocast setting;
  * K steps of zero_grad / forward / loss / backward / [clip] / step / scheduler.step;
  * batches: with --fetch cached (default) the K training batches and the validation batches
    are fetched once per model and both sides iterate the same in-memory lists, so batch
    production (slicing, normalizing, augmenting, padding) is excluded from both timers. With
    --fetch live both sides call the task's ``data.train.iterate`` with the Trainer's arguments
    (same seed, same batches), so the same fetch cost is included in both;
  * a validation pass over the same small val subset (--val-size samples, default one training
    batch; 0 = the whole val split) at train.eval_batch_size, under no_grad. The val subset is
    kept small so that the (shared) val forward does not dilute the ratio.
What only the bare loop does: nothing else (its val pass ends with one loss over the outputs).
What only the Trainer adds (the overhead measured): Trainer/callback construction, SIGINT
handler, the per-step isfinite check (a host sync on GPU) and stop-request check, loss
accumulation and output collection, train metrics over the epoch's outputs, val metrics, the
history row, and the default callbacks of every run (runner.default_callbacks): BestWeights,
Checkpoint (state.pt + manifest in a temp run dir), HistoryWriter, Progress("off"); TensorBoard
off; a task's own callbacks (text: the embedding freeze, off in text-bilstm) are not added.
runner.fit's work after training (weights file, test split, baselines, plots) is excluded.
The Trainer's per-epoch costs are paid once in a K-step bench but once per full epoch in real
runs, so the ratio at small K is an upper bound; --profile also projects it to a full epoch
(column "full-epoch B/A").

Timing: per model, one warm-up of each side, then R pairs interleaved A,B / B,A / A,B ... in
one process; ratio = trainer/bare per pair (min/median/max). Wall and CPU (process) time are
both reported: on a busy machine CPU time is the steadier one. Peak memory per run: RSS
high-water mark (VmHWM, reset before each run through /proc/self/clear_refs; falls back to
the process-lifetime ru_maxrss) and torch.cuda.max_memory_allocated on CUDA (reset per run).

--profile then runs one instrumented run of each side and attributes the Trainer's time to its
parts (monkeypatched timers, synchronizing on CUDA, around task.step/loss/metrics, l2_penalty,
torch.isfinite, backward, optimizer/scheduler steps, every callback hook, and Checkpoint's
trainer.state_dict / torch.save / sha256 manifest); a "rest" row is what is left of an epoch.
It then re-times train and val metrics at the real split sizes and projects the Trainer-only
cost onto one full epoch. --cprofile N prints the top N functions of one cProfile'd Trainer run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlab.train.trainer as trainer_mod
from archlab import rundir, runner
from archlab.config import RunConfig
from archlab.presets import PRESETS
from archlab.tasks import TASKS
from archlab.tasks.base import Batches, DataBundle
from archlab.train import distributed
from archlab.train.callbacks import (
    Callback,
)
from archlab.train.optim import build_optimizer, build_scheduler, l2_penalty
from archlab.train.trainer import Trainer
from archlab.utils import resolve_device, seed_everything

GOAL = 1.05


@dataclass(frozen=True)
class Bench:
    preset: str
    steps: int  # default K: the whole bench takes a few minutes on 2 CPU cores


BENCHES = {
    "resnet18": Bench("images-resnet18", 10),
    "vgg13": Bench("images-vgg13", 5),
    "bilstm": Bench("text-bilstm", 50),
    "rnn": Bench("sales-rnn", 50),
}


# --- configs and data ----------------------------------------------------------------------
def make_config(name: str, args: argparse.Namespace) -> tuple[RunConfig, str] | str:
    """The preset adapted for the bench and a description of its data, or why it is skipped."""
    cfg = PRESETS[BENCHES[name].preset]
    root = Path(args.data_dir)
    if cfg.task == "images":
        npz = sorted((root / "images3").glob("*.npz"))
        if npz:
            data = replace(cfg.data, path=str(npz[0]), format="npz", channels=args.channels)
            source = f"images3/{npz[0].name}"
        else:
            data = replace(cfg.data, path="", format="digits", channels=args.channels)
            source = f"built-in digits (no {root / 'images3'}/*.npz)"
        source += f", {data.channels}ch {data.size}x{data.size}"
    elif cfg.task == "text":
        csv = root / "twitter_airline" / "Tweets.csv"
        if not csv.exists():
            return f"no {csv}"
        data, source = replace(cfg.data, path=str(csv)), "twitter_airline/Tweets.csv"
    else:
        folder = root / "walmart"
        if not folder.is_dir():
            return f"no {folder}"
        data = replace(cfg.data, path=str(folder), stores=tuple(args.sales_stores))
        stores = ",".join(map(str, args.sales_stores)) if args.sales_stores else "all"
        source = f"walmart/ (stores: {stores})"
    steps = args.steps.get(name) or args.steps.get("*") or BENCHES[name].steps
    train = replace(
        cfg.train,
        epochs=1,
        max_steps_per_epoch=steps,
        batch_size=args.batch_size or cfg.train.batch_size,
        progress="off",
        tensorboard=False,
        threads=args.threads,
        device=args.device,
    )
    return replace(cfg, data=data, train=train), source


class CachedBatches(Batches):
    """Batches fetched once; every ``iterate`` yields the same list (bounded by max_batches)."""

    def __init__(self, batches: list[Any], n: int) -> None:
        super().__init__(n, lambda i, gen: None)
        self.batches = batches

    def num_batches(self, batch_size: int) -> int:
        return len(self.batches)

    def iterate(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, max_batches: int = 0
    ) -> Iterator[Any]:
        yield from self.batches[: max_batches or None]


def bench_bundle(data: DataBundle, cfg: RunConfig, fetch: str, val_size: int) -> DataBundle:
    """The task's bundle with a small val split; with fetch='cached' every batch pre-fetched."""
    t = cfg.train
    n_val = min(len(data.val), val_size) if val_size else len(data.val)
    val = Batches(n_val, data.val.fetch)  # the first n_val val samples (unshuffled order)
    train = data.train
    if fetch == "cached":
        it = data.train.iterate(
            t.batch_size,
            shuffle=True,
            seed=cfg.seed * 100_003,  # the Trainer's seed for epoch 0
            max_batches=t.max_steps_per_epoch,
        )
        train_batches = list(it)
        train = CachedBatches(
            train_batches, min(len(data.train), len(train_batches) * t.batch_size)
        )
        val = CachedBatches(list(val.iterate(t.eval_batch_size)), n_val)
    return replace(data, train=train, val=val)  # fitted, info, splits and context unchanged


# --- the two sides ---------------------------------------------------------------------------
def autocast(cfg: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.train.amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bare_fit(
    task: Any, data: DataBundle, cfg: RunConfig, device: torch.device, model: nn.Module,
    probe: Probe | None = None,
) -> float:  # fmt: skip
    """(a) A plain PyTorch loop: K training steps, then a no_grad pass over the val batches."""
    t, phase = cfg.train, (probe.phase if probe else lambda name: contextlib.nullcontext())
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    opt = build_optimizer(model, cfg.optim, cfg.reg)
    steps = data.train.num_batches(t.batch_size)
    steps = min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps
    sched = build_scheduler(opt, cfg.optim, t.epochs, steps)
    if probe:
        probe.wrap_optim(opt, sched)
    with phase("train"):
        model.train()
        batches = data.train.iterate(
            t.batch_size, shuffle=True, seed=cfg.seed * 100_003, max_batches=t.max_steps_per_epoch
        )
        for batch in probe.timed_iter(batches) if probe else batches:
            with autocast(cfg, device):
                out, y = task.step(model, batch)
                loss = task.loss(out, y)
            penalty = l2_penalty(model, cfg.reg)
            objective = loss if penalty is None else loss + penalty
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if cfg.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
    with phase("val"), torch.no_grad():
        model.eval()
        outs, targets = [], []
        for batch in data.val.iterate(t.eval_batch_size):
            with autocast(cfg, device):
                out, y = task.step(model, batch)
            outs.append(out.float())
            targets.append(y)
        val_loss = float(task.loss(torch.cat(outs), torch.cat(targets)).item())
        model.train()
    return val_loss


def default_callbacks(cfg: RunConfig, run_dir: Path) -> list[Callback]:
    """The callbacks runner.fit builds for a single-process run (the task's own excluded)."""
    return runner.default_callbacks(cfg, TASKS[cfg.task].monitor, run_dir, distributed.SINGLE)


def trainer_fit(
    task: Any, data: DataBundle, cfg: RunConfig, device: torch.device, model: nn.Module,
    run_dir: Path, probe: Probe | None = None,
) -> Trainer:  # fmt: skip
    """(b) archlab's Trainer.fit with the default callbacks, for one epoch of K steps."""
    trainer = Trainer(
        cfg.train,
        cfg.optim,
        cfg.reg,
        seed=cfg.seed,
        device=device,
        callbacks=default_callbacks(cfg, run_dir),
    )
    if probe:
        probe.instrument_trainer(trainer, data)
    trainer.fit(task, data, model)
    return trainer


# --- measuring ---------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_mib(reset_ok: bool) -> float:
    if reset_ok:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float
    cuda_mib: float


def measure(fn: Callable[[], Any], device: torch.device) -> Sample:
    gc.collect()
    reset_ok = _reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return Sample(wall, cpu, _peak_rss_mib(reset_ok), cuda)


def fresh_model(task: Any, cfg: RunConfig) -> nn.Module:
    seed_everything(cfg.seed)
    return task.build_model()


class Sides:
    """Runs side 'bare' or 'trainer' on fresh models; trainer runs get a temp run dir each."""

    def __init__(self, task: Any, data: DataBundle, cfg: RunConfig, device: torch.device,
                 tmp: Path) -> None:  # fmt: skip
        self.task, self.data, self.cfg, self.device, self.tmp = task, data, cfg, device, tmp
        self.projected: float | None = None  # full-epoch ratio estimated by --profile

    def run(self, side: str, probe: Probe | None = None) -> Sample:
        model = fresh_model(self.task, self.cfg)
        if side == "bare":
            return measure(
                lambda: bare_fit(self.task, self.data, self.cfg, self.device, model, probe),
                self.device,
            )
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp))
        try:
            return measure(
                lambda: trainer_fit(
                    self.task, self.data, self.cfg, self.device, model, run_dir, probe
                ),
                self.device,
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def cprofile(self, top: int) -> str:
        model = fresh_model(self.task, self.cfg)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp))
        prof = cProfile.Profile()
        try:
            prof.runcall(trainer_fit, self.task, self.data, self.cfg, self.device, model, run_dir)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
        return buf.getvalue()


# --- profiling by monkeypatched timers ---------------------------------------------------------
class Probe:
    """Inclusive timers keyed ``phase/part``; patches are undone by ``close``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.current = "fit"
        self.last_args: dict[str, tuple] = {}  # per key, the arguments of its last call
        self._undo: list[tuple[Any, str, Any, bool]] = []

    def close(self) -> None:
        for obj, attr, old, had in reversed(self._undo):
            if had:
                setattr(obj, attr, old)
            else:
                delattr(obj, attr)
        self._undo.clear()

    def _add(self, key: str, dt: float) -> None:
        self.seconds[key] += dt
        self.calls[key] += 1

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        outer, self.current = self.current, name
        _sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self._add(name, time.perf_counter() - t0)
            self.current = outer

    def timed(self, name: str, fn: Callable, *, phased: bool = True, after: Callable | None = None):
        @functools.wraps(fn)  # keeps markers such as the LR scheduler's _wrapped_by_lr_sched
        def wrapper(*a: Any, **k: Any) -> Any:
            key = f"{self.current}/{name}" if phased else name
            self.last_args[key] = a
            _sync(self.device)
            t0 = time.perf_counter()
            try:
                out = fn(*a, **k)
                if after is not None:
                    after(out)
                return out
            finally:
                _sync(self.device)
                self._add(key, time.perf_counter() - t0)

        return wrapper

    def patch(self, obj: Any, attr: str, name: str, **kw: Any) -> None:
        if not hasattr(obj, attr):
            return
        own = vars(obj)
        self._undo.append((obj, attr, own.get(attr), attr in own))
        setattr(obj, attr, self.timed(name, getattr(obj, attr), **kw))

    def timed_iter(self, it: Iterator[Any]) -> Iterator[Any]:
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                self._add(f"{self.current}/fetch", time.perf_counter() - t0)
            yield item

    # Global patches shared by both sides: the task's parts and torch's per-step calls.
    def instrument_common(self, task: Any) -> None:
        for attr, name in (("step", "forward"), ("loss", "loss"), ("metrics", "metrics")):
            self.patch(task, attr, name)
        self.patch(torch.Tensor, "backward", "backward")
        self.patch(torch.nn.utils, "clip_grad_norm_", "clip_grad_norm")
        self.patch(
            torch, "isfinite", "isfinite check (+sync)", after=lambda r: r.numel() == 1 and bool(r)
        )
        self.patch(trainer_mod, "l2_penalty", "l2_penalty")
        self.patch(sys.modules[__name__], "l2_penalty", "l2_penalty")
        self.patch(rundir, "save_state", "Checkpoint: torch.save state.pt", phased=False)
        self.patch(rundir, "_record", "  of which sha256 + manifest", phased=False)
        self.patch(rundir, "save_weights", "BestWeights: save_weights", phased=False)
        self.patch(rundir, "write_history", "HistoryWriter: write_history", phased=False)

    def wrap_optim(self, opt: torch.optim.Optimizer, sched: Any) -> None:
        self.patch(opt, "zero_grad", "zero_grad")
        self.patch(opt, "step", "optimizer.step")
        # On the class: an instance attribute would end up in scheduler.state_dict() (pickled).
        self.patch(type(sched), "step", "scheduler.step")

    def instrument_trainer(self, trainer: Trainer, data: DataBundle) -> None:
        probe = self

        def setup(*a: Any, **k: Any) -> Any:
            with probe.phase("setup"):
                out = Trainer.setup(trainer, *a, **k)
            probe.wrap_optim(trainer.optimizer, trainer.scheduler)
            return out

        def phased(name: str, fn: Callable) -> Callable:
            def wrapper(*a: Any, **k: Any) -> Any:
                with probe.phase(name):
                    return fn(*a, **k)

            return wrapper

        trainer.setup = setup  # type: ignore[method-assign]
        if hasattr(trainer, "_train_epoch"):
            trainer._train_epoch = phased("train", trainer._train_epoch)  # type: ignore
        trainer.evaluate = phased("val", trainer.evaluate)  # type: ignore[method-assign]
        self.patch(trainer, "state_dict", "Checkpoint: trainer.state_dict()", phased=False)
        self.patch(trainer, "_stop_requested", "stop request check")
        it = data.train.iterate
        data.train.iterate = lambda *a, **k: probe.timed_iter(it(*a, **k))  # type: ignore
        self._undo.append((data.train, "iterate", None, False))
        for cb in trainer.callbacks:
            for hook in ("on_fit_start", "on_batch_end", "on_epoch_end", "on_fit_end"):
                self.patch(cb, hook, f"cb {type(cb).__name__}.{hook}", phased=False)


# Rows of the profile table: (key, label, kind); kind "shared" = work both sides do, "trainer" =
# only the Trainer does it, "step"/"epoch" says how its cost scales.
_TRAIN_PARTS = [
    ("fetch", "batch fetch (iterator)", "shared"),
    ("forward", "forward (task.step)", "shared"),
    ("loss", "loss (task.loss)", "shared"),
    ("l2_penalty", "l2_penalty()", "shared"),
    ("zero_grad", "zero_grad", "shared"),
    ("backward", "backward", "shared"),
    ("clip_grad_norm", "clip_grad_norm_", "shared"),
    ("optimizer.step", "optimizer.step", "shared"),
    ("scheduler.step", "scheduler.step", "shared"),
    ("isfinite check (+sync)", "isfinite check (+ its sync)", "trainer/step"),
    ("stop request check", "Ctrl-C stop request check", "trainer/step"),
    ("metrics", "train metrics (task.metrics, sklearn)", "trainer/epoch"),
]
_VAL_PARTS = [
    ("forward", "val forward", "shared"),
    ("loss", "val loss", "shared"),
    ("metrics", "val metrics (task.metrics, sklearn)", "trainer/epoch"),
]
_CHECKPOINT_PARTS = [
    "Checkpoint: trainer.state_dict()",
    "Checkpoint: torch.save state.pt",
    "  of which sha256 + manifest",
    "BestWeights: save_weights",
    "HistoryWriter: write_history",
]


def profile_table(
    bare: Probe, tr: Probe, bare_total: float, tr_total: float, steps: int
) -> tuple[str, float, float]:
    """Per part: bare ms, trainer ms, and for Trainer-only parts ms/step or ms/epoch and %."""
    rows: list[tuple[str, float, float, str]] = []  # label, bare s, trainer s, kind

    def group(phase: str, parts: list[tuple[str, str, str]], rest: str) -> None:
        bsum = tsum = 0.0
        for key, label, kind in parts:
            b, t = bare.seconds.get(f"{phase}/{key}", 0.0), tr.seconds.get(f"{phase}/{key}", 0.0)
            rows.append((f"  {label}", b, t, kind))
            bsum, tsum = bsum + b, tsum + t
        if phase == "train":
            cbs = sum(v for k, v in tr.seconds.items() if k.endswith(".on_batch_end"))
            rows.append(("  callbacks on_batch_end", 0.0, cbs, "trainer/step"))
            tsum += cbs
        b_all, t_all = bare.seconds.get(phase, 0.0), tr.seconds.get(phase, 0.0)
        rows.append((f"  {rest}", b_all - bsum, t_all - tsum, "diff/epoch"))
        rows.append((f"{phase} total", b_all, t_all, "total"))

    group("train", _TRAIN_PARTS, "rest: loss sums, output collection, cat/cpu/item, loop")
    group("val", _VAL_PARTS, "rest: cat, cpu, loss item, scalar_metrics")
    cb_total = 0.0
    for k in sorted(k for k in tr.seconds if k.startswith("cb ") and "on_batch_end" not in k):
        rows.append((k[3:], 0.0, tr.seconds[k], "trainer/epoch"))
        cb_total += tr.seconds[k]
    for k in _CHECKPOINT_PARTS:
        rows.append((f"  ({k})", 0.0, tr.seconds.get(k, 0.0), "detail"))
    setup_b = bare_total - bare.seconds.get("train", 0.0) - bare.seconds.get("val", 0.0)
    setup_t = tr.seconds.get("setup", 0.0)
    rows.append(("setup (to(device), optimizer, scheduler)", setup_b, setup_t, "shared"))
    rest = tr_total - setup_t - tr.seconds.get("train", 0.0) - tr.seconds.get("val", 0.0)
    rows.append(("fit rest: Trainer/callback init, history row", 0.0, rest - cb_total, "trainer"))
    rows.append(("TOTAL", bare_total, tr_total, "total"))

    out = [f"  {'part':<56}{'bare ms':>9}{'trainer ms':>11}{'extra ms':>9}{'per step':>9}"
           f"{'% bare':>8}"]  # fmt: skip
    per_step = per_epoch = 0.0
    for label, b, t, kind in rows:
        if max(b, t) < 5e-5 and kind != "total":
            continue
        extra = t - b if kind.startswith("diff") else t if kind.startswith("trainer") else None
        cells = f"  {label:<56}{b * 1e3:>9.1f}{t * 1e3:>11.1f}"
        if extra is not None:
            step = f"{extra * 1e3 / steps:>9.2f}" if kind.endswith("/step") else f"{'':>9}"
            cells += f"{extra * 1e3:>9.1f}{step}{100 * extra / bare_total:>7.1f}%"
            counted = max(extra, 0.0)  # a negative "rest" difference is noise
            if kind.endswith("/step") or label.startswith("  rest: loss sums"):
                per_step += counted
            else:
                per_epoch += counted
        out.append(cells)
    explained = per_step + per_epoch
    out.append(
        f"  Trainer-only parts: {explained * 1e3:.0f} ms = {100 * explained / bare_total:.1f}% of "
        f"the bare run ({per_step * 1e3 / steps:.2f} ms per step, {per_epoch * 1e3:.0f} ms per "
        f"epoch); whole-run difference in this pair {(tr_total - bare_total) * 1e3:.0f} ms"
    )
    return "\n".join(out), per_step, per_epoch


# --- main ----------------------------------------------------------------------------------
def machine(device: torch.device) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    return (
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs "
        f"(load {load}), python {platform.python_version()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {dev}"
    )


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def bench_model(name: str, args: argparse.Namespace, device: torch.device, tmp: Path) -> list[str]:
    made = make_config(name, args)
    if isinstance(made, str):
        print(f"\n== {name}: skipped ({made})", flush=True)
        return [name, "skipped", *[""] * 10]
    cfg, source = made
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    task, data = runner.build_task(cfg, device)
    data = bench_bundle(data, cfg, args.fetch, args.val_size)
    prep = time.perf_counter() - t0
    t = cfg.train
    steps = data.train.num_batches(t.batch_size)
    steps = min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps
    full = epoch_steps(data, cfg)
    print(
        f"\n== {name}: preset {BENCHES[name].preset}, data {source} (built in {prep:.1f}s, "
        f"not timed); {steps} steps x batch {t.batch_size} (a full epoch is {full} steps), "
        f"val {len(data.val)} samples at eval batch {t.eval_batch_size}; optim "
        f"{cfg.optim.name} lr={cfg.optim.lr} schedule={cfg.optim.schedule} "
        f"clip={cfg.optim.grad_clip}, reg l2_mode={cfg.reg.l2_mode} wd={cfg.reg.weight_decay}; "
        f"fetch={args.fetch}",
        flush=True,
    )
    cbs = ", ".join(type(cb).__name__ for cb in default_callbacks(cfg, tmp))
    print(f"   trainer callbacks: {cbs} (progress={cfg.train.progress})", flush=True)
    sides = Sides(task, data, cfg, device, tmp)
    samples: dict[str, list[Sample]] = {"bare": [], "trainer": []}
    for i in range(1 + args.repeats):
        order = ("bare", "trainer") if i % 2 == 0 else ("trainer", "bare")
        got = {side: sides.run(side) for side in order}
        label = "warm-up" if i == 0 else f"repeat {i}"
        print(
            f"  {label:>9}: bare {got['bare'].wall:.3f}s (cpu {got['bare'].cpu:.3f}s)  "
            f"trainer {got['trainer'].wall:.3f}s (cpu {got['trainer'].cpu:.3f}s)  "
            f"ratio {got['trainer'].wall / got['bare'].wall:.3f}",
            flush=True,
        )
        if i > 0:
            for side in order:
                samples[side].append(got[side])
    a, b = samples["bare"], samples["trainer"]
    ratios = [y.wall / x.wall for x, y in zip(a, b, strict=True)]
    cpu_ratios = [y.cpu / x.cpu for x, y in zip(a, b, strict=True)]
    med = statistics.median(ratios)
    med_a, med_b = statistics.median(s.wall for s in a), statistics.median(s.wall for s in b)
    mem = f"{max(s.rss_mib for s in a):.0f}/{max(s.rss_mib for s in b):.0f}"
    if device.type == "cuda":
        mem += f" | {max(s.cuda_mib for s in a):.0f}/{max(s.cuda_mib for s in b):.0f}"
    if args.profile:
        profile(name, sides, device, steps)
    if args.cprofile:
        print(f"\n  cProfile of one Trainer run ({name}), top {args.cprofile} by cumulative time:")
        print(sides.cprofile(args.cprofile))
    return [
        name,
        str(steps),
        f"{med_a:.3f}",
        f"{med_b:.3f}",
        f"{min(ratios):.3f}",
        f"{med:.3f}",
        f"{max(ratios):.3f}",
        f"{statistics.median(cpu_ratios):.3f}",
        f"{(med_b - med_a) * 1e3:.0f}",
        mem,
        "ok" if med <= GOAL else "MISSED",
        f"{sides.projected:.3f}" if sides.projected else "-",
    ]


def epoch_steps(data: DataBundle, cfg: RunConfig) -> str:
    """Steps in a full training epoch of the real split (for scale), from the data's info."""
    sizes = data.info.get("split_sizes", {})
    n = sizes.get("train")
    return str(-(-int(n) // cfg.train.batch_size)) if n else "?"


def profile(name: str, sides: Sides, device: torch.device, steps: int) -> None:
    runs = {}
    for side in ("bare", "trainer"):
        probe = Probe(device)
        probe.instrument_common(sides.task)
        try:
            runs[side] = (probe, sides.run(side, probe))
        finally:
            probe.close()
    (pb, sb), (pt, st) = runs["bare"], runs["trainer"]
    print(
        f"\n  profile {name}: one instrumented run each ({steps} steps; timers add a little; "
        f"bare {sb.wall * 1e3:.0f} ms, trainer {st.wall * 1e3:.0f} ms):"
    )
    text, per_step, per_epoch = profile_table(pb, pt, sb.wall, st.wall, steps)
    print(text)
    project(sides, pb, pt, steps, per_step, per_epoch)


def _tile(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.repeat(-(-n // len(x)), *[1] * (x.dim() - 1))[:n]


def project(sides: Sides, bare: Probe, tr: Probe, steps: int, per_step: float,
            per_epoch: float) -> None:  # fmt: skip
    """Scale the profile to one full epoch of the real split (metrics re-timed at full size)."""
    sizes = sides.data.info.get("split_sizes", {})
    n_train, n_val = sizes.get("train"), sizes.get("val")
    if not n_train or "train" not in bare.seconds:
        return
    n_steps = -(-int(n_train) // sides.cfg.train.batch_size)
    full = {}
    for phase, n in (("train", int(n_train)), ("val", int(n_val or 0))):
        args = tr.last_args.get(f"{phase}/metrics")
        if not args or not n:
            continue
        out, y = _tile(args[0], n), _tile(args[1], n)
        t0 = time.perf_counter()
        sides.task.metrics(out, y)
        full[phase] = (time.perf_counter() - t0, n)
    small = sum(tr.seconds.get(f"{p}/metrics", 0.0) for p in full)
    epoch_extra = per_epoch - small + sum(t for t, _ in full.values())
    step_extra = per_step / steps * n_steps
    bare_epoch = bare.seconds["train"] / steps * n_steps
    ratio = 1 + (epoch_extra + step_extra) / bare_epoch
    sides.projected = ratio
    metrics = ", ".join(
        f"{p} metrics on {n} samples {t * 1e3:.0f} ms" for p, (t, n) in full.items()
    )
    print(
        f"  projected full epoch ({n_steps} steps; {metrics}): Trainer-only "
        f"{(epoch_extra + step_extra) * 1e3:.0f} ms ({epoch_extra * 1e3:.0f} per epoch + "
        f"{step_extra * 1e3:.0f} per-step) vs bare training {bare_epoch:.1f} s "
        f"(val forward not counted) -> ratio ~{ratio:.3f}"
    )


def _steps(text: str) -> dict[str, int]:
    """'20' (every model) or 'resnet18=20,rnn=50'."""
    if "=" not in text:
        return {"*": int(text)}
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {k.strip(): int(v) for k, v in pairs}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    defaults = ",".join(f"{k}={v.steps}" for k, v in BENCHES.items())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = ap.add_argument
    add("--models", default=",".join(BENCHES), help="comma list (default: all)")
    add("--steps", type=_steps, default={}, help=f"K for all, or per model (default: {defaults})")
    add("--repeats", type=int, default=5, help="timed pairs after 1 warm-up pair")
    add("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    add("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda...")
    add("--data-dir", default=os.environ.get("ARCHLAB_DATA_DIR", "/work/shared/data"))
    add("--batch-size", type=int, default=0, help="override the presets' batch size")
    add("--val-size", type=int, default=None, help="val samples (default 1 batch; 0 = all)")
    add("--fetch", choices=("cached", "live"), default="cached", help="see the docstring")
    add("--channels", type=int, default=1, choices=(1, 3), help="image channels (preset: 1)")
    add("--sales-stores", type=_ints, default=[], help="Walmart stores, e.g. 1,2 (default all)")
    add("--profile", action="store_true", help="attribute the Trainer's extra time to its parts")
    add("--cprofile", type=int, default=0, metavar="N", help="print a cProfile top N")
    add("--tmp", default=None, help="parent folder of the Trainer's temp run dirs")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in BENCHES]
    if unknown:
        ap.error(f"unknown models {unknown}; choose from {', '.join(BENCHES)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":  # as train.setup.setup_process
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    print(machine(device))
    print(
        "both sides (A = bare loop, B = Trainer.fit): same model, optimizer, schedule, loss, "
        f"clip; K x zero_grad/forward/loss/backward/step/scheduler.step over the same {args.fetch}"
        " batches; a no_grad val pass over the same val subset.\nonly B: isfinite check, loss/"
        "output collection, train+val metrics, history row, default callbacks (temp run dir)."
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="archlab-overhead-", dir=args.tmp) as tmp:
        for name in names:
            model_args = argparse.Namespace(**vars(args))
            if args.val_size is None:  # one training batch worth of val samples
                preset = PRESETS[BENCHES[name].preset]
                model_args.val_size = args.batch_size or preset.train.batch_size
            rows.append(bench_model(name, model_args, device, Path(tmp)))
    mem = "peak RSS MiB A/B" + (" | cuda" if device.type == "cuda" else "")
    head = ["model", "steps", "bare med s", "trainer med s", "B/A min", "B/A med", "B/A max",
            "cpu B/A med", "extra ms", mem, f"goal <={GOAL}", "full-epoch B/A"]  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(
        f"\nsummary ({args.repeats} interleaved pairs after 1 warm-up pair; ratio = trainer/bare):"
    )
    print(fmt_row(head, widths))
    for r in rows:
        print(fmt_row(r, widths))
    if args.profile:
        print("full-epoch B/A: the profile's Trainer-only parts projected onto one real epoch.")


if __name__ == "__main__":
    main()
