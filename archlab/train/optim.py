"""Optimizers with decay/no-decay parameter groups, L2 penalty, and per-step LR schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from archlab.config import OptimConfig, RegConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters so biases and normalization weights (1-D tensors) are never decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# Devices where torch has fused SGD/Adam/AdamW kernels for fp32 parameters.
_FUSED_DEVICES = ("cpu", "cuda")


def fusable(model: nn.Module) -> bool:
    """Whether every trainable parameter can take the fused update (one kernel per step, not
    one per elementwise op). On a CPU the per-op update of a 10k-word embedding is a quarter
    of a BiLSTM's bf16 step (bench/cpu_precision.py); fused, the step is ~1.4x faster."""
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(
        p.device.type in _FUSED_DEVICES and p.dtype == torch.float32 for p in params
    )


def build_optimizer(model: nn.Module, optim: OptimConfig, reg: RegConfig) -> torch.optim.Optimizer:
    """Build the optimizer; L2 enters here unless ``reg.l2_mode`` is 'penalty' (see l2_penalty).
    The update is fused where the parameters allow it: the same arithmetic, fewer passes."""
    wd = reg.weight_decay if reg.l2_mode != "penalty" else 0.0
    groups = param_groups(model, wd)
    fused = fusable(model) or None  # None: torch's own default (foreach where it applies)
    if optim.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=optim.lr,
            momentum=optim.momentum,
            nesterov=optim.nesterov and optim.momentum > 0,
            fused=fused,
        )
    if optim.name == "adamw" or reg.l2_mode == "decoupled":
        return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, fused=fused)
    return torch.optim.Adam(groups, lr=optim.lr, betas=optim.betas, fused=fused)


def l2_penalty(model: nn.Module, reg: RegConfig) -> torch.Tensor | None:
    """λ/2·Σ‖w‖² over decayed weights when ``reg.l2_mode == 'penalty'``; else None."""
    if reg.l2_mode != "penalty" or reg.weight_decay == 0:
        return None
    total = sum(p.pow(2).sum() for p in model.parameters() if p.requires_grad and p.ndim > 1)
    return 0.5 * reg.weight_decay * total


def build_scheduler(
    opt: torch.optim.Optimizer, optim: OptimConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per optimizer step."""
    total = max(1, epochs * steps_per_epoch)
    if optim.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=optim.lr,
            # OneCycleLR divides by its warm-up length (0.25 * total - 1): tiny runs need >= 8.
            total_steps=max(total, 8),
            pct_start=0.25,
            anneal_strategy="linear",
            cycle_momentum=optim.name == "sgd",
        )
    warmup = int(optim.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if optim.schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
