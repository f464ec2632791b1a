"""Accuracy under bf16 on a CPU: the same runs at train.amp=off and train.amp=bf16, paired by seed.

Goal: the bf16 runs' test accuracy within the fp32 runs' seed spread; reported as the paired
difference bf16 - fp32 with its 95% interval (archlab.stats.paired_difference).

Usage:
    python bench/bf16_accuracy.py --preset images-resnet18 --data PATH [--seeds 3]
        [--set KEY=VALUE ...] [--threads 1] [--out DIR] [--summary FILE]
    # or pair finished ablation cells (MODEL/baseline-sK folders) of two precisions:
    python bench/bf16_accuracy.py --pairs bench/results/ablation_cpu bench/results/bf16_pairs

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


def pairs(a: Path, b: Path, summary: Path | None) -> None:
    """Test accuracy of every MODEL/baseline-sK cell present under both folders, by the
    precision each cell's metrics.json records; bf16 - fp32 paired by seed."""
    out: dict[str, dict] = {}
    for model_dir in sorted(p for p in a.iterdir() if p.is_dir()):
        acc: dict[str, dict[int, float]] = {"fp32": {}, "bf16": {}}
        for root in (a, b):
            for cell in sorted((root / model_dir.name).glob("baseline-s*/metrics.json")):
                m = json.loads(cell.read_text())
                choice = "fp32" if m.get("amp_choice", "fp32") == "fp32" else "bf16"
                acc[choice][int(cell.parent.name.rpartition("-s")[2])] = m["test_accuracy"]
        seeds = sorted(acc["fp32"].keys() & acc["bf16"].keys())
        if not seeds:
            continue
        fp32, bf16 = [acc["fp32"][k] for k in seeds], [acc["bf16"][k] for k in seeds]
        row: dict = {"seeds": seeds, "fp32": fp32, "bf16": bf16}
        if len(seeds) >= 2:
            d = paired_difference(bf16, fp32, higher_is_better=True)
            row |= {"fp32_spread": [min(fp32), max(fp32)], "diff_mean": d.diff_mean,
                    "diff_ci95": list(d.diff_ci), "verdict": d.verdict}  # fmt: skip
        out[model_dir.name] = row
    print(json.dumps(out, indent=1))
    if summary is not None:
        summary.write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs=2, type=Path, metavar=("CELLS_A", "CELLS_B"))
    ap.add_argument("--preset")
    ap.add_argument("--data")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bf16_accuracy"))
    ap.add_argument("--summary", type=Path)
    args = ap.parse_args()
    if args.pairs:
        pairs(*args.pairs, args.summary)
        return
    if not (args.preset and args.data):
        ap.error("--preset and --data (or --pairs)")
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
