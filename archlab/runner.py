"""Run orchestration: config -> run directory -> Trainer.fit -> test metrics and plots.

Also re-opens finished runs for ``eval`` and ``predict``. Reports read run dirs only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from archlab import fingerprint, plots, rundir
from archlab.config import (
    RunConfig,
    apply_overrides,
    config_sources,
    describe_sources,
    flat,
    selection,
)
from archlab.errors import ArchlabError
from archlab.tasks import TASKS, init_weights
from archlab.tasks.base import DataBundle, Task, Tunable
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
from archlab.train.precision import Precision, legacy
from archlab.train.setup import setup_process
from archlab.train.trainer import Trainer
from archlab.utils import (
    autocast,
    json_text,
    shell_quote,
    write_json_atomic,
    write_text_atomic,
)

# metrics.json keys that describe the run rather than a split (the rest are test_*/baseline_*).
RUN_KEYS = (
    "epochs_run", "stopped_early", "best_epoch", "scored_epoch", "selection_metric",
    "selection_reason", "train_seconds", "epoch_seconds_mean",
    "final_train_loss", "final_val_loss", "n_parameters", "world_size", "replica_digests",
    "amp_choice", "amp_reason", "amp_step_ms_fp32", "amp_step_ms_bf16",
    "amp_step_ms_bf16_channels_last",
    # what a Tunable task chose on validation (sales horizon: archlab/tasks/sales_posthoc.py;
    # text: archlab/tasks/text_blend.py)
    "correction_scale", "correction_scale_from", "correction_scale_val_wmae",
    "correction_scale_val_wmae_at_1", "blend_weight", "blend_correction_scale",
    "blend_weight_from", "blend_val_wmae", "blend_network_val_wmae", "blend_peer_val_wmae",
    "blend_peer_fit_seconds", "blend_val_f1_macro", "blend_network_val_f1_macro",
    "blend_tfidf_val_f1_macro",
)  # fmt: skip
# Keys that say how a run executes, not what it computes: a resumed (or re-run) run may change
# them; any other difference from its config.yaml is refused (see config_changes).
RUNTIME_KEYS = ("train.progress", "train.threads", "train.tensorboard", "train.checkpoint_every_s")


def config_changes(old: RunConfig, new: RunConfig) -> list[str]:
    """``key: old -> new`` for every key outside RUNTIME_KEYS where the two configs differ."""
    a, b = flat(old), flat(new)
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


@dataclass
class Prepared:
    """A run ready to fit: its directory, config, data, task and (when resuming) saved state."""

    cfg: RunConfig
    run_dir: Path
    data: DataBundle[Any, Any]
    task: Task
    monitor: tuple[str, str]
    device: torch.device
    dist: Dist
    state: dict[str, Any] | None  # the Trainer's resume state, None for a fresh start
    say: Callable[[str], None]  # prints a note line (a search's trials: each line once)
    trial: bool = False  # a search's trial: its post-hoc choices are not printed, the search's is


def prepare(
    cfg: RunConfig,
    *,
    out: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    name: str | None = None,
    command: str = "",
    said: set[str] | None = None,
) -> Prepared:
    """Set up the process, read and fit the data, then create or reopen the run directory.

    Fresh runs go to a new directory under ``out``, or to the fixed ``run_dir`` (ablations,
    reproduce); ``resume`` reopens ``run_dir``, whose split must not have changed. The data is
    read before any file is written, so a bad input leaves nothing behind. Under torchrun every
    rank prepares; rank 0 alone writes.
    """
    d = distributed.from_env()
    say = _sayer(said)
    if run_dir is None:
        assert out is not None
        rundir.check_out_dir(Path(out))  # before the data is read: that can take a while
    device = setup_process(cfg.train, cfg.seed, d)
    # A resumed run with a checkpoint (and its fitted state, so data.json stays as written)
    # starts from the checkpoint's weights: model.init is not read again.
    checkpointed = (
        resume
        and run_dir is not None
        and all((run_dir / f).exists() for f in (rundir.STATE, rundir.FITTED))
    )
    with (
        fingerprint.recording() as reads,
        init_weights.from_checkpoint(checkpointed),
        said_if_slow(reading(cfg) if d.is_main and cfg.train.progress != "off" else ""),
    ):
        task, data = build_task(cfg, device)
    inputs = fingerprint.fingerprint(reads)
    if resume:
        assert run_dir is not None
        check_same_data(run_dir, inputs, "resume")
        if d.is_main:
            rundir.lock_training(run_dir)
    sources = _record_sources(cfg, data)
    if d.is_main and cfg.train.progress != "off":
        # What was read and how it was split, beside the progress lines.
        for line in ([] if resume else [describe_sources(sources)]) + list(data.notes):
            say(line)
    state = None
    if resume:
        assert run_dir is not None
        state = _resume_state(run_dir, data, d)
    else:
        if d.is_main:
            if run_dir is None:
                assert out is not None
                run_dir = rundir.new_run_dir(
                    out, name or f"{cfg.task}-{cfg.model.name}-s{cfg.seed}"
                )
            else:
                rundir.check_out_dir(run_dir.parent)
                run_dir.mkdir(parents=True, exist_ok=True)
            rundir.lock_training(run_dir)
            rundir.write_recorded(run_dir / rundir.CONFIG, cfg.to_yaml())
            # A path that is no UTF-8 (caf\xe9.csv) as its bytes: the command pastes back
            write_text_atomic(run_dir / rundir.COMMAND, command + "\n", "surrogateescape")
        run_dir = distributed.broadcast(run_dir if d.is_main else None, d)
    assert run_dir is not None
    if d.is_main and (state is None or not (run_dir / rundir.FITTED).exists()):
        rundir.write_recorded(run_dir / rundir.SPLIT, json_text(data.splits))
        write_json_atomic(run_dir / rundir.DATA, data.info)
        rundir.write_recorded(run_dir / rundir.INPUTS, json_text(inputs))
        rundir.write_fitted(run_dir, data.fitted)  # before training: an interrupted run has it
    data.train.rank, data.train.world = d.rank, d.world  # each rank trains on its shard
    return Prepared(
        cfg, run_dir, data, task, TASKS[cfg.task].monitor, device, d, state, say, said is not None
    )


def reading(cfg: RunConfig, then: str = "the run's first lines follow") -> str:
    """The line said_if_slow prints while ``cfg``'s data is read."""
    return (f"archlab: still reading and preparing {cfg.data.path or 'the default data'} "
            f"(large data take a while); {then}")  # fmt: skip


@contextlib.contextmanager
def said_if_slow(line: str, after_s: float = 5.0) -> Iterator[None]:
    """Print ``line`` (if any) to stderr once the block has run ``after_s`` seconds: reading a
    large data set (a 2M-row panel, 100,000 texts, 20,000 photos) says so; a small one says
    nothing extra."""
    timer = threading.Timer(after_s, lambda: print(line, file=sys.stderr, flush=True))
    timer.daemon = True  # a Ctrl-C's exit does not wait for it
    if line:
        timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if line:
            timer.join(1.0)  # a line being printed lands before the block's own lines


def _sayer(said: set[str] | None) -> Callable[[str], None]:
    """Print a note line to stderr; with ``said`` (the lines a search's earlier trials
    printed) a line already there is not printed again, and a new one is added."""

    def say(line: str) -> None:
        if said is None or line not in said:
            print(line, file=sys.stderr, flush=True)
        if said is not None:
            said.add(line)

    return say


def _record_sources(cfg: RunConfig, data: DataBundle[Any, Any]) -> dict[str, str]:
    """Where each config value came from ("preset NAME", "--set"...), into data.json, with the
    first lines reading the data printed (files left out, labels merged, splits carved)."""
    sources = config_sources(cfg)
    data.info["config_sources"] = sources
    data.info["notes"] = list(data.notes)
    return sources


def check_same_data(run_dir: Path, inputs: dict[str, Any], action: str) -> bool:
    """Refuse to ``action`` a run on data that differ from the data it was trained on.

    Returns False for a run written before fingerprints were kept (nothing to compare).
    """
    path = Path(run_dir) / rundir.INPUTS
    if not path.exists():
        return False
    saved = json.loads(rundir.read_recorded(path))
    # Evaluation may read fewer files than training did (no word-vectors file), not others.
    changes = fingerprint.differences(saved, inputs, subset=action != "resume")
    if changes:
        raise ArchlabError(
            f"{run_dir}: cannot {action}: the data differ from what the run was trained on "
            f"({'; '.join(changes)}); restore the original files, or train a new run"
            + ("; eval --data PATH scores a run on other data" if action != "resume" else "")
        )
    return True


def build_task(cfg: RunConfig, device: torch.device) -> tuple[Task, DataBundle[Any, Any]]:
    """A config's fitted data and its task, as a run builds them (also for benchmarks)."""
    spec = TASKS[cfg.task]
    data = spec.data(cfg).build(device)
    return spec.task(cfg, data.fitted), data


def _resume_state(run_dir: Path, data: DataBundle[Any, Any], d: Dist) -> dict[str, Any] | None:
    """The checkpoint to resume from (None: train again from epoch 1); the split must match."""
    split_path = run_dir / rundir.SPLIT
    if split_path.exists() and json.loads(rundir.read_recorded(split_path)) != data.splits:
        raise ArchlabError(f"{run_dir}: the data or its split changed since the run started")
    if (run_dir / rundir.STATE).exists():
        return rundir.load_state(run_dir / rundir.STATE)
    if split_path.exists() and d.is_main:
        # An earlier attempt got past its data but was killed before a checkpoint was
        # written (one is written at most every train.checkpoint_every_s seconds).
        print(f"archlab: {run_dir}: no checkpoint to resume from (the run stopped before "
              "its first one was written); training it again from epoch 1 in the same "
              "directory", file=sys.stderr, flush=True)  # fmt: skip
    return None


# What a Ctrl-C's line says: where the run stopped and how to resume it (a run of its own),
# where alone (a command of many runs says how to go on: the same command again), or nothing
# (a run its caller removes, the budget's probe).
OnInterrupt = Literal["resume", "where", "nothing"]


def fit(
    p: Prepared, callbacks: Sequence[Callback] = (), on_interrupt: OnInterrupt = "resume"
) -> Path:
    """Train a prepared run, then test it and write its files (metrics.json last)."""
    try:
        return _fit(p, callbacks, on_interrupt)
    finally:
        rundir.unlock_training(p.run_dir)  # taken by prepare


def _fit(p: Prepared, callbacks: Sequence[Callback], on_interrupt: OnInterrupt) -> Path:
    cfg, run_dir, d = p.cfg, p.run_dir, p.dist
    model = p.task.build_model()
    trainer = Trainer(
        cfg.train,
        cfg.optim,
        cfg.reg,
        seed=cfg.seed,
        device=p.device,
        callbacks=[*default_callbacks(cfg, p.monitor, run_dir, d), *p.task.callbacks(), *callbacks],
        dist=d,
        cpu_amp=p.task.cpu_amp,
        lr_scale=p.task.lr_scale,
        say=p.say,
    )
    if (g := governor()) is not None:
        g.adjust()  # train.threads=0: time train.amp=auto's candidates at the count training uses
    try:
        model = trainer.fit(p.task, p.data, model, resume=p.state)
        if d.is_main:
            rundir.save_weights(model, run_dir / rundir.WEIGHTS)
    except KeyboardInterrupt as e:
        if not d.is_main:
            raise
        if on_interrupt == "nothing":
            raise
        _keep_finished(trainer, run_dir)
        where, how = _kept(trainer, run_dir)
        if on_interrupt == "resume":
            print(f"archlab: interrupted {where}{how}", file=sys.stderr)
        else:  # one run of many: which one
            print(f"archlab: interrupted {run_dir.name} {where}", file=sys.stderr)
        raise Interrupted from e
    if d.is_main:
        try:
            finish(run_dir, p.task, trainer, p.data, model, selection(cfg).why, not p.trial)
        except KeyboardInterrupt as e:
            # Training is over: keep it, so that --resume only tests (it trained again).
            rundir.save_state(trainer.state_dict(), run_dir / rundir.STATE)
            how = f": finish it with archlab train --resume {shell_quote(str(run_dir))}"
            print(f"archlab: interrupted while testing; training is saved (all "
                  f"{trainer.state.epoch} epochs)" + (how if on_interrupt == "resume" else ""),
                  file=sys.stderr)  # fmt: skip
            raise Interrupted from e
        rundir.drop_state(run_dir)  # finished: the resume state (up to ~0.5 GB) is no use now
    distributed.barrier(d)  # the others wait until rank 0 has written metrics.json
    return run_dir


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C (or SIGTERM, SIGHUP) whose line, where training stopped (and, for a run of its
    own, how to resume it), is on stderr already: the CLI adds no bare "interrupted" after it."""


def _keep_finished(trainer: Trainer, run_dir: Path) -> None:
    """A Ctrl-C once every epoch has run (the fit's end, the weights' write): save the
    finished training, as a Ctrl-C while testing does, unless the last epoch's checkpoint is
    on disk already (written every ``train.checkpoint_every_s``, so a short run has none)."""
    st = trainer.state
    ck = next((c for c in trainer.callbacks if isinstance(c, Checkpoint)), None)
    done = st.epoch >= trainer.cfg.epochs or st.stopped_early
    if done and not st.batch and ck is not None and ck.saved_epoch != st.epoch:
        rundir.save_state(trainer.state_dict(), run_dir / rundir.STATE)
        ck.saved_epoch = st.epoch


def _kept(trainer: Trainer, run_dir: Path) -> tuple[str, str]:
    """Where training stopped, and what --resume will start from: this Ctrl-C's checkpoint,
    or (a second Ctrl-C aborted it, or it came between steps) the last one on disk, if any."""
    st, resume = trainer.state, f"archlab train --resume {shell_quote(str(run_dir))}"
    saved = next((c.saved_epoch for c in trainer.callbacks if isinstance(c, Checkpoint)), -1)
    done = st.epoch >= trainer.cfg.epochs or st.stopped_early
    if done and not st.batch and saved == st.epoch:
        return f"after training (all {st.epoch} epochs, checkpoint saved)", (
            f": {resume} only tests it"
        )
    if not st.batch and saved == st.epoch:  # a Ctrl-C during an epoch's validation
        return f"after epoch {st.epoch} (checkpoint saved)", f"; resume with: {resume}"
    if st.batch and trainer.interrupt_saved:
        return f"at epoch {st.epoch + 1}, step {st.batch} (checkpoint saved)", (
            f"; resume with: {resume}"
        )
    where = f"at epoch {st.epoch + 1}" + (f", step {st.batch}" if st.batch else "")
    if (run_dir / rundir.STATE).exists():
        return f"{where}, without a checkpoint of it", (
            f": {resume} starts from the last one saved"
        )
    return f"{where}, before any checkpoint was written", f": {resume} trains from epoch 1"


def train(
    cfg: RunConfig | None,
    out: Path,
    *,
    name: str | None = None,
    command: str = "",
    resume_dir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    runtime: RunConfig | None = None,
    said: set[str] | None = None,
    on_interrupt: OnInterrupt = "resume",
) -> Path:
    """Train (or resume) a run and write everything into its run directory; return the dir.

    A resumed run keeps its config.yaml; ``runtime`` supplies this session's RUNTIME_KEYS
    (progress, threads...); ``said``: as for ``train_at``.
    """
    if resume_dir is None:
        assert cfg is not None
        p = prepare(cfg, out=out, name=name, command=command, said=said)
        return fit(p, callbacks, on_interrupt)
    run_dir = Path(resume_dir)
    saved = load_config(run_dir)
    if rundir.is_finished(run_dir):
        return run_dir  # finished already: nothing to redo
    saved = with_runtime(saved, runtime) if runtime is not None else saved
    return fit(prepare(saved, run_dir=run_dir, resume=True, said=said), callbacks, on_interrupt)


def default_callbacks(
    cfg: RunConfig, monitor: tuple[str, str], run_dir: Path, d: Dist
) -> list[Callback]:
    """The callbacks of every run; off rank 0 they track state but write nothing."""
    main = d.is_main
    sel = selection(cfg)
    cbs: list[Callback] = [
        BestWeights(
            monitor, sel.patience, cfg.reg.min_delta, run_dir if main else None, restore=sel.best
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
    cfg: RunConfig,
    run_dir: Path,
    *,
    command: str = "",
    callbacks: Sequence[Callback] = (),
    said: set[str] | None = None,
) -> Path:
    """Train ``cfg`` in a fixed directory: skip it if finished, resume it if interrupted.

    Used by ablations, reproduce and searches so that re-running them redoes only unfinished
    runs; ``said``: first lines an earlier run of the caller printed, not repeated (and added to).
    A Ctrl-C's line says where the run stopped, not how to resume it: the caller says how to go
    on (the same command again).
    """
    run_dir = Path(run_dir)
    if (run_dir / rundir.CONFIG).exists():
        changes = config_changes(load_config(run_dir), cfg)
        if changes:
            raise ArchlabError(
                f"{run_dir}: holds a run with a different config ({'; '.join(changes)}); "
                "choose another --out"
            )
        return train(None, run_dir.parent, resume_dir=run_dir, callbacks=callbacks, runtime=cfg,
                     said=said, on_interrupt="where")  # fmt: skip
    return fit(prepare(cfg, run_dir=run_dir, command=command, said=said), callbacks, "where")


def finish(
    run_dir: Path,
    task: Task,
    trainer: Trainer,
    data: DataBundle[Any, Any],
    model: nn.Module,
    why: str = "",
    say_posthoc: bool = True,
) -> dict[str, Any]:
    """Evaluate on the test split, write plots, then metrics.json last (it marks completion).
    ``say_posthoc``: print the post-hoc choices (a search's trials do not)."""
    history = trainer.state.history
    if isinstance(task, Tunable):  # its post-hoc knobs, chosen on validation before the test
        with trainer.autocast():  # in the arithmetic of the test and of predict
            task, lines = task.tune(model, data)
        data.fitted = task.fitted
        rundir.write_fitted(run_dir, task.fitted)  # eval and predict apply the same choices
        if trainer.cfg.progress != "off" and say_posthoc:
            for line in lines:
                print(line, file=sys.stderr, flush=True)
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
            **scored(trainer, best, why),
            "train_seconds": float(sum(r["seconds"] for r in history)),
            "epoch_seconds_mean": float(sum(r["seconds"] for r in history) / max(1, len(history))),
            "final_train_loss": last.get("train_loss"),
            "final_val_loss": last.get("val_loss"),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "world_size": trainer.dist.world,
        }
    )
    if trainer.precision is not None:
        metrics.update(trainer.precision.metrics())
    if trainer.replica_digests:  # DDP: every rank's final weights, all equal (checked)
        metrics["replica_digests"] = trainer.replica_digests
    plots.learning_curves({"run": history}, run_dir / "plots" / "learning_curves.png",
                          metrics=_curve_metrics(history))  # fmt: skip
    task.artifacts(run_dir, model, data, outputs, targets)
    metrics.update(task.baselines(data))
    if isinstance(task, Tunable):
        with trainer.autocast():
            metrics.update(task.tuned_metrics(model, data))
    rundir.write_metrics(metrics, run_dir)
    return metrics


def scored(trainer: Trainer, best: BestWeights | None, why: str) -> dict[str, Any]:
    """Which epoch's weights were tested (``scored_epoch``), by what and why (metrics.json)."""
    st = trainer.state
    restored = best is not None and best.restore and best.best_epoch > 0
    if restored:
        assert best is not None
        what = f"best {best.key} {best.best:.4g} at epoch {best.best_epoch} of {st.epoch} run"
        if st.stopped_early:
            what += f", stopped early (over {best.patience} epochs without improvement)"
        return {"scored_epoch": best.best_epoch, "selection_metric": best.key,
                "selection_reason": f"{what} ({why})"}  # fmt: skip
    return {"scored_epoch": st.epoch, "selection_metric": "last",
            "selection_reason": f"last epoch ({why})"}  # fmt: skip


def _curve_metrics(history: list[dict[str, float]]) -> list[str]:
    keys = history[0].keys() if history else []
    wanted = ["loss", "accuracy", "f1_macro", "wmae", "rmse"]
    return [m for m in wanted if f"val_{m}" in keys][:3]


def load_config(run_dir: Path) -> RunConfig:
    """A run's config.yaml; a relative data.path is read from the folder the run was trained
    in (``trained_path``), so a run works from any folder."""
    path = Path(run_dir) / rundir.CONFIG
    if not path.exists():
        raise ArchlabError(f"{run_dir}: not a run directory (no {rundir.CONFIG})")
    return trained_paths(RunConfig.from_yaml(rundir.read_recorded(path), where=str(path)), run_dir)


def trained_paths(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """``cfg`` with its relative data.path (and a manifest's image_root) read from the folder
    ``run_dir`` was trained in, where the files it read are still there; else from here (a
    project moved as a whole). A file of the same name in this folder is another data set:
    read first, it was called the run's data changed."""
    for key in ("path", "image_root"):
        rel = getattr(cfg.data, key, "")
        if not rel or Path(rel).is_absolute():
            continue
        found = trained_path(Path(run_dir), rel)
        # The same files from here: kept as written, so that a re-run of ablate, reproduce or
        # a sweep (and train --resume --data) sees the config it wrote, not another path.
        if found is not None and not _same_file(found, Path(rel)):
            cfg = replace(cfg, data=replace(cfg.data, **{key: str(found)}))
    return cfg


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing
        return False


def trained_path(run_dir: Path, path: str) -> Path | None:
    """Where the relative data ``path`` was when the run read it, told from inputs.json (the
    absolute folder its files share, and their names under it); None if it cannot be told."""
    inputs = run_dir / rundir.INPUTS
    if not inputs.exists():
        return None
    saved = json.loads(rundir.read_recorded(inputs))
    root, rel = Path(saved.get("root") or "/"), Path(path).parts
    # The data path is a file, a folder holding files (a manifest's image_root), their
    # common folder or one of its parents.
    files = [root / n for n in saved.get("files", {})]
    folders = {p for f in files for p in f.parents if root in (p, *p.parents)}
    for cand in [*files, *sorted(folders, key=lambda p: -len(p.parts)), *root.parents]:
        if cand.parts[-len(rel) :] == rel and cand.exists():
            return cand
    return None


# What a run fitted on its training data and applies to other data, in words per task.
_FITTED = {"images": "classes, pixel statistics", "text": "classes, vocabulary, TF-IDF model",
           "sales": "series, scalers, post-hoc choices"}  # fmt: skip


def load_run(
    run_dir: Path,
    data_path: str | None = None,
    overrides: Sequence[str] = (),
    score_all: bool = False,
    action: str = "evaluate",
) -> tuple[RunConfig, Any, nn.Module, Any]:
    """Rebuild config, task, data and trained model from a run directory (``action``, as the
    errors name it: "evaluate", "explain", "export").

    The data is rebuilt with the run's own fitted state (classes, tokenizer, scalers), not a
    refit. ``overrides`` (--set strings) change how the saved model is applied, e.g.
    model.tta=flip. ``score_all`` (eval --all): every sample of ``data_path`` is in the test
    split (TaskData.build).
    """
    run_dir = Path(run_dir)
    if score_all and data_path is None:
        raise ArchlabError(
            "eval --all needs --data OTHER: it scores every image or row of OTHER; without "
            "--data eval scores the run's own test split"
        )
    rundir.require_finished(run_dir)
    cfg = apply_overrides(load_config(run_dir), overrides)
    if data_path is not None:
        cfg = replace(cfg, data=replace(cfg.data, path=str(data_path)))
    elif cfg.data.path and not Path(cfg.data.path).exists():  # moved since training
        other = "; eval --data PATH reads it where it is now" if action == "evaluate" else ""
        raise ArchlabError(f"{cfg.data.path}: no such file or directory: the data {run_dir} was "
                           f"trained on, which {action} reads; put it back{other}")  # fmt: skip
    device = setup_process(cfg.train, cfg.seed)
    spec = TASKS[cfg.task]
    task_data = spec.data(cfg)
    fitted = task_data.restore(run_dir)
    with (
        fingerprint.recording() as reads,
        said_if_slow(
            reading(cfg, f"then archlab {'eval' if action == 'evaluate' else action} goes on")
        ),
    ):
        try:
            data = task_data.build(device, fitted, score_all=score_all)
        except ArchlabError:
            if data_path is None:  # the run's own data: changed since is the error to give
                check_same_data(run_dir, fingerprint.fingerprint(reads), action)
            raise
    inputs = fingerprint.fingerprint(reads)
    if data_path is None:
        check_same_data(run_dir, inputs, action)
    elif score_all:
        print(f"archlab: {data_path}: {_scored_all(data.info, _same_data(run_dir, inputs))}",
              file=sys.stderr)  # fmt: skip
    elif (same := _same_data(run_dir, inputs)) is not None:
        print(f"archlab: {data_path}: "
              + ("the same data the run was trained on" if same else
                 "other data than the run was trained on; scored with what the run fitted "
                 f"on its training data ({_FITTED.get(cfg.task, 'its state')})")
              + _test_share(data.info)
              + _unknown_series(data.info), file=sys.stderr)  # fmt: skip
    if data_path is not None and action == "evaluate" and not score_all:  # --all: its line
        for line in data.notes:  # what was read of OTHER, dropped or cleaned, as training says
            print(_no_set_hint(line), file=sys.stderr)
    task = spec.task(cfg, data.fitted)
    model = task.build_model()
    rundir.load_weights(model, run_dir / rundir.WEIGHTS)
    return cfg, task, model.to(device), data


def _no_set_hint(note: str) -> str:
    """A first line of training without its ``set data.X`` hint: eval takes no --set."""
    for cut in ("; set data.", "; --set data.", ", or set data."):
        note = note.split(cut)[0]
    return note


def _same_data(run_dir: Path, inputs: dict[str, Any]) -> bool | None:
    """Whether ``inputs`` are (a subset of) the files the run was trained on; None for a run
    written before fingerprints were kept."""
    path = run_dir / rundir.INPUTS
    if not path.exists():
        return None
    saved = json.loads(rundir.read_recorded(path))
    return not fingerprint.differences(saved, inputs, subset=True)


def _scored_all(info: dict[str, Any], same: bool | None) -> str:
    """eval --all's line: what was scored, of how many of the run's classes, what the reader
    left out, and a warning when the data are the run's own (its training rows are scored)."""
    s = info["scored_all"]
    line = (f"scored all {s['samples']:,} {s['unit']} ({s['classes_present']} of the run's "
            f"{s['classes']} classes present)")  # fmt: skip
    if s["not_scored"]:
        line += f"; not scored: {s['not_scored']}"
    if same:  # a subset of the run's inputs (its own test/ folder, say) may hold none of them
        line += ("; warning: every file of it is one the run read when it trained, so any of "
                 f"its training and validation {s['unit']} among it are scored too")  # fmt: skip
    return line


def _unknown_series(info: dict[str, Any]) -> str:
    """A sales set's series the run never saw ("" if none, or not sales): the network has no
    scaler or embedding of their own for them."""
    n = info.get("series_unknown_to_run", 0)
    return f"; {n} of its {info['n_series']} series not in the run's training data" if n else ""


def _test_share(info: dict[str, Any]) -> str:
    """How much of an image or text set its test split is ("" for sales): eval --data scores
    the test split alone, e.g. 15% of a plain class-folder set, not every image in it."""
    src, n = info.get("split_source", {}).get("test"), info.get("n_images", info.get("n_samples"))
    if not src or not n:
        return ""
    unit = "images" if "n_images" in info else "texts"
    return f"; scored its test split ({src}): {info['split_sizes']['test']} of {n} {unit}"


class Evaluation(NamedTuple):
    """A saved run re-evaluated on its test split."""

    task: Any
    test_rows: list[int]  # the test split's sample indices
    loss: float
    metrics: dict[str, Any]
    outputs: torch.Tensor
    targets: torch.Tensor
    # What a Tunable task reports of its post-hoc choices on the test split (test_blend_*).
    tuned: dict[str, Any]
    baselines: dict[str, Any]  # baseline_* on the same test rows (see evaluate); {}: none


def evaluate_run(
    run_dir: Path,
    data_path: str | None = None,
    overrides: Sequence[str] = (),
    score_all: bool = False,
    baselines: bool = False,
) -> Evaluation:
    """Re-evaluate a saved run on its test split (or another data set's, or with
    ``score_all`` every sample of ``data_path``), keeping the outputs; with ``baselines`` also
    the run's baselines on the same test rows: its own test split's from metrics.json, another
    sales data set's scored on it (they learn nothing from training). Image and text
    baselines are fitted on a training split, which another data set is not the run's."""
    cfg, task, model, data = load_run(run_dir, data_path, overrides, score_all)
    device = next(model.parameters()).device
    precision = saved_precision(run_dir, cfg, device)
    trainer = Trainer(
        cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=device, precision=precision
    )
    # 100,000 rows of `eval --all` scored for 36 s after its "scored all" line, silent
    with said_if_slow(f"archlab: still scoring {data.test.n:,} samples (the network, then "
                      "any blend with its peer)"):  # fmt: skip
        loss, metrics, outputs, targets = trainer.evaluate(task, data.test, model)
        tuned: dict[str, Any] = {}
        if isinstance(task, Tunable):
            with trainer.autocast():
                tuned = task.tuned_metrics(model, data)
    base: dict[str, Any] = {}
    if baselines and data_path is None:
        base = {k: v for k, v in rundir.read_metrics(run_dir).items() if k.startswith("baseline_")}
    elif baselines and cfg.task == "sales" and not score_all:
        base = task.baselines(data)
    tests = data.splits.get("test", [])
    return Evaluation(task, tests, loss, metrics, outputs, targets, tuned, base)


def evaluate(
    run_dir: Path, data_path: str | None = None, score_all: bool = False
) -> dict[str, Any]:
    """Re-evaluate a saved run on its test split (or another data set's test split, or with
    ``score_all`` all of ``data_path``), with the baselines on the same rows (evaluate_run)."""
    e = evaluate_run(run_dir, data_path, score_all=score_all, baselines=True)
    tested = {k: v for k, v in e.tuned.items() if k.startswith("test_")}  # e.g. the blend's
    metrics = {f"test_{k}": v for k, v in e.metrics.items()}
    return {"test_loss": e.loss, **metrics, **tested, **e.baselines}


def saved_precision(run_dir: Path, cfg: RunConfig, device: torch.device) -> Precision | None:
    """The arithmetic a finished run was trained and tested in (a run finished before the
    choice was recorded: as the Trainer then trained it); None for an unfinished run.
    Evaluation and prediction use it, so they repeat the run's test outputs."""
    if not rundir.is_finished(run_dir):
        return None
    saved = rundir.read_metrics(run_dir).get("amp_choice")
    return legacy(cfg.train, device) if saved is None else Precision(saved)


def inference(run_dir: Path, cfg: RunConfig, model: nn.Module) -> contextlib.AbstractContextManager:
    """bf16 autocast for predictions of a run that trained and was tested in bf16, else
    nothing. Attributions (explain) and exports stay fp32: a bf16 gradient keeps 8 bits of
    mantissa, too coarse for attributions that must sum to the output change (Integrated
    Gradients' completeness), and an export is checked against the fp32 network."""
    device = next(model.parameters()).device
    p = saved_precision(run_dir, cfg, device)
    return autocast(device, p is not None and p.bf16)


def restore_task(run_dir: Path) -> tuple[RunConfig, Any, nn.Module]:
    """Task and model from a finished run dir without loading the training data (predict)."""
    run_dir = Path(run_dir)
    rundir.require_finished(run_dir)
    cfg = load_config(run_dir)
    # The run's train.threads (0: follow the load), as eval's setup_process applies it: beside
    # other CPU jobs torch's default team of one thread per core runs a forward ~10x slower.
    set_threads(cfg.train.threads)
    spec = TASKS[cfg.task]
    task = spec.task(cfg, spec.data(cfg).restore(run_dir))
    model = task.build_model()
    rundir.load_weights(model, run_dir / rundir.WEIGHTS)
    model.eval()
    return cfg, task, model
