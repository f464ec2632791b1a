"""Time-to-accuracy for an image preset: wall time from process start (data loading included)
until the test accuracy first reaches ``--target``, plus every epoch's time.

The test-accuracy probe after each epoch is timed separately (after a device sync) and left
out of the training clock, as time-to-accuracy benchmarks do. Uses archlab's own Trainer, so
the GPU path (bf16 autocast, channels_last, TF32, cudnn.benchmark, uint8 data on the device,
on-device augmentation, optional torch.compile) is what gets measured.

    python bench/time_to_accuracy.py --preset images-resnet18 --data DIR/images3 --target 0.95 \
        --set train.batch_size=512 --set train.channels_last=true
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

T0 = time.perf_counter()  # before torch is imported: loading counts

import torch  # noqa: E402

from archlab import runner  # noqa: E402
from archlab.config import apply_overrides  # noqa: E402
from archlab.presets import PRESETS  # noqa: E402
from archlab.train.callbacks import Callback  # noqa: E402
from archlab.train.setup import setup_process  # noqa: E402
from archlab.train.trainer import Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Probe(Callback):
    """Test accuracy after every epoch; stops the fit once ``target`` is reached."""

    def __init__(self, task: Any, data: Any, target: float) -> None:
        self.task, self.data, self.target = task, data, target
        self.probe_seconds = 0.0
        self.rows: list[dict[str, float]] = []
        self.reached: float | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        _sync(trainer.device)
        t = time.perf_counter()
        _, m, _, _ = trainer.evaluate(self.task, self.data.test)
        _sync(trainer.device)
        self.probe_seconds += time.perf_counter() - t
        clock = time.perf_counter() - T0 - self.probe_seconds
        acc = float(m["accuracy"])
        self.rows.append({"epoch": row["epoch"], "epoch_s": row["seconds"], "test_acc": acc,
                          "clock_s": clock})  # fmt: skip
        print(f"epoch {int(row['epoch']):3d}  {row['seconds']:7.2f}s  test_acc={acc:.4f}  "
              f"clock={clock:7.2f}s", flush=True)  # fmt: skip
        if acc >= self.target and self.reached is None:
            self.reached = clock
            trainer.state.stop = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="images-resnet18")
    ap.add_argument("--data", default="", help=".npz or folder (empty: built-in digits)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--epochs", type=int, default=0, help="epoch cap (0 = the preset's)")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="config overrides")
    ap.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args()

    sets = [f"data.path={args.data}", "train.progress=off", *args.sets]
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    cfg = apply_overrides(PRESETS[args.preset], sets)
    device = setup_process(cfg.train, cfg.seed)
    task, data = runner.build_task(cfg, device)
    _sync(device)
    load_s = time.perf_counter() - T0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.preset} on {device} ({name}); data loaded in {load_s:.2f}s; "
          f"target test accuracy {args.target}", flush=True)  # fmt: skip
    probe = Probe(task, data, args.target)
    trainer = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=device,
                      callbacks=[probe])  # fmt: skip
    trainer.fit(task, data, task.build_model())
    epochs = [r["epoch_s"] for r in probe.rows]
    result = {
        "preset": args.preset,
        "device": str(device),
        "data_load_s": load_s,
        "epochs": len(epochs),
        "epoch_s_median": sorted(epochs)[len(epochs) // 2] if epochs else None,
        "best_test_acc": max((r["test_acc"] for r in probe.rows), default=None),
        "target": args.target,
        "time_to_target_s": probe.reached,
        "precision": trainer.precision.describe() if trainer.precision else None,
        "threads": torch.get_num_threads(),
        "overrides": args.sets,
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "rows": probe.rows}, f, indent=1)


if __name__ == "__main__":
    main()
