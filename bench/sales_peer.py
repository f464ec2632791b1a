"""Checks the statistical peer (data.peer=mstl_ets) on Walmart: its WMAE and fit time.

On the sales-rnn-h39 preset's test rows (origin 2012-01-27, 39 weeks) it must give the
reference's WMAE 1,589.6 +- 2 (/work/shared/anchors/walmart_peer_mstl.py, the same panel,
smoothing, model and rows as a plain script) in at most 60 s of CPU. Only the data and the
baselines are built: the peer reads no network. CPU seconds are process time (a loaded machine
inflates them less than wall time; the load average is printed beside them).

Usage: python bench/sales_peer.py [DATA_DIR]  (default ../shared/data/walmart)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from archlab.config import apply_overrides
from archlab.presets import PRESETS
from archlab.tasks import TASKS

REFERENCE, TOLERANCE, GOAL_S = 1589.6, 2.0, 60.0


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data = sys.argv[1] if len(sys.argv) > 1 else str(root.parent / "shared" / "data" / "walmart")
    cfg = apply_overrides(PRESETS["sales-rnn-h39"], [f"data.path={data}", "train.threads=1"])
    torch.set_num_threads(1)
    spec = TASKS["sales"]
    bundle = spec.data(cfg).build(torch.device("cpu"))
    t0 = time.process_time()
    import statsforecast  # noqa: F401  the import on its own (the fit below pays none of it)

    t_import = time.process_time() - t0
    w0 = time.perf_counter()
    m = spec.task(cfg, bundle.fitted).baselines(bundle)
    wall = time.perf_counter() - w0
    wmae, fit = m["baseline_mstl_ets_wmae"], m["baseline_mstl_ets_fit_seconds"]
    ok = abs(wmae - REFERENCE) <= TOLERANCE and fit <= GOAL_S
    print(f"sales-rnn-h39 test origin {bundle.info['origins']['test']}: "
          f"{bundle.info['n_series']} series, {m['baseline_mstl_ets_rows']} test rows")  # fmt: skip
    print(f"  mstl_ets WMAE {wmae:,.1f} (reference {REFERENCE:,.1f} +- {TOLERANCE:g}); "
          f"svd_seasonal_naive {m['baseline_svd_seasonal_naive_wmae']:,.1f} on "
          f"{m['baseline_svd_seasonal_naive_rows']} rows")  # fmt: skip
    print(f"  fit {fit:.1f} s CPU (goal <= {GOAL_S:g}), {wall:.1f} s wall for every baseline; "
          f"statsforecast import {t_import:.1f} s CPU; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
