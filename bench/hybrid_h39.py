"""Walmart's 39 weeks: the network, the statistical peer and their validation-chosen blend.

Trains ``sales-rnn-h39`` for each seed in one process (the peer's fits at the validation and
test origins are then shared by the seeds) and prints, per seed, the test WMAE of the network
(test_wmae), of the peer (baseline_mstl_ets_wmae) and of the blend (test_blend_wmae), with the
blend weight and the validation WMAE it was chosen on; then mean ± SD over the seeds. A seed
whose run directory under --out is finished is read, not retrained. ``--retune KEY=VALUE``
(repeatable, e.g. data.correction_scale=auto) trains nothing: it re-chooses the post-hoc knobs
of the finished runs under those settings and scores them again (same networks, same rows).

    .venv/bin/python bench/hybrid_h39.py --data ../shared/data/walmart --seeds 0-4 \\
        --out /tmp/hybrid_runs --json bench/results/hybrid_h39.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from archlab import rundir, runner
from archlab.config import apply_overrides
from archlab.presets import PRESETS
from archlab.train.precision import Precision
from archlab.train.trainer import Trainer

KEYS = {
    "network": "test_wmae",
    "peer": "baseline_mstl_ets_wmae",
    "blend": "test_blend_wmae",
}
CHOICE = ("correction_scale", "blend_weight", "blend_val_wmae", "blend_network_val_wmae",
          "blend_peer_val_wmae", "train_seconds", "baseline_mstl_ets_fit_seconds")  # fmt: skip


def seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def retuned(run: Path, overrides: list[str]) -> dict[str, Any]:
    """A finished run's metrics with its post-hoc knobs chosen again under ``overrides``."""
    saved = rundir.read_metrics(run)
    cfg, task, model, data = runner.load_run(run, None, overrides)
    task, lines = task.tune(model, data)
    print(*lines, sep="\n", flush=True)
    trainer = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed,
                      device=next(model.parameters()).device,
                      precision=Precision(saved["amp_choice"]))  # fmt: skip
    _, m, _, _ = trainer.evaluate(task, data.test, model)
    return {
        **{k: saved.get(k) for k in ("baseline_mstl_ets_wmae", "train_seconds")},
        **{f"test_{k}": v for k, v in m.items()},
        **task.tuned_metrics(model, data),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seeds", default="0-4", help="e.g. 0-4")
    ap.add_argument("--preset", default="sales-rnn-h39")
    ap.add_argument("--out", type=Path, required=True, help="folder of the run directories")
    ap.add_argument("--json", type=Path, help="write the table here too")
    ap.add_argument("--retune", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    base = apply_overrides(
        PRESETS[a.preset], [f"data.path={a.data}", "train.threads=1", "train.progress=off"]
    )
    rows = []
    for s in seeds(a.seeds):
        run = a.out / f"{a.preset}-s{s}"
        if a.retune:
            m = retuned(run, a.retune)
        else:
            m = rundir.read_metrics(runner.train_at(replace(base, seed=s), run))
        row = {"seed": s, **{k: m.get(v) for k, v in KEYS.items()}, **{k: m.get(k) for k in CHOICE}}
        rows.append(row)
        print(
            f"seed {s}: network {row['network']:,.1f}  peer {row['peer']:,.1f}  blend "
            f"{row['blend']:,.1f}  (w {row['blend_weight']}, validation WMAE blend "
            f"{row['blend_val_wmae']:,.1f} / network {row['blend_network_val_wmae']:,.1f} / peer "
            f"{row['blend_peer_val_wmae']:,.1f})",
            flush=True,
        )
    summary = {}
    for k in KEYS:
        v = [r[k] for r in rows]
        summary[k] = {"mean": statistics.mean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0}
        print(f"{k}: mean {summary[k]['mean']:,.1f} ± {summary[k]['sd']:,.1f} over {len(v)} seeds")
    if a.json:
        a.json.write_text(
            json.dumps({"preset": a.preset, "rows": rows, "summary": summary}, indent=1)
        )


if __name__ == "__main__":
    main()
