"""The horizon runs' statistical peer (data.peer=mstl_ets): against statsforecast, in a run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import pandas as pd
import pytest
import torch

from archlab.config import RunConfig, apply_overrides
from archlab.data import sales_peer
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.report.tables import run_table
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import HorizonData
from tests.helpers import write_panel

CPU = torch.device("cpu")
H, SEASON = 8, 13  # 70 weeks: 62 up to the test origin, over the 2 seasons MSTL needs


def _cfg(root: Path, *sets: str) -> object:
    cfg = apply_overrides(
        PRESETS["sales-gru-smoke"],
        [f"data.path={root}", f"data.horizon={H}", "data.val_steps=4", "data.window=4",
         f"data.season={SEASON}", "train.threads=1", *sets],
    )  # fmt: skip
    return replace(cfg, data=replace(cfg.data, stores=()))  # every store the panel has


@pytest.fixture(scope="module")
def panel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 12 stores: a department's 12 series are over the SVD rank of 10, so the smoothing acts.
    return write_panel(tmp_path_factory.mktemp("peer") / "walmart", stores=12, depts=2)


@pytest.fixture(scope="module")
def fitted(panel_dir: Path) -> tuple:
    """(data, task, rows with the peer's column, fit seconds), fitted once for the module."""
    cfg = _cfg(panel_dir)
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    return (data, task, *task.rows_with_peer(data.context))


def _direct(root: Path) -> pd.DataFrame:
    """The peer as a forecaster writes it: pivot train.csv, rank-10 SVD per department, then
    statsforecast on the dated weekly series (no archlab code)."""
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    df = pd.read_csv(root / "train.csv", parse_dates=["Date"])
    P = df.pivot_table(index="Date", columns=["Store", "Dept"], values="Weekly_Sales")
    cut = len(P) - H
    train = np.nan_to_num(P.to_numpy()[:cut])
    depts = np.array([c[1] for c in P.columns])
    for d in np.unique(depts):
        u, s, vt = np.linalg.svd(train[:, depts == d], full_matrices=False)
        train[:, depts == d] = (u[:, :10] * s[:10]) @ vt[:10]
    ids = [f"{s}-{d}" for s, d in P.columns]
    long = pd.DataFrame({"unique_id": np.repeat(ids, cut), "ds": np.tile(P.index[:cut], len(ids)),
                         "y": train.T.ravel()})  # fmt: skip
    model = MSTL(season_length=SEASON, trend_forecaster=AutoETS(model="ZZN"))
    return StatsForecast(models=[model], freq="W-FRI", n_jobs=1).forecast(df=long, h=H)


def test_the_peer_is_statsforecast_on_the_svd_smoothed_panel(panel_dir: Path, fitted) -> None:
    data, _task, rows, seconds = fitted
    want = _direct(panel_dir)
    got = rows.assign(unique_id=rows.Store.astype(str) + "-" + rows.Dept.astype(str))
    both = got.merge(want, left_on=["unique_id", "Date"], right_on=["unique_id", "ds"])
    assert len(both) == len(rows) == data.info["split_target_steps"]["test"] == 24 * H
    np.testing.assert_allclose(both.mstl_ets, both.MSTL, rtol=1e-9)
    assert 0 < seconds < 30


def test_metrics_keys_and_the_report_row(fitted) -> None:
    data, task, rows, _ = fitted
    m = task.baselines(data)
    for k in ("wmae", "mae", "rmse", "r2", "rows", "fit_seconds"):
        assert f"baseline_mstl_ets_{k}" in m
    assert (
        m["baseline_mstl_ets_rows"] == len(rows) and len(m["baseline_mstl_ets_wmae_by_step"]) == H
    )
    # Kaggle's WMAE by hand over the same rows: holiday weeks weigh 5.
    w = np.where(rows.holiday, 5.0, 1.0)
    by_hand = (w * (rows.actual - rows.mstl_ets).abs()).sum() / w.sum()
    assert m["baseline_mstl_ets_wmae"] == pytest.approx(by_hand, rel=1e-9)
    assert task.rows_with_peer(data.context)[0] is rows  # fitted once, then reused


def test_a_run_writes_the_peer_to_metrics_and_the_report(panel_dir: Path, tmp_path: Path) -> None:
    from archlab import runner

    run = runner.train(_cfg(panel_dir, "train.epochs=1"), tmp_path / "runs")
    m = json.loads((run / "metrics.json").read_text())
    assert m["baseline_mstl_ets_wmae"] > 0 and m["baseline_mstl_ets_fit_seconds"] > 0
    table = {row[0]: row[1] for row in run_table("sales", [run], {})}
    assert float(table["baseline_mstl_ets_wmae"].replace(",", "")) == pytest.approx(
        m["baseline_mstl_ets_wmae"], abs=0.1
    )
    assert "baseline_mstl_ets_fit_seconds" in table


def test_two_seasons_more_than_the_history_is_an_opening_note_and_no_peer(panel_dir: Path) -> None:
    # data.season=40: 62 weeks up to the origin hold one season (the network's need), not two.
    cfg = _cfg(panel_dir, "data.season=40")
    assert cfg.data.peer == "mstl_ets"  # asked for (the default), but cannot be fitted
    data = HorizonData(cfg).build(CPU)
    assert data.context.peer is None
    # Printed before training, right after the lines on the data and its origins.
    assert data.notes[2].startswith("data: no mstl_ets peer (data.peer): 62 steps up to the test")
    assert "2 seasons of 40 steps" in data.notes[2]
    m = HorizonForecast(cfg, data.fitted).baselines(data)
    assert m["baseline_svd_seasonal_naive_wmae"] > 0
    assert not any(k.startswith("baseline_mstl_ets") for k in m)


def test_a_season_longer_than_the_history_is_a_one_line_error(panel_dir: Path, capsys) -> None:
    from archlab.cli import main

    sets = [f"data.path={panel_dir}", f"data.horizon={H}", "data.season=80", "train.threads=1"]
    args = [a for s in sets for a in ("--set", s)]
    rc = main(["train", "--preset", "sales-gru-smoke", "--out", str(panel_dir.parent / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("archlab: error: ")
    assert "season (80 steps)" in err[0]


def test_the_peer_switches_off_and_is_validated(panel_dir: Path) -> None:
    data = HorizonData(_cfg(panel_dir, "data.peer=none")).build(CPU)
    assert data.context.peer is None and not any("mstl_ets" in n for n in data.notes)
    rows, seconds = HorizonForecast(_cfg(panel_dir), data.fitted).rows_with_peer(data.context)
    assert "mstl_ets" not in rows.columns and seconds is None
    with pytest.raises(ArchlabError, match=r"data\.peer"):
        _cfg(panel_dir, "data.peer=prophet")
    # Every value data.peer accepts has a forecaster in the registry.
    choices = get_args(get_type_hints(SalesDataConfig)["peer"])
    assert set(choices) == {*sales_peer.PEERS, "none"}


def test_the_peer_is_fitted_once_per_panel_in_a_process(monkeypatch) -> None:
    from archlab.data import sales_peer

    rng = np.random.default_rng(0)
    y = 100 + 10 * np.sin(np.arange(40) * 2 * np.pi / 8)[None, :] + rng.normal(0, 1, (4, 40))
    groups = np.array([0, 0, 1, 1])
    calls = []
    real = sales_peer._mstl_ets
    monkeypatch.setattr(sales_peer, "_mstl_ets", lambda *a: calls.append(1) or real(*a))
    first = sales_peer.mstl_ets(y, 31, 8, 8, groups, 1)
    again = sales_peer.mstl_ets(y.copy(), 31, 8, 8, groups, 1)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    first[0, 0] = -1.0  # a caller's edit does not reach the kept forecast
    assert sales_peer.mstl_ets(y, 31, 8, 8, groups, 1)[0, 0] != -1.0
    y[2, 5] += 1.0  # another panel, or another origin: fitted again
    sales_peer.mstl_ets(y, 31, 8, 8, groups, 1)
    sales_peer.mstl_ets(y, 30, 8, 8, groups, 1)
    assert len(calls) == 3


def test_the_one_step_peer_is_the_fit_rolled_and_reads_no_later_step() -> None:
    from statsforecast.models import MSTL, AutoETS

    rng = np.random.default_rng(1)
    t = np.arange(60)
    y = 50 + 8 * np.sin(2 * np.pi * t / 6)[None, :] + rng.normal(0, 1, (3, 60)) + t / 10
    y[2, :4] = np.nan  # a late start: missing steps are zero sales, as in the horizon peer
    origin, steps = 44, 12
    got = sales_peer.mstl_ets_one_step(y, origin, steps, 6)
    assert got.shape == (3, steps) and np.isfinite(got).all()
    # Its first column is statsforecast's one-step forecast of the fit at the origin.
    for i, row in enumerate(np.nan_to_num(y)):
        m = MSTL(season_length=6, trend_forecaster=AutoETS(model="ZZN")).fit(row[: origin + 1])
        assert got[i, 0] == pytest.approx(m.predict(h=1)["mean"][0], rel=1e-9)
    # A step's forecast reads only the steps before it: changing step origin + 1 + j moves
    # the forecasts of later steps alone.
    j = 5
    moved = y.copy()
    moved[:, origin + 1 + j :] += 100.0
    again = sales_peer._mstl_ets_one_step(moved, origin, steps, 6)
    np.testing.assert_array_equal(again[:, : j + 1], got[:, : j + 1])
    assert (again[:, j + 1] > got[:, j + 1]).all()
    # On wandering series (the ETS level then follows each step) the rolled forecast follows
    # a level shift in the test span, where the fit's multi-step forecast cannot.
    shifted = 50 + 8 * np.sin(2 * np.pi * t / 6)[None, :] + rng.normal(0, 1, (3, 60)).cumsum(1)
    shifted[:, origin + 3 :] += 20.0
    rolled = sales_peer.mstl_ets_one_step(shifted, origin, steps, 6)
    far = sales_peer.mstl_ets(shifted, origin, steps, 6, np.arange(3), 1)
    actual = shifted[:, origin + 1 : origin + 1 + steps]
    assert np.abs(rolled - actual)[:, 4:].mean() < np.abs(far - actual)[:, 4:].mean() / 2


def test_a_next_step_run_scores_the_rolled_peer_on_its_test_rows(panel_dir: Path) -> None:
    cfg = _cfg(panel_dir, "data.horizon=1", "data.test_steps=6")
    data = HorizonData(cfg).build(CPU)
    peer = data.context.peer
    assert peer is not None and not any("mstl_ets" in n for n in data.notes)
    # The blend is chosen on the validation steps, each forecast from the step before it.
    assert sorted(set(peer.val_origins)) == list(range(59, 63))  # 60 training steps, then 4
    task = HorizonForecast(cfg, data.fitted)
    rows, seconds = task.rows_with_peer(data.context)
    assert len(rows) == data.info["split_target_steps"]["test"] and seconds > 0
    # Each row's value is the one-step forecast of its date from the fit at the first origin.
    fc = sales_peer.mstl_ets_one_step(peer.y, peer.origins[0], 6, SEASON)
    first = pd.Timestamp(rows.Date.min())
    j = ((pd.to_datetime(rows.Date) - first).dt.days // 7).to_numpy()
    np.testing.assert_allclose(rows.mstl_ets, fc[peer.series, j], rtol=1e-12)
    m = task.baselines(data)
    assert m["baseline_mstl_ets_rows"] == len(rows) and m["baseline_mstl_ets_fit_seconds"] > 0


def test_a_next_step_run_blends_with_the_rolled_peer_and_predicts_with_it(
    panel_dir: Path, tmp_path: Path, capsys
) -> None:
    from archlab import runner
    from archlab.cli import main
    from archlab.tasks.sales_common import SalesTargets

    cfg = _cfg(panel_dir, "data.horizon=1", "data.test_steps=6", "train.epochs=1")
    run = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run / "metrics.json").read_text())
    assert 0 <= m["blend_weight"] <= 1 and m["test_blend_wmae"] > 0
    # Validation's peer column is the fit at the last training step rolled over the validation
    # steps: at w = 0 the blend's validation WMAE is that forecast's.
    data = HorizonData(cfg).build(CPU)
    fc = sales_peer.mstl_ets_one_step(data.context.peer.y, 59, 4, SEASON)
    v = data.val.fetch(torch.arange(data.val.n), None)
    s, o = data.context.peer.val_series, data.context.peer.val_origins
    tt = SalesTargets.unpack(v[3].double().numpy(), horizon=True)
    by_hand = np.abs(fc[s, o - 59] - tt.sales()[:, 0])
    w = np.where(tt.holiday[:, 0] > 0.5, 5.0, 1.0)
    assert m["blend_peer_val_wmae"] == pytest.approx((w * by_hand).sum() / w.sum(), rel=1e-6)
    assert (run / "peer_forecast.npz").exists()
    # eval repeats test_blend_*, predict forecasts the next step with the blend: both from the
    # fits the run kept (no refit, said on stderr when one happens).
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["test_blend_wmae"] == pytest.approx(m["test_blend_wmae"], rel=1e-9)
    assert main(["predict", str(run)]) == 0  # the step after the data's end
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    w_net = m["blend_weight"]
    assert {x["source"] for x in lines} == ({"blend"} if w_net < 1 else {"model"})
    assert "fitting the statistical peer" not in out.err
    # A weight set is used as given: no fit at the validation origin to choose one.
    forced = HorizonData(_cfg(panel_dir, "data.horizon=1", "data.blend_weight=0.5")).build(CPU)
    assert forced.context.peer is not None and forced.context.peer.val_origins is None
    # At w = 0 the blend is the peer: the same rolled fit as the test rows' baseline column.
    run0 = runner.train(replace(cfg, data=replace(cfg.data, blend_weight=0.0)), tmp_path / "r0")
    m0 = json.loads((run0 / "metrics.json").read_text())
    assert m0["test_blend_wmae"] == pytest.approx(m0["baseline_mstl_ets_wmae"], rel=1e-6)


def test_blank_cells_reach_the_peer_filled_from_the_steps_before_them(tmp_path: Path) -> None:
    # 10 blank sales cells of 480 made the peer read ten months of no sales: its validation
    # WMAE went from 18.9 to 68.8. A row with an empty value is unknown; a step with no row
    # stays no sales, as in the Walmart peer.
    from archlab.data import sales

    months = pd.date_range("2019-01-01", periods=40, freq="MS")
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + 10 * (d.month % 12)) for s in (1, 2)
            for d in months]  # fmt: skip
    df = pd.DataFrame(rows, columns=["month", "store", "sales"])
    df.loc[(df.store == 1) & (df.month == "2021-03-01"), "sales"] = np.nan  # blank cell
    df.loc[(df.store == 1) & (df.month == "2019-02-01"), "sales"] = np.nan  # no season before
    df = df[~((df.store == 2) & (df.month == "2021-06-01"))]  # no row
    df.to_csv(tmp_path / "m.csv", index=False)
    cfg = apply_overrides(
        RunConfig(task="sales", data=SalesDataConfig(), model=SalesModelConfig()),
        [f"data.path={tmp_path / 'm.csv'}", "data.date_column=month", "data.series_keys=store",
         "data.target=sales", "train.threads=1"],
    )  # fmt: skip
    data = HorizonData(cfg).build(CPU)
    y = data.context.peer.y  # the panel the peer is fitted on
    t = {f"{d:%Y-%m-%d}": i for i, d in enumerate(months)}
    assert y[0, t["2021-03-01"]] == y[0, t["2020-03-01"]] == 130.0  # a season before
    assert y[0, t["2019-02-01"]] == y[0, t["2019-01-01"]] == 110.0  # the last value before it
    assert np.isnan(y[1, t["2021-06-01"]])  # no row: the peer reads no sales, as before
    # Filling reads no later step: a one-step forecast rolled over a blank cell sees nothing
    # of the steps it forecasts.
    values = np.array([[5.0, np.nan, 9.0, 7.0]])
    p = sales.Panel(np.array([[1]]), months.to_numpy()[:4], values, np.zeros(4, bool),
                    np.zeros((1, 4, 0)), np.zeros(4, int), np.arange(4))  # fmt: skip
    assert sales.fill_blank_cells(p, 12).tolist() == [[5.0, 5.0, 9.0, 7.0]]
    p.y[0, 2:] = 1000.0
    assert sales.fill_blank_cells(p, 12)[0, 1] == 5.0
