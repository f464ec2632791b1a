"""The Task protocol every study part implements, its data bundle, and in-memory batching.

The Trainer only talks to these interfaces: it never looks inside a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn


class Batches:
    """Seeded mini-batches over an in-memory dataset of ``n`` samples.

    ``fetch(idx, generator)`` turns a LongTensor of sample indices into a batch (slicing device
    tensors, padding text, augmenting); ``generator`` is None for evaluation. Each epoch's order
    and augmentation depend only on (seed, epoch), so a resumed run replays the same batches.
    ``rank``/``world`` shard every epoch for distributed data parallel training.
    """

    def __init__(
        self,
        n: int,
        fetch: Callable[[torch.Tensor, torch.Generator | None], Any],
        *,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n = n
        self.fetch = fetch
        self.rank = rank
        self.world = world

    def __len__(self) -> int:
        return self.n

    def _per_rank(self) -> int:
        return -(-self.n // self.world)

    def num_batches(self, batch_size: int, *, train: bool = True) -> int:
        n = self._per_rank()
        k = -(-n // batch_size)
        # A trailing training batch of one sample is folded into the previous one: BatchNorm
        # cannot normalize a single sample in training mode.
        return k - 1 if train and k > 1 and n % batch_size == 1 else k

    def iterate(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0, max_batches: int = 0
    ) -> Iterator[Any]:
        gen = torch.Generator().manual_seed(seed) if shuffle else None
        order = torch.randperm(self.n, generator=gen) if shuffle else torch.arange(self.n)
        if self.world > 1:
            # Pad by wrapping so every rank gets the same number of batches (as DistributedSampler).
            per_rank = self._per_rank()
            order = torch.cat([order, order[: per_rank * self.world - self.n]])
            order = order[self.rank :: self.world]
        starts = list(range(0, len(order), batch_size))
        if shuffle and len(starts) > 1 and len(order) - starts[-1] == 1:
            starts.pop()  # the last sample joins the previous batch (see num_batches)
        ends = [*starts[1:], len(order)]
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if max_batches and i >= max_batches:
                break
            yield self.fetch(order[start:end], gen)


@dataclass
class DataBundle:
    """Train/val/test batches plus facts about the data for the run directory."""

    train: Batches
    val: Batches
    test: Batches
    info: dict[str, Any] = field(default_factory=dict)  # written to data.json
    splits: dict[str, list[int]] = field(default_factory=dict)  # written to split.json
    notes: list[str] = field(default_factory=list)  # printed as a run's first lines


class Task(Protocol):
    """One study part: how to get data, build the network, compute loss and metrics."""

    name: str
    monitor: tuple[str, str]  # (history column, "min" | "max") for early stopping / best weights
    outputs: str  # "logits" (class scores) or "values" (affine in the target): how to average

    def build_data(self, device: torch.device) -> DataBundle: ...

    def build_model(self) -> nn.Module: ...

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]: ...

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]: ...

    def restore(self, run_dir: Path) -> None:
        """Recover fitted data state (classes, tokenizer, scalers) from a run dir for predict."""
        ...

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Predictions for user inputs (file paths, texts, a CSV), one dict per prediction."""
        ...

    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: DataBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> dict[str, Any]:
        """Write task-specific files for the test split (plots, tokenizer...).

        Returns extra flat metrics for metrics.json (e.g. baselines on the same test rows).
        """
        ...


@dataclass(frozen=True)
class TaskSpec:
    """Registry entry: the task class and its task-specific config sections."""

    task: type
    data_config: type
    model_config: type
    help: str = ""
    # Exploratory plots: eda(cfg, out_dir) -> written files; None if the task has none.
    eda: Callable[[Any, Path], list[Path]] | None = None
