"""A wide sales table (a date column, one numeric column per series) read as a panel."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from archlab.data import sales, sales_csv
from archlab.errors import ArchlabError
from archlab.task_configs import SalesDataConfig

STEPS = 120


def write_wide(path: Path, **extra: object) -> Path:
    """Weekly north/south/east sales; east has 3 empty cells, west none at all."""
    t = np.arange(STEPS)
    df = pd.DataFrame({
        "date": pd.date_range("2020-01-06", periods=STEPS, freq="7D").strftime("%Y-%m-%d"),
        "north": 100 + 10 * np.sin(t * 2 * np.pi / 52) + 0.1 * t,
        "south": 200 + 5 * np.cos(t * 2 * np.pi / 52),
        "east": 50 + 0.2 * t,
        "west": np.nan,
        **extra,
    })  # fmt: skip
    df.loc[[3, 10, 11], "east"] = np.nan
    df.to_csv(path, index=False)
    return path


def cfg(path: Path) -> SalesDataConfig:
    return SalesDataConfig(path=str(path), date_column="date")


def test_a_wide_file_reads_as_one_series_per_column(tmp_path: Path) -> None:
    path = write_wide(tmp_path / "wide.csv")
    (tmp_path / "stores.csv").write_text("Store,Type,Size\n1,A,100\n")  # a sibling: left out
    df = sales.load_sales(cfg(path))
    assert list(df.columns[:3]) == ["date", sales.SINGLE_SERIES, "Weekly_Sales"]
    assert len(df) == 3 * STEPS and sorted(df.series.unique()) == ["east", "north", "south"]
    east = df[df.series == "east"].Weekly_Sales.to_numpy()
    assert np.flatnonzero(np.isnan(east)).tolist() == [3, 10, 11]
    north = df[df.series == "north"].set_index("date").Weekly_Sales
    assert north[pd.Timestamp("2020-01-13")] == pytest.approx(
        100 + 10 * np.sin(2 * np.pi / 52) + 0.1
    )
    assert df.attrs["resolved"]["series_keys"] == [sales.SINGLE_SERIES]
    notes = sales.reading_notes(df)
    assert (f"data: {path} read as a wide table: 3 series, one per column (north, south, east); "
            "series key 'series', values read as the target 'Weekly_Sales'; empty column(s) "
            "['west'] left out") in notes  # fmt: skip
    assert any("stores.csv not joined" in n for n in notes)
    assert "data: missing values (empty cells, kept as missing): Weekly_Sales 3" in notes
    # A saved run's config (series_keys "series") reads it, and a wide history, the same way.
    again = sales.load_sales(replace(cfg(path), series_keys=(sales.SINGLE_SERIES,)))
    pd.testing.assert_frame_equal(again, df)
    assert sales.reads_wide(cfg(path), sales_csv.read_csv(path, []))


def test_a_bad_date_or_a_duplicate_names_its_file_line(tmp_path: Path) -> None:
    path = write_wide(tmp_path / "wide.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:5], "2020-13-01" + lines[5][10:], *lines[6:]]) + "\n")
    with pytest.raises(ArchlabError, match=r"'2020-13-01' in column 'date' at line 6 "):
        sales.load_sales(cfg(path))
    path.write_text("\n".join([*lines[:5], lines[4], *lines[6:]]) + "\n")
    with pytest.raises(ArchlabError, match=r"duplicate \(series, date\) key \(.*\) at line 6;"):
        sales.load_sales(cfg(path))


TEXT_COLUMN = (
    "every column but 'date' must hold numbers ('region' does not; name covariate columns in "
    "data.covariates)"
)
UNSET = (
    "give --data the file itself and leave data.series_keys and data.target unset: the series "
    "are its columns"
)


@pytest.mark.parametrize(
    ("extra", "sets", "why"),
    [
        ({"region": "x"}, {}, TEXT_COLUMN),
        ({}, {"target": "sales"}, UNSET),  # a target named that the file lacks
        ({}, {"series_keys": ()}, UNSET),  # "none" says one series
        ({}, {"path": "."}, UNSET),  # a folder: Walmart's layout
    ],
)
def test_a_file_that_only_looks_wide_keeps_the_missing_columns_error_with_a_hint(
    tmp_path: Path, extra: dict, sets: dict, why: str
) -> None:
    path = write_wide(tmp_path / "train.csv", **extra)
    if sets.get("path"):
        sets = {"path": str(tmp_path)}
    with pytest.raises(ArchlabError) as e:
        sales.load_sales(replace(cfg(path), **sets))
    msg = str(e.value)
    assert msg.startswith(f"{path}: missing column(s) [") and "\n" not in msg
    assert msg.endswith(
        f"; it looks like a wide table (one column per series): to read it so, {why}"
    )


def test_a_long_file_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    wide = pd.read_csv(write_wide(tmp_path / "wide.csv"))
    long = wide.drop(columns="west").melt("date", var_name="Dept", value_name="Weekly_Sales")
    long.insert(0, "Store", 1)
    long.to_csv(path, index=False)
    df = sales.load_sales(cfg(path))
    assert "series_keys" not in df.attrs["resolved"] and len(df) == 3 * STEPS
    assert not any("wide" in n for n in sales.reading_notes(df))
    pd.read_csv(path).drop(columns="Dept").to_csv(path, index=False)
    # no hint of a wide table: the setting that names a series' columns
    found = r"missing column\(s\) \['Dept'\]; found columns \[[^]]*\]; "
    with pytest.raises(ArchlabError, match=found + r"set data.series_keys to the file's own"):
        sales.load_sales(cfg(path))


def _train(tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from archlab.cli import main

    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.date_column=date", "--set", "data.peer=none",
            "--set", "train.threads=1"]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert f"data: {path} read as a wide table: 3 series" in err
    return out.strip().splitlines()[-1]


def test_train_and_predict_on_a_wide_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab.cli import main

    run = _train(tmp_path, write_wide(tmp_path / "wide.csv"), capsys)
    info = json.loads((Path(run) / "data.json").read_text())
    assert info["n_series"] == 3 and info["resolved_config"]["series_keys"] == ["series"]
    assert main(["predict", run]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["series"] for r in out) == ["east", "north", "south"]
    assert set(out[0]) == {"series", "date", "step", "forecast", "source"}


def test_predict_with_a_wide_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archlab.cli import main

    path = write_wide(tmp_path / "wide.csv")
    run = _train(tmp_path, path, capsys)
    assert main(["predict", run, str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["series"] for r in out) == ["east", "north", "south"]


def test_a_wide_runs_submission_names_each_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab.cli import main

    run = _train(tmp_path, write_wide(tmp_path / "wide.csv"), capsys)
    assert main(["predict", run]) == 0
    ahead = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = tmp_path / "rows.csv"
    pd.DataFrame(ahead)[["series", "date"]].to_csv(rows, index=False)
    sub = tmp_path / "sub.csv"
    assert main(["predict", run, "--file", str(rows), "--out", str(sub)]) == 0
    written = pd.read_csv(sub)
    assert list(written.columns) == ["Id", "forecast"]  # no Weekly_Sales: the file had none
    ids = written["Id"]
    assert ids.is_unique and set(ids.str.split("_").str[0]) == {"east", "north", "south"}


def test_odd_wide_headers(tmp_path: Path) -> None:
    wide = pd.read_csv(write_wide(tmp_path / "wide.csv"))
    # A saved pandas index is left out; a covariate named in data.covariates stays one.
    path = tmp_path / "index.csv"
    wide.assign(promo=np.arange(STEPS) % 2).to_csv(path)  # index=True: "Unnamed: 0"
    df = sales.load_sales(replace(cfg(path), covariates=("promo",)))
    assert sorted(df["series"].unique()) == ["east", "north", "south"] and "promo" in df
    note = sales.reading_notes(df)
    assert any("covariate(s) ['promo'] beside them" in n and "index column(s) ['Unnamed: 0']"
               in n for n in note)  # fmt: skip
    # A header's stray space is no part of a series' name (as a long file's key cells).
    wide.rename(columns={"north": "north "}).to_csv(path, index=False)
    assert sorted(sales.load_sales(cfg(path))["series"].unique()) == ["east", "north", "south"]
    # A repeated series name is refused (pandas would read it as north.1).
    path.write_text("date,north,north\n2020-01-06,1,2\n2020-01-13,3,4\n")
    with pytest.raises(ArchlabError, match="column 'north' appears twice in the header"):
        sales.load_sales(cfg(path))
    # One series column: the hint names the two settings that read it.
    wide[["date", "north"]].to_csv(path, index=False)
    with pytest.raises(ArchlabError, match=r"a file of one series: --set data\.series_keys=none "
                       r"--set data\.target=north$"):  # fmt: skip
        sales.load_sales(cfg(path))


@pytest.mark.parametrize("date", ["Week", "Year", "Month"])
def test_a_date_column_named_like_a_calendar_column(tmp_path: Path, date: str) -> None:
    path = tmp_path / "wide.csv"
    pd.read_csv(write_wide(path)).rename(columns={"date": date}).to_csv(path, index=False)
    df = sales.load_sales(replace(cfg(path), date_column=date))
    assert df[date].dtype.kind == "M" and len(df) == 3 * STEPS


def test_a_wide_run_reads_one_series_histories_and_numeric_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab.cli import main

    path = tmp_path / "wide.csv"
    wide = pd.read_csv(write_wide(path)).drop(columns="west")
    wide.columns = ["date", "1", "2", "3"]  # series named by numbers
    wide.to_csv(path, index=False)
    capsys.readouterr()
    args = ["train", "--task", "sales", "--data", str(path), "--epochs", "1", "--out",
            str(tmp_path / "runs"), "--set", "data.date_column=date", "--set", "data.peer=none",
            "--set", "train.threads=1"]  # fmt: skip
    assert main(args) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["predict", run]) == 0
    ahead = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # Rows to forecast name the series as numbers, read as the training's text names.
    rows = tmp_path / "rows.csv"
    pd.DataFrame(ahead)[["series", "date"]].to_csv(rows, index=False)
    assert main(["predict", run, "--file", str(rows)]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["forecast"] for r in got] == pytest.approx([r["forecast"] for r in ahead])
    # eval on a wide file with a series the run never saw says so.
    other = tmp_path / "other.csv"
    wide.assign(**{"4": wide["1"]}).to_csv(other, index=False)
    capsys.readouterr()
    assert main(["eval", run, "--data", str(other)]) == 0
    assert "; 1 of its 4 series not in the run's training data" in capsys.readouterr().err
    # A history of one series column is a history, not rows to forecast.
    hist = tmp_path / "one.csv"
    wide[["date", "2"]].to_csv(hist, index=False)
    assert main(["predict", run, str(hist)]) == 0
    assert [json.loads(line)["series"] for line in capsys.readouterr().out.splitlines()] == ["2"]


def test_trailing_empty_rows_and_year_month_dates(tmp_path: Path) -> None:
    path = write_wide(tmp_path / "wide.csv")
    path.write_text(path.read_text() + ",,,,\n,,,,\n")  # a spreadsheet's empty rows
    df = sales.load_sales(cfg(path))
    assert len(df) == 3 * STEPS
    assert f"data: {path}: 2 empty row(s) at the end left out" in sales.reading_notes(df)
    months = pd.DataFrame({"date": pd.period_range("2015-01", periods=40, freq="M").astype(str),
                           "north": np.arange(40.0), "south": np.arange(40.0) + 5})  # fmt: skip
    months.to_csv(path, index=False)
    df = sales.load_sales(cfg(path))  # 2015-01: inferred, no data.date_format needed
    assert df["date"].min() == pd.Timestamp("2015-01-01") and df.attrs["resolved"]["date_format"] \
        == "%Y-%m"  # fmt: skip


def test_a_column_named_in_another_case_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    pd.read_csv(write_wide(path)).rename(columns={"date": "Date"}).to_csv(path, index=False)
    with pytest.raises(ArchlabError, match=r"did you mean 'Date' for 'date'\? \(names must"):
        sales.load_sales(cfg(path))
