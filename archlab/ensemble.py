"""`archlab ensemble`: average the test predictions of finished runs that share a test split.

Classifiers ("logits" tasks) average the members' class probabilities; regressors ("values"
tasks, whose outputs map to the target by a per-row affine map) average the outputs, which is
averaging the forecasts. The members keep their own config, data preparation and weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.errors import ArchlabError


def combine(kind: str, outputs: list[torch.Tensor]) -> torch.Tensor:
    """The ensemble's outputs in the members' output space (log-probabilities for logits)."""
    stack = torch.stack([o.double() for o in outputs])
    if kind == "logits":
        return stack.softmax(-1).mean(0).log()
    if kind == "values":
        return stack.mean(0)
    raise ArchlabError(f"cannot average task outputs of kind {kind!r}")


def _scalars(metrics: dict[str, Any]) -> dict[str, float | int]:
    """The numbers of ``metrics`` as test_* keys, counts (support) kept as ints, as metrics.json."""
    return {f"test_{k}": v if isinstance(v, int) and not isinstance(v, bool) else float(v)
            for k, v in metrics.items() if isinstance(v, int | float)}  # fmt: skip


def _other_data(first: Path, run_dir: Path) -> str:
    """How ``run_dir``'s data differ from ``first``'s by their fingerprints ("" where the same,
    or unknown). Files training alone reads (word vectors) do not count: runs with and without
    them on one data set share their test rows."""
    from archlab import fingerprint, rundir

    fps = []
    for d in (first, run_dir):
        if not (d / rundir.INPUTS).exists():
            return ""
        fp = json.loads(rundir.read_recorded(d / rundir.INPUTS))
        fp["files"] = {k: v for k, v in fp.get("files", {}).items() if not v.get("aux")}
        fps.append(fp)
    return "; ".join(fingerprint.differences(*fps))


def evaluate_ensemble(run_dirs: list[Path]) -> dict[str, Any]:
    """Each member's and the ensemble's test metrics; the runs must share task and test rows."""
    from archlab.runner import evaluate_run

    if len(run_dirs) < 2:
        raise ArchlabError("give at least two run directories to ensemble")
    evals = []
    for d in run_dirs:
        e = evaluate_run(d)
        first = evals[0] if evals else e
        if e.task.name != first.task.name:
            raise ArchlabError(
                f"{d}: a run of task {e.task.name} cannot join runs of task {first.task.name}"
            )
        if evals and (other := _other_data(run_dirs[0], d)):
            raise ArchlabError(f"{d}: trained on other data than {run_dirs[0]} ({other}); an "
                               "ensemble averages runs scored on the same test rows")  # fmt: skip
        # The test rows' indices, not only equal targets: two splits can share a label sequence.
        if e.test_rows != first.test_rows or not torch.equal(e.targets, first.targets):
            raise ArchlabError(
                f"{d}: its test split differs from {run_dirs[0]}'s (for images and text the "
                "split follows the seed: keep one with --set split_seed=N)"
            )
        evals.append(e)
    first = evals[0]
    members = [
        {"run_dir": str(d), **_scalars(e.metrics)} for d, e in zip(run_dirs, evals, strict=True)
    ]
    ens = first.task.metrics(combine(first.task.outputs, [e.outputs for e in evals]).float(),
                             first.targets)  # fmt: skip
    keys = sorted(set.intersection(*(set(m) for m in members)) - {"run_dir"})
    mean = {k: float(np.mean([m[k] for m in members])) for k in keys}
    out = {"task": first.task.name, "members": members, "members_mean": mean,
           "ensemble": _scalars(ens)}  # fmt: skip
    blends = [{k: v for k, v in e.tuned.items() if k.startswith("test_blend_")} for e in evals]
    if any(blends):  # what each member's predict answers, beside what the ensemble averaged
        for m, b in zip(members, blends, strict=True):
            m.update({k: v for k, v in b.items() if isinstance(v, int | float)})
        out["note"] = (
            "the ensemble averages the members' networks; each member's blend with its peer "
            "(its test_blend_*, what its predict answers) is not part of it"
        )
    return out
