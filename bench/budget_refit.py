"""The --budget refit, on and off, on one data set at once: what each search chose on
validation, and (read after) the chosen run's test scores.

The refit (budget.plan) trains the best trial's config again at up to the config's epochs when
the budget would otherwise cut every trial under half of them. Both arms run the same
`archlab train --budget` command at the same time, one thread each, so they share the machine
alike; "off" sets budget.REFIT_SHARE = 0 (the plan before the refit existed).

    python bench/budget_refit.py --budget 10m --out /tmp/refit -- --task images --data X.npz
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARM = ("import sys, archlab.budget as b; b.REFIT_SHARE = float(sys.argv[1]); "
       "from archlab.cli import main; sys.exit(main(sys.argv[2:]))")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--out", default="/tmp/archlab-bench-refit")
    ap.add_argument("extra", nargs="+", help="the `archlab train` arguments (after --)")
    args = ap.parse_args()
    procs = {}
    for arm, share in (("refit", "0.5"), ("off", "0")):
        cmd = [sys.executable, "-c", ARM, share, "train", *args.extra, "--budget", args.budget,
               "--out", f"{args.out}/{arm}", "--set", "train.threads=1",
               "--set", "train.progress=off"]  # fmt: skip
        procs[arm] = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)  # fmt: skip
    result = {"command": " ".join(args.extra), "budget": args.budget}
    for arm, p in procs.items():
        out, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"{arm}: archlab failed ({p.returncode}): {err.strip().splitlines()[-1]}")
        run_dir = Path(out.strip().splitlines()[-1])
        rec = json.loads((run_dir / "search.json").read_text())
        m = json.loads((run_dir / "metrics.json").read_text())
        result[arm] = {
            "plan": rec["plan"],
            "trials": len(rec["trials"]),
            "states": [t["state"] for t in rec["trials"]],
            "best_trial_val": max(v for t in rec["trials"] if (v := t["value"]) is not None),
            "refit": rec.get("refit"),
            "chosen": {k: rec["chosen"].get(k) for k in ("trial", "value", "refit")},
            "chosen_epochs_run": len((run_dir / "history.csv").read_text().splitlines()) - 1,
            "wall_s": round(rec["wall_s"], 1),
            "test_accuracy": m["test_accuracy"],
            "test_f1_macro": m["test_f1_macro"],
            "baseline_pixels_accuracy": m.get("baseline_pixels_accuracy"),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
