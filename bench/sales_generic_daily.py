"""The generic sales recipe on a synthetic daily store panel: the network against the baselines.

Writes a daily panel (day-first dates, a stores.csv keyed store_nbr beside it): per store a
weekday pattern, a yearly swing, a slow trend, level shifts that persist, and noise. Then runs
the generic command, the file and its columns plus ``--set data.horizon=H`` and ``--epochs``
(no preset, so every window, span and weight is derived from the data), for each seed, and
prints the derived recipe, validation and test WMAE against every baseline on the same test
rows (seasonal naive, last value, the level rule, the MSTL+ETS peer). The machine is shared:
times are wall seconds under whatever else runs; the WMAE ratios do not depend on them.

With ``--quirks`` the panel is laid out like a retailer's real daily file instead (missing
holidays, late openings, closures, paydays; see write_quirky_panel).

Usage: python bench/sales_generic_daily.py [--stores 54] [--days 730] [--quirks] [--horizon 28]
       [--epochs 3] [--seeds 3] [--out bench/results/NAME.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from archlab.cli import main as archlab


def write_panel(folder: Path, stores: int, days: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-06", periods=days, freq="D")
    week = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])
    t = np.arange(days)
    frames = []
    for s in range(stores):
        shape = week ** rng.uniform(0.3, 1.7)
        yearly = 1 + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * (t / 365.25 + rng.uniform()))
        trend = np.exp(rng.normal(0, 5e-4) * t)
        # Level shifts that persist (a competitor opens, a refit): 0-3 per store.
        shift = np.ones(days)
        for start in rng.integers(0, days, rng.integers(0, 4)):
            shift[start:] *= rng.uniform(0.8, 1.25)
        y = rng.uniform(500, 4000) * shape[dates.day_of_week] * yearly * trend * shift
        y *= rng.lognormal(0, 0.1, days)
        frames.append(
            pd.DataFrame(
                {"date": dates.strftime("%d/%m/%Y"), "store_nbr": s + 1, "transactions": y.round()}
            )
        )
    path = folder / "transactions.csv"
    pd.concat(frames).to_csv(path, index=False)
    pd.DataFrame({"store_nbr": range(1, stores + 1), "cluster": rng.integers(1, 9, stores)}).to_csv(
        folder / "stores.csv", index=False
    )
    return path


def write_quirky_panel(folder: Path, stores: int = 54, seed: int = 7) -> Path:
    """A panel laid out like a retailer's daily transactions file (2013-01-01..2017-08-15,
    day-first dates): no row on any 25 December and on 1 January but for one store, stores
    opening late (one 4 months before the end), closures of weeks to months, a December rush,
    payday bumps (the 15th and the month's last day), a random-walk level per store; and
    stores.csv, holidays_events.csv and oil.csv beside it (not named features.csv, so not
    joined)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2013-01-01", "2017-08-15", freq="D")
    dom, doy = dates.day.to_numpy(), dates.day_of_year.to_numpy()
    payday = 1 + 0.08 * ((dom == 15) | dates.is_month_end) + 0.04 * ((dom == 16) | (dom == 1))
    december = 1 + 0.15 * np.exp(-(((doy - 355) / 8.0) ** 2))
    frames = []
    for s in range(1, stores + 1):
        week = np.array([0.95, 0.9, 0.92, 0.95, 1.1, 1.3, 1.0]) ** rng.uniform(0.3, 2)
        level = np.exp(np.cumsum(rng.normal(0, 0.004, len(dates))))
        y = rng.uniform(400, 4500) * week[dates.day_of_week] * december * payday * level
        y *= rng.lognormal(0, 0.07, len(dates))
        keep = ~((dates.month == 12) & (dates.day == 25))
        if s != 25:
            keep &= ~((dates.month == 1) & (dates.day == 1))
        if s == stores - 2:
            keep &= dates >= "2017-04-20"
        if s in (20, 21, 22):
            keep &= dates >= "2015-02-13"
        if s == 29:
            keep &= ~((dates >= "2014-10-01") & (dates < "2015-03-01"))
        if s == 24:
            keep &= ~((dates >= "2016-04-16") & (dates < "2016-05-20"))
        frames.append(pd.DataFrame({"date": dates[keep].strftime("%d/%m/%Y"), "store_nbr": s,
                                    "transactions": np.round(y[keep]).astype(int)}))  # fmt: skip
    path = folder / "transactions.csv"
    pd.concat(frames).to_csv(path, index=False)
    clusters = rng.integers(1, 18, stores)
    pd.DataFrame({"store_nbr": range(1, stores + 1), "city": "Quito", "cluster": clusters}).to_csv(
        folder / "stores.csv", index=False
    )
    pd.DataFrame({"date": ["2017-08-10"], "type": "Holiday", "description": "Primer Grito"}).to_csv(
        folder / "holidays_events.csv", index=False
    )
    oil = np.where(rng.random(len(dates)) < 0.05, np.nan, 50 + np.arange(len(dates)) * 0.01)
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "dcoilwtico": oil}).to_csv(
        folder / "oil.csv", index=False
    )
    return path


def run(path: Path, out: Path, horizon: int, epochs: int, seed: int) -> dict:
    columns = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]
    machine = ["train.threads=1", "train.progress=off"]
    argv = ["train", "--task", "sales", "--data", str(path), "--out", str(out), "--seed", str(seed)]
    argv += ["--epochs", str(epochs), "--set", f"data.horizon={horizon}"]
    argv += [a for kv in [*columns, *machine] for a in ("--set", kv)]
    t0 = time.perf_counter()
    assert archlab(argv) == 0
    wall = time.perf_counter() - t0
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    m = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "data.json").read_text())
    scale = json.loads((run_dir / "correction_scale.json").read_text())
    base = {k[len("baseline_") : -len("_wmae")]: v for k, v in m.items()
            if k.startswith("baseline_") and k.endswith("_wmae")}  # fmt: skip
    return {
        "seed": seed,
        "test_wmae": m["test_wmae"],
        "val_wmae": scale["val_wmae"][-1],  # the network alone (scale 1)
        # The forecast the command makes (predict): w x network + (1 - w) x peer, w chosen on
        # validation (None without a peer).
        "test_blend_wmae": m.get("test_blend_wmae"),
        "blend_weight": m.get("blend_weight"),
        "correction_scale": m.get("correction_scale"),
        "baselines": base,
        "recipe": {k: v["value"] for k, v in info["recipe"].items()},
        "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", type=int, default=54)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quirks", action="store_true", help="write_quirky_panel (--days unused)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.quirks:
            path = write_quirky_panel(Path(tmp), a.stores)
        else:
            path = write_panel(Path(tmp), a.stores, a.days)
        runs = [run(path, Path(tmp) / "runs", a.horizon, a.epochs, s) for s in range(a.seeds)]
    shape = "quirky (1,688 days)" if a.quirks else f"x {a.days} days"
    print(f"{a.stores} stores {shape}, H = {a.horizon}, {a.epochs} epochs, 1 thread; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print("recipe:", runs[0]["recipe"])
    names = sorted(runs[0]["baselines"], key=runs[0]["baselines"].get)
    for name in names:
        print(f"  baseline {name:22s} test WMAE {runs[0]['baselines'][name]:9.1f}")
    best = names[0]
    naive = runs[0]["baselines"]["seasonal_naive"]
    for r in runs:
        w = r["test_wmae"]
        print(f"  seed {r['seed']}: network test WMAE {w:9.1f} (val {r['val_wmae']:.1f}); "
              f"/ seasonal naive {w / naive:.3f}, / best baseline ({best}) "
              f"{w / runs[0]['baselines'][best]:.3f}; {r['wall_s']} s wall")  # fmt: skip
        if r["test_blend_wmae"] is not None:
            b = r["test_blend_wmae"]
            print(f"          blend (w {r['blend_weight']:g}, scale {r['correction_scale']:g}) "
                  f"test WMAE {b:9.1f}; / best baseline ({best}) "
                  f"{b / runs[0]['baselines'][best]:.3f}")  # fmt: skip
    best_wmae = runs[0]["baselines"][best]
    for key, label in (("test_wmae", "network"), ("test_blend_wmae", "blend")):
        if all(r[key] is not None for r in runs):
            mean = float(np.mean([r[key] for r in runs]))
            print(f"  mean {label} {mean:.1f}: / seasonal naive {mean / naive:.3f}, / {best} "
                  f"{mean / best_wmae:.3f}")  # fmt: skip
    if a.out:
        a.out.write_text(
            json.dumps({"args": vars(a) | {"out": str(a.out)}, "runs": runs}, indent=1)
        )


if __name__ == "__main__":
    main()
