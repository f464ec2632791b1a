"""Time steps of panels that are not Walmart's: a few dates off the weekly grid, months dated on
varying days, trailing rows without a value, closed weekdays; and what a finished run says
about files it cannot read."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab.config import RunConfig, apply_overrides
from archlab.data import sales, sales_recipe
from archlab.data.sales_horizon import read_forecast_rows
from archlab.errors import ArchlabError
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import HorizonData

CPU = torch.device("cpu")
COLUMNS = ["data.target=sales", "data.series_keys=store", "train.threads=1"]


def _cfg(path: Path, date: str = "month", *sets: str) -> RunConfig:
    cfg = RunConfig(task="sales", data=SalesDataConfig(), model=SalesModelConfig())
    sets = (f"data.path={path}", f"data.date_column={date}", *COLUMNS, "data.peer=none", *sets)
    return apply_overrides(cfg, list(sets))


def _monthly(path: Path, months: int = 48, stores: int = 3, days: np.ndarray | None = None) -> Path:
    """Monthly totals with a yearly swing, dated on the first (or on ``days`` of each month)."""
    starts = pd.date_range("2019-01-01", periods=months, freq="MS")
    dates = starts + pd.to_timedelta(days if days is not None else 0, "D")
    rows = [(f"{d:%Y-%m-%d}", s, round(100.0 * s * (1 + 0.3 * np.sin(i * np.pi / 6)), 1))
            for s in range(1, stores + 1) for i, d in enumerate(dates)]  # fmt: skip
    pd.DataFrame(rows, columns=["month", "store", "sales"]).to_csv(path, index=False)
    return path


def _weekly(path: Path, weeks: int = 110, shift: dict[int, int] | None = None) -> Path:
    """Weekly Friday rows of 3 stores; ``shift`` moves the row of week i by that many days."""
    dates = pd.date_range("2021-01-01", periods=weeks, freq="7D")
    rows = [(f"{d + pd.Timedelta(days=(shift or {}).get(i, 0)):%Y-%m-%d}", s, 100.0 * s + i % 52)
            for s in range(1, 4) for i, d in enumerate(dates)]  # fmt: skip
    pd.DataFrame(rows, columns=["Date", "store", "sales"]).to_csv(path, index=False)
    return path


def test_a_few_dates_a_day_early_are_refused_not_read_as_six_day_steps(tmp_path: Path) -> None:
    path = _weekly(tmp_path / "w.csv", shift={30: -1, 60: -1, 90: -1})  # 3 weeks on a Thursday
    df = pd.read_csv(path, parse_dates=["Date"])
    assert sales.infer_step_days(df.Date.to_numpy()) == 7  # not 6: the usual gap
    with pytest.raises(ArchlabError, match=(
        r"w\.csv: dates 7 days apart are the usual step, but 3 of 110 dates \(9 row\(s\)\) are "
        r"off its grid \(Fridays\), e.g\. store 1 on 2021-07-29, a Thursday: date each row on "
        r"its step \(here 2021-07-30\)")):  # fmt: skip
        HorizonData(_cfg(path, "Date")).build(CPU)
    # One store a day early: the smallest gap (1 day) would make it daily data.
    one = df[~((df.store > 1) & (df.Date == df.Date.iloc[30]))]
    one.loc[:, "Date"] = one.Date.mask(one.index == 30, one.Date - pd.Timedelta(days=1))
    assert sales.infer_step_days(one.Date.to_numpy()) == 7
    # Weekly data missing some weeks, daily and business-day data keep their steps.
    holes = df[~df.Date.isin(df.Date.unique()[[5, 6, 40]])].Date.to_numpy()
    assert sales.infer_step_days(holes) == 7
    days = pd.date_range("2023-01-02", periods=60, freq="D")
    assert sales.infer_step_days(days.to_numpy()) == 1
    assert sales.infer_step_days(days[days.day_of_week < 5].to_numpy()) == 1
    assert sales.infer_step_days(days[::2].to_numpy()) == 2


def test_a_changed_week_ending_day_and_fixed_opening_days_still_read(tmp_path: Path) -> None:
    # Not typos: every week from week 60 on ends a day later (Friday -> Saturday), in every
    # store or in one; and shops open on Monday, Wednesday and Friday. Both read as before.
    path = _weekly(tmp_path / "w.csv", shift={i: 1 for i in range(60, 110)})
    df = pd.read_csv(path, parse_dates=["Date"])
    sales.check_grid(df, ["store"], "Date", 7, 7, path)
    one = _weekly(tmp_path / "one.csv")
    df = pd.read_csv(one, parse_dates=["Date"])
    df.loc[(df.store == 2) & (df.Date >= df.Date.iloc[60]), "Date"] += pd.Timedelta(days=1)
    sales.check_grid(df, ["store"], "Date", 7, 7, one)
    days = pd.date_range("2023-01-02", periods=120, freq="D")
    mwf = pd.DataFrame({"Date": days[days.day_of_week.isin([0, 2, 4])], "store": 1})
    step = sales.infer_step_days(mwf.Date.to_numpy())
    sales.check_grid(mwf, ["store"], "Date", step, 7, "mwf.csv")


def test_months_dated_on_varying_days_are_calendar_months(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _monthly(tmp_path / "m.csv", days=rng.integers(9, 20, 48))  # booked on day 10-20
    df = pd.read_csv(path, parse_dates=["month"])
    step = sales.infer_step_days(df.month.to_numpy())
    assert sales.months_per_step(step) == 1  # not 20-day steps
    data = HorizonData(_cfg(path)).build(CPU)
    assert data.info["n_steps"] == 48 and data.fitted.resolved["season"] == 12
    text = "\n".join(data.notes)
    assert re.search(r"data: \d\d of 48 dates fall on another day of their month than", text)
    assert "read as the calendar month it falls in" in text
    # Quarters so dated are quarters.
    q = df.month.to_numpy()[::3]
    assert sales.months_per_step(sales.infer_step_days(q)) == 3


def test_monthly_rows_to_forecast_one_per_month(tmp_path: Path) -> None:
    path = _monthly(tmp_path / "m.csv")
    cfg = _cfg(path, "month", "data.horizon=3")
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    model = task.build_model()
    rows = tmp_path / "rows.csv"
    # Any day of a month is that month (as training reads it) ...
    pd.DataFrame({"month": ["2023-01-15", "2023-02-01"], "store": [1, 1]}).to_csv(rows, index=False)
    got = task.predict(model, [str(rows)])
    assert [(r["month"], r["step"]) for r in got] == [("2023-01-15", 1), ("2023-02-01", 2)]
    # ... so two rows of one series in one month are refused, as two on one date are.
    pd.DataFrame({"month": ["2023-01-01", "2023-02-01", "2023-01-31"], "store": [1, 1, 1]}).to_csv(
        rows, index=False
    )
    with pytest.raises(ArchlabError, match=(
        r"rows\.csv: series 1 has two rows in one month: 2023-01-01 at line 2 and 2023-01-31 at "
        r"line 4 \(a month is one step, whatever its day\)")):  # fmt: skip
        task.predict(model, [str(rows)])


def test_trailing_rows_without_a_value_are_not_history(tmp_path: Path, capsys) -> None:
    path = _monthly(tmp_path / "m.csv")
    cfg = _cfg(path)
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    model = task.build_model()
    # The history plus 4 months to fill: empty sales cells on the last dates.
    hist = tmp_path / "hist.csv"
    more = pd.DataFrame([(f"2023-{m:02d}-01", s, "") for m in range(1, 5) for s in (1, 2, 3)],
                        columns=["month", "store", "sales"])  # fmt: skip
    pd.concat([pd.read_csv(path), more]).to_csv(hist, index=False)
    got = task.predict(model, [str(hist)])
    assert {r["month"] for r in got} == {"2023-01-01"}  # after the last value, not the last row
    err = capsys.readouterr().err
    assert "dropped 12 row(s) on 4 later date(s) (2023-01-01..2023-04-01) that almost no " in err
    assert "the forecast is for the steps after 2022-12-01: give the rows to forecast" in err
    assert "no value on the last date" not in err
    # Training reads the same file the same way (it refused it for want of validation samples).
    again = HorizonData(_cfg(hist)).build(CPU)
    assert again.info["n_steps"] == 48 and any("dropped 12 row(s)" in n for n in again.notes)


def test_ended_series_note_says_what_the_forecast_reads(tmp_path: Path, capsys) -> None:
    path = _monthly(tmp_path / "m.csv")
    cfg = _cfg(path)
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    hist = tmp_path / "hist.csv"
    df = pd.read_csv(path)
    df[~((df.store == 2) & (df.month >= "2022-10-01"))].to_csv(hist, index=False)
    task.predict(task.build_model(), [str(hist)])
    err = capsys.readouterr().err
    assert "1 of 3 series have no value on the last date, 2022-12-01 (e.g. 2, last on " in err
    assert "the network reads its steps without a value as missing, not as no sales" in err
    assert "write 0 where a series sold nothing" in err


def test_rows_to_forecast_read_yes_no_flags_as_training_does(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"month": ["2023-01-01", "2023-02-01"], "store": [1, 1], "promo": ["yes", "No"]}
                 ).to_csv(rows, index=False)  # fmt: skip
    c = replace(_cfg(rows).data, covariates=("promo",), known_covariates=("promo",))
    got = read_forecast_rows(rows, c)
    assert got.promo.tolist() == [1.0, 0.0]


def test_closed_weekdays_are_said(tmp_path: Path) -> None:
    days = pd.date_range("2023-01-02", periods=140, freq="D")
    week = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])

    def write(keep: pd.DatetimeIndex, name: str) -> Path:
        rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s * week[d.day_of_week]) for s in (1, 2) for d in keep]
        pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(tmp_path / name, index=False)
        return tmp_path / name

    mon_sat = write(days[days.day_of_week < 6], "ms.csv")
    data = HorizonData(_cfg(mon_sat, "date")).build(CPU)
    assert "data: daily steps, but rows on only 0 of 19 Sundays: each such day is a step " in (
        "\n".join(data.notes)
    )
    # Mondays are scored (their step before is a closed Sunday: the Saturday stands for it),
    # and the last-step baseline carries Saturday's sales over the Sunday.
    rows = data.context.rows
    monday = pd.to_datetime(rows.date).dt.day_of_week.to_numpy() == 0
    dates = pd.to_datetime(rows.date)
    span = pd.date_range(dates.min(), dates.max(), freq="D")
    assert monday.sum() == 2 * (span.day_of_week == 0).sum() > 0  # 2 stores x every Monday
    assert np.allclose(rows.last_step[monday], 100.0 * rows.store[monday] * week[5])
    one_sat = write(days[(days.day_of_week < 5) | (days == "2023-03-04")], "bd.csv")
    notes = "\n".join(HorizonData(_cfg(one_sat, "date")).build(CPU).notes)
    assert "rows on only 1 of 19 Saturdays, 0 of 19 Sundays" in notes
    assert "drop the weekend rows to step by business days" in notes
    business = write(days[days.day_of_week < 5], "b.csv")
    assert "daily steps, but" not in "\n".join(HorizonData(_cfg(business, "date")).build(CPU).notes)
    # Open Mondays, Wednesdays and Fridays (gaps 2, 2, 3): business days with two closed, not
    # 2-day steps on which every other week's rows land on other weekdays.
    mwf = write(days[days.day_of_week.isin([0, 2, 4])], "mwf.csv")
    data = HorizonData(_cfg(mwf, "date")).build(CPU)
    assert (data.fitted.featurizer.step_days, data.fitted.featurizer.weekdays) == (1, 5)
    assert ("data: business-day steps, but rows on only 0 of 20 Tuesdays, 0 of 20 Thursdays: "
            "each such day is a step without a value") in "\n".join(data.notes)  # fmt: skip
    # Closed Sundays written as rows with an empty value: the same closed days, not unknown
    # sales (which the peer would fill from the Saturday before).
    blank = pd.read_csv(write(days, "blank.csv"))
    blank.loc[pd.to_datetime(blank.date).dt.day_of_week == 6, "sales"] = np.nan
    blank.to_csv(tmp_path / "blank.csv", index=False)
    data = HorizonData(_cfg(tmp_path / "blank.csv", "date")).build(CPU)
    assert "data: daily steps, but rows on only 0 of 19 Sundays" in "\n".join(data.notes)
    y = np.array([[1.0, np.nan, np.nan, 4.0], [2.0, 3.0, np.nan, 5.0]])  # step 2: closed
    rows_s, rows_t = np.repeat([0, 1], 4), np.tile(np.arange(4), 2)  # every cell has a row
    p = sales.Panel(np.array([[1], [2]]), days.to_numpy()[:4], y, np.zeros(4, bool),
                    np.zeros((2, 4, 0)), rows_s, rows_t)  # fmt: skip
    filled = sales.fill_blank_cells(p, 7)
    assert filled[0, 1] == 1.0 and np.isnan(filled[:, 2]).all()  # a closed day stays no sales
    tue_sat = write(days[days.day_of_week.isin([1, 5])], "ts.csv")  # gaps 4 and 3: days
    assert sales.infer_step_days(pd.read_csv(tue_sat).date.to_numpy().astype("datetime64[D]")) == 1


def test_weekly_dates_with_the_last_a_day_early_stay_weeks(tmp_path: Path) -> None:
    df = pd.read_csv(_weekly(tmp_path / "w.csv", weeks=60, shift={59: -1}), parse_dates=["Date"])
    assert sales.infer_step_days(df.Date.to_numpy()) == 7  # gaps of 7 and one 6: not days


def test_a_finished_runs_file_errors_name_what_the_user_can_do(tmp_path: Path) -> None:
    path = _monthly(tmp_path / "m.csv")
    fitted = HorizonData(_cfg(path)).build(CPU).fitted
    other = tmp_path / "o.csv"
    pd.read_csv(path).rename(columns={"month": "date"}).to_csv(other, index=False)
    # eval --data and predict take no --set: the fix is to rename the file's column.
    with pytest.raises(ArchlabError, match=(
        r"missing column\(s\) \['month'\]; found columns \['date', 'store', 'sales'\]; rename "
        r"column 'date' to 'month' \(the run's data.date_column\)$")):  # fmt: skip
        HorizonData(_cfg(other)).build(CPU, fitted)
    task = HorizonForecast(_cfg(path), fitted)
    with pytest.raises(ArchlabError, match=r"rename column 'date' to 'month'"):
        task.predict(task.build_model(), [str(other)])
    # Series the run never saw are said to be so, not blamed on the dates.
    pd.read_csv(path).assign(store=lambda d: "S" + d.store.astype(str)).to_csv(other, index=False)
    with pytest.raises(ArchlabError, match=(
        r"o\.csv: none of its series were seen in training \(e\.g\. S1; the run's are "
        r"e\.g\. 1\)")):  # fmt: skip
        HorizonData(_cfg(other)).build(CPU, fitted)


def test_first_lines_wording(tmp_path: Path) -> None:
    # Business days: the window and level shift are counted in steps, not days.
    _, why = sales_recipe.derive(SalesDataConfig(horizon=10), 1, 5, 400, sales.BUSINESS)
    assert why["window"] == "data: 56 steps, as for daily data (about 11 weeks)"
    assert why["level_steps"] == "data: 28 steps as for daily data, at most a season"
    # A series without training steps is said; next-step runs' training origins start where
    # the lags allow; an ended series' note names the first test origin.
    path = _monthly(tmp_path / "m.csv", stores=3)
    df = pd.read_csv(path)
    late = df[(df.store != 3) | (df.month >= "2022-11-01")]
    late = late[(late.store != 2) | (late.month <= "2022-11-01")]
    late.to_csv(path, index=False)
    notes = HorizonData(_cfg(path)).build(CPU).notes
    text = "\n".join(notes)
    assert "data: 1 of 3 series have no value in the training steps (e.g. 3, first on " in text
    assert "origins train 2019-12-01.." in notes[1]  # its target has a lag a season back
    assert "the first test origin, 2022-09-01, is data.test_steps before the last date" in text


def test_a_one_step_test_is_said(tmp_path: Path) -> None:
    quarters = pd.date_range("2014-01-01", periods=40, freq="QS")
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + 10 * (i % 4)) for s in (1, 2) for i, d in
            enumerate(quarters)]  # fmt: skip
    path = tmp_path / "q.csv"
    pd.DataFrame(rows, columns=["month", "store", "sales"]).to_csv(path, index=False)
    notes = "\n".join(HorizonData(_cfg(path)).build(CPU).notes)
    assert "data: test 1 and validation 1 step(s), 2 and 2 targets: the test metrics" in notes
    # A quarter of a year of monthly steps is 3: no such line.
    monthly = "\n".join(HorizonData(_cfg(_monthly(tmp_path / "m.csv"))).build(CPU).notes)
    assert "data: test 3" not in monthly


def test_timestamps_without_seconds_are_read(tmp_path: Path) -> None:
    from archlab.data import sales_csv

    for text, fmt in (
        ("2023-01-01 09:36", "%Y-%m-%d %H:%M"),
        ("13/01/2023 9:36", "%d/%m/%Y %H:%M"),
    ):
        df = pd.DataFrame({"ts": [text]})
        assert sales_csv.parse_dates(df, "ts", "auto", tmp_path / "f.csv") == fmt
    # Hourly rows reach the sub-daily refusal, not a date-format error.
    hours = pd.date_range("2024-01-01", periods=48, freq="h").strftime("%Y-%m-%d %H:%M")
    path = tmp_path / "h.csv"
    pd.DataFrame({"ts": hours, "store": 1, "sales": 1.0}).to_csv(path, index=False)
    with pytest.raises(ArchlabError, match="dates less than a day apart"):
        HorizonData(_cfg(path, "ts")).build(CPU)
    # An inferred format that reads only most dates is not said to be the one expected.
    df = pd.DataFrame({"ts": ["2023-01-01", "2023-01-02", "Jan 3rd"]})
    with pytest.raises(ArchlabError, match=(
        r"unparseable date 'Jan 3rd' in column 'ts' at line 4 \(no date format reads them all, "
        r"'%Y-%m-%d' the most; set data.date_format\)")):  # fmt: skip
        sales_csv.parse_dates(df, "ts", "auto", tmp_path / "f.csv")


def test_eda_labels_and_covariates(tmp_path: Path, monkeypatch) -> None:
    from archlab.plots import eda_sales
    from archlab.tasks.sales_common import eda

    figs: dict[str, list] = {}

    def keep(fig, path: Path) -> Path:
        labels = [t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel())]
        figs[path.name] = [fig._suptitle.get_text() if fig._suptitle else "", *labels]
        return path

    monkeypatch.setattr(eda_sales, "_out", keep)
    months = pd.date_range("2020-01-01", periods=24, freq="MS").strftime("%Y-%m-%d")
    wide = tmp_path / "wide.csv"
    pd.DataFrame({"date": months, "north": 1.0, "south": 2.0}).to_csv(wide, index=False)
    eda(_cfg(wide, "date", "data.series_keys=series", "data.target=Weekly_Sales"), tmp_path)
    text = " ".join(t for v in figs.values() for t in v)
    assert "Weekly_Sales" not in text and "value" in figs["sales_distribution.png"]
    # One series with a covariate: the covariate is drawn, with no "mean over" in the title.
    one = tmp_path / "one.csv"
    pd.DataFrame({"date": months, "sales": 1.0, "promo": ["yes", "no"] * 12}).to_csv(
        one, index=False
    )
    eda(_cfg(one, "date", "data.series_keys=none", "data.covariates=promo"), tmp_path)
    assert figs["features_over_time.png"][0] == "features over time"
    assert "promo" in figs["features_over_time.png"] and "sales" in figs["features_over_time.png"]


def test_no_sample_left_names_the_test_and_validation_spans(tmp_path: Path) -> None:
    path = _monthly(tmp_path / "m.csv")  # 48 months; a preset's 39 + 13 would leave none
    with pytest.raises(ArchlabError, match=(
        r"in the 8 training steps \(48 steps less data.test_steps=20 and data.val_steps=20\): "
        r"lower those, give a longer history")):  # fmt: skip
        HorizonData(_cfg(path, "month", "data.test_steps=20", "data.val_steps=20")).build(CPU)


def test_predict_says_a_forecast_step_falls_on_a_closed_day(tmp_path: Path, capsys) -> None:
    days = pd.date_range("2023-01-02", periods=139, freq="D")  # Monday .. a Saturday
    keep = days[days.day_of_week < 6]
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + d.day_of_week) for s in (1, 2) for d in keep]
    path = tmp_path / "ms.csv"
    pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(path, index=False)
    cfg = _cfg(path, "date")
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    got = task.predict(task.build_model(), [])  # next-step: the Monday, past the closed Sunday
    assert got[0]["date"] == "2023-05-22"
    err = capsys.readouterr().err
    assert "Sunday 2023-05-21 after its last date is a closed day" in err
    h2 = apply_overrides(cfg, ["data.horizon=2"])  # two steps: the Sunday is the first, said
    task = HorizonForecast(h2, HorizonData(h2).build(CPU).fitted)
    got = task.predict(task.build_model(), [])
    assert got[0]["date"] == "2023-05-21"
    assert (
        "1 forecast step(s) fall on a day of the week the history has few or no rows on (e.g. "
        "step 1, 2023-05-21, a Sunday)" in capsys.readouterr().err
    )


def _four_weekly(path: Path, periods: int = 40) -> Path:
    """13 periods a year, 28 days apart (a retailer's calendar), with a yearly swing."""
    dates = pd.date_range("2019-01-05", periods=periods, freq="28D")
    rows = [(f"{d:%Y-%m-%d}", s, round(100.0 * s * (1 + 0.3 * np.sin(i * 2 * np.pi / 13)), 1))
            for s in (1, 2) for i, d in enumerate(dates)]  # fmt: skip
    pd.DataFrame(rows, columns=["period", "store", "sales"]).to_csv(path, index=False)
    return path


def test_four_weekly_periods_are_steps_of_28_days_13_a_year(tmp_path: Path) -> None:
    # Two periods fall into one calendar month now and then: read as months, they clashed.
    path = _four_weekly(tmp_path / "p13.csv")
    cfg = _cfg(path, "period", "data.horizon=3")
    data = HorizonData(cfg).build(CPU)
    assert data.fitted.featurizer.step_days == 28 and data.fitted.resolved["season"] == 13
    assert data.info["n_steps"] == 40 and data.info["time_step"] == "28 days"
    assert sales.step_adjective(28) == "4-weekly"
    task = HorizonForecast(cfg, data.fitted)
    got = task.predict(task.build_model(), [])
    # The forecast continues the 28-day grid: the last date is 2022-01-01.
    assert [r["period"] for r in got[:3]] == ["2022-01-29", "2022-02-26", "2022-03-26"]
    # A history of two periods is a 4-week run's steps; a monthly one is refused.
    two = pd.to_datetime(["2021-12-04", "2022-01-01"]).to_numpy()
    sales.check_same_step(two, 28, 7, "h.csv")
    months = pd.date_range("2021-01-01", periods=6, freq="MS").to_numpy()
    with pytest.raises(ArchlabError, match=r"h\.csv: its steps are monthly \(dates 28 day\(s\) "
                       r"apart\) but the run was trained on 4-weekly steps"):  # fmt: skip
        sales.check_same_step(months, 28, 7, "h.csv")
    # Monthly data whose February gap is 28 days is still months (30: not a 4-week step).
    assert sales.infer_step_days(months) == 30 and sales.months_per_step(30) == 1


def test_an_older_monthly_runs_28_day_step_reads_as_a_month(tmp_path: Path) -> None:
    # Runs written before 4-week periods saved a month whose February gap is 28 days as 28.
    from archlab.tasks.sales_horizon_data import HorizonFitted

    path = _monthly(tmp_path / "m.csv")
    d = HorizonData(_cfg(path)).build(CPU).fitted.to_dict()
    d["featurizer"]["step_days"] = d["resolved"]["step_days"] = 28
    del d["featurizer"]["step_scheme"]
    old = HorizonFitted.from_dict(d)
    assert old.featurizer.step_days == 30 and old.resolved["step_days"] == 30
    assert sales.months_per_step(old.featurizer.step_days) == 1
    d["featurizer"]["step_scheme"] = 2  # a 4-weekly run keeps its 28
    assert HorizonFitted.from_dict(d).featurizer.step_days == 28


def test_periods_that_are_not_calendar_months_say_why(tmp_path: Path) -> None:
    # 4-4-5 week periods (12 a year) read as months: two fall into one month
    gaps = np.tile([28, 28, 35], 14)
    dates = pd.Timestamp("2019-01-05") + pd.to_timedelta(np.r_[0, np.cumsum(gaps)], "D")
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + i) for s in (1, 2) for i, d in enumerate(dates)]
    path = tmp_path / "p445.csv"
    pd.DataFrame(rows, columns=["period", "store", "sales"]).to_csv(path, index=False)
    with pytest.raises(ArchlabError, match=rf"^{re.escape(str(path))}: series 1: two rows fall "
                       r"into the same calendar month .* periods that are not \(4-4-5 weeks, 30 "
                       r"days\) do not fit"):  # fmt: skip
        HorizonData(_cfg(path, "period")).build(CPU)


def test_rows_to_forecast_with_an_empty_target_column_are_rows_not_history(
    tmp_path: Path,
) -> None:
    # a template to fill in: keys, dates and the target column left blank
    path = _monthly(tmp_path / "m.csv")
    cfg = _cfg(path)
    data = HorizonData(cfg).build(CPU)
    task = HorizonForecast(cfg, data.fitted)
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"month": ["2023-01-01"] * 3, "store": [1, 2, 3], "sales": ""}).to_csv(
        rows, index=False
    )
    got = task.predict(task.build_model(), [str(rows)])
    assert [(r["store"], r["month"]) for r in got] == [(s, "2023-01-01") for s in (1, 2, 3)]


def test_a_holiday_flag_that_differs_between_series_on_a_date_is_said(tmp_path: Path) -> None:
    path = _weekly(tmp_path / "w.csv", weeks=110)
    df = pd.read_csv(path)
    df["IsHoliday"] = (df.store == 2) & (np.arange(len(df)) % 10 == 0)  # store 2's promotions
    df.to_csv(path, index=False)
    data = HorizonData(_cfg(path, "Date", "data.holiday_column=IsHoliday")).build(CPU)
    mixed = df.groupby("Date").IsHoliday.nunique().gt(1).sum()
    said = "\n".join(data.notes)
    assert (f"data: the holiday column IsHoliday differs between series on {mixed} date(s): a "
            "date is a holiday for every series where any row flags it") in said  # fmt: skip
    df["IsHoliday"] = df.Date.isin(df.Date.unique()[::10])  # by date, as Walmart flags them
    df.to_csv(path, index=False)
    data = HorizonData(_cfg(path, "Date", "data.holiday_column=IsHoliday")).build(CPU)
    assert "holiday column" not in "\n".join(data.notes)


def test_the_rows_to_forecast_holiday_flags_are_taken_as_given(tmp_path: Path) -> None:
    # Last season's holiday carries to the step a season later, unless the rows to forecast
    # flag that date themselves: IsHoliday=False there is not overruled (predict differed from
    # the scored forecasts by that flag).
    from archlab.data.sales_horizon import future_panel

    path = _weekly(tmp_path / "w.csv", weeks=110)
    df = pd.read_csv(path)
    dates = sorted(df.Date.unique())
    df["IsHoliday"] = df.Date == dates[-52]  # a season before the step after the last date
    df.to_csv(path, index=False)
    cfg = _cfg(path, "Date", "data.holiday_column=IsHoliday", "data.season=52")
    data = HorizonData(cfg).build(CPU)
    hist = sales.load_sales(cfg.data)
    fz = data.fitted.featurizer
    nxt = pd.Timestamp(dates[-1]) + pd.Timedelta(days=7)
    assert future_panel(hist, cfg.data, fz).holiday[-1]  # carried from last season
    p = future_panel(hist, cfg.data, fz, [], flagged=[np.datetime64(nxt)])
    assert not p.holiday[-1]  # the rows to forecast said False
    p = future_panel(hist, cfg.data, fz, [np.datetime64(nxt)], flagged=[np.datetime64(nxt)])
    assert p.holiday[-1]


def test_a_one_date_history_is_too_short_not_weekly(tmp_path: Path) -> None:
    days = pd.date_range("2023-01-02", periods=120, freq="D")
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + d.day_of_week) for s in (1, 2) for d in days]
    pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(tmp_path / "d.csv", index=False)
    cfg = _cfg(tmp_path / "d.csv", "date")
    task = HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)
    (tmp_path / "one.csv").write_text("date,store,sales\n2023-05-02,1,101\n")
    with pytest.raises(ArchlabError, match=r"one\.csv: a history of 1 step \("):  # not "weekly"
        task.predict(task.build_model(), [str(tmp_path / "one.csv")])


def test_a_history_without_the_runs_holiday_column_reads_as_no_holidays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.read_csv(_weekly(tmp_path / "w.csv", weeks=110))
    df["IsHoliday"] = df.Date.isin(df.Date.unique()[::13])
    df.to_csv(tmp_path / "w.csv", index=False)
    cfg = _cfg(tmp_path / "w.csv", "Date", "data.holiday_column=IsHoliday")
    task = HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)
    df.drop(columns="IsHoliday").to_csv(tmp_path / "sales_only.csv", index=False)
    capsys.readouterr()
    out = task.predict(task.build_model(), [str(tmp_path / "sales_only.csv")])  # a KeyError
    assert len(out) == 3 and all(np.isfinite(r["forecast"]) for r in out)
    assert "sales_only.csv: no column IsHoliday: its steps read as no holidays" in (
        capsys.readouterr().err
    )


def test_rows_values_of_a_covariate_not_known_in_advance_are_said_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.read_csv(_weekly(tmp_path / "w.csv", weeks=110))
    df["promo"] = (np.arange(len(df)) % 3 == 0).astype(int)
    df.to_csv(tmp_path / "w.csv", index=False)
    cfg = _cfg(tmp_path / "w.csv", "Date", "data.covariates=promo")
    task = HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)
    assert task.fitted.featurizer.known_covariates == ()  # no values after the last date
    nxt = pd.Timestamp(df.Date.max()) + pd.Timedelta(days=7)
    (tmp_path / "rows.csv").write_text(f"Date,store,promo\n{nxt:%Y-%m-%d},1,1\n")
    capsys.readouterr()
    task.predict(task.build_model(), [str(tmp_path / "rows.csv")])
    assert ("rows.csv: column(s) promo of the rows to forecast are not read: the run does not "
            "know them in advance") in capsys.readouterr().err  # fmt: skip


@pytest.mark.parametrize("every", [2, 3])
def test_a_mistyped_date_among_few_day_steps_is_refused_not_read_as_days(
    tmp_path: Path, every: int
) -> None:
    dates = pd.date_range("2022-01-01", periods=200, freq=f"{every}D")
    dates = dates.where(np.arange(200) != 100, dates[100] - pd.Timedelta(days=1))  # a typo
    rows = [(f"{d:%Y-%m-%d}", s, 10.0 * s) for s in (1, 2) for d in dates]
    pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(tmp_path / "d.csv", index=False)
    assert sales.infer_step_days(dates.to_numpy()) == every  # not 1: days of which most are empty
    with pytest.raises(ArchlabError, match=rf"dates {every} days apart are the usual step, but 1 "):
        HorizonData(_cfg(tmp_path / "d.csv", "date")).build(CPU)


def test_forecast_steps_on_closed_days_are_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = pd.date_range("2023-01-02", periods=140, freq="D")

    def run(keep: pd.DatetimeIndex, name: str) -> HorizonForecast:
        rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s + d.day_of_week) for s in (1, 2) for d in keep]
        pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(tmp_path / name, index=False)
        cfg = _cfg(tmp_path / name, "date")
        return HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)

    # Business days with Wednesdays closed, a history ending on a Tuesday: a next-step run
    # forecasts the Thursday from the closed Wednesday, as training scores Thursdays; said.
    task = run(days[days.day_of_week.isin([0, 1, 3, 4])], "bw.csv")
    hist = pd.read_csv(tmp_path / "bw.csv")
    hist[pd.to_datetime(hist.date) <= "2023-05-16"].to_csv(tmp_path / "tue.csv", index=False)
    capsys.readouterr()
    out = task.predict(task.build_model(), [str(tmp_path / "tue.csv")])
    assert {r["date"] for r in out} == {"2023-05-18"}
    assert ("tue.csv: Wednesday 2023-05-17 after its last date is a closed day (the history has "
            "no rows on that weekday): the forecast is for the next open day, 2023-05-18") in (
        capsys.readouterr().err
    )  # fmt: skip
    # Mon-Sat, ending on a Saturday: the Monday, also as rows to forecast (it was refused).
    task = run(days[days.day_of_week < 6], "ms.csv")
    last = pd.Timestamp(pd.read_csv(tmp_path / "ms.csv").date.max())
    assert last.day_of_week == 5
    monday = last + pd.Timedelta(days=2)
    (tmp_path / "mon.csv").write_text(f"date,store\n{monday:%Y-%m-%d},1\n")
    (row,) = task.predict(task.build_model(), [str(tmp_path / "mon.csv")])
    assert row["date"] == f"{monday:%Y-%m-%d}" and np.isfinite(row["forecast"])
    # A run of two steps forecasts the closed Sunday as its first step: said; rows beyond its
    # steps past a closed day name the horizon that reaches them.
    cfg = _cfg(tmp_path / "ms.csv", "date", "data.horizon=2")
    task = HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)
    capsys.readouterr()
    task.predict(task.build_model(), [])
    assert "a Sunday): forecasts of days read as missing" in capsys.readouterr().err
    (tmp_path / "tue2.csv").write_text(f"date,store\n{last + pd.Timedelta(days=3):%Y-%m-%d},1\n")
    with pytest.raises(ArchlabError, match=r"outside the forecast steps"):
        task.predict(task.build_model(), [str(tmp_path / "tue2.csv")])


def test_eval_on_other_data_does_not_repeat_training_choices_notes(tmp_path: Path) -> None:
    path = _monthly(tmp_path / "m.csv", months=28)
    cfg = apply_overrides(_cfg(path), ["data.peer=mstl_ets"])
    data = HorizonData(cfg).build(CPU)
    assert any(n.startswith("data: the blend weight is chosen with mstl_ets") for n in data.notes)
    other = _monthly(tmp_path / "o.csv", months=28, stores=2)
    again = HorizonData(replace(cfg, data=replace(cfg.data, path=str(other)))).build(
        CPU, data.fitted
    )
    assert not any("blend weight is chosen" in n for n in again.notes)  # eval chooses nothing


def test_a_blending_next_step_run_keeps_its_peer_fit_past_closed_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The peer's fit at the data's end, saved at training, is the one predict uses past a
    # closed Sunday: not fitted again at every predict.
    from archlab import runner

    days = pd.date_range("2022-01-03", periods=300, freq="D")
    keep = days[days.day_of_week < 6]
    week = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6])
    rows = [(f"{d:%Y-%m-%d}", s, 100.0 * s * week[d.day_of_week] + (d.day_of_year % 7))
            for s in (1, 2, 3) for d in keep]  # fmt: skip
    pd.DataFrame(rows, columns=["date", "store", "sales"]).to_csv(tmp_path / "m.csv", index=False)
    sets = ["data.peer=mstl_ets", "data.blend_weight=0.5", "train.epochs=1"]
    cfg = apply_overrides(_cfg(tmp_path / "m.csv", "date"), sets)
    run = runner.train(cfg, tmp_path / "runs")
    _, task, model = runner.restore_task(run)
    capsys.readouterr()
    out = task.predict(model, [])
    err = capsys.readouterr().err
    assert {r["source"] for r in out} == {"blend"} and pd.Timestamp(out[0]["date"]).day_of_week == 0
    assert "fitting the statistical peer" not in err and "is a closed day" in err


def test_a_parquet_or_json_panel_reads_as_its_csv(tmp_path: Path) -> None:
    # Parquet's typed columns (real dates, integer store ids); JSON's dates as text.
    csv = _monthly(tmp_path / "m.csv")
    df = pd.read_csv(csv, parse_dates=["month"])
    want = HorizonData(_cfg(csv)).build(CPU)
    df.to_parquet(tmp_path / "m.parquet")
    df.assign(month=df.month.dt.strftime("%Y-%m-%d")).to_json(
        tmp_path / "m.jsonl", orient="records", lines=True
    )
    for name in ("m.parquet", "m.jsonl"):
        got = HorizonData(_cfg(tmp_path / name)).build(CPU)
        assert got.info["n_steps"] == want.info["n_steps"] == 48, name
        np.testing.assert_array_equal(got.fitted.featurizer.offset, want.fitted.featurizer.offset)
        assert got.fitted.featurizer.series == want.fitted.featurizer.series
    # Rows to forecast may come as a table too.
    cfg = _cfg(csv, "month", "data.horizon=2")
    task = HorizonForecast(cfg, HorizonData(cfg).build(CPU).fitted)
    pd.DataFrame({"month": ["2023-01-01", "2023-02-01"], "store": [2, 2]}).to_json(
        tmp_path / "rows.json", orient="records"
    )
    got = task.predict(task.build_model(), [str(tmp_path / "rows.json")])
    assert [(r["store"], r["month"], r["step"]) for r in got] == [
        (2, "2023-01-01", 1), (2, "2023-02-01", 2)
    ]  # fmt: skip


def test_a_walmart_folder_of_parquet_and_json_tables_reads_as_its_csvs(tmp_path: Path) -> None:
    from tests.helpers import sales_smoke, write_panel

    csvs = write_panel(tmp_path / "csv")
    tables = tmp_path / "tables"
    tables.mkdir()
    # train.parquet for train.csv, features as JSON lines, stores.csv gzipped: each found.
    pd.read_csv(csvs / "train.csv").to_parquet(tables / "train.parquet")
    pd.read_csv(csvs / "features.csv").to_json(tables / "features.jsonl", orient="records",
                                               lines=True)  # fmt: skip
    pd.read_csv(csvs / "stores.csv").to_csv(tables / "stores.csv.gz", index=False)
    want = HorizonData(sales_smoke(csvs)).build(CPU)
    got = HorizonData(sales_smoke(tables)).build(CPU)
    assert (
        got.info["n_series"] == want.info["n_series"] and got.info["n_rows"] == want.info["n_rows"]
    )
    np.testing.assert_allclose(got.fitted.featurizer.cov_mean, want.fitted.featurizer.cov_mean)
    assert got.fitted.featurizer.covariates == want.fitted.featurizer.covariates
    with pytest.raises(ArchlabError, match=r"train\.csv: no such file"):
        sales.load_sales(replace(sales_smoke(tmp_path).data, path=str(tmp_path)))
