"""How well the budget search's choice rule holds up, measured on validation alone (nested).

The search picks the finished trial with the best validation macro-F1 (at its best epoch). With
a small validation split and many trials the pick's score is over-rated (the winner's curse),
and macro-F1 favours class weighting, which costs accuracy. This compares choice rules without
reading a test score: the validation split is halved at random (stratified) many times; a rule
picks a trial on half A and the pick is scored on half B, by accuracy and macro-F1.

Rules: ``f1`` (the search's), ``accuracy``, ``logloss`` (lowest mean negative log-likelihood)
``f1_unless_close`` (the config as given, trial 0, unless a trial beats its half-A macro-F1
by more than one bootstrap standard error of the paired difference) and ``f1_ties_accuracy``
(of the trials within one bootstrap standard error of the best half-A macro-F1, the most
accurate on half A). A caveat: each trial's
epoch was chosen on the whole validation split, half B included; that favours no rule.

A text run delivers its blend with TF-IDF (archlab/tasks/text_blend.py), so ``--blend`` also
scores, on half B, the blend of each rule's pick with the weight chosen on half A (as a run
chooses it on the whole validation split), and adds the rule ``blend_f1``: the trial whose
blend has the best half-A macro-F1.

    python bench/selection_nested.py search --out DIR --budget 20m -- TRAIN ARGS
    python bench/selection_nested.py analyse SEARCH_DIR [--splits 400] [--blend]

``search`` runs ``archlab train --budget`` in this process with every finished trial's weights
kept (``run_budget(keep_weights=True)``); ``analyse`` reloads each finished trial, computes its
validation probabilities and prints (and writes beside the search, selection_nested.json) the
rules' mean half-B scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedShuffleSplit

from archlab.budget import parse_budget, run_budget
from archlab.cli import build_config
from archlab.runner import load_run
from archlab.tasks import text_blend
from archlab.tasks.tfidf import class_probs, tfidf_baseline
from archlab.train.trainer import Trainer


def search(out: Path, budget: str, args: list[str]) -> Path:
    """The CLI's --budget search (its flags: --task, --data, --preset, --set), weights kept."""
    p = argparse.ArgumentParser()
    for flag in ("--task", "--data", "--preset", "--model"):
        p.add_argument(flag)
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args(args)
    cfg = build_config(a.task, a.preset, a.data, a.model, None, None, a.set, None)
    fixed = [s.partition("=")[0].strip() for s in a.set]
    name = a.preset or f"{cfg.task}-{cfg.model.name}"
    res = run_budget(cfg, parse_budget(budget), out, name, fixed=fixed, started=time.time(),
                     keep_weights=True)  # fmt: skip
    print(res.summary(), file=sys.stderr)
    return res.search_dir


def val_probabilities(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A finished trial's validation class probabilities (its scored weights) and labels."""
    cfg, task, model, data = load_run(run_dir, None, ())
    tr = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=torch.device("cpu"))
    _, _, logits, targets = tr.evaluate(task, data.val, model)
    y = targets.numpy()
    y = y if y.ndim == 1 else y[:, 0]
    return torch.softmax(logits.float(), 1).numpy(), y.astype(np.int64)


def tfidf_val_probabilities(run_dir: Path) -> np.ndarray:
    """The run's TF-IDF model's validation class probabilities (the same for every trial: it
    is fitted on the training texts alone)."""
    _, task, _, data = load_run(run_dir, None, ())
    ctx, names = data.context, list(task.fitted.class_names)
    _, clf = tfidf_baseline(ctx.texts, ctx.labels, ctx.split, names, ctx.weights)
    return class_probs(clf, [ctx.texts[i] for i in ctx.split["val"]], len(names))


def _blend_on(p: np.ndarray, q: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The network weight a run would choose on these rows (text_blend's grid and ties) and
    the blend's macro-F1 there."""
    curve = [_f1(y, w * p + (1 - w) * q) for w in text_blend.BLEND_WEIGHTS]
    i = max(range(len(curve)), key=lambda k: (curve[k], text_blend.BLEND_WEIGHTS[k]))
    return text_blend.BLEND_WEIGHTS[i], curve[i]


def _scores(p: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    pred = p.argmax(1)
    nll = -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()
    return float((pred == y).mean()), float(f1_score(y, pred, average="macro")), float(nll)


def _bootstrap_sd(y: np.ndarray, stat, rng: np.random.Generator) -> float:
    """The standard deviation of ``stat(rows)`` over 200 bootstrap resamples of ``y``'s rows."""
    return float(np.std([stat(rng.integers(0, len(y), len(y))) for _ in range(200)]))


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    return float(f1_score(y, p.argmax(1), average="macro"))


def _pick(rule: str, probs: list[np.ndarray], y: np.ndarray, rng: np.random.Generator) -> int:
    s = [_scores(p, y) for p in probs]
    if rule == "accuracy":
        return int(np.argmax([a for a, _, _ in s]))
    if rule == "logloss":
        return int(np.argmin([n for _, _, n in s]))
    best = int(np.argmax([f for _, f, _ in s]))  # ties: the earlier trial
    if rule == "f1_ties_accuracy":
        # The trials within one bootstrap standard error of the best macro-F1 on this half
        # cannot be told apart by it: the most accurate of them.
        sd = _bootstrap_sd(y, lambda i: _f1(y[i], probs[best][i]), rng)
        near = [k for k, (_, f, _) in enumerate(s) if f >= s[best][1] - sd]
        return max(near, key=lambda k: (s[k][0], -k))
    if rule == "f1" or best == 0:
        return best
    # f1_unless_close: the paired bootstrap SE of (best - trial 0) on this half.
    sd = _bootstrap_sd(y, lambda i: _f1(y[i], probs[best][i]) - _f1(y[i], probs[0][i]), rng)
    return best if s[best][1] - s[0][1] > sd else 0


def analyse(search_dir: Path, splits: int, blend: bool = False) -> dict:
    rec = json.loads((search_dir / "search.json").read_text())
    done = [t for t in rec["trials"] if t["state"] == "complete"]
    assert done and done[0]["trial"] == 0, "trial 0 (the config as given) must have finished"
    probs, y = [], None
    for t in done:
        p, y = val_probabilities(Path(t["run_dir"]))
        probs.append(p)
    assert y is not None
    rules = ("f1", "accuracy", "logloss", "f1_unless_close", "f1_ties_accuracy")
    q = tfidf_val_probabilities(Path(done[0]["run_dir"])) if blend else None
    got: dict[str, list[tuple[float, ...]]] = {r: [] for r in (*rules, "blend_f1")}
    rng = np.random.default_rng(0)
    halves = StratifiedShuffleSplit(n_splits=splits, test_size=0.5, random_state=0)
    for a, b in halves.split(np.zeros(len(y)), y):
        picks = {r: _pick(r, [p[a] for p in probs], y[a], rng) for r in rules}
        if q is not None:
            picks["blend_f1"] = int(np.argmax([_blend_on(p[a], q[a], y[a])[1] for p in probs]))
        for r, k in picks.items():
            acc, f1, _ = _scores(probs[k][b], y[b])
            row: tuple[float, ...] = (acc, f1, done[k]["trial"])
            if q is not None:  # the pick's blend, its weight chosen on half A
                w, _ = _blend_on(probs[k][a], q[a], y[a])
                row += (*_scores(w * probs[k][b] + (1 - w) * q[b], y[b])[:2], w)
            got[r].append(row)
    out = {
        "search_dir": str(search_dir),
        "finished_trials": [t["trial"] for t in done],
        "val_size": len(y),
        "val_class_counts": np.bincount(y).tolist(),
        "splits": splits,
        "whole_val": {
            str(t["trial"]): dict(zip(("accuracy", "f1_macro", "nll"), _scores(p, y), strict=True))
            for t, p in zip(done, probs, strict=True)
        },
        "rules": {
            r: {
                "half_b_accuracy": float(np.mean([v[0] for v in got[r]])),
                "half_b_f1_macro": float(np.mean([v[1] for v in got[r]])),
                "picked_trial_0_share": float(np.mean([v[2] == 0 for v in got[r]])),
            }
            | (
                {
                    "half_b_blend_accuracy": float(np.mean([v[3] for v in got[r]])),
                    "half_b_blend_f1_macro": float(np.mean([v[4] for v in got[r]])),
                    "mean_blend_weight": float(np.mean([v[5] for v in got[r]])),
                }
                if q is not None
                else {}
            )
            for r in got
            if got[r]
        },
    }
    (search_dir / "selection_nested.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--budget", required=True)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    a_ = sub.add_parser("analyse")
    a_.add_argument("search_dir", type=Path)
    a_.add_argument("--splits", type=int, default=400)
    a_.add_argument("--blend", action="store_true", help="also score the TF-IDF blend")
    a = ap.parse_args()
    if a.cmd == "search":
        rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
        print(search(a.out, a.budget, rest))
    else:
        print(json.dumps(analyse(a.search_dir, a.splits, a.blend)["rules"], indent=1))


if __name__ == "__main__":
    main()
