"""torchrun plumbing: which rank this process is, the process group, and the few collectives.

``torchrun --nproc_per_node=N -m archlab train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; without
them every helper here is a no-op, so single-process runs pay nothing. Gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from archlab.errors import ArchlabError


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    """Read torchrun's environment; a malformed value is a one-line error."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ArchlabError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from None
    return Dist(rank, world, local) if world > 1 else SINGLE


def init(d: Dist, device: torch.device) -> None:
    """Join the process group once per process (NCCL for CUDA devices, Gloo otherwise)."""
    if not d.enabled or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Element-wise sum over ranks (in place, returned for chaining)."""
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
