"""Time a sales horizon run's predict after imports: the run's own data, or a forecast file.

Each case runs in a fresh process (no warm caches): restore the run (config, fitted state,
weights, and the peer's fit at the data's end when the run blends and kept it), then
``task.predict``. ``--without-peer-file`` also times a copy of the run dir without
``peer_forecast.npz``: what predict costs when it must fit the peer itself.

    python bench/sales_predict.py RUN_DIR [FORECAST_CSV ...] [--without-peer-file]

e.g. a ``sales-rnn-h39`` run and Walmart's test.csv (115,064 ids).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from archlab.runner import restore_task
from archlab.tasks.sales_horizon_data import PEER_FILE
t1 = time.perf_counter()
run, inputs = sys.argv[1], sys.argv[2:]
c0 = time.process_time()
cfg, task, model = restore_task(run)
t2 = time.perf_counter()
rows = task.predict(model, inputs)
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "restore_s": t2 - t1, "predict_s": t3 - t2,
                  "after_imports_s": t3 - t1, "cpu_after_imports_s": time.process_time() - c0,
                  "rows": len(rows), "sources": sorted({r["source"] for r in rows}),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def one(run: Path, inputs: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(run), *inputs],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("inputs", nargs="*")
    ap.add_argument("--without-peer-file", action="store_true")
    args = ap.parse_args()
    run = Path(args.run)
    res = {"with the run's files": one(run, args.inputs)}
    if args.without_peer_file:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / run.name
            shutil.copytree(run, copy)
            (copy / "peer_forecast.npz").unlink(missing_ok=True)
            res["without peer_forecast.npz"] = one(copy, args.inputs)
    for name, r in res.items():
        srcs = ", ".join(r["sources"])
        print(f"{name}: {r['rows']} rows ({srcs}); imports {r['imports_s']:.1f} s, "
              f"restore {r['restore_s']:.1f} s, predict {r['predict_s']:.1f} s; after imports "
              f"{r['after_imports_s']:.1f} s wall, {r['cpu_after_imports_s']:.1f} s CPU; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
