"""`archlab train --budget` on several random splits: the chosen run's test scores against the
run's own TF-IDF + logistic regression baseline on the same test rows.

Each split is a fresh search (`--set split_seed=K`) run as a user would (a subprocess); the
choice rests on validation alone, and the test scores are read once, after it. Prints and
writes one JSON with each split's choice, its test accuracy and macro-F1, the baseline's, and
the means.

    python bench/budget_splits.py --data Tweets.csv --budget 20m --splits 0,1,2 \
        --out /tmp/bs --results bench/results/x.json [-- extra train args]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from budget import run_search  # bench/ is the script's directory

KEYS = ("test_accuracy", "test_f1_macro", "baseline_tfidf_accuracy", "baseline_tfidf_f1_macro")


def one_split(args: argparse.Namespace, split: int) -> dict:
    out = str(Path(args.out) / f"split-{split}")
    extra = ["--data", args.data, "--set", f"split_seed={split}", *args.extra]
    _, wall, _, search = run_search(args.preset, args.budget, out, args.threads, extra)
    metrics = json.loads((Path(search["chosen"]["run_dir"]) / "metrics.json").read_text())
    return {
        "split_seed": split,
        "wall_s": round(wall, 1),
        "trials": len(search["trials"]),
        "chosen": search["chosen"],
        **{k: metrics[k] for k in KEYS},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="text-bilstm-glove-distill")
    ap.add_argument("--budget", default="20m")
    ap.add_argument("--splits", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/archlab-bench-budget-splits")
    ap.add_argument("--results", default="")
    ap.add_argument("--what", default="", help="a sentence on the machine and its load")
    ap.add_argument("extra", nargs="*", help="more `archlab train` arguments (after --)")
    args = ap.parse_args()
    rows = []
    for split in (int(s) for s in args.splits.split(",")):
        rows.append(one_split(args, split))
        print(json.dumps(rows[-1], indent=1), flush=True)
    means = {k: statistics.mean(r[k] for r in rows) for k in KEYS}
    result = {"what": args.what, "preset": args.preset, "budget": args.budget,
              "extra": args.extra, "splits": rows, "means": means}  # fmt: skip
    print(json.dumps(means, indent=1))
    if args.results:
        Path(args.results).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
