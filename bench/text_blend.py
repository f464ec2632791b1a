"""The text blend (network x TF-IDF, the weight chosen on validation) on finished text runs.

Trains nothing: for each finished text run directory it rebuilds the run's data with its saved
state (the same split), chooses the blend weight on the validation texts as a new run does
(archlab/tasks/text_blend.py) and only then scores the test texts. Prints, per run, the test
accuracy and macro-F1 of the network (its metrics.json), of the TF-IDF baseline and of the
blend, with the weight and the validation macro-F1 it rests on; then the means. ``--cost``
also times what the blend adds to a run (choosing the weight, scoring the test blend, writing
tfidf.npz; the TF-IDF fit is the baseline's, shared) and the file's size, beside the run's own
train_seconds.

    .venv/bin/python bench/text_blend.py RUN_DIR [RUN_DIR ...] --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from archlab import rundir, runner
from archlab.tasks.text_cls import TextClassification
from archlab.tasks.tfidf import save_tfidf, tfidf_baseline


def blend_run(run_dir: Path, cost: bool = False) -> dict[str, Any]:
    """The network's, TF-IDF's and the validation-chosen blend's test scores of one run."""
    m = rundir.read_metrics(run_dir)
    cfg, task, model, data = runner.load_run(run_dir)
    assert isinstance(task, TextClassification)
    ctx = data.context
    t0 = time.perf_counter()
    tfidf_baseline(ctx.texts, ctx.labels, ctx.split, list(task.fitted.class_names), ctx.weights)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with runner.inference(run_dir, cfg, model):  # the run's arithmetic, as its training used
        tuned, _ = task.tune(model, data)
        out = tuned.tuned_metrics(model, data)
    blend_s = time.perf_counter() - t0
    extra: dict[str, Any] = {}
    if cost:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            save_tfidf(Path(tmp) / "tfidf.npz", tuned.fitted.tfidf)
            extra = {"save_seconds": time.perf_counter() - t0,
                     "npz_bytes": (Path(tmp) / "tfidf.npz").stat().st_size}  # fmt: skip
        extra.update(tfidf_fit_seconds=fit_s, blend_seconds=blend_s,
                     train_seconds=m["train_seconds"])  # fmt: skip
    return {
        **extra,
        "run": str(run_dir),
        "data": cfg.data.path,
        "network": (m["test_accuracy"], m["test_f1_macro"]),
        "tfidf": (m["baseline_tfidf_accuracy"], m["baseline_tfidf_f1_macro"]),
        "blend": (
            out.get("test_blend_accuracy", m["test_accuracy"]),
            out.get("test_blend_f1_macro", m["test_f1_macro"]),
        ),
        "weight": out["blend_weight"],
        "val_f1": {
            "blend": out["blend_val_f1_macro"],
            "network": out["blend_network_val_f1_macro"],
            "tfidf": out["blend_tfidf_val_f1_macro"],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cost", action="store_true", help="time the blend's work, size its file")
    args = ap.parse_args()
    rows = [blend_run(r, args.cost) for r in args.runs]
    print("run | w | val F1 blend / net / tfidf | test acc net / tfidf / blend | "
          "test F1 net / tfidf / blend")  # fmt: skip
    for r in rows:
        v, n, t, b = r["val_f1"], r["network"], r["tfidf"], r["blend"]
        print(f"{Path(r['run']).name} | {r['weight']:g} | {v['blend']:.4f} / {v['network']:.4f} "
              f"/ {v['tfidf']:.4f} | {n[0]:.4f} / {t[0]:.4f} / {b[0]:.4f} | {n[1]:.4f} / "
              f"{t[1]:.4f} / {b[1]:.4f}")  # fmt: skip
    for r in rows if args.cost else ():
        print(
            f"{Path(r['run']).name}: choosing w and scoring the test blend "
            f"{r['blend_seconds']:.1f} s, writing tfidf.npz {r['save_seconds']:.1f} s "
            f"({r['npz_bytes'] / 1e6:.1f} MB); the baseline's TF-IDF fit (shared) "
            f"{r['tfidf_fit_seconds']:.1f} s; the run's training {r['train_seconds']:.0f} s"
        )
    for k in ("network", "tfidf", "blend"):
        acc = statistics.mean(r[k][0] for r in rows)
        f1 = statistics.mean(r[k][1] for r in rows)
        print(f"mean {k}: accuracy {acc:.4f}, macro-F1 {f1:.4f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
