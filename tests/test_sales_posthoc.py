"""Horizon runs' post-hoc knobs: the correction scale and the network/peer blend, on validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from archlab import rundir, runner
from archlab.cli import main
from archlab.config import apply_overrides
from archlab.data import sales_peer
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.report.tables import run_table
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Batches
from archlab.tasks.sales_common import SalesTargets
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import PEER_FILE, HorizonData, PeerInputs
from archlab.tasks.sales_posthoc import BLEND_WEIGHTS, SCALES, blended, choose
from tests.helpers import write_panel

CPU = torch.device("cpu")
H, SEASON = 8, 13  # as tests/test_sales_peer.py: 70 weeks, 62 up to the test origin


# --- choose() on synthetic validation samples, with a peer from the registry ---
class Echo(nn.Module):
    """A 'network' whose correction is its input: the test sets what it forecasts."""

    def forward(self, x: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        return x


N, HH, SCALE, OFFSET = 6, 4, 10.0, 100.0


def _targets(truth: np.ndarray) -> torch.Tensor:
    """(N, H, 6) targets of scaled ``truth``: scale 10, offset 100, no holiday, all observed."""
    t = np.zeros((*truth.shape, 6))
    t[..., 0], t[..., 1], t[..., 2], t[..., 4] = truth, SCALE, OFFSET, 1.0
    return torch.from_numpy(t).float()


def _val(base: np.ndarray, corr: np.ndarray, truth: np.ndarray) -> Batches:
    x, b, tg = torch.from_numpy(corr).float(), torch.from_numpy(base).float(), _targets(truth)
    return Batches(len(truth), lambda i, gen: (x[i], torch.zeros(len(i), 1), b[i], tg[i]))


def _peer(monkeypatch, forecast_sales: np.ndarray) -> PeerInputs:
    """A peer named 'fixed' that forecasts ``forecast_sales`` (S, H) from any origin."""
    monkeypatch.setitem(sales_peer.PEERS, "fixed", lambda *a: forecast_sales.copy())
    s = np.arange(N)
    return PeerInputs("fixed", np.zeros((N, 20)), [19], SEASON, s * 0, 10, s, s * 0 + 9, s, s,
                      s * 0 + 19)  # fmt: skip


def _data(**kw: object) -> SalesDataConfig:
    return SalesDataConfig(horizon=HH, **kw)


def test_auto_picks_the_validation_best_scale_and_a_number_forces_it() -> None:
    truth = np.random.default_rng(0).normal(size=(N, HH))
    val = _val(np.zeros_like(truth), 2 * truth, truth)  # base 0, correction twice the truth
    chosen, lines = choose(_data(), Echo(), val, None)
    assert chosen["correction_scale"] == 0.5 and chosen["correction_scale_from"] == "validation"
    assert chosen["correction_scale_val_wmae"] == pytest.approx(0.0, abs=1e-4)
    at_1 = np.abs(SCALE * truth).mean()  # sales units: the correction at 1 is off by the truth
    assert chosen["correction_scale_val_wmae_at_1"] == pytest.approx(at_1, rel=1e-5)
    assert lines[0].startswith("chosen: correction scale 0.5 (validation; validation WMAE 0.0")
    forced, _ = choose(_data(correction_scale=0.8), Echo(), val, None)
    assert forced["correction_scale"] == 0.8 and forced["correction_scale_from"] == "config"
    assert forced["correction_scale_val_wmae"] == pytest.approx(0.6 * at_1, rel=1e-5)
    _, lines = choose(_data(correction_scale=0.0), Echo(), val, None)  # said on the CLI
    assert lines[0].endswith(": the network is not used; the forecasts are the naive base alone")
    assert "blend_weight" not in chosen  # no peer: nothing to blend with
    assert 0.5 in SCALES


def test_a_perfect_peer_gets_all_the_weight(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(N, HH))
    peer = _peer(monkeypatch, truth * SCALE + OFFSET)  # the peer forecasts the truth
    val = _val(np.zeros_like(truth), truth + rng.normal(size=truth.shape), truth)
    chosen, lines = choose(_data(), Echo(), val, peer)
    assert chosen["blend_weight"] == 0.0 and chosen["blend_weight_from"] == "validation"
    assert chosen["blend_val_wmae"] == pytest.approx(0.0, abs=1e-4) == chosen["blend_peer_val_wmae"]
    # With w = 0 every scale ties; the smallest wins, and the network is scored at it (base 0).
    assert chosen["blend_correction_scale"] == 0.0
    assert chosen["blend_network_val_wmae"] == pytest.approx(SCALE * np.abs(truth).mean(), rel=1e-5)
    assert lines[1].startswith("chosen: blend 0 x the naive base (correction scale 0) + 1 x fixed")


def test_a_network_that_gets_it_keeps_all_the_weight(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(N, HH))
    peer = _peer(monkeypatch, np.full((N, HH), OFFSET))  # the peer can only say "the mean"
    chosen, _ = choose(_data(), Echo(), _val(np.zeros_like(truth), truth, truth), peer)
    assert chosen["correction_scale"] == 1.0 and chosen["blend_weight"] == 1.0
    assert chosen["blend_val_wmae"] == pytest.approx(0.0, abs=1e-4)


def test_errors_of_both_sides_are_averaged_away_and_the_test_gets_the_weight(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(N, HH))
    noise = rng.choice([-1.0, 1.0], size=truth.shape)
    peer_sales = (truth - noise) * SCALE + OFFSET  # errors of equal size and opposite sign
    peer = _peer(monkeypatch, peer_sales)
    val = _val(np.zeros_like(truth), truth + noise, truth)
    chosen, lines = choose(_data(), Echo(), val, peer)
    assert chosen["correction_scale"] < 1  # the network alone is better shrunk...
    # ...the blend's scale and weight, chosen as one pair: all of it, half-and-half
    assert chosen["blend_correction_scale"] == 1.0 and lines[1].startswith(
        "chosen: blend 0.5 x network (correction scale 1) + 0.5 x fixed (validation WMAE 0.0;"
    )
    assert chosen["blend_weight"] == 0.5 and chosen["blend_val_wmae"] == pytest.approx(0, abs=1e-4)
    assert lines[1].endswith("; predict and serve answer with this blend")  # not the first scale
    assert chosen["blend_network_val_wmae"] == pytest.approx(SCALE, rel=1e-5)
    assert len(chosen["blend_val_wmae_by_weight"]) == len(BLEND_WEIGHTS)
    # On the test: w x the outputs + (1 - w) x the peer, per sample, in scaled units.
    zero, corr = torch.zeros(truth.shape), torch.from_numpy(truth + noise).float()
    got = blended(chosen, peer, zero, corr, _targets(truth))
    np.testing.assert_allclose(got.numpy(), truth, atol=1e-5)
    assert blended({"correction_scale": 1.0}, peer, zero, corr, _targets(truth)) is None


def test_a_forced_weight_is_kept_and_one_skips_the_peer(monkeypatch) -> None:
    truth = np.random.default_rng(4).normal(size=(N, HH))
    peer = _peer(monkeypatch, truth * SCALE + OFFSET)
    val = _val(np.zeros_like(truth), truth, truth)
    forced, lines = choose(_data(blend_weight=0.3), Echo(), val, peer)
    assert forced["blend_weight"] == 0.3 and forced["blend_weight_from"] == "config"
    assert "blend_val_wmae" not in forced and lines[1].endswith("(config)")
    alone, _ = choose(_data(blend_weight=1.0), Echo(), val, peer)
    assert "blend_weight" not in alone


# --- in a run ---
def _cfg(root: Path, *sets: str) -> object:
    cfg = apply_overrides(
        PRESETS["sales-gru-smoke"],
        [f"data.path={root}", f"data.horizon={H}", "data.val_steps=4", "data.window=4",
         f"data.season={SEASON}", "train.threads=1", "train.progress=off", *sets],
    )  # fmt: skip
    return replace(cfg, data=replace(cfg.data, stores=()))


@pytest.fixture(scope="module")
def panel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_panel(tmp_path_factory.mktemp("posthoc") / "walmart", stores=12, depts=2)


def _periodic_panel(root: Path) -> Path:
    """A panel that repeats every SEASON weeks exactly: MSTL forecasts it to the cent."""
    root.mkdir(parents=True)
    dates = pd.date_range("2010-02-05", periods=70, freq="7D")
    shape = np.sin(2 * np.pi * np.arange(70) / SEASON) + 0.5 * np.cos(
        4 * np.pi * np.arange(70) / SEASON
    )
    rows = [
        (s, d, f"{dt:%Y-%m-%d}", round(1000.0 * s * d * (2 + shape[i]), 2), False)
        for s in range(1, 13) for d in (1, 2) for i, dt in enumerate(dates)
    ]  # fmt: skip
    cols = ["Store", "Dept", "Date", "Weekly_Sales", "IsHoliday"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "train.csv", index=False)
    return root


def test_a_run_applies_the_choices_in_metrics_eval_and_predict(panel_dir: Path, tmp_path) -> None:
    run = runner.train(_cfg(panel_dir, "train.epochs=1"), tmp_path / "runs")
    m = json.loads((run / "metrics.json").read_text())
    scales = json.loads((run / "correction_scale.json").read_text())
    assert (
        m["correction_scale"] == scales["best_scale"] and m["correction_scale_from"] == "validation"
    )
    assert m["correction_scale_val_wmae"] == pytest.approx(min(scales["val_wmae"]))
    assert m["blend_weight"] in BLEND_WEIGHTS and m["blend_weight_from"] == "validation"
    assert m["blend_val_wmae"] <= min(m["blend_network_val_wmae"], m["blend_peer_val_wmae"])
    assert m["test_blend_wmae"] > 0 and len(m["test_blend_wmae_by_step"]) == H
    assert all(k.startswith(("test_", "baseline_")) or k in runner.RUN_KEYS for k in m)
    if m["blend_weight"] == 0:  # the blend is then the peer, on the same rows
        assert m["test_blend_wmae"] == pytest.approx(m["baseline_mstl_ets_wmae"], rel=1e-6)
    table = {row[0]: row[1] for row in run_table("sales", [run], {})}
    assert {"test_blend_wmae", "blend_weight", "correction_scale"} <= set(table)
    saved = json.loads(rundir.read_recorded(run / rundir.FITTED))["chosen"]
    assert saved["correction_scale"] == m["correction_scale"]
    # eval applies the chosen scale: it repeats the run's test score
    ev = runner.evaluate(run)
    assert ev["test_wmae"] == pytest.approx(m["test_wmae"], rel=1e-6)
    # ... and the blend's (from the peer fits the run kept, when it blends)
    assert ev["test_blend_wmae"] == pytest.approx(m["test_blend_wmae"], rel=1e-6)
    # predict: the forced weights 1, 0.5 and 0 give model, blend, peer: 0.5 is the average
    cfg, task, model = runner.restore_task(run)
    fc = {}
    for w in (1.0, 0.5, 0.0):
        t = HorizonForecast(cfg, replace(task.fitted, chosen={**saved, "blend_weight": w}))
        rows = t.predict(model, [])
        fc[w] = np.array([r["forecast"] for r in rows])
        assert {r["source"] for r in rows} == {"model" if w == 1 else "blend"}
    np.testing.assert_allclose(fc[0.5], (fc[1.0] + fc[0.0]) / 2, rtol=1e-9)
    assert not np.allclose(fc[1.0], fc[0.0])


def test_a_blending_run_keeps_the_peer_fit_at_its_data_end_for_predict(
    panel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run = runner.train(_cfg(panel_dir, "train.epochs=1", "data.blend_weight=0.5"), tmp_path / "r")
    assert (run / PEER_FILE).exists()
    _, task, model = runner.restore_task(run)
    # Restored from the run dir alone, predict fits nothing: not on the run's own data, and not
    # when a forecast file adds a series the run never saw (it falls back to the baseline).
    monkeypatch.setattr(sales_peer, "_mstl_ets", _no_fit)
    own = task.predict(model, [])
    assert {r["source"] for r in own} == {"blend"}
    last = pd.read_csv(panel_dir / "train.csv").Date.max()
    dates = pd.date_range(last, periods=H + 1, freq="7D")[1:].strftime("%Y-%m-%d")
    want = tmp_path / "test.csv"
    pd.DataFrame({"Store": [1] * H + [99] * H, "Dept": 1, "Date": [*dates, *dates],
                  "IsHoliday": False}).to_csv(want, index=False)  # fmt: skip
    rows = task.predict(model, [str(want)])
    assert [r["source"] for r in rows] == ["blend"] * H + ["baseline"] * H
    by_step = {(r["Store"], r["Dept"], r["step"]): r["forecast"] for r in own}
    assert [r["forecast"] for r in rows[:H]] == [by_step[(1, 1, h)] for h in range(1, H + 1)]
    assert "fitting the statistical peer" not in capsys.readouterr().err
    # The saved fit is the fit: without the file, predict refits and gets the same numbers.
    monkeypatch.undo()
    sales_peer._FITTED._items.clear()
    (run / PEER_FILE).unlink()
    _, task, model = runner.restore_task(run)
    again = task.predict(model, [])
    np.testing.assert_allclose([r["forecast"] for r in again], [r["forecast"] for r in own],
                               rtol=1e-12)  # fmt: skip
    assert "fitting the statistical peer (mstl_ets)" in capsys.readouterr().err


def test_predict_refuses_a_history_shorter_than_the_window_and_blends_only_with_two_seasons(
    panel_dir: Path, tmp_path: Path, capsys
) -> None:
    run = runner.train(_cfg(panel_dir, "train.epochs=1", "data.blend_weight=0.5"), tmp_path / "r")
    _, task, model = runner.restore_task(run)
    df = pd.read_csv(panel_dir / "train.csv")
    dates = sorted(df.Date.unique())
    hist = tmp_path / "history.csv"
    # Window 4 and season 13: 17 steps before the origin; the peer's MSTL needs 2 seasons (26).
    df[df.Date.isin(dates[-20:])].to_csv(hist, index=False)
    capsys.readouterr()
    rows = task.predict(model, [str(hist)])
    assert {r["source"] for r in rows} == {"model"} and len(rows) == df.groupby(
        ["Store", "Dept"]
    ).ngroups * H
    err = capsys.readouterr().err
    assert f"{hist}: 20 steps of history, under the 2 seasons of 13 steps" in err
    df[df.Date.isin(dates[-10:])].to_csv(hist, index=False)
    with pytest.raises(ArchlabError, match=rf"{hist}: a history of 10 steps \(.*the run reads 17"):
        task.predict(model, [str(hist)])


def _no_fit(*args: object) -> np.ndarray:
    raise AssertionError("the peer was fitted again")


def test_a_peer_that_knows_the_series_takes_the_blend(tmp_path: Path, capsys) -> None:
    root = _periodic_panel(tmp_path / "periodic")
    # A smoothed base (3 steps): last season's step alone would forecast this panel exactly
    # too, and the network (base + correction) would tie with the peer.
    sets = [f"data.path={root}", f"data.horizon={H}", "data.val_steps=4", "data.window=4",
            f"data.season={SEASON}", "data.smooth_steps=3", "train.threads=1",
            "train.progress=plain", "train.epochs=1"]  # fmt: skip
    args = ["train", "--preset", "sales-gru-smoke", "--out", str(tmp_path / "runs")]
    assert main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    out, err = capsys.readouterr()
    run = Path(out.strip().splitlines()[-1])
    m = json.loads((run / "metrics.json").read_text())
    assert m["blend_peer_val_wmae"] < 0.01 * m["blend_network_val_wmae"]
    assert m["blend_weight"] == 0.0
    assert m["test_blend_wmae"] < 0.01 * m["test_wmae"]
    # The run's last lines say what was chosen, on what validation score.
    chosen = [line for line in err.splitlines() if line.startswith("chosen: ")]
    assert chosen[0].startswith("chosen: correction scale ")
    assert chosen[1].startswith("chosen: blend 0 x the naive base (correction scale 0) + 1 x ")
    # ... and the headline line scores the blend beside the network.
    assert f"test_blend_wmae={m['test_blend_wmae']:.4f}" in out.strip().splitlines()[-2]


def test_a_short_history_at_the_validation_origin_is_a_first_line_note(panel_dir: Path) -> None:
    # season 30: 62 steps up to the test origin hold the peer's two seasons; 58 up to the
    # validation origin hold one, and with a 28-step gap only 30 (none over a season).
    data = HorizonData(_cfg(panel_dir, "data.season=30")).build(CPU)
    assert set(data.context.peer.val_origins) == {57}
    assert data.notes[2].startswith("data: the blend weight is chosen with mstl_ets fit on 58")
    gap = ["data.season=30", "data.val_gap=28", "data.fit_through_val=true"]
    data = HorizonData(_cfg(panel_dir, *gap)).build(CPU)
    assert data.context.peer is not None and data.context.peer.val_origins is None
    assert data.notes[2].startswith("data: no blend of network and mstl_ets (data.blend_weight=")
    assert "30 steps up to the validation origin, not over one season of 30" in data.notes[2]


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["data.correction_scale=lots"], "data.correction_scale='lots': expected float or 'auto'"),
        (["data.blend_weight=1.5"], "data.blend_weight=1.5"),
        (["data.blend_weight=0.5", "data.peer=none"], "data.peer, which is none"),
        (["data.horizon=1", "data.level_steps=4"], "set data.horizon > 1"),
    ],
)
def test_bad_knobs_are_one_line_errors(
    panel_dir: Path, tmp_path: Path, capsys, sets, needle
) -> None:
    base = [f"data.path={panel_dir}", f"data.horizon={H}", "train.threads=1", *sets]
    args = [a for s in base for a in ("--set", s)]
    rc = main(["train", "--preset", "sales-gru-smoke", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("archlab: error: ")
    assert needle in err[0]
    assert not (tmp_path / "r").exists()


def test_validation_rolls_back_over_the_backtest_origins(panel_dir: Path) -> None:
    one = HorizonData(_cfg(panel_dir)).build(CPU)
    three = HorizonData(_cfg(panel_dir, "data.backtest_origins=3")).build(CPU)
    T, n_train = 70, 70 - H - 4  # validation steps 58..61, forecast from 57, 56 and 55
    origins = np.array(three.splits["val"]) % T
    assert set(origins) == {55, 56, 57} == set(three.context.peer.val_origins)
    mask = three.val.fetch(torch.arange(three.val.n), None)[3][..., 4].numpy() > 0.5
    step = origins[:, None] + np.arange(1, H + 1)[None, :]
    assert (step[mask] >= n_train).all() and (step[mask] < n_train + 4).all()
    one_mask = one.val.fetch(torch.arange(one.val.n), None)[3][..., 4]
    assert mask.sum() == 3 * int(one_mask.sum())  # every origin scores every validation step
    assert "over 3 origins" in three.notes[1]


def test_older_next_step_runs_configs_still_load() -> None:
    # Their config.yaml says correction_scale: 1.0 (the default before auto) at horizon 1.
    assert SalesDataConfig(correction_scale=1.0).correction_scale == 1.0
    assert SalesDataConfig(blend_weight=1.0, peer="none").blend_weight == 1.0
    assert SalesDataConfig(correction_scale=0.5).correction_scale == 0.5  # chosen at any H
    with pytest.raises(ArchlabError, match=r"set data\.horizon > 1"):
        SalesDataConfig(level_steps=4)


def test_each_backtest_origin_blends_with_the_peer_fit_there(monkeypatch, panel_dir: Path) -> None:
    # A peer whose forecast is its origin: the sample of backtest number k must get origin k's.
    monkeypatch.setitem(sales_peer.PEERS, "origin", lambda y, o, h, *a: np.full((len(y), h), o))
    data = HorizonData(_cfg(panel_dir, "data.backtest_origins=3")).build(CPU)
    peer = data.context.peer._replace(name="origin")
    targets = data.test.fetch(torch.arange(data.test.n), None)[-1]
    k = SalesTargets.unpack(targets, horizon=True).origin[:, 0].long().numpy()
    assert sorted(set(k)) == [0, 1, 2]
    assert (peer.test_origins == np.asarray(peer.origins)[k]).all()
    t = targets.clone()
    t[..., 1], t[..., 2] = 1.0, 0.0  # scaled units = sales units
    zero = torch.zeros(t.shape[:2])
    got = blended({"blend_weight": 0.0, "blend_correction_scale": 1.0}, peer, zero, zero, t)
    assert got[:, 0].tolist() == np.asarray(peer.origins)[k].tolist()


def test_a_peer_fit_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    # A fit takes minutes on a large panel with nothing else on the screen; a cached one is
    # not announced again (the seeds of one experiment share it).
    from archlab.tasks.sales_horizon_data import PeerInputs
    from archlab.tasks.sales_posthoc import peer_forecast

    t = np.arange(40)
    y = 50 + 5 * np.sin(2 * np.pi * t / 6)[None, :] + np.arange(3)[:, None] + t / 7
    s = np.arange(3)
    peer = PeerInputs("mstl_ets", y, [30], 6, s * 0, 2, s)
    capsys.readouterr()
    peer_forecast(peer, np.full(3, 30), s, 4, purpose="validation")
    assert capsys.readouterr().err == (  # a run fits for validation, then for test: which one
        "archlab: fitting the statistical peer (mstl_ets) on 3 series, 1 fit(s), for validation\n"
    )
    peer_forecast(peer, np.full(3, 30), s, 4)
    assert capsys.readouterr().err == ""
