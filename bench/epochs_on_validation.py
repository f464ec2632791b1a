"""A sales preset at several epoch counts over paired seeds: the choice on validation, then test.

Trains ``archlab train --preset P --epochs E --seed S`` for every (E, S) not already in
``OUT/eE/`` (a run dir whose config.yaml has that seed is reused), then prints each arm's
validation WMAE of the network (at its chosen correction scale) and of the blend with the
statistical peer, picks the epoch count with the lowest mean validation blend WMAE, and only
then prints the test WMAEs and the paired test difference against the first arm.

    python bench/epochs_on_validation.py --data /path/walmart --preset sales-rnn-h39 \
        --epochs 4,8 --seeds 0-4 --out /tmp/h39e [--results bench/results/NAME.txt]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from archlab.stats import paired_difference

VAL = ("correction_scale_val_wmae", "blend_val_wmae")
TEST = ("test_wmae", "test_blend_wmae")


def seeds_of(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def run_dir(out: Path, seed: int) -> Path | None:
    """The finished run of ``seed`` under ``out`` (None if there is none)."""
    for m in sorted(out.glob("*/metrics.json")):
        if yaml.safe_load((m.parent / "config.yaml").read_text()).get("seed") == seed:
            return m.parent
    return None


def train(a: argparse.Namespace, epochs: int, seed: int) -> dict:
    out = Path(a.out) / f"e{epochs}"
    if (d := run_dir(out, seed)) is None:
        cmd = [sys.executable, "-m", "archlab", "train", "--preset", a.preset, "--data", a.data,
               "--seed", str(seed), "--epochs", str(epochs), "--set", "train.threads=1",
               "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = run_dir(out, seed)
        assert d is not None
    return json.loads((d / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="sales-rnn-h39")
    ap.add_argument("--epochs", default="4,8")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--out", default="/tmp/archlab-bench-epochs")
    ap.add_argument("--results", default="")
    a = ap.parse_args()
    arms = [int(e) for e in a.epochs.split(",")]
    seeds = seeds_of(a.seeds)
    runs = {e: [train(a, e, s) for s in seeds] for e in arms}
    lines = [f"# {a.preset}, seeds {seeds}, epochs {arms}, 1 thread per run"]

    def mean_sd(v: list[float]) -> str:
        return f"{statistics.mean(v):,.1f} ± {statistics.stdev(v):,.1f}"

    for e in arms:  # validation first: the choice rests on it alone
        cols = ", ".join(f"{k} {mean_sd([m[k] for m in runs[e]])}" for k in VAL)
        lines.append(f"validation, {e} epochs: {cols}")
    best = min(arms, key=lambda e: statistics.mean(m[VAL[1]] for m in runs[e]))
    lines.append(f"chosen on validation: {best} epochs")
    for e in arms:
        cols = ", ".join(f"{k} {mean_sd([m[k] for m in runs[e]])}" for k in TEST)
        lines.append(f"test, {e} epochs: {cols}")
    for e in arms[1:]:
        for k in (*VAL, *TEST):
            d = paired_difference([m[k] for m in runs[e]], [m[k] for m in runs[arms[0]]],
                                  higher_is_better=False)  # fmt: skip
            lines.append(f"paired {k}, {e} - {arms[0]} epochs: {d.diff_mean:+.1f} "
                         f"[{d.diff_ci[0]:+.1f}, {d.diff_ci[1]:+.1f}] ({d.verdict})")  # fmt: skip
    print("\n".join(lines))
    if a.results:
        Path(a.results).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
