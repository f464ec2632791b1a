"""``archlab train --budget 20m``: a small declared search on the user's validation split.

The budget is wall time for the whole command. A short probe (a few timed training steps and
one validation pass of the user's own config) prices an epoch; the epochs of every trial are
then fixed so that at least ``MIN_TRIALS`` full trials fit, capped by the config's epochs, and
the learning-rate schedule of each trial runs to its end (where a full trial no longer fits, a
shorter one gets the epochs that do); where that leaves trials under half
the config's epochs, time is kept to train the best trial's config again at length (a refit).
Trial 0 is the user's config as given; later trials are sampled from the task's declared space
(``SPACES``) by Optuna, with median pruning on validation macro-F1, in an in-memory study.
Every trial is a normal run directory; the chosen one is the best validation macro-F1 (ties go
to the earlier trial, so the user's config wins a tie; the refit wins only when better).
Nothing reads a test score to choose. The search's record (plan, probe timings, every trial's
parameters and validation score, the refit, the choice) is ``search.json`` in the search
folder and in the chosen run directory.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from archlab import rundir, runner
from archlab.config import RunConfig, apply_overrides
from archlab.errors import ArchlabError, NonFiniteLossError
from archlab.sweep import Param, _best_value, _check_space, _run_trial, _text, _trials_csv
from archlab.task_configs import IMAGE_AUGMENTS
from archlab.tasks import TASKS
from archlab.train.callbacks import Callback
from archlab.utils import count, shell_quote, write_text_atomic

SEARCH = "search.json"
TRIALS = "trials.csv"
# Trials the plan must fit at full length: fewer leaves the sampler nothing to compare, more
# shortens every trial. Pruned trials end early and give their time to later ones.
MIN_TRIALS = 6
MIN_EPOCHS = 3  # below this many epochs per trial, plan fewer trials rather than shorter ones
PROBE_STEPS = 12  # fewest training steps of the probe (the first two are warm-up, not timed)
PROBE_SHARE = 0.02  # of the budget spent timing steps (at most one epoch's worth)
PRUNE_STARTUP_TRIALS = 2  # the user's config and one sampled trial always finish
REFIT_SHARE = 0.5  # most of the time left a refit of the chosen config may take (see plan)
_BUDGET = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_budget(text: str) -> float:
    """``20m``, ``1h30m``, ``90s`` or a plain number of seconds, as seconds (> 0)."""
    s = text.strip().lower()
    try:
        seconds = float(s)
    except ValueError:
        m = _BUDGET.fullmatch(s)
        if not s or m is None or not any(m.groups()):
            raise ArchlabError(
                f"--budget {text!r}: give a duration like 20m, 1h30m, 90s or seconds"
            ) from None
        h, mi, se = (float(g) if g else 0.0 for g in m.groups())
        seconds = 3600 * h + 60 * mi + se
    if not math.isfinite(seconds) or seconds <= 0:
        raise ArchlabError(f"--budget {text!r}: must be a positive duration")
    return seconds


def _lr(base: RunConfig) -> Param:
    # Around the recipe's own rate: a decade below to three times above.
    return Param("float", base.optim.lr / 10, base.optim.lr * 3, log=True)


def _categorical(choices: tuple[Any, ...], current: Any) -> Param:
    """Choices that always include the config's own value (trial 0 must be expressible)."""
    return Param("categorical", choices=choices if current in choices else (*choices, current))


def _schedule(base: RunConfig) -> Param:
    # A constant rate (the task's default, with early stopping) or a cosine decay to zero over
    # the trial's epochs (bench/results/schedule_cosine_2026-12-06.txt: cosine led on
    # validation for images and tied for text at the tasks' defaults).
    return _categorical(("none", "cosine"), base.optim.schedule)


def _weighting(base: RunConfig) -> dict[str, Param]:
    # Class weights off or on, full (inverse frequency) or its square root: on imbalanced
    # text the square root led the full weights on validation in both accuracy and macro-F1
    # (bench/results/class_weight_power_*_2026-12-07.txt).
    return {
        "data.class_weights": _categorical((False, True), base.data.class_weights),
        "data.class_weight_power": _categorical((0.5, 1.0), base.data.class_weight_power),
    }


def _image_space(base: RunConfig) -> dict[str, Param]:
    space = {
        "optim.lr": _lr(base),
        "optim.schedule": _schedule(base),
        "reg.weight_decay": Param("float", 1e-6, 1e-2, log=True),
        "reg.dropout": Param("float", 0.0, 0.5),
        "reg.augment": _categorical(IMAGE_AUGMENTS, base.reg.augment),
        "reg.label_smoothing": _categorical((0.0, 0.1), base.reg.label_smoothing),
        **_weighting(base),
    }
    if base.model.init:  # fine-tuning: the head alone for the first third, or not at all;
        # then the loaded body at the head's rate or a tenth of it
        space["model.freeze_epochs"] = _categorical(
            (0, max(1, base.train.epochs // 3)), base.model.freeze_epochs
        )
        space["model.body_lr_scale"] = _categorical((1.0, 0.1), base.model.body_lr_scale)
    return space


def _text_space(base: RunConfig) -> dict[str, Param]:
    space = {
        "optim.lr": _lr(base),
        "optim.schedule": _schedule(base),
        "reg.weight_decay": Param("float", 1e-6, 1e-2, log=True),
        "reg.dropout": Param("float", 0.0, 0.6),
        **_weighting(base),
        # Soft targets from the cross-fitted TF-IDF model: on small corpora the BiLSTM alone
        # often trails the linear model it is compared with, and the teacher closes much of it.
        "data.distill": _categorical((0.0, 0.5, 0.8), base.data.distill),
    }
    if base.data.embeddings:  # freezing means something only for pretrained vectors
        space["model.freeze_embeddings"] = _categorical((False, True), base.model.freeze_embeddings)
    return space


# The declared search per task: learning rate and its schedule, regularization, augmentation,
# class weighting and (text with pretrained vectors) embedding freezing. Epochs come from the
# budget's plan.
SPACES: dict[str, Callable[[RunConfig], dict[str, Param]]] = {
    "images": _image_space,
    "text": _text_space,
}


def space_for(base: RunConfig, fixed: Collection[str] = ()) -> dict[str, Param]:
    """The task's declared space without the keys the user fixed with ``--set``."""
    if base.task not in SPACES:
        raise ArchlabError(
            f"--budget searches {' and '.join(SPACES)} runs, not {base.task}; for other tasks "
            "use archlab sweep"
        )
    space = {k: p for k, p in SPACES[base.task](base).items() if k not in set(fixed)}
    if "data.class_weights" in fixed and not base.data.class_weights:
        space.pop("data.class_weight_power", None)  # weights fixed off: their power is moot
    _check_space(space, base, "--budget search space")
    return space


def _value(cfg: RunConfig, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def base_params(base: RunConfig, space: dict[str, Param]) -> dict[str, Any]:
    """The config's own values as trial parameters (numbers clipped into their ranges: a
    weight decay of 0 enters as the space's floor, 1e-6)."""
    out = {}
    for key, p in space.items():
        v = _value(base, key)
        out[key] = v if p.kind == "categorical" else min(max(float(v), p.low), p.high)
    return out


@dataclass(frozen=True)
class Probe:
    """What one epoch of the user's config costs here, measured before the search."""

    setup_s: float  # reading and fitting the data, building the model, choosing precision
    step_s: float  # one training step (median after warm-up)
    eval_s: float  # one validation pass
    steps_per_epoch: int
    wall_s: float  # the probe itself, start to end
    steps_timed: int = 0

    @property
    def epoch_s(self) -> float:
        return self.steps_per_epoch * self.step_s + self.eval_s

    def trial_s(self, epochs: int) -> float:
        """A trial of ``epochs``: setup, training, and the test pass (about one val pass)."""
        return self.setup_s + epochs * self.epoch_s + self.eval_s


class _ProbeDone(Exception):
    """Raised after the probe's validation pass: what follows (testing, plots) is not timed."""


class _StepClock(Callback):
    """Times each training step; ends the probe once ``target_s`` of steps (and at least
    ``PROBE_STEPS``) have run, or at the epoch's end, whichever comes first."""

    def __init__(self, target_s: float) -> None:
        self.target_s = target_s
        self.t: list[float] = []
        self.fit_start = math.nan
        self.epoch_end = math.nan  # set when the epoch (with its validation pass) ended
        self.trainer: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        self.fit_start = time.perf_counter()
        self.trainer = trainer

    def on_batch_end(self, trainer: Any, step: int, loss: Any) -> None:
        self.t.append(time.perf_counter())
        if len(self.t) >= PROBE_STEPS and self.t[-1] - self.fit_start >= self.target_s:
            raise _ProbeDone

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        self.epoch_end = time.perf_counter()
        raise _ProbeDone


def probe(base: RunConfig, where: Path, target_s: float = 0.0) -> Probe:
    """Time training steps of ``base`` for ``target_s`` (at least ``PROBE_STEPS``, at most an
    epoch) and one validation pass, in ``where`` (removed after). Steps are timed over a
    stretch rather than a dozen so that a burst of other work on the machine is outvoted."""
    t0 = time.perf_counter()
    # No checkpoint (a VGG-13 one is ~0.5 GB), and no test pass: the clock stops the run.
    cfg = apply_overrides(base, ["train.epochs=1", "train.progress=off",
                                 "train.checkpoint_every_s=1e9"])  # fmt: skip
    p = runner.prepare(cfg, run_dir=where)
    steps = p.data.train.num_batches(base.train.batch_size)
    if base.train.max_steps_per_epoch:
        steps = min(steps, base.train.max_steps_per_epoch)
    clock = _StepClock(target_s)
    try:
        with contextlib.suppress(_ProbeDone):
            runner.fit(p, [clock], on_interrupt="nothing")  # its folder goes: nothing to resume
        if clock.trainer is not None and clock.trainer.interrupted:
            raise KeyboardInterrupt  # a Ctrl-C in the step that ended the probe
        t = clock.t
        if math.isnan(clock.epoch_end):  # stopped inside the epoch: time a validation pass
            v0 = time.perf_counter()
            clock.trainer.evaluate(p.task, p.data.val)
            eval_s = time.perf_counter() - v0
        else:
            eval_s = clock.epoch_end - t[-1]
    finally:
        shutil.rmtree(where, ignore_errors=True)  # its numbers are kept in search.json
    # The first two steps warm up caches and allocators; time the rest.
    gaps = [b - a for a, b in itertools.pairwise(t[2:])] or [
        b - a for a, b in itertools.pairwise([clock.fit_start, *t])
    ]
    return Probe(
        setup_s=clock.fit_start - t0,
        step_s=statistics.median(gaps),
        eval_s=eval_s,
        steps_per_epoch=steps,
        wall_s=time.perf_counter() - t0,
        steps_timed=len(gaps),
    )


@dataclass(frozen=True)
class Plan:
    epochs: int  # per trial
    trials: int  # full-length trials the budget holds (pruning may allow more)
    refit_epochs: int = 0  # the chosen config trained once more at this length (0: no refit)


def plan(budget_s: float, left_s: float, pr: Probe, ceiling: int) -> Plan:
    """Epochs per trial: ``MIN_TRIALS`` full trials in ``left_s``, at least ``MIN_EPOCHS``
    each where the budget allows (fewer trials then), never above the config's epochs.

    Where that leaves trials under half the config's epochs (a costly epoch: large images, a
    large set), the search is shortened instead: at most ``REFIT_SHARE`` of ``left_s`` is kept
    to train the best trial's config once more at up to the config's epochs (a short trial
    ranks configs, and a config trained to its length scores better than a short one)."""
    full = _trials_plan(budget_s, left_s, pr, ceiling)
    if 2 * full.epochs >= ceiling:
        return full
    refit = min(ceiling, int((REFIT_SHARE * left_s - pr.setup_s - pr.eval_s) // pr.epoch_s))
    try:
        search = _trials_plan(budget_s, left_s - pr.trial_s(refit), pr, ceiling)
    except ArchlabError:  # no room for a search beside the refit
        return full
    return replace(search, refit_epochs=refit) if refit > search.epochs else full


def _trials_plan(budget_s: float, left_s: float, pr: Probe, ceiling: int) -> Plan:
    for k in range(MIN_TRIALS, 0, -1):
        per = left_s / k - pr.setup_s - pr.eval_s
        epochs = min(ceiling, int(per // pr.epoch_s))
        if epochs >= min(MIN_EPOCHS, ceiling):
            return Plan(epochs, k)
    epochs = min(ceiling, int((left_s - pr.setup_s - pr.eval_s) // pr.epoch_s))
    if epochs < 1:
        need = pr.wall_s + pr.trial_s(1)
        raise ArchlabError(
            f"--budget {_clock(budget_s)}: too small for one epoch of this run (an epoch takes "
            f"about {_clock(pr.epoch_s)}, reading the data {_clock(pr.setup_s)}); give at "
            f"least {_clock(math.ceil(need * 1.1))}"
        )
    return Plan(epochs, 1)


def next_epochs(left_s: float, cost: Probe, planned: int) -> int:
    """The next trial's epochs: the plan's while a full trial fits in ``left_s``; else as many
    as fit, for a shorter trial (costly epochs would leave up to a trial's length of the
    budget unused), if that is at least ``MIN_EPOCHS`` (or the plan's, if fewer); 0: stop."""
    if left_s >= cost.trial_s(planned):
        return planned
    fit = int((left_s - cost.setup_s - cost.eval_s) // cost.epoch_s) if cost.epoch_s > 0 else 0
    return fit if fit >= min(MIN_EPOCHS, planned) else 0


def measured(pr: Probe, seen: list[float]) -> Probe:
    """The probe with its epoch as long as the trials' median epoch (``seen``, seconds): slower
    on a busy machine, faster where a trial's train.amp=auto chose bf16 (the probe's one epoch
    is too short to calibrate, so it times fp32)."""
    if not seen:
        return pr
    return replace(pr, step_s=max(0.0, statistics.median(seen) - pr.eval_s) / pr.steps_per_epoch)


def _clock(s: float) -> str:
    """``s`` seconds as 1m05s or 12s; under a second with a tenth (a fast epoch is not 0s)."""
    if s < 0.95:  # would round to 0s or 1s; 0.05 is the least a tenth shows
        return f"{max(s, 0.05):.1f}s"
    s = round(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Deadline(Callback):
    """Stop a trial at an epoch end when the next epoch would overrun the budget."""

    def __init__(self, deadline: float, pr: Probe) -> None:
        self.deadline = deadline
        self.pr = pr
        self.truncated = False
        self.last = math.nan
        self.epochs: list[float] = []  # measured seconds of each epoch (training + validation)

    def on_fit_start(self, trainer: Any) -> None:
        self.last = time.perf_counter()

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        now = time.perf_counter()
        self.epochs.append(now - self.last)
        epoch_s = max(now - self.last, self.pr.epoch_s)  # the slower of measured and planned
        self.last = now
        if epoch_s + self.pr.eval_s > self.deadline - now and row["epoch"] < trainer.cfg.epochs:
            self.truncated = True
            trainer.state.stop = True


@dataclass(frozen=True)
class BudgetResult:
    run_dir: Path  # the chosen trial's run directory
    search_dir: Path
    record: dict[str, Any]

    def summary(self) -> str:
        c = self.record["chosen"]
        params = " ".join(f"{k}={_text(v)}" for k, v in c["params"].items())
        r = self.record
        again = f" (its config again at {r['refit']['epochs']} epochs)" if c.get("refit") else ""
        return (
            f"chose trial {c['trial']}{again} of {len(r['trials'])} on validation "
            f"({c['monitor']}={c['value']:.4f}; the config as given: "
            f"{_fmt(r['trials'][0]['value'])}) {params}{_posthoc(self.run_dir)}; "
            f"{_clock(r['wall_s'])} of {_clock(r['budget_s'])}"
        )


def _posthoc(run_dir: Path) -> str:
    """The chosen run's post-hoc choices on validation (its trials do not print them), e.g.
    " (then, on validation: blend_weight=0.9)"; "" if none."""
    try:
        chosen = json.loads((run_dir / rundir.FITTED).read_text()).get("chosen") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    picked = [f"{k}={_text(chosen[k])}" for k in ("correction_scale", "blend_weight")
              if isinstance(chosen.get(k), int | float)]  # fmt: skip
    return f" (then, on validation: {' '.join(picked)})" if picked else ""


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _plan_line(pr: Probe, pl: Plan, space: dict[str, Param], base: RunConfig | None = None) -> str:
    """What the probe found and what the search will do, for stderr; trial 0 is the config
    as given, but for a value outside a searched range, which enters at its nearest end."""
    refit = (f", then the best one's config again for the time left (about "
             f"{count(pl.refit_epochs, 'epoch')})" if pl.refit_epochs else "")  # fmt: skip
    given = base_params(base, space) if base is not None else {}
    moved = [f"{k} {_value(base, k)} enters as {v:g}" for k, v in given.items()
             if space[k].kind != "categorical" and v != float(_value(base, k))]  # fmt: skip
    trial0 = f"; trial 0 is the config as given, but {', '.join(moved)}" if moved else ""
    return (
        f"archlab: an epoch takes about {_clock(pr.epoch_s)} ({count(pr.steps_per_epoch, 'step')} "
        f"of {pr.step_s * 1000:.0f} ms + validation {pr.eval_s:.1f}s), reading the data "
        f"{pr.setup_s:.1f}s; trials of {count(pl.epochs, 'epoch')}, {pl.trials} or more of them"
        f"{refit}; searching {', '.join(space) or 'nothing (every key fixed by --set)'}{trial0}"
    )


@contextlib.contextmanager
def _interrupts(stopped: Callable[[], None]) -> Iterator[list[bool]]:
    """Ctrl-C during the search: ``stopped()`` records what the finished trials found, then
    the KeyboardInterrupt goes on. Between trials this SIGINT handler raises it as Python's
    does, and also notes the press (``[True]``) for the loop to stop at the next trial where
    the interrupt was swallowed (in a garbage collector's hook, Python drops it). Inside a
    fit the trainer's own handler takes over (a checkpoint at the next step)."""
    seen: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, handler) if main else None
    try:
        yield seen
    except KeyboardInterrupt:
        stopped()
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def run_budget(
    base: RunConfig,
    budget_s: float,
    out: Path,
    name: str,
    *,
    fixed: Collection[str] = (),
    command: str = "",
    started: float | None = None,
    keep_weights: bool = False,
) -> BudgetResult:
    """Search ``base``'s task space within ``budget_s`` seconds of wall time counted from
    ``started`` (a ``time.time()``; the command's start, so its imports count too) or now;
    ``keep_weights``: every finished trial keeps its weights (to study the search itself, or
    to average trials), not only the chosen one."""
    t0 = time.perf_counter() - (0.0 if started is None else max(0.0, time.time() - started))
    deadline = t0 + budget_s
    space_for(base, fixed)  # a task without a space fails before any data is read
    monitor = TASKS[base.task].monitor
    search_dir = rundir.new_run_dir(out, f"{name}-budget")
    if base.train.progress != "off":
        print(f"archlab: budget {_clock(budget_s)}: timing a few steps of the config as given",
              file=sys.stderr, flush=True)  # fmt: skip
    try:
        pr = probe(base, search_dir / "probe", PROBE_SHARE * budget_s)
        pl = plan(budget_s, deadline - time.perf_counter(), pr, base.train.epochs)
    except KeyboardInterrupt as e:
        shutil.rmtree(search_dir, ignore_errors=True)  # nothing searched: leave nothing behind
        print("archlab: the --budget search stopped while timing its first steps, before any "
              "trial: nothing to keep; run the command again", file=sys.stderr)  # fmt: skip
        raise runner.Interrupted from e  # said: no bare "interrupted" after it
    except BaseException:
        shutil.rmtree(search_dir, ignore_errors=True)  # nothing searched: leave nothing behind
        raise
    trial_base = apply_overrides(base, [f"train.epochs={pl.epochs}"])
    space = space_for(trial_base, fixed)  # again: some choices scale with the planned epochs
    if base.train.progress != "off":
        print(_plan_line(pr, pl, space, trial_base), file=sys.stderr, flush=True)
    # In memory: one process runs every trial, and search.json + trials.csv keep the record.
    study = optuna.create_study(
        study_name=name,
        direction="maximize" if monitor[1] == "max" else "minimize",
        # Compared from a third of the epochs on: at epoch 1 a lower learning rate always
        # trails, and pruning there would keep only the fastest starters.
        pruner=optuna.pruners.MedianPruner(PRUNE_STARTUP_TRIALS, max(1, math.ceil(pl.epochs / 3))),
    )
    study.enqueue_trial(base_params(base, space))
    truncated: dict[int, bool] = {}  # per trial run: whether the budget cut it short
    said: set[str] = set()  # the trials' first lines, each printed once
    seen: list[float] = []  # epoch seconds measured in the trials so far
    stop = functools.partial(_stopped, study, search_dir, base, monitor, budget_s, t0, pr, pl,
                             truncated)  # fmt: skip
    with _interrupts(stop) as ctrl_c:  # in a trial or between trials: keep what was found
        while True:
            if ctrl_c:  # a Ctrl-C Python dropped (it can land in a garbage collector's hook)
                raise KeyboardInterrupt
            left = deadline - time.perf_counter()
            cost = measured(pr, seen)
            reserve = cost.trial_s(pl.refit_epochs) if pl.refit_epochs else 0.0  # for the refit
            # Trial 0 (the config as given) at the plan's length, which the plan fits in the budget.
            epochs = next_epochs(left - reserve, cost, pl.epochs) if truncated else pl.epochs
            if not epochs:
                break  # no trial of MIN_EPOCHS fits: stop with what we have
            trial = study.ask()
            guard = _Deadline(deadline - reserve, cost)
            run_base = trial_base
            if epochs < pl.epochs:  # a shorter trial, as long as the time left (next_epochs)
                run_base = apply_overrides(trial_base, [f"train.epochs={epochs}"], "search")
            _run_trial(study, trial, run_base, space, search_dir, monitor, command,
                       callbacks=[guard], said=said)  # fmt: skip
            seen += guard.epochs
            truncated[trial.number] = guard.truncated
            if not keep_weights:
                _keep_best_weights(study, monitor)
            if not space:
                break  # nothing to search: the config as given is the only trial
    refit = None
    if pl.refit_epochs:
        try:
            refit = _refit(study, trial_base, base.train.epochs, search_dir,
                           _Deadline(deadline, cost), monitor, command, said)  # fmt: skip
        except _RefitInterrupted as e:  # the record names its checkpoint, to resume it
            _stopped(study, search_dir, base, monitor, budget_s, t0, pr, pl, truncated, e.refit)
            raise
    record = _record(study, search_dir, base, monitor, budget_s, t0, pr, pl, truncated, refit)
    return BudgetResult(_write(study, search_dir, record, keep_weights), search_dir, record)


def _refit(
    study: optuna.Study,
    trial_base: RunConfig,
    ceiling: int,
    search_dir: Path,
    guard: _Deadline,
    monitor: tuple[str, str],
    command: str,
    said: set[str],
) -> dict[str, Any] | None:
    """Train the best finished trial's config again with the time left to ``guard``'s deadline
    (a search that stopped early leaves more than planned), at up to ``ceiling`` epochs and
    only if that is longer than the trials were; outside the study (its early epochs, at a
    longer schedule's rates, must not be pruned against short trials)."""
    cost = guard.pr
    left = guard.deadline - time.perf_counter()
    epochs = min(ceiling, int((left - cost.setup_s - cost.eval_s) // cost.epoch_s))
    best = _best(study, monitor)
    if best is None or epochs <= trial_base.train.epochs:
        return None
    sets = [f"{k}={_text(v)}" for k, v in best.params.items()]  # as the trial set them
    cfg = apply_overrides(trial_base, [*sets, f"train.epochs={epochs}"], "search")
    run_dir = (search_dir / "refit").resolve()
    t = time.perf_counter()
    record = {"trial": best.number, "epochs": epochs, "params": best.params,
              "run_dir": str(run_dir)}  # fmt: skip
    try:
        runner.train_at(cfg, run_dir, command=command, callbacks=[guard], said=said)
    except NonFiniteLossError as e:
        print(f"refit of trial {best.number}: failed: {e}", file=sys.stderr)
        return None
    except KeyboardInterrupt as e:
        stopped = {**record, "value": None, "seconds": time.perf_counter() - t, "stopped": True}
        raise _RefitInterrupted(stopped) from e
    value = _best_value(run_dir, monitor)
    shown = "nan" if value is None else f"{value:.6g}"
    print(f"refit of trial {best.number} at {epochs} epochs: {monitor[0]}={shown} {run_dir}",
          file=sys.stderr)  # fmt: skip
    return {
        **record,
        "epochs_run": _epochs_run(str(run_dir)),
        "truncated_by_budget": guard.truncated,
        "value": value,
        "seconds": time.perf_counter() - t,
    }


class _RefitInterrupted(KeyboardInterrupt):
    """Ctrl-C during the refit, with its record so far (``stopped``: its checkpoint is kept)."""

    def __init__(self, refit: dict[str, Any]) -> None:
        super().__init__()
        self.refit = refit


def _sign(monitor: tuple[str, str]) -> int:
    return 1 if monitor[1] == "max" else -1


def _better(a: float, b: float, monitor: tuple[str, str]) -> bool:
    """``a`` strictly better than ``b`` on the monitored value."""
    return _sign(monitor) * a > _sign(monitor) * b


def _best(study: optuna.Study, monitor: tuple[str, str]) -> optuna.trial.FrozenTrial | None:
    """The best finished trial on validation; ties go to the earlier trial."""
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and t.value is not None]  # fmt: skip
    return max(done, key=lambda t: (_sign(monitor) * t.value, -t.number)) if done else None


def _write(
    study: optuna.Study, search_dir: Path, record: dict[str, Any], keep_weights: bool = False
) -> Path:
    """search.json and trials.csv in the search folder and the chosen run; only the chosen
    run keeps its weights (unless ``keep_weights``). Returns the chosen run directory."""
    chosen = Path(record["chosen"]["run_dir"])
    for t in study.get_trials(deepcopy=False):
        d = t.user_attrs.get("run_dir")
        if d and Path(d) != chosen and t.state != TrialState.FAIL and not keep_weights:
            _drop_weights(Path(d))  # a failed (interrupted) trial keeps its checkpoint
    r = record.get("refit")
    if r and Path(r["run_dir"]) != chosen and not keep_weights and not r.get("stopped"):
        _drop_weights(Path(r["run_dir"]))
    text = json.dumps(record, indent=2, default=str) + "\n"
    csv_text = _trials_csv(study.get_trials(deepcopy=False))
    for d in (search_dir, chosen):
        write_text_atomic(d / SEARCH, text)
        write_text_atomic(d / TRIALS, csv_text)
    return chosen


def _stopped(study: optuna.Study, search_dir: Path, *args: Any) -> None:
    """Ctrl-C: keep what the finished trials found, and say where (a search is not resumed)."""
    try:
        record = _record(study, search_dir, *args)
    except ArchlabError:
        print(f"archlab: the --budget search stopped before any trial finished ({search_dir}); "
              "run the command again to search afresh", file=sys.stderr)  # fmt: skip
        return
    record["stopped_by"] = "Ctrl-C"
    chosen = _write(study, search_dir, record)
    print(f"archlab: the --budget search stopped; the best finished trial so far on validation: "
          f"{chosen} (search.json there); run the command again to search afresh",
          file=sys.stderr)  # fmt: skip
    if (r := record.get("refit")) and r.get("stopped"):
        print(f"archlab: the refit of trial {r['trial']} stopped; `archlab train --resume "
              f"{shell_quote(r['run_dir'])}` finishes it (outside the budget)",
              file=sys.stderr)  # fmt: skip


def _record(
    study: optuna.Study,
    search_dir: Path,
    base: RunConfig,
    monitor: tuple[str, str],
    budget_s: float,
    t0: float,
    pr: Probe,
    pl: Plan,
    truncated: dict[int, bool],
    refit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    best = _best(study, monitor)
    if best is None:
        raise ArchlabError(
            f"--budget: no trial finished within {_clock(budget_s)} (see {search_dir / TRIALS}); "
            "give a larger budget"
        )
    trial_s = sum(t.duration.total_seconds() for t in trials if t.duration)
    trial_s += refit["seconds"] if refit else 0.0
    wall = time.perf_counter() - t0
    chosen = {
        "trial": best.number,
        "monitor": monitor[0],
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs["run_dir"],
        "refit": False,
    }
    if refit and refit["value"] is not None and _better(refit["value"], best.value, monitor):
        chosen.update(value=refit["value"], run_dir=refit["run_dir"], refit=True)
    return {
        "budget_s": budget_s,
        "wall_s": wall,
        "probe": {**asdict(pr), "epoch_s": pr.epoch_s},
        "plan": asdict(pl),
        "trials_s": trial_s,
        # Everything that is not a trial: the probe, planning, the study's bookkeeping.
        "overhead_fraction": max(0.0, wall - trial_s) / wall,
        "monitor": monitor[0],
        "chosen_on": "validation only: the best " + monitor[0] + " of any finished trial "
        "(its best epoch); ties go to the earlier trial, and the refit (the best trial's "
        "config at more epochs) replaces it only when better",
        "base_config": base.to_dict(),
        "trials": [
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": t.params,
                "epochs_run": _epochs_run(t.user_attrs.get("run_dir")),
                "truncated_by_budget": truncated.get(t.number, False),
                "seconds": t.duration.total_seconds() if t.duration else None,
                "run_dir": t.user_attrs.get("run_dir"),
            }
            for t in trials
        ],
        "refit": refit,
        "chosen": chosen,
    }


def _epochs_run(run_dir: str | None) -> int | None:
    if not run_dir or not (Path(run_dir) / rundir.HISTORY).exists():
        return None
    return len(rundir.read_history(Path(run_dir) / rundir.HISTORY))


def _keep_best_weights(study: optuna.Study, monitor: tuple[str, str]) -> None:
    """During the search, only the best finished trial so far keeps its weights: a pruned
    trial is never chosen, and one that is no longer the best will not be (on tiny data a
    search runs ~36 trials a minute, at up to 85 MB each)."""
    best = _best(study, monitor)
    for t in study.get_trials(deepcopy=False):
        d = t.user_attrs.get("run_dir")
        done = t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        if d and done and (best is None or t.number != best.number):
            _drop_weights(Path(d))


def _drop_weights(run_dir: Path) -> None:
    """Keep a trial's statistics (config, history, metrics), not its weights: a VGG-13
    trial's are 155 MB, and only the chosen trial's are used."""
    for name in (rundir.WEIGHTS, rundir.BEST, rundir.STATE):
        (run_dir / name).unlink(missing_ok=True)
