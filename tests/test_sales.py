"""Sales forecasting: loading/merging, bad inputs, windows, split leakage, WMAE, train/predict."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import runner
from archlab.ablate import run_ablation
from archlab.config import RunConfig, apply_overrides
from archlab.data import sales, sales_baselines, sales_csv
from archlab.data.sales_horizon import STEP_FEATURES, HorizonFeaturizer
from archlab.errors import ArchlabError
from archlab.metrics import wmae
from archlab.models import MODELS
from archlab.presets import PRESETS
from archlab.task_configs import SalesDataConfig
from archlab.tasks import TASKS, DataBundle
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import HorizonFitted
from tests.conftest import DATA_DIR, needs_shared
from tests.helpers import N_WEEKS, sales_smoke, write_daily_panel, write_panel

WALMART = DATA_DIR / "walmart"


def small_cfg(root: Path, **kw: object) -> SalesDataConfig:
    return SalesDataConfig(path=str(root), test_steps=8, val_steps=4, **kw)


def build(cfg: RunConfig) -> DataBundle:
    """The bundle a run trains on: TASKS["sales"] picks the framing's data from the config."""
    return TASKS["sales"].data(cfg).build(torch.device("cpu"))


def featurizer(window: int = 8, **kw: object) -> HorizonFeaturizer:
    """A next-step featurizer of two series (store 1, depts 1 and 2) fitted by hand."""
    fields = dict(series_keys=("Store", "Dept"), series=((1, 1), (1, 2)), offset=(0.0, 0.0),
                  scale=(1.0, 1.0), key_vocab=((1,), (1, 2)), covariates=(),
                  known_covariates=(), cov_mean=(), cov_std=(), step_days=7, season=52,
                  window=window, horizon=1, events=(), min_scale=1.0, residual="mean")  # fmt: skip
    return HorizonFeaturizer(**{**fields, **kw})


@pytest.fixture
def panel_dir(tmp_path: Path) -> Path:
    return write_panel(tmp_path / "walmart")


# --- loading and merging ---
def test_merge_rows_columns_and_missing_values(panel_dir: Path) -> None:
    df = sales.load_sales(small_cfg(panel_dir, missing_indicators=True))
    assert len(df) == 2 * 3 * N_WEEKS - 1
    for col in ["Type", "Size", "Temperature", "CPI", "Year", "Month", "Week", "MarkDown1"]:
        assert col in df.columns
    md = [f"MarkDown{i}" for i in range(1, 6)]
    assert not df[md].isna().any().any()  # NA -> 0
    assert (df.loc[df.Date < "2010-09-03", "MarkDown1"] == 0).all()
    assert df["MarkDown2_missing"].eq(1).all() and df["MarkDown1_missing"].isin([0, 1]).all()
    # CPI gaps are forward-filled per store: weeks 5 and 6 carry week 4's value.
    s1 = df[(df.Store == 1) & (df.Dept == 1)].set_index("Date")
    assert s1.CPI.iloc[5] == s1.CPI.iloc[6] == s1.CPI.iloc[4]
    assert df.Date.dtype.kind == "M" and df.IsHoliday.dtype == bool


def test_gz_train_file_is_found(panel_dir: Path) -> None:
    raw = (panel_dir / "train.csv").read_bytes()
    (panel_dir / "train.csv").unlink()
    (panel_dir / "train.csv.gz").write_bytes(gzip.compress(raw))
    assert len(sales.load_sales(small_cfg(panel_dir))) == 2 * 3 * N_WEEKS - 1


@needs_shared(WALMART)
def test_real_merge_has_421570_rows() -> None:
    df = sales.load_sales(SalesDataConfig(path=str(WALMART)))
    assert len(df) == 421_570
    assert df[["Type", "Size", "CPI", "Unemployment"]].notna().all().all()
    assert (df.Weekly_Sales < 0).sum() == 1285  # returns are kept


# --- bad inputs: one-line errors naming the file, column and value ---
def test_missing_column_is_named(panel_dir: Path) -> None:
    df = pd.read_csv(panel_dir / "train.csv").rename(columns={"Weekly_Sales": "Sales"})
    df.to_csv(panel_dir / "train.csv", index=False)
    with pytest.raises(ArchlabError, match=r"train.csv: missing column\(s\) \['Weekly_Sales'\]"):
        sales.load_sales(small_cfg(panel_dir))


def test_unparseable_date_shows_value_and_line(panel_dir: Path) -> None:
    df = pd.read_csv(panel_dir / "train.csv")
    df.loc[3, "Date"] = "05/03/2010"
    df.to_csv(panel_dir / "train.csv", index=False)
    with pytest.raises(ArchlabError, match=r"unparseable date '05/03/2010'.*line 5"):
        sales.load_sales(small_cfg(panel_dir))


def test_other_date_format_by_flag(panel_dir: Path) -> None:
    for name in ("train.csv", "features.csv"):
        df = pd.read_csv(panel_dir / name)
        df["Date"] = pd.to_datetime(df.Date).dt.strftime("%d-%m-%Y")
        df.to_csv(panel_dir / name, index=False)
    assert len(sales.load_sales(small_cfg(panel_dir, date_format="%d-%m-%Y"))) > 0


def test_times_of_day_are_dropped_where_each_series_has_a_row_a_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Weekly rows stamped with a load time that differs between stores are one weekly step.
    days = pd.date_range("2011-01-07", periods=20, freq="7D")
    stamp = {1: pd.Timedelta(0), 2: pd.Timedelta("09:30:00"), 3: pd.Timedelta("10:05:00")}
    rows = pd.DataFrame([(k, d + stamp[k], 10.0 * k) for k in stamp for d in days],
                        columns=["store", "date", "sales"])  # fmt: skip
    path = tmp_path / "timed.csv"
    rows.to_csv(path, index=False)
    c = SalesDataConfig(path=str(path), target="sales", date_column="date", series_keys=("store",))
    df = sales.load_sales(c)
    assert set(df.date) == set(days)
    assert any("times of day in column 'date' dropped" in n and "line 22: 2011-01-07 09:30:00 "
               "read as 2011-01-07" in n for n in df.attrs["read"]["file_notes"])  # fmt: skip
    # Two rows of a store on one day are data of steps shorter than a day: refused, as before.
    rows.loc[len(rows)] = (2, days[0] + pd.Timedelta("15:00:00"), 1.0)
    rows.to_csv(path, index=False)
    from archlab.cli import main

    sets = ["data.target=sales", "data.date_column=date", "data.series_keys=store"]
    argv = ["train", "--task", "sales", "--data", str(path), "--out", str(tmp_path / "r")]
    assert main([*argv, *(f"--set={kv}" for kv in sets)]) == 2
    assert "dates less than a day apart" in capsys.readouterr().err


def test_not_a_csv(panel_dir: Path) -> None:
    (panel_dir / "stores.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    with pytest.raises(ArchlabError, match=r"stores.csv: not a CSV"):
        sales.load_sales(small_cfg(panel_dir))


def test_duplicate_keys(panel_dir: Path) -> None:
    df = pd.read_csv(panel_dir / "train.csv")
    pd.concat([df, df.iloc[[7]]]).to_csv(panel_dir / "train.csv", index=False)
    with pytest.raises(ArchlabError, match=r"duplicate \(Store, Dept, Date\) key \(1, 1, "):
        sales.load_sales(small_cfg(panel_dir))


def test_short_series_are_dropped_and_counted(panel_dir: Path) -> None:
    df = pd.read_csv(panel_dir / "train.csv")
    extra = df[(df.Store == 1) & (df.Dept == 1)].tail(5).assign(Dept=99)  # test weeks only
    pd.concat([df, extra]).to_csv(panel_dir / "train.csv", index=False)
    cfg = replace(PRESETS["sales-rnn"], data=small_cfg(panel_dir, require_lags=(1,)))
    data = build(cfg)
    assert data.info["series_without_training_steps"] == 1
    assert data.info["rows_without_training_steps"] == 5


def test_every_series_too_short_is_an_error(panel_dir: Path) -> None:
    cfg = replace(PRESETS["sales-rnn"], data=small_cfg(panel_dir, require_lags=(200,)))
    with pytest.raises(ArchlabError, match=r"no sample left.*required lags \[200\]"):
        build(cfg)


def test_bad_config_values() -> None:
    with pytest.raises(ArchlabError, match=r"data.window=0"):
        SalesDataConfig(window=0)
    with pytest.raises(ArchlabError, match=r"unknown sales model"):
        apply_overrides(PRESETS["sales-rnn"], ["model.name=vgg13"])


# --- windows, split, scalers ---
def test_next_step_windows_pad_before_the_start_and_mask_the_target() -> None:
    rng = np.random.default_rng(0)
    fz = featurizer(window=3, covariates=("CPI",), cov_mean=(0.0,), cov_std=(1.0,))
    names = fz.feature_names
    step = torch.from_numpy(rng.normal(size=(2, 12, len(STEP_FEATURES) + 1)).astype(np.float32))
    ref = torch.from_numpy(rng.normal(size=(2, 12, 8)).astype(np.float32))
    x, base = fz.windows(step, ref, torch.tensor([1, 0]), torch.tensor([0, 7]))
    assert x.shape == (2, 3 + 1, len(names)) and base.shape == (2, 1)
    # Origin 0: the two window steps before the panel starts are zeros, then step 0 itself.
    assert x[0, :2].abs().sum() == 0
    assert torch.equal(x[0, 2, : len(STEP_FEATURES) + 1], step[1, 0])
    # The step forecast: its sales, observed flag and CPI (not known in advance) are zeros;
    # the calendar is kept and it is flagged as a future step.
    target = x[1, 3]
    assert all(target[names.index(n)] == 0 for n in ("sales", "observed", "CPI"))
    hol = STEP_FEATURES.index("holiday")
    assert target[names.index("holiday")] == step[0, 8, hol] and target[names.index("future")] == 1
    # data.residual=mean with no step a season back: the base is the last step alone (if seen).
    last = step[0, 7, 0] if step[0, 7, 1] > 0.5 else 0.0
    assert base[1, 0].item() == pytest.approx(float(last))


def test_task_windows_hold_lags_and_mask_the_target(panel_dir: Path) -> None:
    cfg = replace(PRESETS["sales-rnn"], data=small_cfg(panel_dir, window=3))
    data = build(cfg)
    names = data.fitted.featurizer.feature_names
    x, _, _, y = data.test.fetch(torch.arange(len(data.test)), None)
    assert x.shape[1] == 3 + 1  # the window up to the origin, then the step forecast
    df = sales.load_sales(small_cfg(panel_dir))
    key = df.Store * 100 + df.Dept
    tr = df[df.Date < df.Date.unique()[-12]]
    mean, std = tr.groupby(key).Weekly_Sales.mean(), tr.groupby(key).Weekly_Sales.std(ddof=0)
    # Slow reference for the first test sample: scaled sales of the 3 previous weeks.
    rows = data.context.rows
    s, d, date = int(rows.Store[0]), int(rows.Dept[0]), rows.Date[0]
    series = df[(df.Store == s) & (df.Dept == d)].set_index("Date").Weekly_Sales
    k = s * 100 + d
    for j, lag in enumerate((3, 2, 1)):
        expect = (series[date - pd.Timedelta(weeks=lag)] - mean[k]) / std[k]
        assert x[0, j, names.index("sales")].item() == pytest.approx(expect, rel=1e-4)
    # The target stays unknown.
    assert x[0, -1, names.index("sales")] == 0 and x[0, -1, names.index("future")] == 1
    last_year = (series[date - pd.Timedelta(weeks=52)] - mean[k]) / std[k]
    assert x[0, -1, names.index("ref_sales")].item() == pytest.approx(last_year, rel=1e-4)
    assert y[0, 0, 0].item() == pytest.approx((series[date] - mean[k]) / std[k], rel=1e-4)


def test_time_split_has_no_leakage(panel_dir: Path) -> None:
    cfg = replace(PRESETS["sales-rnn"], data=small_cfg(panel_dir))
    data = build(cfg)
    df = sales.load_sales(small_cfg(panel_dir))
    dates = {k: df.Date.iloc[v] for k, v in data.splits.items()}
    assert dates["train"].max() < dates["val"].min() <= dates["val"].max() < dates["test"].min()
    assert dates["test"].nunique() == 8 and dates["val"].nunique() == 4
    # Scalers use training weeks only: changing a test-week value leaves them unchanged.
    df2 = pd.read_csv(panel_dir / "train.csv")
    df2.loc[df2.Date == df2.Date.max(), "Weekly_Sales"] *= 100
    df2.to_csv(panel_dir / "train.csv", index=False)
    data2 = build(cfg)
    assert data2.fitted.featurizer.offset == data.fitted.featurizer.offset
    assert data2.fitted.featurizer.scale == data.fitted.featurizer.scale


def test_next_step_baselines_by_hand() -> None:
    """last_step and mean at each origin, forecasting H = 1: NaN where a source step has no row
    or precedes the panel."""
    rng = np.random.default_rng(0)
    y = rng.normal(100, 10, (3, 12))
    y[0, 4] = y[2, 1] = np.nan
    for o in range(11):
        got = sales_baselines.next_step_baselines(y, o, 1, 4)
        np.testing.assert_array_equal(got["last_step"][:, 0], y[:, o])
        seas = y[:, o + 1 - 4] if o + 1 >= 4 else np.full(3, np.nan)
        np.testing.assert_array_equal(got["mean"][:, 0], (y[:, o] + seas) / 2)


def test_series_scalers_ignore_later_steps() -> None:
    y = np.array([[1.0, 3.0, np.nan, 100.0], [np.nan, np.nan, np.nan, 5.0]])
    off, sc, n = sales.series_scalers(y, 3, 1.0)
    assert off[0] == 2.0 and sc[0] == 1.0 and n.tolist() == [2, 0] and np.isnan(off[1])


def test_monthly_panel_is_indexed_by_calendar_month() -> None:
    # Month ends 28-31 days apart (leap and plain Februaries), one missing month: a step each.
    dates = pd.date_range("2020-01-31", periods=14, freq="ME")
    rows = [("A", d, float(i)) for i, d in enumerate(dates)]
    rows += [("B", d, 100.0 + i) for i, d in enumerate(dates) if i != 5]
    df = pd.DataFrame(rows, columns=["Symbol", "Date", "Close"])
    step = sales.infer_step_days(df["Date"].to_numpy())
    assert step == 30  # a month (its 28-day February gap is no 4-week step)
    p = sales.build_panel(df, ["Symbol"], "Date", "Close", "", [], step)
    assert p.y.shape == (2, 14)
    np.testing.assert_array_equal(p.y[0], np.arange(14.0))  # no gaps, no month counted twice
    assert np.isnan(p.y[1, 5]) and np.isnan(p.y[1]).sum() == 1
    # Steps dated as the data are: month ends stay month ends (leap Februaries too) ...
    assert [str(d)[:10] for d in p.dates[[0, 1, -1]]] == ["2020-01-31", "2020-02-29", "2021-02-28"]
    # ... as do month starts and mid-month dates; an event flags its calendar month.
    for day, want in (("01", "2021-02-01"), ("15", "2021-02-15")):
        shifted = df.assign(Date=df.Date.dt.strftime(f"%Y-%m-{day}").astype("datetime64[ns]"))
        q = sales.build_panel(shifted, ["Symbol"], "Date", "Close", "", [], step)
        assert str(q.dates[-1])[:10] == want
        np.testing.assert_array_equal(q.y, p.y, strict=True)
    flags = sales.event_flags(p.dates, ["2020-02-10", "2020-12-31"], step)
    assert np.flatnonzero(flags).tolist() == [1, 11]
    # Two rows of one series in the same month are an error, not a silent overwrite.
    extra = pd.DataFrame([("A", pd.Timestamp("2020-03-15"), 9.0)], columns=df.columns)
    with pytest.raises(ArchlabError, match="same calendar month"):
        sales.build_panel(pd.concat([df, extra]), ["Symbol"], "Date", "Close", "", [], step)


# --- metrics ---
def test_event_flags_mark_the_step_holding_the_date() -> None:
    weeks = np.array(["2012-03-30", "2012-04-06", "2012-04-13"], dtype="datetime64[ns]")
    assert sales.event_flags(weeks, ("2012-04-08",), 7).tolist() == [0, 1, 0]
    assert sales.event_flags(weeks, ("2012-04-13", "2011-04-24"), 7).tolist() == [0, 0, 1]
    assert sales.event_flags(weeks, (), 7).tolist() == [0, 0, 0]
    months = np.array(["2012-01-01", "2012-02-01"], dtype="datetime64[D]")
    assert sales.event_flags(months, ("2012-01-31",), 31).tolist() == [1, 0]
    # Quarters: from a first day on (fiscal quarters), up to a last day, and dated mid-quarter
    # (15 February) the calendar quarter they fall in.
    ev = ("2012-01-10", "2012-05-14")
    for dates, want in ((["2011-11-01", "2012-02-01", "2012-05-01"], [1, 0, 1]),
                        (["2011-12-31", "2012-03-31", "2012-06-30"], [0, 1, 1]),
                        (["2011-11-15", "2012-02-15", "2012-05-15"], [0, 1, 1])):  # fmt: skip
        quarters = np.array(dates, dtype="datetime64[D]")
        assert sales.event_flags(quarters, ev, 91).tolist() == want, dates


def test_events_add_a_flag_and_last_years_flag(panel_dir: Path) -> None:
    def steps(**kw: object) -> tuple[np.ndarray, dict]:
        cfg = replace(PRESETS["sales-rnn"], data=small_cfg(panel_dir, **kw))
        data = build(cfg)
        x, *_ = data.test.fetch(torch.arange(len(data.test)), None)  # the weeks around 2011-04-22
        return x.numpy(), data.info

    plain, _ = steps()
    with_ev, info = steps(events=("2010-04-04", "2011-04-24"))
    names = list(info["feature_names"])
    ev = [names.index("event"), names.index("ref_event")]  # the step's flag, last season's
    rest = [i for i in range(len(names)) if i not in ev]
    assert with_ev.shape == plain.shape and not plain[..., ev].any()
    assert np.array_equal(with_ev[..., rest], plain[..., rest])  # the other inputs unchanged
    assert with_ev[..., ev[0]].any() and with_ev[..., ev[1]].any()
    assert info["event_steps"] == ["2010-04-02", "2011-04-22"]  # weeks dated 2010-02-05 + 7k
    with pytest.raises(ArchlabError, match=r"data\.events: '2011-02-30'"):
        SalesDataConfig(events=("2011-02-30",))


def test_wmae_matches_a_hand_computation() -> None:
    y = np.array([10.0, 20.0, 30.0])
    p = np.array([12.0, 17.0, 30.0])
    # (1*2 + 5*3 + 1*0) / (1 + 5 + 1) = 17/7
    assert wmae(y, p, np.array([False, True, False])) == pytest.approx(17 / 7)


def test_task_metrics_on_the_sales_scale() -> None:
    cfg = PRESETS["sales-rnn"]
    fitted = HorizonFitted(featurizer(), {}, global_mean=0.0, global_std=10.0)
    task = HorizonForecast(cfg, fitted)
    # (scaled, scale, offset, holiday, observed, origin) of one step each
    targets = torch.tensor([[[1.0, 10.0, 5.0, 0.0, 1.0, 0.0]], [[0.0, 2.0, 1.0, 1.0, 1.0, 0.0]]])
    out = torch.tensor([[1.5], [-1.0]])  # sales 20 vs 15, and -1 vs 1 (holiday)
    m = task.metrics(out, targets)
    assert m["wmae"] == pytest.approx((5 + 5 * 2) / 6)
    assert m["mae"] == pytest.approx(3.5)
    assert m["rmse_std"] == pytest.approx(m["rmse"] / 10)
    loss = task.loss(out, targets)  # scale-weighted L1: (10*0.5 + 5*2*1) / (10 + 10)
    assert loss.item() == pytest.approx(15 / 20)


def test_rnn_parameter_count_matches_the_study() -> None:
    model = MODELS["rnn"].build(input_size=156)
    assert sum(p.numel() for p in model.parameters()) == 20_651
    for name in ("rnn", "lstm", "gru"):
        m = MODELS[name].build(input_size=7, embeddings=(4, 5), embed_dim=3, dropout=0.2)
        out = m(torch.randn(6, 4, 7), torch.zeros(6, 2, dtype=torch.long))
        assert out.shape == (6,) and torch.isfinite(out).all()
        out.sum().backward()


@pytest.mark.parametrize("events", ["", "data.events=2010-04-04,2011-04-24"])
def test_train_predict_and_baselines(panel_dir: Path, tmp_path: Path, events: str) -> None:
    cfg = sales_smoke(panel_dir, "sales-rnn-smoke", *([events] if events else []))
    run_dir = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run_dir / "metrics.json").read_text())
    for k in ("test_wmae", "test_mae", "test_rmse", "test_r2", "test_rmse_std", "test_r2_std"):
        assert np.isfinite(m[k])
    for b in ("last_step", "seasonal_naive", "mean"):
        assert m[f"baseline_{b}_wmae"] > 0
    for k in ("wmae", "mae", "rmse", "r2"):  # the old names stay, as aliases
        assert m[f"baseline_last_week_{k}"] == m[f"baseline_last_step_{k}"]
    for f in ("actual_vs_forecast.png", "residuals.png", "learning_curves.png"):
        assert (run_dir / "plots" / f).stat().st_size > 0
    fitted = json.loads((run_dir / "fitted.json").read_text())
    assert fitted["kind"] == "sales-horizon" and fitted["featurizer"]["horizon"] == 1
    _, task, model = runner.restore_task(run_dir)
    hist = pd.read_csv(panel_dir / "train.csv")
    hist = hist[hist.Store == 2]
    hist.to_csv(tmp_path / "history.csv", index=False)
    rows = task.predict(model, [str(tmp_path / "history.csv")])
    assert len(rows) == 3 and {r["Dept"] for r in rows} == {1, 2, 3}
    last = pd.to_datetime(hist.Date).max() + pd.Timedelta(weeks=1)
    assert all(r["Date"] == f"{last:%Y-%m-%d}" and np.isfinite(r["forecast"]) for r in rows)


def test_parity_framing_trains(panel_dir: Path, tmp_path: Path) -> None:
    cfg = sales_smoke(panel_dir, "sales-rnn-parity-smoke")
    run_dir = runner.train(cfg, tmp_path / "runs")
    m = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "data.json").read_text())
    assert info["framing"] == "parity" and sum(info["split_sizes"].values()) == info["n_rows"]
    assert np.isfinite(m["test_r2_std"])


def test_eda_writes_five_pngs(panel_dir: Path, tmp_path: Path) -> None:
    from archlab.cli import main

    assert main(["eda", "--task", "sales", "--data", str(panel_dir), "--out", str(tmp_path)]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 5 and all(p.stat().st_size > 1000 for p in pngs)


def test_eda_names_the_plots_a_daily_panel_has_no_column_for(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    path = write_daily_panel(tmp_path / "transactions.csv")
    flags = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]
    argv = ["eda", "--task", "sales", "--data", str(path), "--out", str(tmp_path / "eda")]
    assert main([*argv, *(f"--set={kv}" for kv in flags)]) == 0
    out, err = capsys.readouterr()
    assert sorted(Path(p).name for p in out.splitlines()[:-1]) == [
        "features_over_time.png", "sales_distribution.png"]  # fmt: skip
    lines = err.splitlines()
    for name, what in [("sales_by_store_type", "column 'Type'"),
                       ("sales_holiday", "holiday column"),
                       ("sales_vs_unemployment", "column 'Unemployment'")]:  # fmt: skip
        assert f"archlab: eda: left out {name}.png (no {what})" in lines


def test_ablation_two_techniques(panel_dir: Path, tmp_path: Path) -> None:
    cfg = sales_smoke(panel_dir)
    out = run_ablation(cfg, ["baseline", "dropout"], 1, tmp_path / "abl")
    table = (out / "ablation.md").read_text()
    assert "dropout" in table and "test WMAE" in table


@needs_shared(WALMART)
def test_real_baselines_match_the_issue() -> None:
    cfg = PRESETS["sales-rnn"]
    data = build(replace(cfg, data=replace(cfg.data, path=str(WALMART))))
    assert data.info["split_first_date"]["test"] == "2012-02-03"
    assert data.info["split_last_date"]["test"] == "2012-10-26"
    # Each naive forecast on the rows the network is scored on (every test week of a series
    # with last week's and last year's sales): the next-step framing's numbers.
    rows = data.context.rows
    got = {
        b: wmae(rows.actual, rows[b], rows.holiday) for b in ("last_step", "seasonal_naive", "mean")
    }
    assert len(rows) == data.info["split_sizes"]["test"]
    assert {b: round(v) for b, v in got.items()} == {
        "last_step": 1789,
        "seasonal_naive": 1852,
        "mean": 1469,
    }


# --- one CSV file, optional tables, inferred date formats ---
def _batches(data) -> list[np.ndarray]:
    return [t.numpy() for part in (data.train, data.val, data.test)
            for t in part.fetch(torch.arange(len(part)), None)]  # fmt: skip


def _same_data(a, b) -> None:
    strip = ("input", "resolved_config", "source")
    assert {k: v for k, v in a.info.items() if k not in strip} == {
        k: v for k, v in b.info.items() if k not in strip
    }
    assert a.splits == b.splits
    for x, y in zip(_batches(a), _batches(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_single_file_gives_the_folders_data(panel_dir: Path, tmp_path: Path) -> None:
    # A folder and its train.csv given directly (tables beside it are found): the same data.
    folder = sales.load_sales(small_cfg(panel_dir))
    file = sales.load_sales(small_cfg(panel_dir / "train.csv"))
    pd.testing.assert_frame_equal(folder, file)
    # A bare panel: the folder with only train.csv, tables switched off by hand, against the
    # file alone with every default (the tables, holiday flag and covariates are absent).
    bare = tmp_path / "bare"
    bare.mkdir()
    df = pd.read_csv(panel_dir / "train.csv").drop(columns="IsHoliday")
    df.to_csv(bare / "train.csv", index=False)
    by_hand = ["data.features_file=", "data.stores_file=", "data.covariates=",
               "data.holiday_column="]  # fmt: skip
    a = build(apply_overrides(sales_smoke(bare, "sales-rnn"), by_hand))
    b = build(sales_smoke(bare / "train.csv", "sales-rnn"))
    _same_data(a, b)
    assert a.info["input"] == "folder" and b.info["input"] == "file"
    assert b.info["resolved_config"]["features_file"] == ""
    assert b.info["resolved_config"]["holiday_column"] == ""
    assert "date_format" not in b.info["resolved_config"]  # ISO, the default, read them all
    assert b.info["resolved_config"]["season"] == 52  # weekly
    assert any("no features table" in n and "no holiday column" in n for n in b.notes)


def test_explicit_tables_and_columns_must_exist(panel_dir: Path) -> None:
    (panel_dir / "features.csv").rename(panel_dir / "feats.csv")
    sales.load_sales(small_cfg(panel_dir, covariates=("Size",)))  # the default name: optional
    with pytest.raises(ArchlabError, match=r"weather.csv: no such file"):
        sales.load_sales(small_cfg(panel_dir, features_file="weather.csv"))
    with pytest.raises(ArchlabError, match=r"missing column\(s\) \['Promo'\].*holiday_column"):
        sales.load_sales(small_cfg(panel_dir, holiday_column="Promo"))
    with pytest.raises(ArchlabError, match=r"covariate column\(s\) \['Temperature'\]"):
        sales.load_sales(small_cfg(panel_dir, covariates=("Temperature",)))


@pytest.mark.parametrize(
    ("fmt", "values"),
    [
        ("%Y-%m-%d", ["2015-01-02", "2015-01-13"]),
        ("%d/%m/%Y", ["02/01/2015", "13/01/2015"]),
        ("%m/%d/%Y", ["01/02/2015", "01/13/2015"]),
        ("%d.%m.%Y", ["02.01.2015", "13.01.2015"]),
        ("%Y%m%d", [20150102, 20150113]),
    ],
)
def test_date_format_is_inferred(fmt: str, values: list) -> None:
    df = pd.DataFrame({"d": values})
    assert sales_csv.infer_date_format(df, "d", Path("x.csv")) == fmt
    assert sales_csv.parse_dates(df, "d", "auto", Path("x.csv")) == fmt
    assert df.d.tolist() == [pd.Timestamp("2015-01-02"), pd.Timestamp("2015-01-13")]


def test_month_end_business_days_and_zero_padded_keys_at_predict(tmp_path: Path, capsys) -> None:
    # Months dated on their last business day (the 29th one month, the 31st the next): rows
    # to forecast anywhere in the month are that month; a spreadsheet that dropped the zeros
    # of the data's store 001 is warned, naming it.
    from archlab.cli import main

    dates = pd.date_range("2010-01-01", periods=48, freq="BME")
    df = pd.DataFrame([(k, f"{d:%Y-%m-%d}", 100.0 + i % 12) for k in ("001", "002")
                       for i, d in enumerate(dates)], columns=["shop", "day", "units"])  # fmt: skip
    df.to_csv(tmp_path / "m.csv", index=False)
    sets = ["data.target=units", "data.date_column=day", "data.series_keys=shop",
            "data.horizon=2", "data.peer=none", "train.threads=1"]  # fmt: skip
    argv = ["train", "--task", "sales", "--data", str(tmp_path / "m.csv"), "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "runs"), *(f"--set={x}" for x in sets)]) == 0
    run = capsys.readouterr().out.splitlines()[-1]
    rows = tmp_path / "rows.csv"
    rows.write_text("shop,day\n001,2014-01-31\n1,2014-02-28\n")
    assert main(["predict", run, "--file", str(rows), "--out", str(tmp_path / "s.csv")]) == 0
    assert pd.read_csv(tmp_path / "s.csv", dtype=str).Id.tolist() == [
        "001_2014-01-31", "1_2014-02-28"]  # fmt: skip
    assert "series 1 is not the run's, which has 001 (leading zeros lost" in (
        capsys.readouterr().err
    )


def test_a_runs_own_date_format_decides_its_later_files() -> None:
    # A run's format (inferred from its data, or set) is tried first: a short file of rows to
    # forecast, every day <= 12, reads as the data did; other formats are still inferred.
    def parse(values: list[str], fmt: str) -> str:
        return sales_csv.parse_dates(pd.DataFrame({"d": values}), "d", fmt, Path("f.csv"))

    ambiguous = ["11/02/2012", "11/09/2012"]
    assert parse(ambiguous, sales_csv.PREFER + "%m/%d/%Y") == "%m/%d/%Y"
    assert parse(ambiguous, sales_csv.PREFER + "%d/%m/%Y") == "%d/%m/%Y"
    assert parse(["2012-11-02"], sales_csv.PREFER + "%m/%d/%Y") == "%Y-%m-%d"
    assert parse(["2.11.12"], sales_csv.PREFER + "%d.%m.%y") == "%d.%m.%y"  # not a usual one
    with pytest.raises(ArchlabError, match=r"read both as.*; set data\.date_format="):
        parse(ambiguous, "auto")
    # A saved run's file (predict takes no --set): the fix is the file's dates.
    with pytest.raises(ArchlabError, match=r"write the dates as the run's data were \(%Y-%m-%d\) "
                       "or as YYYY-MM-DD$"):  # fmt: skip
        parse(ambiguous, sales_csv.PREFER + "%Y-%m-%d")


def test_ambiguous_day_month_order_is_refused() -> None:
    df = pd.DataFrame({"date": ["02/01/2015", "03/01/2015", "12/11/2015"]})
    with pytest.raises(
        ArchlabError,
        match=r"x.csv: dates in column 'date' read both as "
        r"'%d/%m/%Y' and '%m/%d/%Y' \(e.g. '02/01/2015'.*data.date_format=%d/%m/%Y",
    ):
        sales_csv.infer_date_format(df, "date", Path("x.csv"))  # fmt: skip


def test_daily_panel_from_one_file_with_three_flags(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    path = write_daily_panel(tmp_path / "transactions.csv")
    goal = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]
    tiny = ["train.max_steps_per_epoch=2", "train.progress=plain", "train.threads=1"]
    argv = ["train", "--task", "sales", "--data", str(path), "--epochs", "1"]
    rc = main([*argv, "--out", str(tmp_path / "runs"), *(f"--set={kv}" for kv in goal + tiny)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    run_dir = Path(out.splitlines()[-1])
    lines = err.splitlines()  # the run says where its config came from and what it read
    assert lines[0].startswith("config: data.path from --data; data.date_column, ")
    assert "train.epochs from --epochs; the rest: the task's defaults" in lines[0]
    first = lines[1]
    assert "transactions.csv (file), 3 series x 120 daily steps" in first
    assert "dates %d/%m/%Y (inferred)" in first and "no holiday column" in first
    info = json.loads((run_dir / "data.json").read_text())
    assert info["step_days"] == 1 and info["n_series"] == 3 and info["input"] == "file"
    res = info["resolved_config"]
    assert res["date_format"] == "%d/%m/%Y" and res["season"] == 7
    assert res["require_lags"] == [1, 7] and res["holiday_column"] == ""
    assert info["split_last_date"]["test"] == "2016-04-29"
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["baseline_last_step_wmae"] == m["baseline_last_week_wmae"] > 0
    # The weekly cycle: last week's same day beats yesterday on weekend-heavy sales.
    assert m["baseline_seasonal_naive_wmae"] < m["baseline_last_step_wmae"]
    _, task, model = runner.restore_task(run_dir)
    # A history as long as the window (56 days), day-first as trained; 10 days are too few.
    hist = pd.read_csv(path).groupby("store_nbr").tail(56)
    rows = task.predict(model, [str(_write(tmp_path / "h.csv", hist))])
    short = _write(tmp_path / "short.csv", hist.groupby("store_nbr").tail(10))
    with pytest.raises(ArchlabError, match=r"a history of 10 steps .* the run reads 56"):
        task.predict(model, [str(short)])
    assert {r["store_nbr"] for r in rows} == {1, 2, 3} and rows[0]["date"] == "2016-04-30"


def _write(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def test_auto_season_by_time_step() -> None:
    from archlab.data.sales_recipe import auto_season

    assert [auto_season(d) for d in (1, 7, 14, 30, 90, 181)] == [7, 52, 26, 12, 4, 2]


@pytest.mark.parametrize("freq", ["QS", "QE"])
def test_quarterly_panels_step_by_quarter(freq: str, tmp_path: Path, capsys) -> None:
    # Quarters (89-92 days apart) are steps of three calendar months, not months with two in
    # three missing: starts stay starts, ends stay ends, and an event flags its quarter.
    dates = pd.date_range("2015-01-01", periods=24, freq=freq)
    df = pd.DataFrame({"shop": 1, "day": dates, "units": 100.0 + np.arange(24) % 4})
    step = sales.infer_step_days(df.day.to_numpy())
    assert sales.months_per_step(step) == 3 and sales.step_adjective(step) == "quarterly"
    p = sales.build_panel(df, ["shop"], "day", "units", "", [], step, extra_steps=2)
    assert p.y.shape == (1, 26) and not np.isnan(p.y[0, :24]).any()
    after = pd.date_range(dates[-1], periods=3, freq=freq)[1:]
    assert [str(d)[:10] for d in p.dates[-2:]] == [str(d)[:10] for d in after]
    event = "2015-05-20"  # in the second quarter, whether dated 1 April or 30 June
    assert np.flatnonzero(sales.event_flags(p.dates, [event], step)).tolist() == [1]
    # End to end: a horizon of 4 quarters, forecast on the quarters after the last.
    from archlab.cli import main

    df.day = df.day.dt.strftime("%Y-%m-%d")
    df.to_csv(tmp_path / "q.csv", index=False)
    sets = ["data.target=units", "data.date_column=day", "data.series_keys=shop",
            "data.horizon=4", "train.threads=1", "data.peer=none"]  # fmt: skip
    argv = ["train", "--task", "sales", "--data", str(tmp_path / "q.csv"), "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "runs"), *(f"--set={s}" for s in sets)]) == 0
    out, err = capsys.readouterr()
    assert "1 series x 24 quarterly steps" in err and "season 4 steps" in err
    run = out.splitlines()[-1]
    assert main(["predict", run]) == 0
    got = [json.loads(line)["day"] for line in capsys.readouterr().out.splitlines()]
    assert got == [str(d)[:10] for d in pd.date_range(dates[-1], periods=5, freq=freq)[1:]]
    # A history of other steps (monthly) is refused, not read as a sparse quarterly panel.
    months = pd.date_range("2015-01-01", periods=30, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame({"shop": 1, "day": months, "units": 1.0}).to_csv(tmp_path / "m.csv", index=False)
    assert main(["predict", run, str(tmp_path / "m.csv")]) == 2
    assert "its steps are monthly (dates 28 day(s) apart) but the run was trained on quarterly" in (
        capsys.readouterr().err
    )
    # Yearly values: one line (no season within a step of a year).
    pd.DataFrame({"shop": 1, "day": pd.date_range("2000-01-01", periods=20, freq="YS"),
                  "units": 1.0}).to_csv(tmp_path / "y.csv", index=False)  # fmt: skip
    argv[4] = str(tmp_path / "y.csv")
    assert main([*argv, "--out", str(tmp_path / "runs"), *(f"--set={s}" for s in sets)]) == 2
    assert "steps longer than half a year are not supported" in capsys.readouterr().err


def test_one_step_error_by_date_weights_holidays_and_skips_missing_forecasts() -> None:
    from archlab.tasks.sales_horizon import wmae_by_date

    rows = pd.DataFrame({
        "Date": ["2012-01-06", "2012-01-06", "2012-01-13", "2012-01-13"],
        "actual": [10.0, 20.0, 30.0, 40.0],
        "holiday": [False, False, True, True],
        "forecast": [12.0, 16.0, 30.0, 50.0],
        "seasonal_naive": [np.nan, np.nan, 31.0, np.nan],
    })  # fmt: skip
    dates, curves = wmae_by_date(rows, "Date", {"model": "forecast", "sn": "seasonal_naive"})
    assert dates == ["2012-01-06", "2012-01-13"]
    assert curves["model"] == [3.0, 5.0]  # (2 + 4) / 2; (5·0 + 5·10) / 10
    assert np.isnan(curves["sn"][0]) and curves["sn"][1] == 1.0


def test_a_sales_csv_in_a_windows_encoding_is_read_and_said(tmp_path: Path) -> None:
    days = pd.date_range("2021-01-01", periods=30).strftime("%Y-%m-%d")
    rows = [f"{store},{d},{i % 7 + 10}" for store in ("Café Nord", "Zürich") for i, d in
            enumerate(days)]  # fmt: skip
    path = tmp_path / "shops.csv"
    path.write_bytes("\n".join(["store,date,sales", *rows]).encode("cp1252"))
    cfg = SalesDataConfig(path=str(path), series_keys=("store",), date_column="date",
                          target="sales", covariates=())  # fmt: skip
    df = sales.load_sales(cfg)
    assert set(df.store) == {"Café Nord", "Zürich"}
    notes = sales.reading_notes(df)
    assert any("is not UTF-8 (byte 0xe9 at offset" in n and "read as cp1252" in n for n in notes)
    with pytest.raises(ArchlabError, match=r"cannot decode as utf-8 \(byte 0xe9"):
        sales.load_sales(replace(cfg, encoding="utf-8"))
    gz = tmp_path / "shops.csv.gz"  # compressed: the same
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert set(sales.load_sales(replace(cfg, path=str(gz))).store) == {"Café Nord", "Zürich"}


@pytest.mark.parametrize(
    ("freq", "starts", "needle"),
    [
        ("7D", ("2020-01-05", "2020-01-06"), "at least 7 days apart, but dates 1 day(s) apart "
         "occur: shop A on 2020-01-05 (1 row on that date) and shop B on 2020-01-06 (1)"),
        ("MS", ("2020-01-01", "2020-01-15"), "at least 28 days apart, but dates 14 day(s) apart "
         "occur: shop A on 2020-01-01 (1 row on that date) and shop B on 2020-01-15 (1)"),
        # One mistyped date: the row named is that one, off the usual step's grid.
        ("typo", ("2020-01-06", "2020-01-06"), "dates 7 days apart are the usual step, but 1 of "
         "61 dates (1 row(s)) are off its grid (Mondays), e.g. shop B on 2020-03-04, a Wednesday: "
         "date each row on its step (here 2020-03-02)"),
    ],
    ids=["weekdays", "month-days", "typo"],
)  # fmt: skip
def test_series_on_offset_dates_are_one_line(
    tmp_path: Path, capsys, freq: str, starts: tuple[str, str], needle: str
) -> None:
    from archlab.cli import main

    rows = []
    for key, start in zip("AB", starts, strict=True):
        first = pd.Timestamp(start)
        for i in range(60):
            d = first + (pd.DateOffset(months=i) if freq == "MS" else pd.Timedelta(days=7 * i))
            if freq == "typo" and key == "B" and i == 8:
                d += pd.Timedelta(days=2)  # a Wednesday for the Monday
            rows.append(f"{key},{d:%Y-%m-%d},{100 + i % 9}")
    path = tmp_path / "p.csv"
    path.write_text("\n".join(["shop,day,sales", *rows]) + "\n")
    args = ["train", "--task", "sales", "--data", str(path), "--set", "data.target=sales",
            "--set", "data.date_column=day", "--set", "data.series_keys=shop",
            "--out", str(tmp_path / "runs")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and str(path) in err


def test_semicolon_and_tab_separated_sales_files_read_like_commas(tmp_path: Path) -> None:
    days = pd.date_range("2021-01-01", periods=30).strftime("%d.%m.%Y")
    rows = [(s, d, 10 + i % 7 + 0.5) for s in (1, 2) for i, d in enumerate(days)]
    cfg = SalesDataConfig(series_keys=("store",), date_column="date", target="sales",
                          covariates=())  # fmt: skip
    frames = []
    for name, sep, dec in (("c.csv", ",", "."), ("s.csv", ";", ","), ("t.tsv", "\t", ".")):
        lines = [sep.join(["store", "date", "sales"])]
        lines += [sep.join([str(s), d, f"{v}".replace(".", dec)]) for s, d, v in rows]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        frames.append(sales.load_sales(replace(cfg, path=str(tmp_path / name))))
    for df in frames[1:]:
        pd.testing.assert_frame_equal(df[["store", "date", "sales"]],
                                      frames[0][["store", "date", "sales"]])  # fmt: skip
    assert frames[0].sales.iloc[0] == 10.5


@pytest.mark.parametrize(
    ("cells", "expected", "grouped"),
    [
        (["906", "1.035", "1.234,5", "-2.000"], [906, 1035, 1234.5, -2000], True),  # 1.234 = 1234
        (["12,5", "7", ""], [12.5, 7, None], False),  # no dot: the decimal comma alone
        (["1.035", "12.5"], [1.035, 12.5], False),  # a dot decimal (12.5): dots are decimals
        (["0.125", "1.5"], [0.125, 1.5], False),  # 0.125 groups nothing
    ],
)
def test_semicolon_files_read_a_grouping_dot_as_thousands_and_say_so(
    tmp_path: Path, cells: list[str], expected: list[float | None], grouped: bool
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("store;sales\n" + "".join(f"{i};{c}\n" for i, c in enumerate(cells)))
    df = sales_csv.read_csv(path, ["store", "sales"])
    sales_csv.parse_number(df, "sales", path)
    np.testing.assert_allclose(df.sales.to_numpy(), np.array(expected, dtype=float))
    assert df.store.tolist() == list(range(len(cells)))  # keys untouched
    notes = df.attrs["notes"]
    assert bool(notes) == grouped
    assert not grouped or (str(path) in notes[0] and "['sales']" in notes[0])


def test_holiday_flags_read_as_spreadsheets_and_databases_write_them(tmp_path: Path) -> None:
    words = ["TRUE", "false", "1", "0", "yes", "No", "Y", "n", "t", "F", " True ", "1.0"]
    df = pd.DataFrame({"h": words})
    sales_csv.parse_bool(df, "h", tmp_path / "x.csv")
    assert df.h.tolist() == [True, False] * 5 + [True, True]
    with pytest.raises(ArchlabError, match=r"non-boolean value 'maybe' at line 3 \(write true"):
        sales_csv.parse_bool(pd.DataFrame({"h": ["yes", "maybe"]}), "h", tmp_path / "x.csv")


def _weekday_panel(tmp_path: Path, days: int = 150) -> Path:
    """Three shops' sales on business days only (no Saturday or Sunday rows)."""
    dates = pd.bdate_range("2021-01-04", periods=days)
    rng = np.random.default_rng(0)
    rows = [(s, f"{d:%Y-%m-%d}", 100 + 10 * s + rng.normal(0, 3)) for s in (1, 2, 3) for d in dates]
    df = pd.DataFrame(rows, columns=["shop", "day", "sales"])
    path = tmp_path / "shops.csv"
    df.to_csv(path, index=False)
    return path


def test_business_days_step_monday_after_friday(tmp_path: Path, capsys) -> None:
    # Mon-Fri data: a step per business day (Friday's next is Monday), a week of 5 steps; the
    # forecasts of a horizon run fall on the next business days, and rows to forecast on a
    # weekend are off the grid.
    from archlab.cli import main

    path = _weekday_panel(tmp_path)
    dates = pd.bdate_range("2021-01-04", periods=150)
    assert sales.infer_weekdays(dates.to_numpy(), 1) == sales.BUSINESS
    t = sales.time_index(dates.to_numpy(), dates[0].to_datetime64(), 1, sales.BUSINESS)
    assert t.tolist() == list(range(150))
    back = sales.step_dates(dates[0].to_datetime64(), t, 1, sales.BUSINESS)
    assert (back == dates.to_numpy()).all()
    flags = sales.event_flags(dates.to_numpy()[:6], ["2021-01-09"], 1, sales.BUSINESS)
    assert flags.tolist() == [0, 0, 0, 0, 1, 0]  # Saturday's event: Friday's step holds it
    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.target=sales", "--set", "data.date_column=day",
            "--set", "data.series_keys=shop", "--set", "data.peer=none", "--set",
            "data.horizon=5", "--set", "train.threads=1"]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "3 series x 150 business-day steps" in err and "season 5 steps" in err
    run = out.strip().splitlines()[-1]
    assert main(["predict", run]) == 0
    got = [json.loads(line)["day"] for line in capsys.readouterr().out.splitlines()]
    last = dates[-1]  # a Friday
    assert last.day_of_week == 4 and got[:5] == [
        f"{d:%Y-%m-%d}" for d in pd.bdate_range(last + pd.Timedelta(days=3), periods=5)
    ]
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"shop": [1], "day": [f"{last + pd.Timedelta(days=1):%Y-%m-%d}"]}).to_csv(
        rows, index=False
    )
    assert main(["predict", run, "--file", str(rows), "--out", str(tmp_path / "s.csv")]) == 2
    assert "is not on the data's business-day steps" in capsys.readouterr().err


def test_business_days_are_said_and_predict_checks_its_history(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    path = _weekday_panel(tmp_path)
    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.target=sales", "--set", "data.date_column=day",
            "--set", "data.series_keys=shop", "--set", "data.peer=none",
            "--set", "train.threads=1", "--set", "train.progress=plain"]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "data: no row falls on a Saturday or Sunday: read as business days" in err
    run = out.strip().splitlines()[-1]
    df = pd.read_csv(path)
    renamed = tmp_path / "renamed.csv"  # the target named in another case: said, not guessed
    df.rename(columns={"sales": "Sales"}).to_csv(renamed, index=False)
    assert main(["predict", run, str(renamed)]) == 2
    assert f"{renamed}: no column 'sales' (the run's data.target); found 'Sales'" in (
        capsys.readouterr().err
    )
    other = tmp_path / "other.csv"  # a shop the run never saw: said, and not forecast
    df.assign(shop=df.shop.replace(3, 9)).to_csv(other, index=False)
    assert main(["predict", run, str(other)]) == 0
    out, err = capsys.readouterr()
    assert f"{other}: 1 of 3 series were not in the run's training data" in err
    assert {json.loads(line)["shop"] for line in out.splitlines()} == {1, 2}


def test_dates_less_than_a_day_apart_are_one_line(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    hours = pd.date_range("2022-01-01", periods=24 * 20, freq="h")
    path = tmp_path / "hourly.csv"
    pd.DataFrame({"shop": 1, "at": hours, "sales": 1.0}).to_csv(path, index=False)
    args = ["train", "--task", "sales", "--data", str(path), "--set", "data.target=sales",
            "--set", "data.date_column=at", "--set", "data.series_keys=shop",
            "--out", str(tmp_path / "runs")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{path}: dates less than a day apart (2022-01-01 00:00:00" in err


def test_a_file_of_one_series_needs_no_key_column(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    days = pd.date_range("2021-01-01", periods=200)
    wave = 100 + 10 * np.sin(np.arange(200) * 2 * np.pi / 7)
    path = tmp_path / "sales.csv"
    pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "sales": wave}).to_csv(path, index=False)
    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.target=sales", "--set", "data.date_column=day",
            "--set", "data.series_keys=none", "--set", "data.peer=none",
            "--set", "train.threads=1", "--set", "train.progress=off"]  # fmt: skip
    assert main(args) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    info = json.loads((Path(run) / "data.json").read_text())
    assert info["n_series"] == 1 and info["resolved_config"]["series_keys"] == ["series"]
    # predict: the run's data, a history and rows to forecast, all without a key column
    assert main(["predict", run]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0]["series"] == "all" and out[0]["day"] == "2021-07-20"
    rows = tmp_path / "rows.csv"
    rows.write_text("day\n2021-07-20\n")
    assert (
        main(["predict", run, str(path), "--file", str(rows), "--out", str(tmp_path / "p.csv")])
        == 0
    )
    assert pd.read_csv(tmp_path / "p.csv").iloc[0, 1] == pytest.approx(out[0]["forecast"])


def test_iso_dates_with_a_zone_read_and_an_empty_date_is_named(tmp_path: Path) -> None:
    df = pd.DataFrame({"d": ["2021-01-01T00:00:00Z", "2021-01-08T00:00:00Z"]})
    assert sales_csv.parse_dates(df, "d", "auto", tmp_path / "x.csv") == "%Y-%m-%dT%H:%M:%SZ"
    assert df.d.iloc[1] == pd.Timestamp("2021-01-08")
    blank = pd.DataFrame({"d": ["2021-01-01", None]})
    with pytest.raises(ArchlabError, match=r"x.csv: an empty date in column 'd' at line 3$"):
        sales_csv.parse_dates(blank, "d", "auto", tmp_path / "x.csv")
    # A format with %z reads each date's local calendar day, daylight saving's mixed offsets
    # too (converted to one zone, midnight at +01:00 would fall on the day before).
    zoned = pd.DataFrame({"d": ["2021-01-01T00:00:00+01:00", "2021-07-02T00:00:00+02:00"]})
    fmt = "%Y-%m-%dT%H:%M:%S%z"
    assert sales_csv.parse_dates(zoned, "d", fmt, tmp_path / "x.csv") == fmt
    assert zoned.d.tolist() == [pd.Timestamp("2021-01-01"), pd.Timestamp("2021-07-02")]
    # ... and such dates are inferred (pandas' to_csv writes "2021-01-01 00:00:00+00:00").
    for text in ("2021-01-01T00:00:00+0100", "2021-01-01 00:00:00+00:00"):
        again = pd.DataFrame({"d": [text, text.replace("01-01", "07-02")]})
        assert "%z" in sales_csv.parse_dates(again, "d", "auto", tmp_path / "x.csv")
        assert again.d.tolist() == [pd.Timestamp("2021-01-01"), pd.Timestamp("2021-07-02")]
    plain = pd.DataFrame({"d": ["2021-01-01 00:00:00", "2021-07-02 00:00:00"]})
    assert sales_csv.parse_dates(plain, "d", "auto", tmp_path / "x.csv") == "%Y-%m-%d %H:%M:%S"


def test_series_keys_are_read_as_written_unless_all_integers(panel_dir: Path) -> None:
    # Codes with leading zeros or an exponent stay text: 01 and 1 are two stores, 1E2 is not
    # 100; a column of plain integers stays numbers (Walmart's Store and Dept).
    train = pd.read_csv(panel_dir / "train.csv")
    assert sales.load_sales(small_cfg(panel_dir))["Store"].dtype.kind == "i"
    train["Store"] = train["Store"].map({1: "1", 2: "01"})
    train["Dept"] = train["Dept"].map({1: "1E2", 2: "100", 3: "3 "})  # a stray space: "3"
    train.to_csv(panel_dir / "codes.csv", index=False)
    df = sales.load_sales(small_cfg(panel_dir / "codes.csv", stores_file="", features_file=""))
    assert sorted(df.groupby(["Store", "Dept"]).groups) == [
        (s, d) for s in ("01", "1") for d in ("100", "1E2", "3")
    ]
    # Tables joined on the store read it the same way; a spelling they lack is named.
    stores = pd.DataFrame({"Store": ["1", "01"], "Size": [1, 2]})
    stores.to_csv(panel_dir / "stores.csv", index=False)
    df = sales.load_sales(
        small_cfg(panel_dir / "codes.csv", features_file="", covariates=("Size",))
    )
    assert df.groupby("Store").Size.first().to_dict() == {"01": 2, "1": 1}


def test_covariates_are_numbers_or_flags_and_a_history_may_lack_them(
    tmp_path: Path, capsys
) -> None:
    from archlab.cli import main

    days = pd.date_range("2021-01-01", periods=150)
    rng = np.random.default_rng(1)
    df = pd.DataFrame([(s, f"{d:%Y-%m-%d}", 100 + 10 * s + rng.normal(0, 3), 9.5 + s,
                        "yes" if d.day % 7 == 0 else "no") for s in (1, 2) for d in days],
                      columns=["shop", "day", "sales", "price", "promo"])  # fmt: skip
    path = tmp_path / "shops.csv"
    df.assign(price=df.price.astype(str).where(df.index != 4, "abc")).to_csv(path, index=False)
    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.target=sales", "--set", "data.date_column=day",
            "--set", "data.series_keys=shop", "--set", "data.covariates=price,promo",
            "--set", "data.peer=none", "--set", "train.threads=1",
            "--set", "train.progress=off"]  # fmt: skip
    assert main(args) == 2  # a price that is no number: one line naming it
    assert (
        f"{path}: column 'price' has non-numeric value 'abc' at line 6" in capsys.readouterr().err
    )
    df.to_csv(path, index=False)  # promo as yes/no: read as 1/0
    assert main(args) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    hist = tmp_path / "history.csv"  # sales alone: the covariates take their training means
    df[["shop", "day", "sales"]].to_csv(hist, index=False)
    assert main(["predict", run, str(hist)]) == 0
    out, err = capsys.readouterr()
    assert f"{hist}: no column(s) price, promo: read as their training means" in err
    assert len(out.splitlines()) == 2
