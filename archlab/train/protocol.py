"""What the Trainer needs from a task and its data: in-memory batches and three methods.

The Trainer imports only this module from outside ``train/``; the full Task protocol (data,
fitted state, predict, artefacts) lives in ``archlab.tasks.base``, above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch


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
        ends = [*starts[1:], len(order)][: len(starts)]  # no samples: no batches
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if max_batches and i >= max_batches:
                break
            yield self.fetch(order[start:end], gen)


@dataclass
class Splits:
    """The three splits the Trainer fits on and evaluates (a task's DataBundle extends it)."""

    train: Batches
    val: Batches
    test: Batches


class TrainTask(Protocol):
    """How to turn a batch into outputs, a loss and metrics; nothing else reaches the Trainer."""

    def step(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]: ...

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]: ...
