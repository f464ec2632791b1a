"""Multi-horizon sales forecasting: baselines, the featurizer (no look-ahead), task, predict."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab.config import apply_overrides
from archlab.data import sales
from archlab.data import sales_baselines as naive
from archlab.data.sales_horizon import HorizonFeaturizer
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.task_configs import SalesDataConfig
from archlab.tasks.sales_horizon import HorizonForecast, score
from archlab.tasks.sales_horizon_data import HorizonData, HorizonFitted
from tests.conftest import DATA_DIR, needs_shared
from tests.helpers import write_panel

WALMART = DATA_DIR / "walmart"
CPU = torch.device("cpu")


# --- baselines: pure functions ---
def test_season_lags_never_reach_past_the_origin() -> None:
    assert naive.season_lags(6, 3).tolist() == [3, 3, 3, 6, 6, 6]
    h = np.arange(1, 40)
    assert np.all(h - naive.season_lags(39, 7) <= 0)


def test_seasonal_naive_and_its_smoothing_by_hand() -> None:
    y = np.array([[1.0, 2.0, np.nan, 4.0, 5.0, 6.0]])
    # origin 4 (value 5), season 3: steps 5, 6 come from steps 2, 3 (a missing one stays NaN)
    sn = naive.seasonal_naive(y, 4, 2, 3)
    assert np.isnan(sn[0, 0]) and sn[0, 1] == 4.0
    sm = naive.smoothed_seasonal_naive(y, 4, 3, 3)
    # step 5 <- mean(y1, y2=0, y3) ; step 6 <- mean(y2=0, y3, y4); step 7 <- step 4 and 3 only
    np.testing.assert_allclose(sm[0], [(2 + 0 + 4) / 3, (0 + 4 + 5) / 3, (4 + 5) / 2])
    assert naive.last_value(y, 4, 3).tolist() == [[5.0, 5.0, 5.0]]
    # A missing origin step of one series while others have rows: no sales. A step no series
    # has a row on (a closed day) is skipped: the last open step's sales carry over.
    two = np.vstack([y, np.ones((1, 6))])
    assert naive.last_value(two, 2, 1).tolist() == [[0.0], [1.0]]
    assert naive.last_value(y, 2, 1).tolist() == [[2.0]]


def test_full_rank_svd_is_the_zero_filled_panel() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(100, 10, (5, 12))
    y[1, 3] = np.nan
    groups = np.array([0, 0, 0, 1, 1])
    full = naive.svd_smooth(y, 10, groups, 5)
    np.testing.assert_allclose(full, np.nan_to_num(y[:, :10]), atol=1e-8)
    low = naive.svd_smooth(y, 10, groups, 1)
    assert np.linalg.matrix_rank(low[:3]) == 1 and np.linalg.matrix_rank(low[3:]) == 1
    sn = naive.svd_seasonal_naive(y, 9, 2, 4, groups, 5)
    np.testing.assert_allclose(sn, np.nan_to_num(y)[:, 6:8], atol=1e-8)


@pytest.mark.parametrize("shape", [(40, 300), (300, 40), (12, 12), (3, 50)])
def test_low_rank_is_the_truncated_svd(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    a = rng.gamma(2.0, 50.0, shape) @ np.diag(rng.uniform(0.5, 2.0, shape[1]))
    a[rng.random(shape) < 0.1] = 0.0  # missing weeks
    a[1] = 0.0  # a store with no sales in the department
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    for k in (1, 2, 10, min(shape)):
        want = (u[:, :k] * s[:k]) @ vt[:k]
        np.testing.assert_allclose(naive.low_rank(a, k), want, atol=1e-9 * np.abs(a).max())
    assert not naive.low_rank(a, 0).any()  # rank 0: nothing kept (a [:, -0:] slice kept all)
    deficient = a[:, :3] @ rng.normal(size=(3, shape[1]))  # rank 3 < the rank asked for
    np.testing.assert_allclose(naive.low_rank(deficient, 10), deficient,
                               atol=1e-9 * np.abs(deficient).max())  # fmt: skip


def test_level_shift_by_hand() -> None:
    y = np.array([[1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 7.0, 8.0]])
    # origin 7, season 4, 2 steps: mean(y6, y7) - mean(y2, y3); a missing step counts as 0
    assert naive.level_shift(y, 7, 4, 2).tolist() == [(7 + 8) / 2 - (3 + 4) / 2]
    assert naive.level_shift(y, 5, 4, 2).tolist() == [(0 + 6) / 2 - (1 + 2) / 2]
    lv = naive.level_seasonal_naive(y, 7, 3, 4, 2, 0.5)
    sm = naive.smoothed_seasonal_naive(y, 7, 3, 4)
    np.testing.assert_allclose(lv, sm + 0.5 * 4.0)


@needs_shared(WALMART)
def test_real_baselines_match_the_issue() -> None:
    # The naive baselines alone: the peer's Walmart number is bench/sales_peer.py's (40 s fit).
    sets = [f"data.path={WALMART}", "data.horizon=39", "data.peer=none"]
    cfg = apply_overrides(PRESETS["sales-gru"], sets)
    data = HorizonData(cfg).build(CPU)
    assert data.info["origins"]["test"] == "2012-01-27"
    assert (data.info["test_first_date"], data.info["test_last_date"]) == (
        "2012-02-03",
        "2012-10-26",
    )
    b = HorizonForecast(cfg, data.fitted).baselines(data)
    assert b["baseline_seasonal_naive_rows"] == 112_437
    assert round(b["baseline_seasonal_naive_wmae"], 1) == 1841.5
    for name, want in (("seasonal_naive_3wk", 1734.6), ("svd_seasonal_naive", 1728.4),
                       ("last_value", 3192.9)):  # fmt: skip
        assert b[f"baseline_{name}_rows"] == 115_588
        assert round(b[f"baseline_{name}_wmae"], 1) == want
    assert len(b["baseline_last_value_wmae_by_step"]) == 39
    assert data.info["split_target_steps"]["test"] == 115_588


# --- the featurizer ---
def _panel(S: int = 3, T: int = 30, seed: int = 0) -> sales.Panel:
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 20, (S, T))
    y[0, 5] = np.nan
    dates = np.datetime64("2020-01-03") + np.arange(T) * np.timedelta64(7, "D")
    cov = rng.normal(0, 1, (S, T, 2)).astype(np.float32)
    keys = np.array([[1, 1], [1, 2], [2, 1]])[:S]
    hol = np.zeros(T, bool)
    hol[[4, 14, 24]] = True
    s, t = np.nonzero(~np.isnan(y))
    return sales.Panel(keys, dates, y, hol, cov, s, t)


def _fz(p: sales.Panel, **kw: object) -> HorizonFeaturizer:
    args = dict(series_keys=("Store", "Dept"), covariates=("a", "b"), known_covariates=("b",),
                step_days=7, season=6, window=4, horizon=8)  # fmt: skip
    return HorizonFeaturizer.fit(p, 20, **{**args, **kw})


def _windows(fz: HorizonFeaturizer, p: sales.Panel, origin: int) -> tuple[torch.Tensor, ...]:
    f = fz.transform(p)
    s = torch.arange(p.y.shape[0])
    return fz.windows(torch.from_numpy(f.step), torch.from_numpy(f.ref), s,
                      torch.full((len(s),), origin))  # fmt: skip


def test_windows_read_nothing_after_the_origin() -> None:
    p = _panel()
    fz = _fz(p)
    x, base = _windows(fz, p, 15)
    q = _panel()
    q.y[:, 16:] = 1e6  # the future's sales and unknown covariate change wildly
    q.cov[:, 16:, 0] = 50.0
    x2, base2 = _windows(fz, q, 15)
    torch.testing.assert_close(x, x2)
    torch.testing.assert_close(base, base2)
    names = fz.feature_names
    fut = x[:, fz.window :]
    assert fut[..., names.index("sales")].abs().sum() == 0
    assert fut[..., names.index("a")].abs().sum() == 0  # not declared known
    assert fut[..., names.index("b")].abs().sum() > 0  # known in advance
    assert (fut[..., names.index("future")] == 1).all()
    assert (x[:, : fz.window, names.index("future")] == 0).all()
    x10, _ = _windows(fz, p, 10)  # step 14 (origin 10 + 4) is a holiday, known in advance
    assert x10[0, fz.window + 3, names.index("holiday")] == 1


def test_base_is_the_smoothed_seasonal_naive_in_scaled_units() -> None:
    p = _panel()
    fz = _fz(p)
    _, base = _windows(fz, p, 15)
    sm = naive.smoothed_seasonal_naive(p.y, 15, 8, 6)  # h = 6 reads two steps only
    f = fz.transform(p)
    np.testing.assert_allclose(base.numpy() * f.scale[:, None] + f.offset[:, None], sm,
                               rtol=1e-5)  # fmt: skip


def test_level_shift_input_and_base_read_nothing_after_the_origin() -> None:
    p = _panel()
    fz = _fz(p, level_steps=3, level_weight=0.5)
    assert fz.feature_names[-1] == "level_shift" and fz.input_size == _fz(p).input_size + 1
    x, base = _windows(fz, p, 15)
    q = _panel()
    q.y[:, 16:] = 1e6
    x2, base2 = _windows(fz, q, 15)
    torch.testing.assert_close(x, x2)
    torch.testing.assert_close(base, base2)
    f = fz.transform(p)
    shift = naive.level_shift(p.y, 15, 6, 3) / f.scale  # in scaled units (offsets cancel)
    lv = x[..., -1].numpy()
    np.testing.assert_allclose(lv[:, fz.window :], np.repeat(shift[:, None], 8, 1), rtol=1e-5)
    assert (lv[:, : fz.window] == 0).all()  # history steps do not carry it
    want = naive.level_seasonal_naive(p.y, 15, 8, 6, 3, 0.5)
    np.testing.assert_allclose(base.numpy() * f.scale[:, None] + f.offset[:, None], want,
                               rtol=1e-5)  # fmt: skip


def test_fitted_state_from_before_the_level_shift_still_loads() -> None:
    p = _panel()
    d = _fz(p).to_dict()
    del d["level_steps"], d["level_weight"]  # a fitted.json written before they existed
    old = HorizonFeaturizer.from_dict(d)
    assert old == _fz(p) and old.level_steps == 0
    for a, b in zip(_windows(old, p, 12), _windows(_fz(p), p, 12), strict=True):
        torch.testing.assert_close(a, b)


def test_featurizer_roundtrips_through_json() -> None:
    p = _panel()
    fz = _fz(p, events=("2020-02-09",))
    again = HorizonFeaturizer.from_dict(json.loads(json.dumps(fz.to_dict())))
    assert again == fz
    for a, b in zip(_windows(fz, p, 12), _windows(again, p, 12), strict=True):
        torch.testing.assert_close(a, b)


def test_series_without_training_steps_are_not_known() -> None:
    p = _panel()
    p.y[2, :20] = np.nan
    fz = _fz(p)
    assert len(fz.series) == 2 and fz.series_index(p.keys).tolist() == [0, 1, -1]


def test_score_by_step_and_backtests() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    pred = y + np.array([1, 2, 3, 4, 5, 6])
    hol = np.array([False, True, False, False, False, False])
    step = np.array([1, 2, 3, 1, 2, 3])
    origin = np.array([0, 0, 0, 1, 1, 1])
    m = score(y, pred, hol, step, origin)
    assert m["wmae"] == pytest.approx((1 + 5 * 2 + 3) / 7)
    assert m["wmae_by_step"] == [1.0, 2.0, 3.0]
    assert m["backtest_wmae"] == [pytest.approx(2.0), pytest.approx(5.0)]
    assert m["backtest_wmae_mean"] == pytest.approx(3.5)


# --- data bundle and task on a tiny panel ---
def _cfg(root: Path, *sets: str) -> object:
    return apply_overrides(
        PRESETS["sales-gru-smoke"],
        [f"data.path={root}", "data.horizon=8", "data.val_steps=4", "data.window=4", *sets],
    )


def _untrained(cfg: object) -> tuple[object, HorizonForecast, torch.nn.Module]:
    """The bundle, task and an untrained model of a horizon config."""
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    return data, task, task.build_model()


@pytest.fixture
def panel_dir(tmp_path: Path) -> Path:
    return write_panel(tmp_path / "walmart")


def test_splits_by_origin_and_masked_targets(panel_dir: Path) -> None:
    data = HorizonData(_cfg(panel_dir)).build(CPU)
    info = data.info
    # 70 weeks: test = the last 8, val = the 4 before, training = 58 steps
    assert info["origins"]["test"] == str(np.datetime64("2010-02-05") + 61 * 7)
    assert info["origins"]["val"] == str(np.datetime64("2010-02-05") + 57 * 7)
    for part, n in (("train", None), ("val", 4), ("test", 8)):
        x, _cats, _base, t = getattr(data, part).fetch(torch.arange(3), None)
        assert x.shape[1:] == (4 + 8, data.fitted.featurizer.input_size)
        assert t.shape[1:] == (8, 6)
        if n is not None:  # validation scores only its 4 steps (the rest are test steps)
            assert t[..., 4].sum(1).max() == n
    _, _, _, t = data.train.fetch(torch.arange(len(data.train)), None)
    # training targets lie inside the training steps and have a season of history
    assert t[..., 4].sum() == info["split_target_steps"]["train"] > 0
    fitted = HorizonFitted.from_dict(json.loads(json.dumps(data.fitted.to_dict())))
    assert fitted == data.fitted
    again = HorizonData(_cfg(panel_dir)).build(CPU, fitted)
    assert again.splits == data.splits


def test_model_emits_h_steps_and_trains(panel_dir: Path) -> None:
    from archlab.train.trainer import Trainer

    cfg = _cfg(panel_dir)
    data, task, model = _untrained(cfg)
    x, cats, _base, _t = data.test.fetch(torch.arange(2), None)
    assert model(x, cats).shape == (2, 8)
    tr = Trainer(cfg.train, cfg.optim, cfg.reg, seed=0, device=CPU)
    model = tr.fit(task, data, model)
    _loss, m, out, _targ = tr.evaluate(task, data.test, model)
    assert out.shape == (len(data.test), 8) and np.isfinite(m["wmae"])
    assert len(m["wmae_by_step"]) == 8 and m["rmse_std"] > 0


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["data.horizon=0"], "data.horizon=0"),
        (["data.horizon=70"], "leave 0 training steps"),
        (["data.known_covariates=Nope"], "data.known_covariates"),
        (["data.backtest_origins=9"], "data.backtest_origins"),
        (["data.level_steps=-1"], "data.level_steps=-1"),
        (["data.level_steps=0", "data.level_weight=0.5"], "needs data.level_steps"),
        (["data.horizon=1", "data.level_steps=4"], "set data.horizon > 1"),
        (["data.horizon=1", "data.fit_through_val=true"], "data.fit_through_val"),
        (["data.fit_through_val=true", "data.backtest_origins=2"], "use one"),
        (["data.val_gap=-1"], "data.val_gap=-1"),
        (["data.val_gap=60"], "data.val_gap=60 leave 0 training steps"),
        (["data.correction_scale=1.5"], "data.correction_scale=1.5"),
        (["data.horizon=1", "data.val_gap=4"], "data.val_gap"),
    ],
)
def test_bad_horizon_config(panel_dir: Path, sets: list[str], needle: str) -> None:
    with pytest.raises(ArchlabError, match=needle.replace(".", r"\.")):
        HorizonData(_cfg(panel_dir, *sets)).build(CPU)


def test_fit_through_val_trains_on_the_validation_steps(panel_dir: Path) -> None:
    level = ("data.level_steps=3", "data.level_weight=0.5")
    held = HorizonData(_cfg(panel_dir, *level)).build(CPU)
    cfg = _cfg(panel_dir, *level, "data.fit_through_val=true")
    data = HorizonData(cfg).build(CPU)
    # 70 weeks, H = 8: training origins now run up to step 60 (the val origin, 57, and 3 more)
    week = np.datetime64("2010-02-05")
    assert held.info["origins"]["train"].endswith(str(week + 56 * 7))
    assert data.info["origins"]["train"].endswith(str(week + 60 * 7))
    assert len(data.train) > len(held.train)
    assert data.info["split_target_steps"]["train"] > held.info["split_target_steps"]["train"]
    # the test split and its baselines are the same rows
    assert data.splits["test"] == held.splits["test"]
    task = HorizonForecast(cfg, data.fitted)
    b = task.baselines(data)
    assert b == HorizonForecast(cfg, held.fitted).baselines(held)
    assert "baseline_level_seasonal_naive_wmae" in b
    # with a gap the targets still reach every step before the test origin (the gap's too)
    gap = HorizonData(_cfg(panel_dir, *level, "data.fit_through_val=true", "data.val_gap=2"))
    built = gap.build(CPU)
    assert built.info["origins"]["train"].endswith(str(week + 60 * 7))
    assert "training targets reach the test origin" in built.notes[1]


def test_val_gap_leaves_steps_between_validation_and_test(panel_dir: Path) -> None:
    plain = HorizonData(_cfg(panel_dir)).build(CPU)
    data = HorizonData(_cfg(panel_dir, "data.val_gap=1")).build(CPU)
    week = np.datetime64("2010-02-05")
    # 70 weeks, H = 8, 4 validation steps, 1 in no split: training steps 0..56 (57 steps)
    assert data.info["origins"]["val"] == str(week + 56 * 7)
    assert data.info["val_dates"] == f"{week + 57 * 7}..{week + 60 * 7}"
    assert data.info["origins"]["train"] == f"{week + 55 * 7}..{week + 55 * 7}"
    assert plain.info["val_dates"] == f"{week + 58 * 7}..{week + 61 * 7}"
    assert data.splits["test"] == plain.splits["test"]
    _, _, _, t = data.val.fetch(torch.arange(len(data.val)), None)
    assert t[..., 4].sum(1).max() == 4  # its 4 steps only, not the gap's
    assert int(t[..., 4].sum()) == data.info["split_target_steps"]["val"]
    assert data.info["split_target_steps"]["train"] < plain.info["split_target_steps"]["train"]
    assert "then 1 steps in no split" in data.notes[1]


def test_correction_scale_shrinks_the_network_toward_its_base(panel_dir: Path) -> None:
    from archlab.tasks.sales_horizon import SCALES, correction_scales
    from archlab.tasks.sales_posthoc import choose
    from archlab.train.trainer import Trainer

    level = ("data.level_steps=3", "data.level_weight=0.5")
    cfg = _cfg(panel_dir, *level)
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    tr = Trainer(cfg.train, cfg.optim, cfg.reg, seed=0, device=CPU)
    model = tr.fit(task, data, task.build_model())
    batch = data.test.fetch(torch.arange(len(data.test)), None)
    x, cats, base, _t = batch
    full, _ = task.step(model.eval(), batch)
    half_task = HorizonForecast(_cfg(panel_dir, *level, "data.correction_scale=0.5"), data.fitted)
    half, _ = half_task.step(model, batch)
    with torch.no_grad():
        torch.testing.assert_close(half, base + 0.5 * model(x, cats))
    torch.testing.assert_close(half, (base + full) / 2)
    train_out, _ = half_task.step(model.train(), batch)  # training fits the whole correction
    model.eval()
    assert not torch.allclose(train_out.detach(), half.detach())
    # Scale 0 is the level-shifted seasonal naive baseline on the same test rows.
    zero = HorizonForecast(_cfg(panel_dir, *level, "data.correction_scale=0"), data.fitted)
    _loss, m, _out, _t = tr.evaluate(zero, data.test, model)
    base_wmae = zero.baselines(data)["baseline_level_seasonal_naive_wmae"]
    assert m["wmae"] == pytest.approx(base_wmae, rel=1e-5)
    # predict keeps the same share of the correction (scale 0: the base, the level rule)
    fc = {
        k: np.array([r["forecast"] for r in HorizonForecast(
            _cfg(panel_dir, *level, f"data.correction_scale={k}"), data.fitted
        ).predict(model, [])])
        for k in (0, 0.5, 1)
    }  # fmt: skip
    np.testing.assert_allclose(fc[0.5], (fc[0] + fc[1]) / 2, rtol=1e-5)
    assert not np.allclose(fc[0], fc[1])
    # The validation curve: scale 1 is the run's own val WMAE; 0 is its base's.
    got = correction_scales(choose(cfg.data, model, data.val, None)[0])
    assert got["scale"] == list(SCALES) and len(got["val_wmae"]) == 21
    _loss, mv, _o, _t = tr.evaluate(task, data.val, model)
    assert got["val_wmae"][-1] == pytest.approx(mv["wmae"], rel=1e-5)
    assert got["val_wmae"][SCALES.index(got["best_scale"])] == min(got["val_wmae"])


def test_no_training_target_with_a_season_of_history(panel_dir: Path) -> None:
    with pytest.raises(ArchlabError, match="season"):
        HorizonData(_cfg(panel_dir, "data.horizon=14", "data.val_steps=8")).build(CPU)


def test_predict_needs_the_known_covariates_for_future_dates(panel_dir: Path) -> None:
    cfg = _cfg(panel_dir, "data.known_covariates=Temperature,Size")
    _, task, model = _untrained(cfg)
    # Rows to forecast on dates off the grid are said to be so, before the covariates
    # are looked up on those dates.
    with pytest.raises(ArchlabError, match="not on the data's 7-day step grid"):
        task.predict(model, [str(_test_file(panel_dir, [(1, 1, "2011-06-08")]))])
    # features.csv ends with the sales: Temperature is not known after them (Size is static)
    with pytest.raises(ArchlabError, match="'Temperature' has no value"):
        task.predict(model, [])
    feats = pd.read_csv(panel_dir / "features.csv")
    last = pd.to_datetime(feats.Date).max()
    extra = feats[pd.to_datetime(feats.Date) == last].copy()
    more = []
    for k in range(1, 9):
        e = extra.copy()
        e["Date"] = f"{last + pd.Timedelta(weeks=k):%Y-%m-%d}"
        more.append(e)
    pd.concat([feats, *more]).to_csv(panel_dir / "features.csv", index=False)
    rows = task.predict(model, [])
    assert len(rows) == 6 * 8 and {r["step"] for r in rows} == set(range(1, 9))
    assert rows[0]["Date"] == f"{last + pd.Timedelta(weeks=1):%Y-%m-%d}"
    assert all(np.isfinite(r["forecast"]) and r["source"] == "model" for r in rows)


def _test_file(root: Path, rows: list[tuple[int, int, str]]) -> Path:
    path = root / "test.csv"
    pd.DataFrame(rows, columns=["Store", "Dept", "Date"]).assign(IsHoliday=False).to_csv(
        path, index=False
    )
    return path


def test_predict_rows_of_a_test_file(panel_dir: Path) -> None:
    cfg = _cfg(panel_dir)
    _, task, model = _untrained(cfg)
    d1 = str(np.datetime64("2010-02-05") + 70 * 7)
    d8 = str(np.datetime64("2010-02-05") + 77 * 7)
    f = _test_file(panel_dir, [(1, 1, d1), (2, 3, d8), (9, 9, d1)])
    rows = task.predict(model, [str(f)])
    assert [(r["Store"], r["Dept"], r["Date"], r["step"]) for r in rows] == [
        (1, 1, d1, 1), (2, 3, d8, 8), (9, 9, d1, 1)]  # fmt: skip
    assert [r["source"] for r in rows] == ["model", "model", "baseline"]
    with pytest.raises(ArchlabError, match="not on the data's 7-day step grid"):
        task.predict(model, [str(_test_file(panel_dir, [(1, 1, "2011-06-08")]))])
    with pytest.raises(ArchlabError, match="outside the forecast steps"):
        task.predict(model, [str(_test_file(panel_dir, [(1, 1, str(np.datetime64(d8) + 7))]))])
    # A history without the target column reads as rows to forecast: the error says so.
    hist = panel_dir / "history.csv"
    pd.read_csv(panel_dir / "train.csv").drop(columns="Weekly_Sales").to_csv(hist, index=False)
    with pytest.raises(ArchlabError, match=r"if history\.csv is a history, it lacks the target "
                       r"column 'Weekly_Sales'"):  # fmt: skip
        task.predict(model, [str(hist), str(_test_file(panel_dir, [(1, 1, d1)]))])
    with pytest.raises(ArchlabError, match=r"none of its series \(e.g. 7, 7\) occur in the data, "
                       r"whose series are like 1, 1$"):  # fmt: skip
        task.predict(model, [str(_test_file(panel_dir, [(7, 7, d1)]))])
    # The data's integer stores written 02 or 2.0 (a spreadsheet's export) are its store 2.
    odd = panel_dir / "odd.csv"
    odd.write_text(f"Store,Dept,Date\n02,3,{d8}\n2.0,1,{d1}\n 1,1,{d1}\n")
    got = task.predict(model, [str(odd)])
    assert [(r["Store"], r["source"]) for r in got] == [("02", "model"), ("2.0", "model"),
                                                        ("1", "model")]  # fmt: skip
    assert [r["forecast"] for r in got][:1] == [r["forecast"] for r in rows][1:2]


def test_default_horizon_keeps_the_config_valid() -> None:
    c = SalesDataConfig()
    assert c.horizon == 1 and replace(c, horizon=39).horizon == 39


# --- end to end: train, eval, ensemble, predict and a Kaggle submission through the CLI ---
def test_train_eval_predict_and_submission(panel_dir: Path, tmp_path: Path, capsys) -> None:
    from archlab import runner
    from archlab.cli import main
    from archlab.ensemble import evaluate_ensemble

    cfg = _cfg(panel_dir, "data.backtest_origins=3", "data.level_steps=3", "data.level_weight=0.5")
    runs = [runner.train(replace(cfg, seed=s), tmp_path / "runs") for s in (0, 1)]
    run = runs[0]
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["test_wmae_by_step"]) == 8 and len(m["test_backtest_wmae"]) == 3
    for b in naive.BASELINE_NAMES:
        assert m[f"baseline_{b}_wmae"] > 0 and len(m[f"baseline_{b}_wmae_by_step"]) == 8
    assert (
        m["baseline_seasonal_naive_3wk_rows"] == 48 and "baseline_last_value_backtest_wmae_std" in m
    )
    for f in ("error_by_step.png", "actual_vs_forecast.png", "learning_curves.png"):
        assert (run / "plots" / f).stat().st_size > 1000
    scales = json.loads((run / "correction_scale.json").read_text())
    assert 0 <= scales["best_scale"] <= 1 and len(scales["val_wmae"]) == 21
    assert json.loads((run / "fitted.json").read_text())["kind"] == "sales-horizon"
    assert main(["eval", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["test_wmae"] == pytest.approx(m["test_wmae"])
    ens = evaluate_ensemble(runs)
    assert np.isfinite(ens["ensemble"]["test_wmae"])

    d1 = str(np.datetime64("2010-02-05") + 70 * 7)
    sub = tmp_path / "sub.csv"
    test = _test_file(panel_dir, [(1, 1, d1), (2, 3, d1), (5, 5, d1)])
    assert main(["predict", str(run), "--file", str(test), "--out", str(sub)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == str(sub)
    got = pd.read_csv(sub)
    assert list(got.columns) == ["Id", "Weekly_Sales"]
    assert got.Id.tolist() == [f"1_1_{d1}", f"2_3_{d1}", f"5_5_{d1}"]
    assert got.Weekly_Sales.iloc[2] == 0
    assert "1 row(s) of 1 series without training history (e.g. 5, 5) took the baseline" in err
    known = _test_file(panel_dir, [(1, 1, d1)])  # every series known: no baseline clause
    assert main(["predict", str(run), "--file", str(known), "--out", str(sub)]) == 0
    assert capsys.readouterr().err == "archlab: 1 forecasts (1 distinct ids)\n"
    assert main(["predict", str(run)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6 * 8
    assert main(["predict", str(run), "--out", str(sub)]) == 2  # --out needs --file
    assert "--out needs --file ROWS.csv: the rows to forecast" in capsys.readouterr().err
    # Without a history predict forecasts from the run's own data: not from changed ones ...
    train = pd.read_csv(panel_dir / "train.csv")
    train.loc[0, "Weekly_Sales"] += 1.0
    train.to_csv(panel_dir / "train.csv", index=False)
    assert main(["predict", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the data differ from what the run was trained on (train.csv changed" in err
    assert "give the history to forecast from (archlab predict RUN FILE.csv)" in err
    # ... nor from none; a history given is read instead
    assert main(["predict", str(run), str(panel_dir / "train.csv")]) == 0
    capsys.readouterr()
    panel_dir.rename(tmp_path / "elsewhere")
    assert main(["predict", str(run)]) == 2
    assert "no such file or directory: the run's data, which predict forecasts from" in (
        capsys.readouterr().err
    )


def test_daily_panel_with_other_keys_by_flags(tmp_path: Path, capsys) -> None:
    from archlab.cli import main
    from tests.helpers import write_daily_panel

    path = write_daily_panel(tmp_path / "transactions.csv")  # 3 stores x 120 days
    sets = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr",
            "data.horizon=14", "data.val_steps=7", "data.window=7",
            "train.max_steps_per_epoch=2", "train.progress=off", "train.threads=1"]  # fmt: skip
    argv = ["train", "--task", "sales", "--model", "gru", "--data", str(path), "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "runs"), *(f"--set={s}" for s in sets)]) == 0
    run = Path(capsys.readouterr().out.splitlines()[-1])
    info = json.loads((run / "data.json").read_text())
    assert info["resolved_config"]["season"] == 7 and info["step_days"] == 1
    assert info["test_last_date"] == "2016-04-29"
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["test_wmae_by_step"]) == 14 and m["baseline_seasonal_naive_rows"] == 3 * 14
    assert main(["predict", str(run)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 * 14 and rows[0]["date"] == "2016-04-30" and rows[13]["step"] == 14


def _with_means(hist: Path, fz: object, out: Path) -> Path:
    """``hist`` with every covariate of the featurizer at its training mean, written to out."""
    means = dict(zip(fz.covariates, fz.cov_mean, strict=True))
    pd.read_csv(hist).assign(**means).to_csv(out, index=False)
    return out


def test_predict_from_a_history_without_the_runs_covariates_reads_their_means(
    panel_dir: Path, tmp_path: Path, capsys
) -> None:
    # The same at every horizon (H = 1 in test_explain): a history of sales alone reads each
    # covariate as its training mean, and a note names them.
    cfg = _cfg(panel_dir)
    data, task, model = _untrained(cfg)
    covs = data.fitted.featurizer.covariates
    assert covs  # the Walmart-shaped panel's features and stores tables
    hist = tmp_path / "history.csv"  # train.csv's columns alone, no tables beside it
    pd.read_csv(panel_dir / "train.csv").to_csv(hist, index=False)
    rows = task.predict(model, [str(hist)])
    note = capsys.readouterr().err
    assert f"{hist}: no column(s) {', '.join(covs)}: read as their training means" in note
    H = data.fitted.featurizer.horizon
    assert len(rows) == 6 * H and all(np.isfinite(r["forecast"]) for r in rows)
    # The means are what the forecast read: a history holding them forecasts the same.
    full = _with_means(hist, data.fitted.featurizer, tmp_path / "with_means.csv")
    same = task.predict(model, [str(full)])
    assert [r["forecast"] for r in same] == pytest.approx([r["forecast"] for r in rows])
    # Covariates declared known (the run's features table ends with the sales): the forecast
    # steps read the training means too, instead of failing on the table's missing dates.
    cfg = _cfg(panel_dir, "data.known_covariates=Temperature,Size")
    data, task, model = _untrained(cfg)
    with pytest.raises(ArchlabError, match="'Temperature' has no value"):
        task.predict(model, [])
    rows = task.predict(model, [str(hist)])
    assert len(rows) == 6 * H and all(np.isfinite(r["forecast"]) for r in rows)
    full = pd.read_csv(_with_means(hist, data.fitted.featurizer, tmp_path / "with_means.csv"))
    future = full[full.Date == full.Date.max()].drop(columns="Weekly_Sales")
    steps = [future.assign(Date=f"{pd.Timestamp(full.Date.max()) + pd.Timedelta(weeks=k):%Y-%m-%d}")
             for k in range(1, H + 1)]  # fmt: skip
    pd.concat(steps).to_csv(tmp_path / "rows.csv", index=False)
    same = task.predict(model, [str(tmp_path / "with_means.csv"), str(tmp_path / "rows.csv")])

    def by_key(out: list[dict]) -> dict:
        return {(r["Store"], r["Dept"], r["Date"]): r["forecast"] for r in out}

    assert len(same) == len(rows) and by_key(same) == pytest.approx(by_key(rows))


# --- H = 1: an origin per step, the next-step samples ---
def _sorted_sales(b: object, horizon: bool) -> np.ndarray:
    from archlab.tasks.sales_common import SalesTargets

    *_, t = b.fetch(torch.arange(len(b)), None)
    y = SalesTargets.unpack(t.double().numpy(), horizon=horizon).sales()
    return np.sort(y.reshape(len(b)))


def test_rolling_origins_score_the_next_step_test_rows(panel_dir: Path) -> None:
    # 70 weeks, season 13: the last 8 steps test, each forecast from the step before it.
    # Series (2, 3) lacks weeks 55 and 64: test step 64 has no actual, 65 no last step and 68
    # no step a season back, so none of the three is scored.
    train = pd.read_csv(panel_dir / "train.csv")
    week = (pd.to_datetime(train.Date) - pd.Timestamp("2010-02-05")).dt.days // 7
    train = train[~(week.isin([55, 64]) & (train.Store == 2) & (train.Dept == 3))]
    train.to_csv(panel_dir / "train.csv", index=False)
    sets = ["data.test_steps=8", "data.val_steps=4", "data.window=4", "data.season=13"]
    cfg = apply_overrides(PRESETS["sales-gru-smoke"], [f"data.path={panel_dir}", *sets])
    hz = HorizonData(cfg).build(CPU)
    # The next-step samples by hand: every (series, week) with an actual, last week's and the
    # week a season back; test = weeks 62..69, validation 58..61, training the weeks before.
    y = train.assign(week=week).pivot_table("Weekly_Sales", ["Store", "Dept"], "week")
    want: dict[str, list] = {"train": [], "val": [], "test": []}
    for (store, dept), row in y.iterrows():
        for t in range(13, 70):
            if all(t - lag in row.index and np.isfinite(row.get(t - lag, np.nan))
                   for lag in (0, 1, 13)):  # fmt: skip
                part = "test" if t >= 62 else "val" if t >= 58 else "train"
                want[part].append((store, dept, t, row[t], row[t - 1], row[t - 13]))
    keys = ["Store", "Dept", "Date"]
    rows = hz.context.rows.sort_values(keys).reset_index(drop=True)
    assert len(rows) == len(want["test"]) == 6 * 8 - 3
    exp = pd.DataFrame(want["test"], columns=["Store", "Dept", "t", "actual", "last", "seas"])
    np.testing.assert_array_equal(rows.Store, exp.Store)
    np.testing.assert_array_equal(rows.Dept, exp.Dept)
    dates = np.datetime64("2010-02-05") + exp.t.to_numpy() * np.timedelta64(7, "D")
    np.testing.assert_array_equal(rows.Date.to_numpy().astype("datetime64[D]"), dates)
    for col, name in (("actual", "actual"), ("seasonal_naive", "seas"), ("last_step", "last")):
        np.testing.assert_allclose(rows[col], exp[name])
    np.testing.assert_allclose(rows["mean"], (exp["last"] + exp.seas) / 2)
    assert (rows.step == 1).all() and (rows.origin == 0).all()
    # The same samples in every split (their actuals, so the same (series, step) pairs).
    for part in ("train", "val", "test"):
        got = _sorted_sales(getattr(hz, part), True)
        np.testing.assert_allclose(got, np.sort([w[3] for w in want[part]]), rtol=1e-5)
    assert hz.fitted.featurizer.level_steps == 0 and hz.fitted.featurizer.horizon == 1


def test_predict_says_which_series_have_no_value_on_the_last_date(
    panel_dir: Path, tmp_path: Path, capsys
) -> None:
    data, task, model = _untrained(_cfg(panel_dir))
    df = pd.read_csv(panel_dir / "train.csv")
    last = df.Date.max()
    hist = tmp_path / "history.csv"
    df[~((df.Store == 1) & (df.Dept == 2) & (df.Date >= "2011-01-01"))].to_csv(hist, index=False)
    rows = task.predict(model, [str(hist)])
    err = capsys.readouterr().err
    assert (
        f"{hist}: 1 of 6 series have no value on the last date, {last} (e.g. 1, 2, last on " in err
    )
    assert len(rows) == 6 * data.fitted.featurizer.horizon  # forecast all the same, as no sales
    task.predict(model, [str(panel_dir / "train.csv")])
    assert "no value on the last date" not in capsys.readouterr().err
