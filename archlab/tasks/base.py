"""The Task protocol every study part implements: its data, fitted state, model and artefacts.

A part is two objects (as Lightning's DataModule and LightningModule): ``TaskData`` reads,
splits and fits the data and returns a ``DataBundle`` whose ``fitted`` is one frozen object
holding all that was learned from the training data (classes, tokenizer, scalers); ``Task`` is
built from the config and that object and never changes afterwards, so its methods work in
any order. ``fitted`` is saved to the run dir (fitted.json) and restored from it for predict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import nn

from archlab.train.protocol import Batches, Splits, TrainTask

FittedT = TypeVar("FittedT")
ContextT = TypeVar("ContextT")


class InputFile(str):
    """An input of ``predict``/``explain`` that names a file (``--file``), told from a text
    typed on the command line: a task that takes texts reads it as a file, always. A plain
    ``str`` everywhere else, so tasks that read every input as a path need nothing."""


@dataclass
class DataBundle(Splits, Generic[FittedT, ContextT]):
    """Train/val/test batches, the fitted state, and facts about the data for the run dir.

    Typed per task (``DataBundle[TextFitted, TextContext]``) so a task reads its own context's
    fields without casts; the runner and protocols see ``DataBundle[Any, Any]``.
    """

    fitted: FittedT  # the task's Fitted object
    # Task-private facts about the test split for baselines() and artifacts() (test images,
    # texts, the naive forecasts of each test row).
    context: ContextT
    info: dict[str, Any] = field(default_factory=dict)  # data.json: a description, never read back
    splits: dict[str, list[int]] = field(default_factory=dict)  # written to split.json
    notes: list[str] = field(default_factory=list)  # printed as a run's first lines


class Fitted(Protocol):
    """What a task learned from the training data; frozen, saved as fitted.json."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...


class TaskData(Protocol):
    """Reads and splits a task's data and fits (or reuses) its Fitted state."""

    def build(
        self, device: torch.device, fitted: Any = None, score_all: bool = False
    ) -> DataBundle[Any, Any]:
        """The bundle; given a saved run's ``fitted`` (eval, ensemble), reuse it, not refit.

        ``score_all`` (eval --all, with ``fitted``): every sample in the test split, none in
        train or val, with no stratification, and ``info["scored_all"]`` (held_out_info) says
        what was scored; a task whose test cannot be every sample (sales: the last steps)
        raises ArchlabError.
        """
        ...

    def restore(self, run_dir: Path) -> Any:
        """The run's Fitted object from its run dir, without reading the training data."""
        ...


class Task(TrainTask, Protocol):
    """One study part's network, loss, metrics, baselines, artefacts and predictions."""

    name: str
    outputs: str  # "logits" (class scores) or "values" (affine in the target): how to average
    cpu_amp: bool  # train.amp=auto may time bf16 on a CPU; False: fp32 there, nothing timed

    def build_model(self) -> nn.Module: ...

    def callbacks(self) -> list[Any]:
        """Training callbacks the task adds (text: the embedding freeze); [] if none."""
        ...

    def lr_scale(self, name: str) -> float:
        """The factor on optim.lr for the parameter ``name`` (images: a fine-tuned body's
        lower rate); 1.0 where the task has one rate."""
        ...

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Predictions for user inputs (file paths, texts, a CSV; an InputFile is --file's),
        one dict per prediction."""
        ...

    def baselines(self, data: DataBundle[Any, Any]) -> dict[str, Any]:
        """Flat ``baseline_*`` metrics of simple models on the same test rows; writes nothing."""
        ...

    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: DataBundle[Any, Any],
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        """Write task-specific files for the test split (plots, predictions)."""
        ...


def held_out_info(labels: np.ndarray, n_classes: int, unit: str, not_scored: str) -> dict[str, Any]:
    """``info["scored_all"]`` of a bundle built with score_all: how many ``unit`` (rows,
    images) it scores, how many of the run's ``n_classes`` classes they hold, and what the
    reader left out ("" if nothing), for eval --all's line on stderr."""
    return {
        "samples": len(labels),
        "unit": unit,
        "classes_present": len(np.unique(labels)),
        "classes": n_classes,
        "not_scored": not_scored,
    }


def split_source(
    origin: dict[str, str],
    val_fraction: float,
    test_fraction: float,
    drawn: str,
    n: int = 0,
    classes: int = 0,
) -> dict[str, str]:
    """Where each split came from: the data's own (``origin``: split -> its folder, column or
    array), else a seeded stratified draw of ``drawn`` ("all images, stratified, ..."); of
    ``n`` samples in ``classes`` classes, a fraction holding fewer than one per class is
    carved one per class instead (data/splits.py), and said so."""
    frac = {"train": 0.0, "val": val_fraction, "test": test_fraction}
    out = {}
    for k in ("train", "val", "test"):
        draw = f"{frac[k]:.0%} of {drawn}"
        if frac[k] > 0 and round(frac[k] * n) < classes:
            draw = f"one per class ({classes}; {frac[k]:.0%} would hold fewer) of {drawn}"
        if k in origin:
            out[k] = origin[k]
        elif origin:  # the data gave a split but not this one: taken out of its train split
            out[k] = f"carved from {origin['train']}: {draw}"
        else:
            out[k] = "the rest" if k == "train" else draw
    return out


def split_note(
    names: Sequence[str], counts: dict[str, list[int]], unit: str, shown: int = 8
) -> str:
    """The run's first line on its splits: their sizes, and the training split per class (the
    first ``shown`` classes), so a user sees what was trained and scored on."""
    sizes = " / ".join(str(sum(counts.get(k, ()))) for k in ("train", "val", "test"))
    per = [f"{n} {c}" for n, c in zip(names, counts.get("train", ()), strict=False)]
    more = f", ... and {len(per) - shown} more" if len(per) > shown else ""
    return f"data: {sizes} {unit} for train / val / test; training {unit} by class: " + (
        ", ".join(per[:shown]) + more
    )


def unscored_notes(names: Sequence[str], counts: dict[str, list[int]], unit: str) -> list[str]:
    """A warning per class without ``unit`` (images, texts) in val or test (a small class, or
    a test/ folder without it): that split cannot score it, and its macro averages leave it
    out, which a user would otherwise only find as a 0.0 per-class score."""
    notes = []
    for i, name in enumerate(names):
        none = [k for k in ("val", "test") if sum(counts.get(k, ())) and not counts[k][i]]
        if none:
            notes.append(
                f"data: warning: class {name!r} has no {'/'.join(none)} {unit}: it is not scored "
                f"there (the {'/'.join(none)} macro averages are over the other classes)"
            )
    return notes


def predict_row(
    fields: dict[str, Any], names: Sequence[str], probs: Sequence[float]
) -> dict[str, Any]:
    """One ``predict`` output row: ``fields`` (input, label, ...), every class's probability
    under ``probabilities`` (as serve answers), and the same flat beside them for older
    readers, except a class named like a key of the row, which would overwrite that key."""
    nested = {n: float(v) for n, v in zip(names, probs, strict=True)}
    reserved = {*fields, "probabilities"}
    flat = {n: v for n, v in nested.items() if n not in reserved}
    return {**fields, **flat, "probabilities": nested}


@runtime_checkable
class Tunable(Protocol):
    """A task with knobs chosen on the validation split after training (the sales horizon's
    correction scale and blend weight): the runner tunes it before the test is scored."""

    fitted: Any

    def tune(self, model: nn.Module, data: DataBundle[Any, Any]) -> tuple[Any, list[str]]:
        """The task with its knobs chosen (its ``fitted`` records them), and lines saying what
        was chosen and on what validation score."""
        ...

    def tuned_metrics(self, model: nn.Module, data: DataBundle[Any, Any]) -> dict[str, Any]:
        """Flat metrics of the choices and of the test forecasts they make."""
        ...


@runtime_checkable
class Sourced(Protocol):
    """A task that can say where its test rows came from (an image's file, a text, a sales
    series and its dates): ``export`` names each row of examples.json by it."""

    def test_sources(self, data: DataBundle[Any, Any], n: int) -> list[dict[str, Any]]:
        """One JSON-ready dict per test row, for the first ``n`` rows in test-split order (the
        order ``data.test`` yields them)."""
        ...


@dataclass(frozen=True)
class TaskSpec:
    """Registry entry: how to build a part's data and its task, and what early stopping watches.

    ``data(cfg)`` gives a TaskData; ``task(cfg, fitted)`` the Task (sales picks its framing's
    classes from the config and from the type of ``fitted``).
    """

    data: Callable[[Any], TaskData]
    task: Callable[[Any, Any], Task]
    help: str = ""
    monitor: tuple[str, str] = ("val_loss", "min")  # (history column, "min" | "max")
    # Exploratory plots: eda(cfg, out_dir) -> written files; None if the task has none.
    eda: Callable[[Any, Path], list[Path]] | None = None


__all__ = [
    "Batches",
    "DataBundle",
    "Fitted",
    "Sourced",
    "Task",
    "TaskData",
    "TaskSpec",
    "Tunable",
    "held_out_info",
]
