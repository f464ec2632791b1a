"""Accuracy under bf16 on a CPU: the same runs at train.amp=off and train.amp=bf16, paired by seed.

Goal: the bf16 runs' test accuracy within the fp32 runs' seed spread; reported as the paired
difference bf16 - fp32 with its 95% interval (archlab.stats.paired_difference).

Usage:
    python bench/bf16_accuracy.py --preset images-resnet18 --data PATH [--seeds 3]
        [--set KEY=VALUE ...] [--threads 1] [--out DIR] [--summary FILE]

For each seed, the fp32 run then the bf16 run (same split, same seed), each by
``archlab train`` in its own process into OUT/<preset>-<amp>-s<seed>; a finished run directory
is reused, so the script can be stopped and rerun. ``--set`` applies to both (e.g. the quick
profile's subset and epochs: say so with the numbers). Prints and writes the accuracies, the
fp32 seed spread and the paired difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from archlab.stats import paired_difference

AMPS = ("off", "bf16")


def run(args: argparse.Namespace, seed: int, amp: str) -> dict:
    out = args.out / f"{args.preset}-{amp}-s{seed}"
    done = list(out.glob("*/metrics.json"))
    if not done:
        cmd = [sys.executable, "-m", "archlab", "train", "--preset", args.preset,
               "--data", args.data, "--seed", str(seed), "--out", str(out),
               "--set", f"train.amp={amp}", "--set", f"train.threads={args.threads}",
               "--set", "train.progress=off",
               *(x for s in args.set for x in ("--set", s))]  # fmt: skip
        t0 = time.time()
        subprocess.run(cmd, check=True)
        print(f"{out.name}: {time.time() - t0:.0f} s", flush=True)
        done = list(out.glob("*/metrics.json"))
    return json.loads(done[0].read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bf16_accuracy"))
    ap.add_argument("--summary", type=Path)
    args = ap.parse_args()
    acc: dict[str, list[float]] = {a: [] for a in AMPS}
    secs: dict[str, list[float]] = {a: [] for a in AMPS}
    for seed in range(args.seeds):
        for a in AMPS:
            m = run(args, seed, a)
            acc[a].append(m["test_accuracy"])
            secs[a].append(m["epoch_seconds_mean"])
    d = paired_difference(acc["bf16"], acc["off"], higher_is_better=True)
    summary = {
        "preset": args.preset,
        "sets": args.set,
        "threads": args.threads,
        "seeds": args.seeds,
        "test_accuracy": acc,
        "fp32_spread": [min(acc["off"]), max(acc["off"])],
        "fp32_sd": statistics.stdev(acc["off"]) if len(acc["off"]) > 1 else 0.0,
        "paired_diff_bf16_minus_fp32": {
            "mean": d.diff_mean,
            "ci95": list(d.diff_ci),
            "verdict": d.verdict,
        },
        "epoch_seconds_mean": secs,
    }
    print(json.dumps(summary, indent=1))
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
