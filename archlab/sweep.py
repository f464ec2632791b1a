"""Hyperparameter sweeps with Optuna: search spaces, pruning, many workers on one study.

Each trial is a normal run directory (``<out>/trial-<number>``) trained by the runner. The study
lives in an Optuna storage (SQLite in ``<out>/sweep.db`` by default) that any number of
``archlab sweep`` workers share; together they run exactly ``n_trials`` trials.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from archlab import rundir, runner
from archlab.config import SECTIONS, RunConfig, apply_overrides, yaml_problem
from archlab.errors import ArchlabError, NonFiniteLossError
from archlab.storage import file_lock, open_storage, sqlite_lock_path
from archlab.tasks import TASKS
from archlab.train.callbacks import Callback
from archlab.utils import write_text_atomic

KINDS = ("float", "int", "categorical")
SPEC_KEYS = ("type", "low", "high", "log", "choices")
PRUNE_STARTUP_TRIALS = 3  # trials that always run to the end before the median rule applies
PRUNE_WARMUP_EPOCHS = 1  # never prune on the first epoch's value alone


@dataclass(frozen=True)
class Param:
    """One dimension of a search space; the trial parameter is named by its config key."""

    kind: str  # float, int or categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(key, self.low, self.high, log=self.log)

    def extremes(self) -> tuple[Any, ...]:
        """The values to check against the config: every choice, or both bounds."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)


# The learning rate and the regularization knobs. Log scales cannot reach 0, so weight decay's
# floor of 1e-8 stands for "off". Searching reg.patience turns on reg.early_stop.
DEFAULT_SPACE: dict[str, Param] = {
    "optim.lr": Param("float", 1e-4, 1e-2, log=True),
    "reg.dropout": Param("float", 0.0, 0.5),
    "reg.weight_decay": Param("float", 1e-8, 1e-2, log=True),
    "reg.patience": Param("int", 2, 8),
}


def search_space(path: Path | None, base: RunConfig) -> dict[str, Param]:
    """The YAML file's space ``{key: {type, low, high, log, choices}}`` or the default, checked."""
    if path is None:
        _check_space(DEFAULT_SPACE, base, "default search space")
        return dict(DEFAULT_SPACE)
    where = str(path)
    if not Path(path).is_file():
        raise ArchlabError(f"{where}: no such file")
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ArchlabError(f"{where}: not valid YAML ({yaml_problem(e)})") from None
    if not isinstance(raw, dict) or not raw:
        raise ArchlabError(
            f"{where}: expected a mapping of config keys to {{type, low, high, log, choices}}"
        )
    space = {str(key): _param(str(key), spec, where) for key, spec in raw.items()}
    _check_space(space, base, where)
    return space


def _param(key: str, spec: Any, where: str) -> Param:
    def error(msg: str) -> ArchlabError:
        return ArchlabError(f"{where}: {key}: {msg}")

    if not isinstance(spec, dict):
        raise error("expected a mapping with type: float, int or categorical")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise error(f"unknown field(s) {unknown}; valid: {', '.join(SPEC_KEYS)}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise error(f"type must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "categorical":
        extra = sorted({"low", "high", "log"} & set(spec))
        if extra:
            raise error(f"{', '.join(extra)} do not apply to categorical (give choices)")
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise error("categorical needs a non-empty list of choices")
        if not all(isinstance(c, str | int | float | bool) for c in choices):
            raise error(f"choices must be strings, numbers or booleans, got {choices!r}")
        return Param(kind, choices=tuple(choices))
    if "choices" in spec:
        raise error(f"choices apply to categorical only; {kind} takes low and high")
    low, high = (_bound(spec.get(b), kind, b, error) for b in ("low", "high"))
    log = spec.get("log", False)
    if not low < high:
        raise error(f"low ({low}) must be below high ({high})")
    if not isinstance(log, bool):
        raise error(f"log must be true or false, not {log!r}")
    if log and low <= 0:
        raise error(f"a log scale needs low > 0, not {low}")
    return Param(kind, low, high, log)


def _bound(value: Any, kind: str, name: str, error: Any) -> float:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{name} must be an integer, not {value!r}")
        return value
    if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
        with contextlib.suppress(ValueError):
            return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{name} must be a number, not {value!r}")
    return float(value)


def _check_space(space: Mapping[str, Param], base: RunConfig, where: str) -> None:
    """Every key must be a config field, and every bound or choice a valid value for it."""
    for key, param in space.items():
        if key != "seed":
            section, _, name = key.partition(".")
            if section not in SECTIONS:
                raise ArchlabError(
                    f"{where}: unknown key {key!r}; use section.key with a section of "
                    f"{', '.join(SECTIONS)} (or seed)"
                )
            valid = [f.name for f in fields(getattr(base, section))]
            if name not in valid:
                raise ArchlabError(f"{where}: unknown key {key}; valid keys: {', '.join(valid)}")
        for value in param.extremes():
            try:
                apply_overrides(base, [f"{key}={_text(value)}"])
            except ArchlabError as e:
                raise ArchlabError(f"{where}: {e}") from None


def _text(value: Any) -> str:
    """A sampled value as `--set` text that parses back to exactly the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


class ReportToTrial(Callback):
    """Report the monitored value to the trial each epoch; stop the run when it is pruned."""

    def __init__(self, trial: optuna.Trial, key: str) -> None:
        self.trial = trial
        self.key = key
        self.pruned = False

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        self.trial.report(row[self.key], epoch)
        # Pruning at the last epoch would save nothing and discard a finished trial.
        if epoch < trainer.cfg.epochs and self.trial.should_prune():
            self.pruned = True
            trainer.state.stop = True


@dataclass(frozen=True)
class SweepResult:
    """What one worker reports at its end: the study's best trial so far and where it went."""

    study_name: str
    monitor: str
    finished: int
    running: int
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Path | None = None

    def summary(self) -> str:
        if self.best_number is None:
            return (
                f"study {self.study_name}: no finished trial yet ({self.running} running on "
                "other workers; the last worker to finish writes best.yaml)"
            )
        params = " ".join(f"{k}={_text(v)}" for k, v in self.best_params.items())
        return (
            f"best {self.monitor}={self.best_value:.6g} trial {self.best_number} "
            f"({self.finished} finished) {params} {self.best_config}"
        )


def run_sweep(
    base: RunConfig,
    space: Mapping[str, Param],
    n_trials: int,
    out: Path,
    *,
    study_name: str,
    storage: str | None = None,
    command: str = "",
) -> SweepResult:
    """Run trials of the shared study until it holds ``n_trials``; write best.yaml, trials.csv.

    Workers on one SQLite file count and create trials under a file lock, so together they run
    exactly ``n_trials`` (a server storage has no such lock: workers that start their last
    trials within the same few milliseconds may run one extra). Every trial trains with
    ``base.seed``; its sampler is seeded by (seed, trial number).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "reg.patience" in space:
        base = apply_overrides(base, ["reg.early_stop=true"])
    key, mode = TASKS[base.task].monitor
    direction = "minimize" if mode == "min" else "maximize"
    url = storage or f"sqlite:///{(out / 'sweep.db').resolve()}"
    lock_path = sqlite_lock_path(url)
    with file_lock(lock_path):  # a fresh SQLite file must not get its tables twice
        study = optuna.create_study(
            storage=open_storage(url),
            study_name=study_name,
            direction=direction,
            pruner=optuna.pruners.MedianPruner(PRUNE_STARTUP_TRIALS, PRUNE_WARMUP_EPOCHS),
            load_if_exists=True,
        )
    if study.direction.name.lower() != direction:
        raise ArchlabError(
            f"study {study_name!r} in {url} was made to {study.direction.name.lower()}, but "
            f"{key} should {direction}; choose another --study-name"
        )
    _same_study(study, base, space, url)
    said: set[str] = set()  # the trials' first lines, each printed once
    while True:
        with file_lock(lock_path):
            trials = study.get_trials(deepcopy=False)
            if sum(not _interrupted(t) for t in trials) >= n_trials:
                break
            trial = _take_up(study, trials)
        _run_trial(study, trial, base, space, out, (key, mode), command, said=said)
    return _write_outputs(study, out, key)


def _interrupted(t: FrozenTrial) -> bool:
    """A trial stopped by Ctrl-C or SIGTERM: not counted, and taken up again by a later one."""
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("interrupted"))


def _take_up(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Trial:
    """The next trial: an interrupted one's parameters and run directory again (it resumes
    from its checkpoint), else a newly sampled one."""
    taken = {t.user_attrs.get("run_dir") for t in trials if not _interrupted(t)}
    for t in trials:
        # One stopped before its run directory was named is replaced by a new one.
        if _interrupted(t) and "run_dir" in t.user_attrs and t.user_attrs["run_dir"] not in taken:
            attrs = {"run_dir": t.user_attrs["run_dir"], "resumes": t.number}
            study.enqueue_trial(t.params, user_attrs=attrs)
            break
    return study.ask()  # the enqueued trial first, if any


def _same_study(study: optuna.Study, base: RunConfig, space: Mapping[str, Param],
                url: str) -> None:  # fmt: skip
    """Record the config and searched keys a study is run with, and refuse a later run of it
    with others: its trials would be mixed into one table and one best config."""
    made = {"base": base.to_dict(), "space": sorted(space)}
    if "base" not in study.user_attrs:
        for k, v in made.items():
            study.set_user_attr(k, v)
        return
    saved = RunConfig.from_dict(study.user_attrs["base"], where=f"{url} (study config)")
    changes = [c for c in runner.config_changes(saved, base) if not c.startswith("data.path:")]
    if study.user_attrs.get("space") != made["space"]:
        changes.append(f"searched keys {study.user_attrs.get('space')} -> {made['space']}")
    if changes:
        raise ArchlabError(
            f"study {study.study_name!r} in {url} was run with other settings "
            f"({'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''}): its trials would "
            "be mixed with these; give another --out (or --study-name)"
        )


def _run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    base: RunConfig,
    space: Mapping[str, Param],
    out: Path,
    monitor: tuple[str, str],
    command: str,
    callbacks: Sequence[Callback] = (),
    said: set[str] | None = None,
) -> None:
    # Seeded per trial: a single worker is reproducible, and parallel workers differ.
    seed = int(np.random.SeedSequence([base.seed % 2**32, trial.number]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    resumes = trial.user_attrs.get("resumes")  # set by _take_up, with the run_dir to resume
    run_dir = Path(trial.user_attrs["run_dir"]) if resumes is not None else (
        out / f"trial-{trial.number}").resolve()  # fmt: skip
    report = ReportToTrial(trial, monitor[0])
    try:  # whatever happens, the trial is told: a trial left RUNNING would hold its place
        params = {key: param.suggest(trial, key) for key, param in space.items()}
        cfg = apply_overrides(base, [f"{k}={_text(v)}" for k, v in params.items()], "search")
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("run_dir", str(run_dir))
        if run_dir.exists() and resumes is None:
            raise ArchlabError(f"{run_dir}: exists already; give each study its own --out")
        if resumes is not None:
            print(f"trial {trial.number}: resumes interrupted trial {resumes} ({run_dir})",
                  file=sys.stderr)  # fmt: skip
        runner.train_at(cfg, run_dir, command=command, callbacks=[report, *callbacks], said=said)
    except NonFiniteLossError as e:  # a diverging corner of the space, not a broken sweep
        study.tell(trial, state=TrialState.FAIL)
        print(f"trial {trial.number}: failed: {e}", file=sys.stderr)
        return
    except BaseException as e:
        # SIGTERM is raised as a KeyboardInterrupt too (cli); a run another process is
        # training (its --resume, as the Ctrl-C line suggests) is taken up again later.
        if isinstance(e, KeyboardInterrupt | rundir.RunLocked):
            trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise
    value = _best_value(run_dir, monitor)
    if report.pruned or value is None:
        state = TrialState.PRUNED if report.pruned else TrialState.FAIL
        study.tell(trial, state=state)
    else:
        state = TrialState.COMPLETE
        study.tell(trial, value)
    shown = "nan" if value is None else f"{value:.6g}"
    print(
        f"trial {trial.number}: {state.name.lower()} {monitor[0]}={shown} {run_dir}",
        file=sys.stderr,
    )


def _best_value(run_dir: Path, monitor: tuple[str, str]) -> float | None:
    """The monitored validation value of the run's best epoch (None if never finite)."""
    key, mode = monitor
    rows = rundir.read_history(run_dir / rundir.HISTORY)
    values = [r[key] for r in rows if math.isfinite(r.get(key, math.nan))]
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def _write_outputs(study: optuna.Study, out: Path, key: str) -> SweepResult:
    trials = study.get_trials(deepcopy=False)
    write_text_atomic(out / "trials.csv", _trials_csv(trials))
    finished = sum(t.state.is_finished() and not _interrupted(t) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    result = SweepResult(study.study_name, key, finished, running)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        if running:
            return result
        raise ArchlabError(
            f"study {study.study_name}: no trial completed ({finished} finished, failed or "
            f"pruned); see {out / 'trials.csv'}"
        )
    best = study.best_trial
    cfg = RunConfig.from_dict(best.user_attrs["config"], where=f"trial {best.number}")
    path = out / "best.yaml"
    header = f"# study {study.study_name}: best trial {best.number}, {key}={best.value:.6g}\n"
    write_text_atomic(path, header + cfg.to_yaml())
    return SweepResult(
        study.study_name, key, finished, running, best.number, best.value, best.params, path
    )


def _trials_csv(trials: list[FrozenTrial]) -> str:
    keys: list[str] = []
    for t in trials:
        keys += [k for k in t.params if k not in keys]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "value", *keys, "seconds", "run_dir"])
    for t in trials:
        seconds = f"{t.duration.total_seconds():.1f}" if t.duration else ""
        value = "" if t.value is None else t.value
        params = (t.params.get(k, "") for k in keys)
        w.writerow(
            [
                t.number,
                "interrupted" if _interrupted(t) else t.state.name.lower(),
                value,
                *params,
                seconds,
                t.user_attrs.get("run_dir", ""),
            ]
        )
    return buf.getvalue()
