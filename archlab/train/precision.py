"""A run's arithmetic: fp32, bf16 autocast, or bf16 with channels_last, and how ``auto`` picks.

On a CUDA device ``train.amp=auto`` is bf16. On a CPU it pays only where the CPU has bf16
units and the network's shapes suit them (bench/cpu_precision.py: VGG-13 at 64x64 ~3x faster,
ResNet-18 at 32x32 ~8% slower), so ``auto`` times a few training steps of each candidate on
the run's own batch before training, as cuDNN's benchmark mode does, and keeps the fastest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from archlab.config import TrainConfig
from archlab.utils import ContentCache, cpu_native_bf16

FP32, BF16, BF16_CL = "fp32", "bf16", "bf16_channels_last"
CHOICES = (FP32, BF16, BF16_CL)
WARMUP, REPEATS = 1, 3  # untimed steps (oneDNN builds its kernels), then timed rounds
# auto calibrates only runs of at least this many training steps per calibration step, so
# calibrating costs at most ~3% of the run even where it then keeps fp32; a 10-epoch run on
# 2,700 photos at 64 px (420 steps) is calibrated, and there bf16 + channels_last pays ~1.5x.
RUN_STEPS_PER_CALIBRATION_STEP = 30
# bf16 changes the arithmetic; it must be this much faster than fp32 to be chosen, so that
# timing noise on a busy machine does not pick it where the two are even.
MARGIN = 0.05


@dataclass(frozen=True)
class Precision:
    """The chosen arithmetic, why, and the step times (ms) behind a calibrated choice."""

    choice: str = FP32
    reason: str = ""
    step_ms: dict[str, float] = field(default_factory=dict)

    @property
    def bf16(self) -> bool:
        return self.choice != FP32

    @property
    def channels_last(self) -> bool:
        return self.choice == BF16_CL

    def to_dict(self) -> dict[str, Any]:
        return {"choice": self.choice, "reason": self.reason, "step_ms": dict(self.step_ms)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Precision:
        return cls(d["choice"], d.get("reason", ""), dict(d.get("step_ms", {})))

    def metrics(self) -> dict[str, Any]:
        """metrics.json's keys: ``amp_choice``, ``amp_reason``, ``amp_step_ms_<candidate>``."""
        out: dict[str, Any] = {"amp_choice": self.choice, "amp_reason": self.reason}
        out.update({f"amp_step_ms_{k}": round(v, 2) for k, v in self.step_ms.items()})
        return out

    def describe(self) -> str:
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in self.step_ms.items())
        return f"{self.choice} ({self.reason}{'; per step: ' + times if times else ''})"


def fixed(train: TrainConfig, device: torch.device) -> Precision | None:
    """The precision that needs no measurement; None where ``auto`` must calibrate on a CPU."""
    if train.amp == "off":
        return Precision(FP32, "train.amp=off")
    if device.type not in ("cpu", "cuda"):
        return Precision(FP32, f"bf16 autocast is not used on {device.type}")
    if train.amp == "bf16":
        return Precision(BF16, "train.amp=bf16")
    if device.type == "cuda":
        return Precision(BF16, "auto: CUDA")
    if not cpu_native_bf16():
        return Precision(FP32, "auto: this CPU has no bf16 units (AMX-BF16, AVX512-BF16)")
    return None


def legacy(train: TrainConfig, device: torch.device) -> Precision:
    """What a run (or checkpoint) from before precisions were recorded trained with."""
    on = train.amp != "off" and device.type == "cuda"
    return Precision(BF16 if on else FP32, "as the run was trained")


def too_short(candidates: Sequence[str], planned_steps: int) -> Precision | None:
    """fp32 for a run too short for calibration to pay for itself; None otherwise."""
    need = len(candidates) * (WARMUP + REPEATS) * RUN_STEPS_PER_CALIBRATION_STEP
    if planned_steps >= need:
        return None
    return Precision(FP32, f"auto: {planned_steps} training steps, too few to calibrate (< {need})")


def time_steps(steps: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Milliseconds per call of each step: the fastest of REPEATS, as other processes only ever
    add time; rounds interleave the candidates so that a change of load hits them all alike.

    With one thread the clock is the process's CPU time: the step's own work, not the time
    other processes held the core (on a busy machine wall times varied several-fold). With
    more threads it is wall time: CPU time would also count the threads' spinning.
    """
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    for step in steps.values():
        for _ in range(WARMUP):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(REPEATS):
        for k, step in steps.items():
            t0 = clock()
            step()
            times[k].append(clock() - t0)
    return {k: 1000 * min(v) for k, v in times.items()}


def pick(step_ms: dict[str, float], reason: str = "auto: calibrated") -> Precision:
    """The fastest candidate; a bf16 one only if it beats fp32 by MARGIN."""
    best = min(step_ms, key=lambda k: step_ms[k])
    if best != FP32 and step_ms[best] > (1 - MARGIN) * step_ms[FP32]:
        best = FP32
    return Precision(best, reason, step_ms)


# Step times of the last few calibrations in this process, by what they depend on: the trials
# of a --budget search (or an ablation's runs) train the same network on the same batch shape,
# so only the first one times the candidates (~3 s a trial for ResNet-18 at 64 px on 2 cores).
CALIBRATED: ContentCache[dict[str, float]] = ContentCache(keep=4)


def shape_key(
    model: torch.nn.Module, batch: Any, candidates: Sequence[str], device: torch.device, opt: str
) -> str:
    """What a calibration's step times depend on: the network's parameter shapes, the batch's
    tensor shapes and types, the candidates, the device, the thread count and the optimizer."""
    params = tuple(tuple(p.shape) for p in model.parameters())
    tensors = [t for t in (batch if isinstance(batch, (tuple, list)) else (batch,))
               if isinstance(t, torch.Tensor)]  # fmt: skip
    shapes = tuple((tuple(t.shape), str(t.dtype)) for t in tensors)
    return repr((type(model).__name__, params, shapes, tuple(candidates), str(device),
                 torch.get_num_threads(), opt))  # fmt: skip
