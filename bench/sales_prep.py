"""Times sales data preparation on the real panel: load + merge + panel/steps + all windows.

Goal: <= 3 s. Usage: python bench/sales_prep.py [DATA_DIR]  (default ../shared/data/walmart)
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from archlab.presets import PRESETS
from archlab.tasks import TASKS

GOAL_S = 3.0


def time_prep(preset: str, data: str) -> float:
    """Seconds to build ``preset``'s data on ``data`` and gather every window once."""
    cfg = PRESETS[preset]
    cfg = replace(cfg, data=replace(cfg.data, path=data))
    t0 = time.perf_counter()
    bundle = TASKS["sales"].data(cfg).build(torch.device("cpu"))
    t1 = time.perf_counter()
    n = 0
    for split in (bundle.train, bundle.val, bundle.test):  # every window, gathered once
        x, *_ = split.fetch(torch.arange(len(split)), None)
        n += len(x)
    t2 = time.perf_counter()
    print(f"{preset}: rows={bundle.info['n_rows']} series={bundle.info['n_series']} "
          f"windows={n} shape={tuple(x.shape[1:])}")  # fmt: skip
    print(f"  load+merge+panel: {t1 - t0:.2f} s, all windows: {t2 - t1:.2f} s")
    return t2 - t0


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data = sys.argv[1] if len(sys.argv) > 1 else str(root.parent / "shared/data/walmart")
    torch.set_num_threads(1)
    # The default framing (8-week windows), then the tuned preset (16 weeks, Easter
    # flags): gathering all 260k windows at once grows with the window length.
    for preset in ("sales-rnn", "sales-gru"):
        total = time_prep(preset, data)
        verdict = "ok" if total <= GOAL_S else "MISSED"
        print(f"  total: {total:.2f} s (goal <= {GOAL_S:.0f} s: {verdict})")


if __name__ == "__main__":
    main()
