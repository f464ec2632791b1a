"""Which validation quantity should pick a classifier's scored epoch: loss, macro-F1 or accuracy?

Trains one preset for its full epochs (no early stopping) and keeps every epoch's validation
and test logits. Each selection rule (monitor x patience) is then replayed on those logits.
The rules are compared without the test split: the validation split is cut in two random
halves, a rule picks its epoch on one half and is scored on the other (both ways, averaged),
so the comparison rests on validation rows the rule never looked at. The test scores of the
epoch each rule picks on the whole validation split are printed beside them for information
only; nothing is chosen on them.

    .venv/bin/python bench/selection_monitor.py --preset text-bilstm-glove \
        --set data.path=Tweets.csv --set data.embeddings=glove.txt.gz --out /tmp/sel.json

Single runs on a shared 2-core machine (train.threads=1): a selection rule's merit is read
per run; run more seeds (--set seed=N) before trusting a small difference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archlab import runner
from archlab.config import apply_overrides
from archlab.metrics import classification_metrics
from archlab.presets import PRESETS
from archlab.train.callbacks import Callback

MONITORS = {"val_loss": "min", "val_f1_macro": "max", "val_accuracy": "max"}
PATIENCE = (None, 3, 5)  # None: the whole run, best epoch kept


@dataclass
class Logits(Callback):
    """Every epoch's validation and test logits (CPU), beside the run's own callbacks."""

    prepared: runner.Prepared

    def __post_init__(self) -> None:
        self.val: list[torch.Tensor] = []
        self.test: list[torch.Tensor] = []
        self.y_val: torch.Tensor | None = None
        self.y_test: torch.Tensor | None = None

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        p = self.prepared
        _, _, out, y = trainer.evaluate(p.task, p.data.val)
        self.val.append(out)
        self.y_val = y
        _, _, out, y = trainer.evaluate(p.task, p.data.test)
        self.test.append(out)
        self.y_test = y


def scores(logits: torch.Tensor, y: torch.Tensor, names: list[str]) -> dict[str, float]:
    m = classification_metrics(y.numpy(), logits.argmax(1).numpy(), names)
    loss = float(F.cross_entropy(logits, y).item())
    return {"val_loss": loss, "val_f1_macro": m["f1_macro"], "val_accuracy": m["accuracy"]}


def pick(values: list[float], mode: str, patience: int | None) -> int:
    """The epoch index a BestWeights-like rule keeps (stopping after ``patience`` bad epochs)."""
    best, best_i, bad = (math.inf if mode == "min" else -math.inf), 0, 0
    for i, v in enumerate(values):
        if (v < best) if mode == "min" else (v > best):
            best, best_i, bad = v, i, 0
        else:
            bad += 1
        if patience is not None and bad > patience:
            break
    return best_i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args()
    sets = ["train.threads=1", "train.progress=plain", "reg.early_stop=false", *args.sets]
    cfg = apply_overrides(PRESETS[args.preset], sets)
    with tempfile.TemporaryDirectory() as tmp:
        p = runner.prepare(cfg, out=Path(tmp))
        rec = Logits(p)
        runner.fit(p, callbacks=[rec])
    names = list(p.task.fitted.class_names)
    assert rec.y_val is not None and rec.y_test is not None
    n_val = len(rec.y_val)
    perm = np.random.default_rng(0).permutation(n_val)
    halves = [
        torch.from_numpy(np.sort(perm[: n_val // 2])),
        torch.from_numpy(np.sort(perm[n_val // 2 :])),
    ]
    per_half = [
        [scores(v[h], rec.y_val[h], names) for v in rec.val] for h in halves
    ]  # [half][epoch]
    whole = [scores(v, rec.y_val, names) for v in rec.val]
    test = [scores(t, rec.y_test, names) for t in rec.test]
    rules = []
    for key, mode in MONITORS.items():
        for pat in PATIENCE:
            held = []
            for a, b in ((0, 1), (1, 0)):
                e = pick([r[key] for r in per_half[a]], mode, pat)
                held.append((per_half[b][e]["val_accuracy"], per_half[b][e]["val_f1_macro"], e + 1))
            e = pick([r[key] for r in whole], mode, pat)
            rules.append({
                "monitor": key, "patience": pat,
                "heldout_half_accuracy": float(np.mean([h[0] for h in held])),
                "heldout_half_f1_macro": float(np.mean([h[1] for h in held])),
                "half_epochs": [h[2] for h in held],
                "epoch": e + 1, "test_accuracy": test[e]["val_accuracy"],
                "test_f1_macro": test[e]["val_f1_macro"],
            })  # fmt: skip
    last = len(whole) - 1
    held_last = [per_half[b][last] for b in (0, 1)]
    rules.append({
        "monitor": "last epoch", "patience": None,
        "heldout_half_accuracy": float(np.mean([h["val_accuracy"] for h in held_last])),
        "heldout_half_f1_macro": float(np.mean([h["val_f1_macro"] for h in held_last])),
        "half_epochs": [last + 1, last + 1], "epoch": last + 1,
        "test_accuracy": test[last]["val_accuracy"], "test_f1_macro": test[last]["val_f1_macro"],
    })  # fmt: skip
    result = {"preset": args.preset, "sets": sets, "val_per_epoch": whole, "rules": rules,
              "test_per_epoch_info_only": test}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{'rule':<22} {'held-out half acc':>17} {'F1':>6} {'epochs':>7} | test acc   F1 (info)")
    for r in rules:
        name = r["monitor"] + ("" if r["patience"] is None else f" p{r['patience']}")
        print(f"{name:<22} {r['heldout_half_accuracy']:>17.4f} {r['heldout_half_f1_macro']:>6.4f} "
              f"{r['half_epochs']!s:>7} | {r['test_accuracy']:.4f} {r['test_f1_macro']:.4f} "
              f"(epoch {r['epoch']})")  # fmt: skip


if __name__ == "__main__":
    main()
