"""Frozen run configuration: typed sections, validation at the edge, and `--set` overrides.

A run is fully described by a :class:`RunConfig`. The ``data`` and ``model`` sections are
task-specific dataclasses (``archlab.task_configs.TASK_CONFIGS``); ``optim``, ``reg`` and
``train`` are shared, and a RunConfig checks that its ``reg`` section sets only the knobs its
task reads. Only :func:`apply_overrides` and :func:`parse_value` ever parse strings.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, get_args, get_origin

import yaml

from archlab.errors import ArchlabError
from archlab.task_configs import TASK_CONFIGS, DataConfig, ModelConfig

SECTIONS = ("data", "model", "optim", "reg", "train")


def _check(ok: bool, key: str, value: Any, need: str) -> None:
    if not ok:
        raise ArchlabError(f"invalid config value {key}={value!r}: {need}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    name: Literal["adam", "adamw", "sgd"] = "adam"  # the optimizer
    lr: float = 1e-3  # learning rate (the peak of a one-cycle schedule)
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW only
    schedule: Literal["none", "cosine", "onecycle"] = "none"  # learning rate over the epochs
    warmup_epochs: float = 0.0  # linear warm-up (epochs, fractional ok); cosine only
    grad_clip: float = 0.0  # max global L2 norm of gradients; 0 disables

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", self.lr, "must be > 0")
        _check(0 <= self.momentum < 1, "optim.momentum", self.momentum, "must be in [0, 1)")
        _check(self.warmup_epochs >= 0, "optim.warmup_epochs", self.warmup_epochs, "must be >= 0")
        _check(self.grad_clip >= 0, "optim.grad_clip", self.grad_clip, "must be >= 0 (0 = off)")


@dataclass(frozen=True)
class RegConfig:
    """Every regularization knob in one place, so an ablation is a sweep over this section.

    L2 comes in three kinds (``l2_mode``), all with strength ``weight_decay``:
    - ``coupled``: the optimizer's ``weight_decay`` (λ·w added to the gradient, as
      ``torch.optim.Adam(weight_decay=λ)``); this is what the study used.
    - ``decoupled``: AdamW-style decay applied to the weights, independent of the gradient scale.
    - ``penalty``: λ/2·Σw² added to the loss (same gradient as ``coupled``; visible in the loss).
    Biases and normalization parameters (1-D tensors) are never decayed.
    """

    dropout: float = 0.0  # dropout probability where the network has dropout layers
    weight_decay: float = 0.0  # L2 strength λ (0 = off); how it applies: l2_mode
    # coupled: λ·w added to the gradient (the study's); decoupled: AdamW's decay of the
    # weights; penalty: λ/2·Σw² added to the loss. Biases and norms are never decayed.
    l2_mode: Literal["coupled", "decoupled", "penalty"] = "coupled"
    # Stop after `patience` epochs without improvement of the monitored value (train.epochs is
    # then a ceiling). None: on when the run keeps its best epoch and the learning rate is
    # constant (optim.schedule=none); a cosine or one-cycle schedule runs to its end, whose
    # low-learning-rate epochs are the ones it is made for.
    early_stop: bool | None = None
    patience: int = 5  # epochs without improvement before stopping
    min_delta: float = 0.0  # improvement smaller than this does not count
    # Model selection: which epoch's weights are scored on test and saved. "best": the best
    # validation epoch by the task's monitored value (archlab.tasks TASKS[task].monitor);
    # "last": the last epoch trained (the study's protocol); "auto": best for the classifiers
    # (images, text), last for sales (its validation weeks may be trained on or unlike the
    # test's: data.fit_through_val, the holiday season), best wherever early_stop is on.
    select: Literal["auto", "best", "last"] = "auto"
    # the augmentation: none for every task; images: flip, translate, study, crop, photo (see the
    # images page); a task refuses a name it has not
    augment: str = "none"
    label_smoothing: float = 0.0  # classifiers: cross-entropy against smoothed labels

    def __post_init__(self) -> None:
        _check(0 <= self.dropout < 1, "reg.dropout", self.dropout, "must be in [0, 1)")
        _check(self.weight_decay >= 0, "reg.weight_decay", self.weight_decay, "must be >= 0")
        _check(self.patience >= 0, "reg.patience", self.patience, "must be >= 0")
        _check(self.min_delta >= 0, "reg.min_delta", self.min_delta, "must be >= 0")
        _check(
            0 <= self.label_smoothing < 1,
            "reg.label_smoothing",
            self.label_smoothing,
            "must be in [0, 1)",
        )


def yaml_problem(e: Exception) -> str:
    """A YAML error in a few words, with its line and column where PyYAML knows them."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or e.__class__.__name__
    return f"{what}, line {mark.line + 1} column {mark.column + 1}" if mark else str(what)


@dataclass(frozen=True)
class TrainConfig:
    """Loop length, batching, device and logging."""

    epochs: int = 10  # epochs to train (a ceiling when early stopping is on)
    batch_size: int = 64  # training batch; the global batch under torchrun
    eval_batch_size: int = 512  # batch of validation, test and prediction passes
    device: str = "auto"  # auto = cuda > mps > cpu
    threads: int = 0  # torch intra-op threads; 0: one per core other jobs leave free (threads.py)
    progress: Literal["auto", "bar", "plain", "off"] = "auto"  # auto: bar on a TTY, else plain
    tensorboard: bool = False  # write TensorBoard event files to the run directory
    max_steps_per_epoch: int = 0  # cap on training steps per epoch (0 = full epoch); for smoke runs
    # bf16 autocast. auto: on CUDA; on a CPU with bf16 units, where a few timed steps at the
    # start show it faster (train/precision.py); off/bf16 force fp32/bf16 on CPU and CUDA.
    amp: Literal["auto", "off", "bf16"] = "auto"
    channels_last: bool = False  # NHWC memory format for conv nets
    compile: bool = False  # torch.compile the training model (GPU; measured no gain on CPU)
    # Resume state is written at an epoch end once this many seconds passed since the last
    # write (0 = every epoch), and always on Ctrl-C: at most this much training can be lost.
    checkpoint_every_s: float = 60.0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", self.epochs, "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "must be >= 1")
        _check(
            self.eval_batch_size >= 1, "train.eval_batch_size", self.eval_batch_size, "must be >= 1"
        )
        _check(self.threads >= 0, "train.threads", self.threads, "must be >= 0")
        _check(bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device)), "train.device",
               self.device, "must be auto, cpu, cuda, cuda:N or mps")  # fmt: skip
        _check(
            self.checkpoint_every_s >= 0,
            "train.checkpoint_every_s",
            self.checkpoint_every_s,
            "must be >= 0",
        )
        _check(
            self.max_steps_per_epoch >= 0,
            "train.max_steps_per_epoch",
            self.max_steps_per_epoch,
            "must be >= 0",
        )


TOP_LEVEL = ("seed", "split_seed")  # the integer keys outside the sections


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one run."""

    task: str
    data: DataConfig  # the task's own section (TASK_CONFIGS[task].data_config)
    model: ModelConfig
    seed: int = 0  # seeds initialization, batch order, augmentation and (split_seed=-1) split
    optim: OptimConfig = field(default_factory=OptimConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Seed of the random split and subset; -1 = ``seed``. Fix it to vary only the initialization
    # and batch order across seeds (e.g. for `archlab ensemble`).
    split_seed: int = -1
    # Where values came from ("section.key" -> "preset NAME", "--set", "search"...): a record
    # for data.json (see ``config_sources``), not a setting, so config.yaml and comparisons
    # leave it out and two configs with the same values are equal.
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"must be in 0..{MAX_SEED}")
        _check(-1 <= self.split_seed <= MAX_SEED, "split_seed", self.split_seed,
               f"-1 (the seed) or in 0..{MAX_SEED}")  # fmt: skip
        if self.task not in TASK_CONFIGS:
            raise ArchlabError(f"unknown task {self.task!r}; valid: {', '.join(TASK_CONFIGS)}")
        _check_reg(self.task, self.reg)

    @property
    def data_seed(self) -> int:
        """The seed the task splits (and subsets) its data with."""
        return self.split_seed if self.split_seed >= 0 else self.seed

    def to_dict(self) -> dict[str, Any]:
        d = _to_plain(dataclasses.asdict(self))
        del d["sources"]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "config") -> RunConfig:
        if not isinstance(d, dict) or "task" not in d:
            raise ArchlabError(f"{where}: not a run config (no 'task' key)")
        task = d["task"]
        if task not in TASK_CONFIGS:
            raise ArchlabError(f"{where}: unknown task {task!r}; valid: {', '.join(TASK_CONFIGS)}")
        spec = TASK_CONFIGS[task]
        unknown = set(d) - {"task", *TOP_LEVEL, *SECTIONS}
        if unknown:
            raise ArchlabError(f"{where}: unknown keys {sorted(unknown)}")
        types_ = {
            "data": spec.data_config,
            "model": spec.model_config,
            "optim": OptimConfig,
            "reg": RegConfig,
            "train": TrainConfig,
        }
        kwargs: dict[str, Any] = {"task": task}
        for k in TOP_LEVEL:
            if k in d:
                kwargs[k] = _coerce(int, d[k], k)
        for name, typ in types_.items():
            section = d.get(name) or {}
            if not isinstance(section, dict):
                raise ArchlabError(f"{where}: {name}: expected a section of settings (key: value "
                                   f"lines under it), got {section!r}")  # fmt: skip
            kwargs[name] = _from_plain(typ, section, name)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, text: str, *, where: str = "config.yaml") -> RunConfig:
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ArchlabError(f"{where}: not valid YAML ({yaml_problem(e)})") from None
        return cls.from_dict(d, where=where)


MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


def _check_reg(task: str, reg: RegConfig) -> None:
    """Refuse a ``reg`` value the task would silently ignore: an augmentation it does not have,
    or a knob it does not read set away from its default."""
    spec = TASK_CONFIGS[task]
    if reg.augment not in spec.augments:
        raise ArchlabError(
            f"invalid config value reg.augment={reg.augment!r} for task {task}; "
            f"valid: {', '.join(spec.augments)}"
        )
    if reg.select == "last" and reg.early_stop:
        raise ArchlabError(
            "reg.early_stop=true keeps the best epoch's weights; it cannot go with "
            "reg.select=last (drop one of them)"
        )
    default = RegConfig()
    for f in fields(RegConfig):
        value = getattr(reg, f.name)
        if f.name not in spec.reg_knobs and value != getattr(default, f.name):
            uses = ", ".join(f"reg.{k}" for k in spec.reg_knobs)
            raise ArchlabError(f"reg.{f.name}={value!r} is not used by task {task}; it uses {uses}")


@dataclass(frozen=True)
class Selection:
    """How a run picks the weights it scores: reg.select and reg.early_stop resolved."""

    best: bool  # the best validation epoch's weights (else the last epoch's)
    patience: int | None  # stop after this many epochs without improvement; None: never
    why: str  # the rule in words, for metrics.json's selection_reason


def selection(cfg: RunConfig) -> Selection:
    """Resolve ``auto``/None in ``cfg.reg`` for its task and learning-rate schedule."""
    reg = cfg.reg
    if reg.select == "auto":
        best = TASK_CONFIGS[cfg.task].select_best or bool(reg.early_stop)
        why = "reg.select=auto: " + (
            "a classifier keeps its best validation epoch"
            if TASK_CONFIGS[cfg.task].select_best
            else f"task {cfg.task} keeps its last epoch (its best one with reg.early_stop)"
        )
    else:
        best = reg.select == "best"
        why = f"reg.select={reg.select}" + ("" if best else ": the study's protocol")
    stop = reg.early_stop
    if stop is None:
        stop = best and cfg.optim.schedule == "none"
        if best:
            why += (
                f"; stops after reg.patience={reg.patience} epochs without improvement "
                "(constant learning rate)"
                if stop
                else f"; no early stop under the {cfg.optim.schedule} schedule"
            )
    elif stop:
        why += f"; reg.early_stop after reg.patience={reg.patience} epochs without improvement"
    return Selection(best, reg.patience if stop else None, why)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _from_plain(typ: type, d: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(typ)
    valid = [f.name for f in fields(typ)]
    kwargs = {}
    for k, v in d.items():
        if k not in valid:
            raise ArchlabError(f"unknown key {section}.{k}; valid keys: {', '.join(valid)}")
        kwargs[k] = _coerce(hints[k], v, f"{section}.{k}")
    return typ(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the declared type, or raise an error naming the key."""
    if isinstance(value, str):
        return parse_value(tp, value, key)
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _first_fit(inner, lambda a: _coerce(a, value, key), key, value)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ArchlabError(f"invalid config value {key}={value!r}: expected a list")
        inner = args[0] if (len(args) == 2 and args[1] is Ellipsis) else None
        if inner is None and len(args) != len(value):
            raise ArchlabError(f"invalid config value {key}={value!r}: expected {len(args)} items")
        return tuple(_coerce(inner or args[i], v, key) for i, v in enumerate(value))
    if origin is Literal:
        if value not in get_args(tp):
            raise ArchlabError(
                f"invalid config value {key}={value!r}: choose one of {list(get_args(tp))}"
            )
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ArchlabError(f"invalid config value {key}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArchlabError(f"invalid config value {key}={value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArchlabError(f"invalid config value {key}={value!r}: expected a number")
        return float(value)
    if tp is str:
        return str(value)
    return value


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(tp: Any, text: str, key: str) -> Any:
    """Parse a command-line string into the declared field type."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", "") and type(None) in get_args(tp):
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _first_fit(inner, lambda a: parse_value(a, text, key), key, text)
    if origin is tuple:  # "a,b"; an empty tuple as "" or none
        parts = [p.strip() for p in text.split(",") if p.strip() != ""]
        if [p.lower() for p in parts] in (["none"], ["null"]):
            parts = []
        return _coerce(
            tp, [parse_value(_tuple_item(tp, i), p, key) for i, p in enumerate(parts)], key
        )
    if origin is Literal:
        return _literal(tp, text, key)
    if tp is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ArchlabError(f"invalid config value {key}={text!r}: expected true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ArchlabError(
                f"invalid config value {key}={text!r}: expected an integer"
            ) from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ArchlabError(f"invalid config value {key}={text!r}: expected a number") from None
    return text


def _first_fit(types_: list[Any], convert: Callable[[Any], Any], key: str, value: Any) -> Any:
    """The value as the first of a union's types that takes it (``float | Literal["auto"]``)."""
    if len(types_) == 1:
        return convert(types_[0])
    for tp in types_:
        try:
            return convert(tp)
        except ArchlabError:
            continue
    wanted = " or ".join(
        ", ".join(repr(v) for v in get_args(t)) if get_origin(t) is Literal else t.__name__
        for t in types_
    )
    raise ArchlabError(f"invalid config value {key}={value!r}: expected {wanted}")


def flat(cfg: RunConfig) -> dict[str, Any]:
    """``section.key`` (and the top-level keys) -> value, as config.yaml holds them."""
    out: dict[str, Any] = {}
    for k, v in cfg.to_dict().items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


# How --task sales trains with no preset, as its presets do: a recurrent network over a long
# panel (a daily one's epoch is millions of targets) needs clipped gradients and a decaying
# rate. At the bare defaults (a constant 1e-3, no clipping, batch 64) a 54-store daily panel's
# training loss rose after epoch 6 of 10 and the network lost to the statistical peer
# (bench/results/sales_generic_training_2026-12-06.txt).
SALES_OPTIM = OptimConfig(name="adam", lr=1e-3, schedule="cosine", grad_clip=1.0)
SALES_TRAIN = TrainConfig(batch_size=256, eval_batch_size=4096)
_TASK_TRAINING = {"sales": (SALES_OPTIM, SALES_TRAIN)}


def task_defaults(task: str) -> RunConfig:
    """The config of ``--task TASK`` with no preset and no flag."""
    spec = TASK_CONFIGS[task]
    optim, train = _TASK_TRAINING.get(task, (OptimConfig(), TrainConfig()))
    return RunConfig(
        task=task, data=spec.data_config(), model=spec.model_config(), optim=optim, train=train
    )


def labelled(cfg: RunConfig, since: RunConfig, label: str) -> RunConfig:
    """``cfg`` with ``label`` as the source of every value that differs from ``since``."""
    a, b = flat(since), flat(cfg)
    new = {k: label for k, v in b.items() if a.get(k) != v}
    return replace(cfg, sources={**cfg.sources, **new})


def config_sources(cfg: RunConfig) -> dict[str, str]:
    """Where each value away from the task's defaults came from, and each value a source was
    recorded for: "preset NAME", "--set", "search"...; "config" when code set it unnamed."""
    default, now = flat(task_defaults(cfg.task)), flat(cfg)
    return {
        k: cfg.sources.get(k, "config")
        for k, v in now.items()
        if k in cfg.sources or default.get(k) != v
    }


def describe_sources(sources: dict[str, str]) -> str:
    """The run's first line on its config: how many values each preset or file set, and each
    key a flag, a search or code set."""
    by: dict[str, list[str]] = {}
    for k, label in sources.items():
        by.setdefault(label, []).append(k)
    parts = [
        f"{len(keys)} value(s) from {label}"
        if label.startswith(("preset ", "config "))
        else f"{', '.join(keys)} from {label}"
        for label, keys in by.items()
    ]
    return "config: " + "; ".join([*parts, "the rest: the task's defaults"])


def _tuple_item(tp: Any, i: int) -> Any:
    args = get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return args[min(i, len(args) - 1)]


def _literal(tp: Any, text: str, key: str) -> Any:
    choices = get_args(tp)
    if text not in choices:
        raise ArchlabError(f"invalid config value {key}={text!r}: choose one of {list(choices)}")
    return text


def apply_overrides(
    cfg: RunConfig, overrides: list[str] | tuple[str, ...], source: str | None = None
) -> RunConfig:
    """Apply ``section.key=value`` strings (``seed=3``, ``split_seed=0`` at the top level) with
    type checks; ``source`` names where they came from in ``cfg.sources``."""
    for item in overrides:
        cfg = _apply_one(cfg, item)
        if source is not None:
            key = item.split("=", 1)[0].strip()
            cfg = replace(cfg, sources={**cfg.sources, key: source})
    return cfg


def _apply_one(cfg: RunConfig, item: str) -> RunConfig:
    if "=" not in item:
        raise ArchlabError(f"--set {item!r}: expected section.key=value, e.g. optim.lr=3e-4")
    path, text = item.split("=", 1)
    path = path.strip()
    if path in TOP_LEVEL:
        return replace(cfg, **{path: parse_value(int, text, path)})
    if path.count(".") != 1:
        raise ArchlabError(
            f"--set {item!r}: unknown key {path!r}; use one of {', '.join(SECTIONS)} "
            "followed by .key (or seed=N, split_seed=N)"
        )
    section, key = path.split(".")
    if section not in SECTIONS:
        valid = ", ".join((*SECTIONS, *TOP_LEVEL))
        raise ArchlabError(f"--set {item!r}: unknown section {section!r}; valid: {valid}")
    sub = getattr(cfg, section)
    assert is_dataclass(sub)
    valid = [f.name for f in fields(sub)]
    if key not in valid:
        raise ArchlabError(
            f"--set {item!r}: unknown key {section}.{key}; valid keys: {', '.join(valid)}"
        )
    hints = typing.get_type_hints(type(sub))
    value = parse_value(hints[key], text, f"{section}.{key}")
    return replace(cfg, **{section: replace(sub, **{key: value})})
