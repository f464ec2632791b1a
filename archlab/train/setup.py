"""One process's set-up for a run: seed, threads, device, TF32 and the torchrun process group."""

from __future__ import annotations

import torch

from archlab.config import TrainConfig
from archlab.errors import ArchlabError
from archlab.threads import set_threads
from archlab.train import distributed
from archlab.train.distributed import Dist
from archlab.utils import resolve_device, seed_everything


def setup_process(train: TrainConfig, seed: int, d: Dist = distributed.SINGLE) -> torch.device:
    """Seed, threads and device; under torchrun also this rank's GPU and the process group."""
    if train.batch_size % d.world:
        raise ArchlabError(
            f"train.batch_size={train.batch_size} is the global batch and must divide evenly "
            f"over {d.world} processes"
        )
    seed_everything(seed)  # same seed on every rank: identical init and RNG streams
    set_threads(train.threads)
    device = resolve_device(train.device)
    if d.enabled and device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    distributed.init(d, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device
