"""Class weighting strength on validation: none, square root (power 0.5) and full inverse frequency.

Trains ``archlab train ARGS --seed S`` once per (arm, seed) as a user would (a subprocess, one
thread each, ``--jobs`` at a time), each seed its own split and initialization, then prints
each arm's validation accuracy and macro-F1 at the run's scored epoch (the best validation
epoch), paired against the unweighted arm. Test scores are printed after, for information:
nothing here is chosen on them.

    python bench/class_weight_power.py --out /tmp/cwp --seeds 0-2 -- --task text \
        --data brand.csv --set data.text_column=Tweet --set data.label_column=Sentiment
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARMS = {
    "none": (),
    "sqrt": ("--set", "data.class_weights=true", "--set", "data.class_weight_power=0.5"),
    "full": ("--set", "data.class_weights=true", "--set", "data.class_weight_power=1.0"),
}


def seeds_of(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def train(out: Path, arm: str, seed: int, args: list[str]) -> dict[str, float]:
    """One run (reused when its metrics.json exists): validation and test scores."""
    where = out / f"{arm}-s{seed}"
    runs = sorted(where.glob("*/metrics.json"))
    if not runs:
        cmd = [sys.executable, "-m", "archlab", "train", *args, *ARMS[arm], "--seed", str(seed),
               "--set", "train.threads=1", "--out", str(where)]  # fmt: skip
        with open(out / f"{arm}-s{seed}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        runs = sorted(where.glob("*/metrics.json"))
    m = json.loads(runs[-1].read_text())
    with open(runs[-1].parent / "history.csv") as f:
        rows = list(csv.DictReader(f))
    row = rows[int(m["scored_epoch"]) - 1]
    return {
        "val_accuracy": float(row["val_accuracy"]),
        "val_f1_macro": float(row["val_f1_macro"]),
        "test_accuracy": m["test_accuracy"],
        "test_f1_macro": m["test_f1_macro"],
        # the run's own baseline on the same test rows: TF-IDF (text) or pixels (images)
        "baseline_accuracy": m.get("baseline_tfidf_accuracy", m.get("baseline_pixels_accuracy")),
        "baseline_f1_macro": m.get("baseline_tfidf_f1_macro", m.get("baseline_pixels_f1_macro")),
        "scored_epoch": m["scored_epoch"],
    }


def summary(res: dict[str, dict[int, dict[str, float]]], keys: tuple[str, ...]) -> list[str]:
    lines = []
    for arm, by_seed in res.items():
        parts = []
        for k in keys:
            v = [r[k] for r in by_seed.values()]
            d = [by_seed[s][k] - res["none"][s][k] for s in by_seed]
            paired = f" (paired {statistics.mean(d):+.4f}, per seed "
            paired += ", ".join(f"{x:+.3f}" for x in d) + ")"
            parts.append(f"{k} {statistics.mean(v):.4f}" + ("" if arm == "none" else paired))
        lines.append(f"{arm:5s} " + "; ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", help="also write the JSON here")
    ap.add_argument("args", nargs="+", help="`archlab train` arguments (after --)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(arm, s) for s in seeds_of(a.seeds) for arm in ARMS]
    with ThreadPoolExecutor(a.jobs) as pool:
        done = list(pool.map(lambda j: train(out, j[0], j[1], a.args), jobs))
    res: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in ARMS}
    for (arm, s), r in zip(jobs, done, strict=True):
        res[arm][s] = r
    print("validation (scored epoch):")
    print("\n".join(summary(res, ("val_accuracy", "val_f1_macro"))))
    print("test (read after; chose nothing):")
    print("\n".join(summary(res, ("test_accuracy", "test_f1_macro"))))
    base = list(res["none"].values())
    acc = statistics.mean(r["baseline_accuracy"] for r in base)
    f1 = statistics.mean(r["baseline_f1_macro"] for r in base)
    print(f"the runs' own baseline: accuracy {acc:.4f}, macro-F1 {f1:.4f}")
    if a.results:
        Path(a.results).write_text(json.dumps({"args": a.args, "runs": res}, indent=1) + "\n")


if __name__ == "__main__":
    main()
