"""`archlab ensemble`: average the test predictions of finished runs that share a test split.

Classifiers ("logits" tasks) average the members' class probabilities; regressors ("values"
tasks, whose outputs map to the target by a per-row affine map) average the outputs, which is
averaging the forecasts. The members keep their own config, data preparation and weights.
"""

from __future__ import annotations

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


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def evaluate_ensemble(run_dirs: list[Path]) -> dict[str, Any]:
    """Each member's and the ensemble's test metrics; the runs must share task and test rows."""
    from archlab import runner
    from archlab.train.trainer import Trainer

    if len(run_dirs) < 2:
        raise ArchlabError("give at least two run directories to ensemble")
    outputs, members = [], []
    first_task, first_targets, first_rows = None, None, None
    for d in run_dirs:
        cfg, task, model, data = runner.load_run(d)
        trainer = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed,
                          device=next(model.parameters()).device)  # fmt: skip
        _, metrics, out, targets = trainer.evaluate(task, data.test, model)
        rows = data.splits.get("test")  # the test rows' indices: equal targets are not enough
        if first_task is None:
            first_task, first_targets, first_rows = task, targets, rows
        elif task.name != first_task.name:
            raise ArchlabError(f"{d}: a {task.name} run cannot join {first_task.name} runs")
        elif (
            rows != first_rows
            or targets.shape != first_targets.shape
            or not torch.equal(targets, first_targets)
        ):
            raise ArchlabError(
                f"{d}: its test split differs from {run_dirs[0]}'s (for images and text the "
                "split follows the seed: vary the initialization with the same seed's split)"
            )
        outputs.append(out)
        members.append({"run_dir": str(d), **_scalars(metrics)})
    assert first_task is not None and first_targets is not None
    ens = first_task.metrics(combine(first_task.outputs, outputs).float(), first_targets)
    keys = sorted(set.intersection(*(set(m) for m in members)) - {"run_dir"})
    mean = {k: float(np.mean([m[k] for m in members])) for k in keys}
    return {"task": first_task.name, "members": members, "members_mean": mean,
            "ensemble": _scalars(ens)}  # fmt: skip
