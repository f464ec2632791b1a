"""What `archlab train --budget` spends outside its trials, and how well it keeps the budget.

Runs the CLI as a user would (a subprocess, imports included) and reads the search's
search.json: the overhead is the command's wall time minus the trials' own durations (the probe,
planning, Optuna's bookkeeping, deleting weights, and the imports), as a share of the wall time;
adherence is the wall time over the budget. Defaults: the bundled digits with images-resnet18.

    python bench/budget.py --budget 5m --out /tmp/bud [-- extra train args, e.g. --data X]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_search(
    preset: str, budget: str, out: str, threads: int, extra: list[str]
) -> tuple[list[str], float, Path, dict]:
    """`archlab train --budget` as a user runs it: (command, wall seconds, the run directory it
    printed, that directory's search.json)."""
    cmd = [sys.executable, "-m", "archlab", "train", "--preset", preset, "--budget", budget,
           "--out", out, "--set", f"train.threads={threads}", "--set", "train.progress=off",
           *extra]  # fmt: skip
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"archlab failed ({r.returncode}): {r.stderr.strip().splitlines()[-1]}")
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    return cmd, wall, run_dir, json.loads((run_dir / "search.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--out", default="/tmp/archlab-bench-budget")
    ap.add_argument("--preset", default="images-resnet18")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="more `archlab train` arguments (after --)")
    args = ap.parse_args()
    cmd, wall, _, rec = run_search(args.preset, args.budget, args.out, args.threads, args.extra)
    trials = rec["trials_s"]
    out = {
        "command": " ".join(cmd[2:]),
        "budget_s": rec["budget_s"],
        "wall_s": round(wall, 1),
        "wall_over_budget": round(wall / rec["budget_s"], 4),
        "trials": len(rec["trials"]),
        "states": [t["state"] for t in rec["trials"]],
        "epochs_per_trial": rec["plan"]["epochs"],
        "trials_s": round(trials, 1),
        "probe_s": round(rec["probe"]["wall_s"], 1),
        "overhead_s": round(wall - trials, 1),
        "overhead_fraction": round((wall - trials) / wall, 4),
        "chosen": rec["chosen"],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
