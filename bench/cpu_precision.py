"""CPU precision benchmark: fp32 vs bf16 autocast vs bf16 + channels_last for every model, and
what ``train.amp=auto`` chooses.

Goals: a short epoch of VGG-13 at 64x64 >= 2.5x faster than fp32, ResNet-18 at 64x64 and the
BiLSTM >= 1.4x; ``auto`` never slower than fp32 by more than 2% (calibration included), i.e.
fp32 where bf16 does not pay; on a CPU without bf16 units ``auto`` costs nothing.

Usage:
    python bench/cpu_precision.py [--threads 2] [--batch 64] [--repeats 5] [--models a,b]
        [--epoch-steps 8] [--out bench/results/cpu_precision.json]

Per model, in one process (models: VGG-13 and ResNet-18 at 64x64 and 32x32 on 1-channel
images as the study, the BiLSTM with 128-d embeddings, hidden 64, 2 layers on 32-token texts
(bilstm: all 32 tokens; bilstm-packed: 4-32 tokens, as real texts reach it, packed by length),
and the sales RNN/LSTM/GRU forecasters, hidden 50, 3 layers, 8-step windows of 12 features,
batch 256 as their preset); inputs are synthetic, of the real shapes; optimizer, dropout and
loss are the model's preset's:
  * step: one training step (forward under autocast, loss in fp32, backward, optimizer step)
    of each candidate; one untimed warm-up each, then --repeats rounds that interleave the
    candidates (so a change of the machine's load hits them alike); median ms per step.
  * auto: Trainer.setup as a run calls it (calibration included, timed), the choice and the
    timings behind it; and the same with the detection forced off (ARCHLAB_CPU_BF16=0).
  * epoch: Trainer.fit of one epoch of --epoch-steps training steps plus a validation pass
    over two batches, at fp32 and at auto's choice (fresh models, same seed); the ratio, and
    the projected ratio of a full preset run with calibration included.
Wall and CPU time are both recorded. On a shared machine, at 1 thread, the process's CPU time
is the step's own compute, not the time other processes held the core, so its ratios are the
robust ones there (with 2+ threads CPU time also counts the threads' spinning: use wall time
on a quiet machine). The load average is printed with every model; compare only the ratios
within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import TrainConfig
from archlab.models import MODELS
from archlab.presets import PRESETS
from archlab.train import precision as amp
from archlab.train.optim import build_optimizer
from archlab.train.protocol import Batches, Splits
from archlab.train.trainer import Trainer
from archlab.utils import autocast, cpu_native_bf16

VOCAB, TOKENS, FEATURES, WINDOW = 10_000, 32, 12, 8
# name -> (registry model, preset for optimizer/dropout, steps of the preset's full run on the
# study's data: images3 70% train = 12,600 images, tweets 70% = 10,248; epochs of the preset)
SPECS: dict[str, dict[str, Any]] = {
    "vgg13@64": {"model": "vgg13", "preset": "images-vgg13", "size": 64, "run_steps": 197 * 20},
    "vgg13@32": {"model": "vgg13", "preset": "images-vgg13", "size": 32, "run_steps": 197 * 20},
    "resnet18@64": {"model": "resnet18", "preset": "images-resnet18", "size": 64,
                    "run_steps": 99 * 15},
    "resnet18@32": {"model": "resnet18", "preset": "images-resnet18", "size": 32,
                    "run_steps": 99 * 15},
    "bilstm": {"model": "bilstm", "preset": "text-bilstm", "run_steps": 161 * 10},
    # As the tweets reach the network: right-padded texts of 4-32 tokens, packed by length.
    "bilstm-packed": {"model": "bilstm", "preset": "text-bilstm", "run_steps": 161 * 10,
                      "lengths": (4, TOKENS)},
    "sales-rnn": {"model": "rnn", "preset": "sales-rnn", "batch": 256},
    "sales-lstm": {"model": "lstm", "preset": "sales-lstm", "batch": 256},
    "sales-gru": {"model": "gru", "preset": "sales-gru", "batch": 256},
}  # fmt: skip


class SyntheticTask:
    """Random inputs of a model's real shapes; cross-entropy (classes) or L1 (sales)."""

    def __init__(self, name: str, n: int) -> None:
        spec = SPECS[name]
        g = torch.Generator().manual_seed(0)
        self.kind = spec["model"]
        if self.kind in ("vgg13", "resnet18"):
            s = spec["size"]
            self.x: tuple[torch.Tensor, ...] = (torch.randn(n, 1, s, s, generator=g),)
            self.y = torch.randint(0, 3, (n,), generator=g)
        elif self.kind == "bilstm":
            self.x = (torch.randint(1, VOCAB, (n, TOKENS), generator=g),)
            if "lengths" in spec:
                lo, hi = spec["lengths"]
                lengths = torch.randint(lo, hi + 1, (n,), generator=g)
                pad = torch.arange(TOKENS)[None, :] >= lengths[:, None]
                self.x = (self.x[0].masked_fill(pad, 0), lengths)
            self.y = torch.randint(0, 3, (n,), generator=g)
        else:
            self.x = (torch.randn(n, WINDOW, FEATURES, generator=g),)
            self.y = torch.randn(n, generator=g)

    def build_model(self, dropout: float) -> nn.Module:
        torch.manual_seed(0)
        build = MODELS[self.kind].build
        if self.kind in ("vgg13", "resnet18"):
            return build(in_channels=1, num_classes=3, dropout=dropout)
        if self.kind == "bilstm":
            return build(vocab_size=VOCAB, num_classes=3, embed_dim=128, hidden_size=64,
                         num_layers=2, dropout=dropout)  # fmt: skip
        return build(input_size=FEATURES, hidden_size=50, num_layers=3, dropout=dropout)

    def data(self) -> Splits:
        def fetch(i: torch.Tensor, g: Any) -> tuple[torch.Tensor, ...]:
            return (*(x[i] for x in self.x), self.y[i])

        b = Batches(len(self.y), fetch)
        return Splits(b, b, b)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        *x, y = batch
        return model(*x), y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dtype == torch.long:
            return F.cross_entropy(outputs, targets)
        return (outputs.reshape(-1) - targets).abs().mean()

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        return {}


def candidates(model: nn.Module) -> list[str]:
    conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return [amp.FP32, amp.BF16, *([amp.BF16_CL] if conv else [])]


def step_times(
    name: str, batch_size: int, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU ms of one training step per candidate, interleaved rounds."""
    preset = PRESETS[SPECS[name]["preset"]]
    task = SyntheticTask(name, batch_size)
    batch = next(iter(task.data().train.iterate(batch_size)))
    base = task.build_model(preset.reg.dropout)
    steps = {}
    for c in candidates(base):
        m = base if c == amp.FP32 else task.build_model(preset.reg.dropout)
        if c == amp.BF16_CL:
            m = m.to(memory_format=torch.channels_last)
        opt = build_optimizer(m, preset.optim, preset.reg)
        steps[c] = train_step(task, m, batch, opt, bf16=c != amp.FP32)
    for s in steps.values():
        s()
    wall: dict[str, list[float]] = {c: [] for c in steps}
    cpu: dict[str, list[float]] = {c: [] for c in steps}
    for _ in range(repeats):
        for c, s in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            s()
            wall[c].append(time.perf_counter() - t0)
            cpu[c].append(time.process_time() - c0)
    return _median_ms(wall), _median_ms(cpu)


def adam_step(task: SyntheticTask, model: nn.Module, batch: Any, bf16: bool, fused: bool) -> Any:
    """``train_step`` with Adam at 1e-3, fused or per-op."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    return train_step(task, model, batch, opt, bf16)


def train_step(task: SyntheticTask, model: nn.Module, batch: Any, opt: Any, bf16: bool) -> Any:
    """One training step as archlab's Trainer takes it: forward under autocast (bf16 or none),
    the loss in fp32, backward, the optimizer's step."""

    def step() -> None:
        with autocast(torch.device("cpu"), bf16):
            out, y = task.step(model, batch)
        loss = task.loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def interleaved_ms(steps: dict[Any, Any], repeats: int) -> dict[Any, float]:
    """Median milliseconds of each step, timed in turn (2 warm-up calls each), so that load
    changes on a shared machine fall on every variant alike."""
    times: dict[Any, list[float]] = {k: [] for k in steps}
    for s in steps.values():
        s()
        s()
    for _ in range(repeats):
        for k, s in steps.items():
            t0 = time.perf_counter()
            s()
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def _median_ms(times: dict[str, list[float]]) -> dict[str, float]:
    return {c: 1000 * statistics.median(v) for c, v in times.items()}


def trainer(name: str, batch_size: int, threads: int, **train: Any) -> Trainer:
    preset = PRESETS[SPECS[name]["preset"]]
    cfg = TrainConfig(batch_size=batch_size, eval_batch_size=batch_size, threads=threads,
                      progress="off", **train)  # fmt: skip
    return Trainer(cfg, preset.optim, preset.reg, seed=0, device=torch.device("cpu"),
                   cpu_amp=not name.startswith("sales"))  # fmt: skip


def auto_choice(name: str, batch_size: int, threads: int) -> tuple[amp.Precision, float]:
    """Trainer.setup of a long run (so auto calibrates): its choice and seconds taken."""
    task = SyntheticTask(name, batch_size * 2)
    t = trainer(name, batch_size, threads, epochs=10_000)
    model = task.build_model(PRESETS[SPECS[name]["preset"]].reg.dropout)
    t0 = time.perf_counter()
    t.setup(task, task.data(), model)
    seconds = time.perf_counter() - t0
    assert t.precision is not None
    return t.precision, seconds


def epoch_seconds(
    name: str, batch_size: int, threads: int, steps: int, p: amp.Precision
) -> tuple[float, float]:
    """Wall and CPU seconds of one epoch of ``steps`` training steps plus validation over
    two batches, at ``p``."""
    task = SyntheticTask(name, batch_size * steps)
    t = trainer(name, batch_size, threads, epochs=1)
    t.precision = p
    data = task.data()
    data.val = SyntheticTask(name, batch_size * 2).data().val
    model = task.build_model(PRESETS[SPECS[name]["preset"]].reg.dropout)
    t0, c0 = time.perf_counter(), time.process_time()
    t.fit(task, data, model)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epoch-steps", type=int, default=8)
    ap.add_argument("--models", default=",".join(SPECS))
    ap.add_argument("--out", type=Path, default=Path("bench/results/cpu_precision.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    caps = torch.cpu.get_capabilities()
    print(f"cpu: {caps.get('cpu_name')} amx_bf16={caps.get('amx_bf16')} "
          f"avx512_bf16={caps.get('avx512_bf16')} native bf16={cpu_native_bf16()}; "
          f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"median of {args.repeats}; load {os.getloadavg()}", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    for name in args.models.split(","):
        spec = SPECS[name]
        bs = spec.get("batch", args.batch)
        load0 = os.getloadavg()[0]
        ms, cpu_ms = step_times(name, bs, args.repeats)
        p, cal_s = auto_choice(name, bs, args.threads)
        os.environ["ARCHLAB_CPU_BF16"] = "0"
        t0 = time.perf_counter()
        p_off = trainer(name, bs, args.threads, epochs=10_000)._choose_precision(
            SyntheticTask(name, bs), SyntheticTask(name, bs).data(), nn.Linear(1, 1), 1
        )
        off_ms = 1000 * (time.perf_counter() - t0)
        del os.environ["ARCHLAB_CPU_BF16"]
        fp32 = amp.Precision(amp.FP32, "fp32")
        best = min(ms, key=lambda c: ms[c])
        ep: dict[str, float] = {}
        ep_cpu: dict[str, float] = {}
        for label, prec in (("fp32", fp32), ("best", amp.Precision(best)), ("auto", p)):
            same = "fp32" if prec.choice == amp.FP32 else "best" if prec.choice == best else ""
            if label != "fp32" and same and same != label:
                ep[label], ep_cpu[label] = ep[same], ep_cpu[same]
                continue
            ep[label], ep_cpu[label] = epoch_seconds(name, bs, args.threads, args.epoch_steps, prec)
        row: dict[str, Any] = {
            "batch": bs,
            "step_ms": {c: round(v, 1) for c, v in ms.items()},
            "step_cpu_ms": {c: round(v, 1) for c, v in cpu_ms.items()},
            "step_cpu_speedup_vs_fp32": {
                c: round(cpu_ms[amp.FP32] / v, 3) for c, v in cpu_ms.items()
            },
            "items_per_s": {c: round(1000 * bs / v, 1) for c, v in ms.items()},
            "step_speedup_vs_fp32": {c: round(ms[amp.FP32] / v, 3) for c, v in ms.items()},
            "auto_choice": p.choice,
            "auto_reason": p.reason,
            "auto_step_ms": {c: round(v, 1) for c, v in p.step_ms.items()},
            "auto_calibration_s": round(cal_s, 2),
            "auto_no_bf16_units": p_off.choice,
            "auto_no_bf16_units_ms": round(off_ms, 3),
            "epoch_steps": args.epoch_steps,
            "epoch_s": {k: round(v, 2) for k, v in ep.items()},
            "epoch_speedup_best": round(ep["fp32"] / ep["best"], 3),
            "epoch_speedup_auto": round(ep["fp32"] / ep["auto"], 3),
            "epoch_cpu_s": {k: round(v, 2) for k, v in ep_cpu.items()},
            "epoch_cpu_speedup_best": round(ep_cpu["fp32"] / ep_cpu["best"], 3),
            "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
        }
        if "run_steps" in spec and p.step_ms:
            # A full preset run: fp32 steps vs calibration + steps at auto's choice.
            n = spec["run_steps"]
            row["run_speedup_auto_projected"] = round(
                n * ms[amp.FP32] / (1000 * cal_s + n * ms[p.choice]), 3
            )
        results[name] = row
        print(f"{name:12s} step ms " + "  ".join(f"{c} {v:.1f}" for c, v in ms.items())
              + "  | x fp32: " + "  ".join(f"{c} {ms[amp.FP32] / v:.2f}" for c, v in ms.items())
              + "  | CPU-time x fp32: "
              + "  ".join(f"{c} {cpu_ms[amp.FP32] / v:.2f}" for c, v in cpu_ms.items())
              + f"\n{'':12s} auto -> {p.choice} ({p.reason}; calibration {cal_s:.1f} s: "
              + ", ".join(f"{c} {v:.1f}" for c, v in p.step_ms.items())
              + f"); no bf16 units -> {p_off.choice} in {off_ms:.2f} ms"
              + f"\n{'':12s} epoch ({args.epoch_steps} steps + val) s: "
              + "  ".join(f"{k} {v:.2f}" for k, v in ep.items())
              + f"  | x fp32: best {row['epoch_speedup_best']:.2f} auto "
              + f"{row['epoch_speedup_auto']:.2f}; CPU-time best "
              + f"{row['epoch_cpu_speedup_best']:.2f}"
              + (f"; full run with calibration, projected: x{row['run_speedup_auto_projected']}"
                 if "run_speedup_auto_projected" in row else "")
              + f"  [load {row['load_avg_1min']}]", flush=True)  # fmt: skip
    out = {
        "what": "bench/cpu_precision.py: fp32 vs bf16 autocast vs bf16+channels_last, one "
        "training step and a short epoch per model, synthetic inputs of the real shapes",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": {
            k: caps.get(k) for k in ("cpu_name", "amx_bf16", "avx512_bf16", "num_physical_cores")
        },
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "argv": sys.argv[1:],
        "note": "machine shared with other jobs: compare ratios within this run only",
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
