"""Sales on the task protocol: the featurizer round trip, the FRAMINGS registry, run dirs
without fitted.json refused, and eval on other data with the run's fitted state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import runner
from archlab.cli import main
from archlab.config import apply_overrides
from archlab.data.sales_horizon import HorizonFeaturizer
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.tasks import TASKS
from archlab.tasks.sales_framings import FRAMINGS
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import HorizonData, HorizonFitted
from archlab.tasks.sales_parity import ParityData, ParityFitted, SalesParity
from tests.conftest import as_older_run
from tests.helpers import write_panel

CPU = torch.device("cpu")
QUIET = ["train.threads=1", "train.progress=off"]


def cfg_for(root: Path, preset: str = "sales-gru-smoke", *sets: str):
    return apply_overrides(
        PRESETS[preset],
        [f"data.path={root}", "data.test_steps=8", "data.val_steps=4", *QUIET, *sets],
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(panel folder, finished run dir) of a tiny forecast run with events and indicators."""
    root = tmp_path_factory.mktemp("sales")
    panel = write_panel(root / "walmart")
    cfg = cfg_for(panel, "sales-gru-smoke", "data.missing_indicators=true", "data.stores=")
    return panel, runner.train(cfg, root / "runs")


def _history(panel: Path, path: Path) -> str:
    hist = pd.read_csv(panel / "train.csv")
    hist[hist.Store == 2].to_csv(path, index=False)
    return str(path)


def test_featurizer_round_trips_and_names_its_columns(trained: tuple[Path, Path]) -> None:
    _, run = trained
    d = json.loads((run / "fitted.json").read_text())
    assert d["kind"] == "sales-horizon"
    fitted = HorizonFitted.from_dict({k: v for k, v in d.items() if k != "kind"})
    feat = fitted.featurizer
    assert HorizonFitted.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted
    assert HorizonFeaturizer.from_dict(feat.to_dict()) == feat
    names = feat.feature_names
    info = json.loads((run / "data.json").read_text())
    assert len(names) == feat.input_size == info["input_size"] and names == info["feature_names"]
    assert {"event", "ref_event"} <= set(names) and "MarkDown1_missing" in names
    # MarkDown2 and 4 are NA everywhere: constant (zeros) in training, so they enter as zeros.
    assert {"MarkDown2", "MarkDown4"} <= set(feat.constant_covariates)
    assert feat.n_categories == (2, 3) and feat.season == 52 and feat.window == 16
    # Next-step forecasting is horizon 1 with the preset's base (data.residual=mean).
    assert feat.horizon == 1 and feat.residual == "mean" and feat.level_steps == 0


def test_framings_registry_dispatches_data_and_task(tmp_path: Path) -> None:
    panel = write_panel(tmp_path / "walmart", weeks=60)
    assert set(FRAMINGS) == {"forecast", "parity"}
    spec = TASKS["sales"]
    # The horizon framing needs a season of history before its first training origin: the
    # longer default panel, as tests/test_horizon.py uses.
    long_panel = write_panel(tmp_path / "long")
    horizon = ("data.horizon=8", "data.window=4")
    for root, preset, sets, data_cls, fitted_cls, task_cls in (
        # (a 60-week panel has no training step with its value 52 weeks back: refused)
        (long_panel, "sales-rnn-smoke", (), HorizonData, HorizonFitted, HorizonForecast),
        (panel, "sales-rnn-parity-smoke", (), ParityData, ParityFitted, SalesParity),
        (long_panel, "sales-rnn-smoke", horizon, HorizonData, HorizonFitted, HorizonForecast),
    ):
        cfg = cfg_for(root, preset, *sets)
        data = spec.data(cfg)
        assert type(data) is data_cls
        before = dict(vars(data))
        bundle = data.build(CPU)
        assert vars(data) == before  # a TaskData keeps nothing between calls
        assert type(bundle.fitted) is fitted_cls
        assert type(spec.task(cfg, bundle.fitted)) is task_cls
    with pytest.raises(TypeError, match="no sales framing fits a dict"):
        spec.task(cfg, {})
    parity = cfg_for(panel, "sales-rnn-parity-smoke")
    parity_fit = spec.data(parity).build(CPU).fitted
    with pytest.raises(ArchlabError, match="predict needs a forecast-framing run"):
        spec.task(parity, parity_fit).predict(torch.nn.Identity(), [])


def test_a_run_without_fitted_json_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    # sales_state.json, fitted.json's predecessor, is no longer read (CHANGELOG.md).
    import shutil

    _panel, run = trained
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "fitted.json").unlink()
    (old / "sales_state.json").write_text("{}")
    with pytest.raises(ArchlabError, match=r"no fitted.json: .* before archlab 0.1.0"):
        runner.restore_task(old)


def test_a_run_of_the_former_next_step_forecaster_is_refused_in_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    _panel, run = trained
    old = tmp_path / "old"
    shutil.copytree(run, old)
    d = json.loads((old / "fitted.json").read_text())
    # The former next-step fitted.json: its own kind, a featurizer without a horizon.
    d["kind"] = "sales-forecast"
    d["featurizer"] = {k: v for k, v in d["featurizer"].items() if k != "horizon"}
    (old / "fitted.json").write_text(json.dumps(d))
    as_older_run(old, "fitted.json")
    for cmd in (["eval", str(old)], ["explain", str(old), "--out", str(tmp_path / "x")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "former next-step sales forecaster" in err[0], err
        assert "archlab 0.1.0" in err[0] and "train it again" in err[0]


def test_eval_on_other_data_uses_the_runs_featurizer(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Stores 2 and 3, the run knew 1 and 2: store 2 keeps its trained id and scaler, store 3
    (unknown to the run) is dropped; a refit would have given store 2 id 0."""
    _, run = trained
    other = write_panel(tmp_path / "other", stores=3, seed=1)
    df = pd.read_csv(other / "train.csv")
    df[df.Store != 1].to_csv(other / "train.csv", index=False)
    _, task, _, data = runner.load_run(run, str(other))
    assert data.fitted == task.fitted == TASKS["sales"].data(runner.load_config(run)).restore(run)
    assert data.info["series_unknown_to_run"] == 3
    assert set(data.context.rows.Store) == {2}
    _, cats, _, targets = data.test.fetch(torch.arange(len(data.test)), None)
    assert (cats[:, 0] == 1).all()  # store 2's id in the run's vocabulary (1, 2)
    feat = task.fitted.featurizer
    series = [feat.series.index((2, d)) for d in (1, 2, 3)]
    assert set(targets[:, 0, 1].tolist()) <= {float(np.float32(feat.scale[i])) for i in series}
    assert main(["eval", str(run), "--data", str(other)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert np.isfinite(out["test_wmae"]) and out["test_wmae"] > 0
    assert "fitted on its training data (series, scalers, post-hoc choices)" in captured.err
    # What was read of the other data, as training says it; eval takes no --set, so no hint.
    assert "\ndata: origins train " in captured.err and "set data." not in captured.err
    # The naive baselines learn nothing in training: scored on the other data's test rows.
    _, task, _, data = runner.load_run(run, str(other))
    key = "baseline_seasonal_naive_wmae"
    assert out[key] == task.baselines(data)[key]
    assert out[key] != json.loads((run / "metrics.json").read_text())[key]
    # A file too short to train on, whose test origins still have their history: the same
    # test origins are scored (the run needs no training samples of it).
    short = tmp_path / "short"
    short.mkdir()
    df[pd.to_datetime(df.Date) >= pd.Timestamp("2010-04-01")].to_csv(
        short / "train.csv", index=False
    )
    assert main(["eval", str(run), "--data", str(short)]) == 2  # no features.csv beside it
    err = capsys.readouterr().err
    assert "no column(s) ['Temperature'" in err and "covariates the run reads" in err
    for name in ("features.csv", "stores.csv"):
        shutil.copy(other / name, short / name)
    assert main(["eval", str(run), "--data", str(short)]) == 0
    got = json.loads(capsys.readouterr().out)  # windows reaching before its start read less
    assert np.isfinite(got["test_wmae"]) and got["test_wmae"] > 0
    assert main(["eval", str(run), "--data", str(other), "--all"]) == 2  # images and text only
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sales eval --data scores OTHER's last test steps" in err[0]
    daily = tmp_path / "daily"
    daily.mkdir()
    df = df.assign(Date=pd.to_datetime(df.Date).rank(method="dense").astype(int))
    df.assign(Date=pd.Timestamp("2010-02-05") + pd.to_timedelta(df.Date, "D")).to_csv(
        daily / "train.csv", index=False
    )
    assert main(["eval", str(run), "--data", str(daily)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "its steps are daily (dates 1 day(s) apart) but the run was trained on weekly steps"
    )


def test_parity_run_reuses_its_fit(tmp_path: Path) -> None:
    panel = write_panel(tmp_path / "walmart", weeks=60)
    run = runner.train(cfg_for(panel, "sales-rnn-parity-smoke"), tmp_path / "runs")
    m = json.loads((run / "metrics.json").read_text())
    fitted = TASKS["sales"].data(runner.load_config(run)).restore(run)
    # 10 covariates, the holiday flag, Year, Month, Week; one-hot 2 stores, 3 depts, 2 types.
    assert type(fitted) is ParityFitted and fitted.input_size == 14 + 2 + 3 + 2
    assert runner.evaluate(run)["test_wmae"] == m["test_wmae"]
