"""Run orchestration: config -> run directory -> Trainer.fit -> test metrics and plots.

Also re-opens finished runs for ``eval`` and ``predict``. Reports read run dirs only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from archlab import plots, rundir
from archlab.config import RunConfig, apply_overrides
from archlab.errors import ArchlabError
from archlab.tasks import TASKS
from archlab.threads import governor, set_threads
from archlab.train import distributed
from archlab.train.callbacks import (
    AutoThreads,
    BestWeights,
    Callback,
    Checkpoint,
    HistoryWriter,
    Progress,
    TensorBoard,
)
from archlab.train.distributed import Dist
from archlab.train.trainer import Trainer
from archlab.utils import resolve_device, seed_everything, write_json_atomic, write_text_atomic

# metrics.json keys that describe the run rather than a split (the rest are test_*/baseline_*).
RUN_KEYS = (
    "epochs_run", "stopped_early", "best_epoch", "train_seconds", "epoch_seconds_mean",
    "final_train_loss", "final_val_loss", "n_parameters", "world_size", "replica_digests",
)  # fmt: skip
# Keys that say how a run executes, not what it computes: a resumed (or re-run) run may change
# them; any other difference from its config.yaml is refused (see config_changes).
RUNTIME_KEYS = ("train.progress", "train.threads", "train.tensorboard", "train.checkpoint_every_s")


def _flat(cfg: RunConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.to_dict().items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def config_changes(old: RunConfig, new: RunConfig) -> list[str]:
    """``key: old -> new`` for every key outside RUNTIME_KEYS where the two configs differ."""
    a, b = _flat(old), _flat(new)
    keys = [*a, *(k for k in b if k not in a)]
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in keys
        if k not in RUNTIME_KEYS and a.get(k) != b.get(k)
    ]


def with_runtime(cfg: RunConfig, source: RunConfig) -> RunConfig:
    """``cfg`` with the RUNTIME_KEYS values of ``source`` (all of them are train.* keys)."""
    keys = [k.split(".", 1)[1] for k in RUNTIME_KEYS]
    return replace(cfg, train=replace(cfg.train, **{k: getattr(source.train, k) for k in keys}))


def _setup(cfg: RunConfig, d: Dist = distributed.SINGLE) -> torch.device:
    """Seed, threads and device; under torchrun also this rank's GPU and the process group."""
    if cfg.train.batch_size % d.world:
        raise ArchlabError(
            f"train.batch_size={cfg.train.batch_size} is the global batch and must divide evenly "
            f"over {d.world} processes"
        )
    seed_everything(cfg.seed)  # same seed on every rank: identical init and RNG streams
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    if d.enabled and device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    distributed.init(d, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def train(
    cfg: RunConfig | None,
    out: Path,
    *,
    name: str | None = None,
    command: str = "",
    resume_dir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    runtime: RunConfig | None = None,
) -> Path:
    """Train (or resume) a run and write everything into its run directory; return the dir.

    A resumed run keeps its config.yaml; ``runtime`` supplies this session's RUNTIME_KEYS
    (progress, threads...). Under torchrun every rank runs this; rank 0 alone writes the run
    directory.
    """
    d = distributed.from_env()
    state = None
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        cfg = load_config(run_dir)
        if rundir.is_finished(run_dir):
            return run_dir  # finished already: nothing to redo
        if runtime is not None:
            cfg = with_runtime(cfg, runtime)
    else:
        rundir.check_out_dir(Path(out))  # before the data is read: that can take a while
    assert cfg is not None
    device = _setup(cfg, d)
    # Data first: a bad input fails here, before any run directory or file is written.
    task = TASKS[cfg.task].task(cfg)
    data = task.build_data(device)
    if d.is_main and cfg.train.progress != "off":
        for line in data.notes:  # what was read and how it was split, beside the progress lines
            print(line, file=sys.stderr, flush=True)
    if resume_dir is not None:
        if (run_dir / rundir.STATE).exists():
            state = rundir.load_state(run_dir / rundir.STATE)
        elif (run_dir / rundir.SPLIT).exists() and d.is_main:
            # An earlier attempt got past its data but was killed before a checkpoint was
            # written (one is written at most every train.checkpoint_every_s seconds).
            print(f"archlab: {run_dir}: no checkpoint to resume from (the run stopped before "
                  "its first one was written); training it again from epoch 1 in the same "
                  "directory", file=sys.stderr, flush=True)  # fmt: skip
    else:
        if d.is_main:
            run_dir = rundir.new_run_dir(out, name or f"{cfg.task}-{cfg.model.name}-s{cfg.seed}")
            write_text_atomic(run_dir / rundir.CONFIG, cfg.to_yaml())
            write_text_atomic(run_dir / "command.txt", command + "\n")
        run_dir = distributed.broadcast(run_dir if d.is_main else None, d)
    data.train.rank, data.train.world = d.rank, d.world  # each rank trains on its shard
    split_path = run_dir / rundir.SPLIT
    if resume_dir is not None and split_path.exists():
        saved = json.loads(split_path.read_text())
        if saved != data.splits:
            raise ArchlabError(f"{run_dir}: the data or its split changed since the run started")
    elif d.is_main:
        write_json_atomic(split_path, data.splits)
        write_json_atomic(run_dir / "data.json", data.info)
    model = task.build_model()
    # Tasks may add their own callbacks (text: the embedding freeze); an optional Task hook.
    own = task.callbacks() if hasattr(task, "callbacks") else []
    trainer = Trainer(
        cfg.train,
        cfg.optim,
        cfg.reg,
        seed=cfg.seed,
        device=device,
        callbacks=[*_callbacks(cfg, task, run_dir, d), *own, *callbacks],
        dist=d,
    )
    try:
        model = trainer.fit(task, data, model, resume=state)
    except KeyboardInterrupt:
        if d.is_main:
            st = trainer.state
            where = (
                f"at epoch {st.epoch + 1}, step {st.batch} (checkpoint saved)"
                if st.batch
                else f"after {st.epoch} finished epoch(s), which are saved"
            )
            print(f"archlab: interrupted {where}; resume with: archlab train --resume {run_dir}",
                  file=sys.stderr)  # fmt: skip
        raise
    if d.is_main:
        rundir.save_weights(model, run_dir / rundir.WEIGHTS)
        finish(run_dir, task, trainer, data, model)
    distributed.barrier(d)  # the others wait until rank 0 has written metrics.json
    return run_dir


def _callbacks(cfg: RunConfig, task: Any, run_dir: Path, d: Dist) -> list[Callback]:
    """The default callbacks; off rank 0 they track state but write nothing."""
    main = d.is_main
    cbs: list[Callback] = [
        BestWeights(
            task.monitor,
            cfg.reg.patience if cfg.reg.early_stop else None,
            cfg.reg.min_delta,
            run_dir if main else None,
        ),
        Checkpoint(run_dir, write=main, every_s=cfg.train.checkpoint_every_s),
    ]
    if (g := governor()) is not None:  # train.threads=0: follow the machine's load
        cbs.append(AutoThreads(g))
    if main:
        cbs += [HistoryWriter(run_dir), Progress(cfg.train.progress, cfg.train.epochs)]
        if cfg.train.tensorboard:
            cbs.append(TensorBoard(run_dir))
    return cbs


def train_at(
    cfg: RunConfig, run_dir: Path, *, command: str = "", callbacks: Sequence[Callback] = ()
) -> Path:
    """Train ``cfg`` in a fixed directory: skip it if finished, resume it if interrupted.

    Used by ablations and reproduce so that re-running them redoes only unfinished runs.
    """
    run_dir = Path(run_dir)
    if (run_dir / rundir.CONFIG).exists():
        changes = config_changes(load_config(run_dir), cfg)
        if changes:
            raise ArchlabError(
                f"{run_dir}: holds a run with a different config ({'; '.join(changes)}); "
                "choose another --out"
            )
        return train(None, run_dir.parent, resume_dir=run_dir, callbacks=callbacks, runtime=cfg)
    d = distributed.from_env()
    _setup(cfg, d)  # joins the process group under torchrun
    if d.is_main:
        rundir.check_out_dir(run_dir.parent)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / rundir.CONFIG, cfg.to_yaml())
        write_text_atomic(run_dir / "command.txt", command + "\n")
    distributed.barrier(d)
    return train(None, run_dir.parent, resume_dir=run_dir, callbacks=callbacks, runtime=cfg)


def finish(
    run_dir: Path, task: Any, trainer: Trainer, data: Any, model: nn.Module
) -> dict[str, Any]:
    """Evaluate on the test split, write plots, then metrics.json last (it marks completion)."""
    history = trainer.state.history
    test_loss, test_metrics, outputs, targets = trainer.evaluate(task, data.test, model)
    best = next((cb for cb in trainer.callbacks if isinstance(cb, BestWeights)), None)
    metrics: dict[str, Any] = {"test_loss": test_loss}
    metrics.update({f"test_{k}": v for k, v in test_metrics.items()})
    last = history[-1] if history else {}
    metrics.update(
        {
            "epochs_run": trainer.state.epoch,
            "stopped_early": trainer.state.stopped_early,
            "best_epoch": best.best_epoch if best else 0,
            "train_seconds": float(sum(r["seconds"] for r in history)),
            "epoch_seconds_mean": float(sum(r["seconds"] for r in history) / max(1, len(history))),
            "final_train_loss": last.get("train_loss"),
            "final_val_loss": last.get("val_loss"),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "world_size": trainer.dist.world,
        }
    )
    if trainer.replica_digests:  # DDP: every rank's final weights, all equal (checked)
        metrics["replica_digests"] = trainer.replica_digests
    plots.learning_curves({"run": history}, run_dir / "plots" / "learning_curves.png",
                          metrics=_curve_metrics(history))  # fmt: skip
    metrics.update(task.artifacts(run_dir, model, data, outputs, targets))
    rundir.write_metrics(metrics, run_dir)
    return metrics


def _curve_metrics(history: list[dict[str, float]]) -> list[str]:
    keys = history[0].keys() if history else []
    wanted = ["loss", "accuracy", "f1_macro", "wmae", "rmse"]
    return [m for m in wanted if f"val_{m}" in keys][:3]


def load_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / rundir.CONFIG
    if not path.exists():
        raise ArchlabError(f"{run_dir}: not a run directory (no {rundir.CONFIG})")
    return RunConfig.from_yaml(path.read_text(), where=str(path))


def load_run(
    run_dir: Path, data_path: str | None = None, overrides: Sequence[str] = ()
) -> tuple[RunConfig, Any, nn.Module, Any]:
    """Rebuild config, task, data and trained model from a run directory.

    ``overrides`` (--set strings) change how the saved model is applied, e.g. model.tta=flip.
    """
    run_dir = Path(run_dir)
    cfg = apply_overrides(load_config(run_dir), overrides)
    if data_path is not None:
        cfg = replace(cfg, data=replace(cfg.data, path=str(data_path)))
    device = _setup(cfg)
    task = TASKS[cfg.task].task(cfg)
    if hasattr(task, "use_fitted"):  # optional Task hook: reuse the run's fitted vocabulary
        task.use_fitted(run_dir)
    data = task.build_data(device)
    saved_info = json.loads((run_dir / "data.json").read_text())
    if saved_info.get("class_names") and data.info.get("class_names") != saved_info["class_names"]:
        raise ArchlabError(
            f"{data_path or cfg.data.path}: classes {data.info.get('class_names')} differ from the "
            f"run's {saved_info['class_names']}"
        )
    model = task.build_model()
    rundir.load_weights(model, run_dir / rundir.WEIGHTS)
    return cfg, task, model.to(device), data


class Evaluation(NamedTuple):
    """A saved run re-evaluated on its test split."""

    task: Any
    test_rows: list[int]  # the test split's sample indices
    loss: float
    metrics: dict[str, Any]
    outputs: torch.Tensor
    targets: torch.Tensor


def evaluate_run(
    run_dir: Path, data_path: str | None = None, overrides: Sequence[str] = ()
) -> Evaluation:
    """Re-evaluate a saved run on its test split (or another data set's), keeping the outputs."""
    cfg, task, model, data = load_run(run_dir, data_path, overrides)
    trainer = Trainer(
        cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=next(model.parameters()).device
    )
    loss, metrics, outputs, targets = trainer.evaluate(task, data.test, model)
    return Evaluation(task, data.splits.get("test", []), loss, metrics, outputs, targets)


def evaluate(run_dir: Path, data_path: str | None = None) -> dict[str, Any]:
    """Re-evaluate a saved run on its test split (or another data set's test split)."""
    e = evaluate_run(run_dir, data_path)
    return {"test_loss": e.loss, **{f"test_{k}": v for k, v in e.metrics.items()}}


def restore_task(run_dir: Path) -> tuple[RunConfig, Any, nn.Module]:
    """Task and model from a run dir without loading the training data (for predict)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    task = TASKS[cfg.task].task(cfg)
    task.restore(run_dir)
    model = task.build_model()
    rundir.load_weights(model, run_dir / rundir.WEIGHTS)
    model.eval()
    return cfg, task, model
