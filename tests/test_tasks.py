"""Every task in TASKS, and every sales framing in FRAMINGS, through the task protocol on tiny
data.

One test per (task, variant): data built from a data set written in tmp_path; the Fitted object
is frozen and survives JSON; one training step; loss, metrics and baselines on the test split;
fitted.json written and restored from the run dir; data rebuilt from the restored fit (the eval
path) gives the same test metrics; a task made from the restored fit predicts one input as the
in-memory task does (the predict path; parity-framed sales refuses predict, naming the framing).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import rundir
from archlab.config import apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.tasks import TASKS
from archlab.tasks.sales_framings import FRAMINGS
from archlab.train.trainer import Trainer
from archlab.utils import seed_everything
from tests.conftest import write_image_folder
from tests.helpers import write_panel, write_tweets


def _images(root: Path) -> Path:
    return write_image_folder(root / "imgs", {"cat": 12, "dog": 12, "eel": 12})


def _one_image(data: Path, tmp: Path) -> str:
    return str(data / "dog" / "003.png")


def _tweets(root: Path) -> Path:
    root.mkdir(parents=True)
    return write_tweets(root / "tweets.csv")


def _one_text(data: Path, tmp: Path) -> str:
    return "@united thanks, great crew and the best seats"


def _panel(root: Path) -> Path:
    return write_panel(root / "walmart")


def _one_history(data: Path, tmp: Path) -> str:
    """One store's sales history (three departments), as a user passes to predict."""
    hist = pd.read_csv(data / "train.csv")
    path = tmp / "history.csv"
    hist[hist.Store == 2].to_csv(path, index=False)
    return str(path)


def _one_test_file(data: Path, tmp: Path) -> str:
    """Rows to forecast, as Kaggle's test.csv: store 1's three departments, the next week."""
    last = pd.to_datetime(pd.read_csv(data / "train.csv").Date).max()
    path = tmp / "test.csv"
    nxt = f"{last + pd.Timedelta(weeks=1):%Y-%m-%d}"
    pd.DataFrame({"Store": 1, "Dept": [1, 2, 3], "Date": nxt, "IsHoliday": False}).to_csv(
        path, index=False
    )
    return str(path)


@dataclass(frozen=True)
class Variant:
    """A smoke preset on a tiny data set, one input for predict and a metric the task reports."""

    preset: str
    write: Callable[[Path], Path]  # writes the data set under a folder, returns data.path
    sets: tuple[str, ...]
    one_input: Callable[[Path, Path], str]  # (data.path, tmp folder) -> one predict input
    metric: str  # a key of task.metrics
    n_predictions: int  # rows predict returns for that one input
    baselines: bool  # task.baselines gives baseline_* metrics (forecast: naive; text: TF-IDF;
    # images: pixels)
    predict_error: str = ""  # predict refuses this variant: the ArchlabError names this


SALES_SETS = ("data.test_steps=8", "data.val_steps=4")
# Keyed by task name, then variant; a task (or sales framing) without an entry fails the
# collection below with a KeyError, so every registered one is covered.
VARIANTS: dict[str, dict[str, Variant]] = {
    "images": {
        "folder": Variant("images-resnet18-smoke", _images, ("data.size=16", "data.subset=0"),
                          _one_image, "accuracy", 1, baselines=True),
    },
    "sales": {
        "forecast": Variant("sales-rnn-smoke", _panel, SALES_SETS, _one_history, "wmae", 3,
                            baselines=True),
        "parity": Variant("sales-rnn-parity-smoke", _panel, SALES_SETS, _one_history, "wmae", 0,
                          baselines=False, predict_error="forecast"),
        # The forecast framing at H = 4: four steps at once after the origin; predict
        # forecasts the rows of a test file.
        "forecast-h4": Variant("sales-rnn-h39-smoke", _panel,
                           (*SALES_SETS, "data.horizon=4", "data.peer=none", "data.season=8",
                            "data.window=8", "data.val_gap=0", "data.known_covariates="),
                           _one_test_file,
                           "wmae", 3, baselines=True),
    },
    "text": {
        "csv": Variant("text-bilstm-smoke", _tweets, ("data.subset=0",), _one_text,
                       "f1_macro", 1, baselines=True),
    },
}  # fmt: skip
assert set(FRAMINGS) <= set(VARIANTS["sales"]), f"a case per sales framing {list(FRAMINGS)}"


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (an undefined R^2 on a tiny split), lists element-wise."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _dumped(fitted: Any) -> str:
    return json.dumps(fitted.to_dict(), sort_keys=True)


@pytest.mark.parametrize(
    ("task_name", "variant"),
    [(t, v) for t in TASKS for v in VARIANTS[t]],
    ids=[f"{t}-{v}" for t in TASKS for v in VARIANTS[t]],
)
def test_task_protocol_end_to_end(task_name: str, variant: str, tmp_path: Path) -> None:
    v = VARIANTS[task_name][variant]
    data_path = v.write(tmp_path / "data")
    sets = [f"data.path={data_path}", *v.sets, "train.epochs=1", "train.max_steps_per_epoch=1"]
    cfg = apply_overrides(PRESETS[v.preset], sets)
    assert cfg.task == task_name
    spec, device = TASKS[task_name], torch.device("cpu")
    seed_everything(cfg.seed)

    # Data: the fitted object is frozen, typed and survives JSON unchanged.
    data = spec.data(cfg).build(device)
    fitted = data.fitted
    assert dataclasses.is_dataclass(fitted) and type(fitted).__dataclass_params__.frozen
    field = dataclasses.fields(fitted)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fitted, field, None)
    as_json = json.loads(json.dumps(fitted.to_dict()))
    again_fitted = type(fitted).from_dict(as_json)
    # Both: some fields (text's tokenizer) are left out of == but are in to_dict.
    assert again_fitted == fitted and _dumped(again_fitted) == _dumped(fitted)
    assert min(len(data.train), len(data.val), len(data.test)) > 0

    # One training step, then loss, metrics and baselines on the test split.
    task = spec.task(cfg, fitted)
    model = task.build_model()
    start = {k: t.clone() for k, t in model.state_dict().items()}
    trainer = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=device)
    model = trainer.fit(task, data, model)
    assert trainer.state.epoch == 1
    assert any(not torch.equal(start[k], t) for k, t in model.state_dict().items())
    loss, metrics, outputs, targets = trainer.evaluate(task, data.test, model)
    assert math.isfinite(loss) and len(outputs) == len(targets) == len(data.test)
    assert math.isfinite(metrics[v.metric])
    baselines = task.baselines(data)
    assert all(k.startswith("baseline_") for k in baselines)
    assert bool(baselines) == v.baselines
    assert all(math.isfinite(x) for x in baselines.values() if isinstance(x, float))

    # Save the fit, restore it from the run dir alone.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.write_fitted(run_dir, fitted)
    assert json.loads((run_dir / rundir.FITTED).read_text())["kind"] == fitted.kind
    restored = spec.data(cfg).restore(run_dir)
    assert type(restored) is type(fitted) and restored == fitted
    assert _dumped(restored) == _dumped(fitted)

    # Eval path: the data rebuilt with the restored fit gives the same test loss and metrics.
    again = spec.data(cfg).build(device, restored)
    assert again.fitted == fitted and again.splits == data.splits
    task2 = spec.task(cfg, restored)
    model2 = task2.build_model()
    model2.load_state_dict(model.state_dict())
    loss2, metrics2, outputs2, _ = trainer.evaluate(task2, again.test, model2)
    assert loss2 == loss and _same(metrics2, metrics) and torch.equal(outputs2, outputs)

    # Predict path: the restored task predicts one input as the in-memory task does.
    one = v.one_input(data_path, tmp_path)
    model.eval()
    model2.eval()
    if v.predict_error:
        with pytest.raises(ArchlabError, match=v.predict_error):
            task2.predict(model2, [one])
        return
    rows = task2.predict(model2, [one])
    assert len(rows) == v.n_predictions and all(isinstance(r, dict) for r in rows)
    assert _same(rows, task.predict(model, [one]))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_sales_targets_pack_and_unpack_by_name(lib: str) -> None:
    from archlab.tasks.sales_common import SalesTargets

    rng = np.random.default_rng(0)
    f = [rng.normal(size=(5, 3)) for _ in range(6)]
    if lib == "torch":
        f = [torch.from_numpy(a) for a in f]
    t = SalesTargets(*f)
    packed = t.pack()
    assert type(packed) is type(f[0]) and tuple(packed.shape) == (5, 3, 6)
    back = SalesTargets.unpack(packed, horizon=True)
    assert all((a == b).all() for a, b in zip(back, t, strict=True))
    np.testing.assert_allclose(np.asarray(back.sales()), np.asarray(f[0] * f[1] + f[2]))
    np.testing.assert_allclose(np.asarray(back.to_scaled(back.sales())), np.asarray(f[0]))
    step = SalesTargets(*(a[:, 0] for a in f[:4])).pack()  # one step: 4 fields, no mask/origin
    assert tuple(step.shape) == (5, 4)
    one = SalesTargets.unpack(step)
    assert one.observed is None and one.origin is None and (one.holiday == f[3][:, 0]).all()
