"""`archlab demo`: the study's report from shipped data (tiny settings); text skipped in a line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archlab.cli import main
from archlab.demo import TEXT_SKIPPED, run_demo, stocks_panel


def test_stocks_panel_is_long_and_monthly() -> None:
    df = stocks_panel()
    assert list(df.columns) == ["Symbol", "Date", "Close"]
    assert df["Symbol"].nunique() == 10 and df["Close"].notna().all()
    assert (df["Date"].str[8:] == "01").all()  # first-of-month rows only
    assert not df.duplicated(["Symbol", "Date"]).any()


def test_demo_builds_the_study_report_on_shipped_data(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    lines: list[str] = []
    report = run_demo(out, tiny=True, log=lines.append)
    md = (report / "report.md").read_text()
    for section in (
        "## Summary",
        "## Parts I–II",
        "## Part III",
        "## Model summaries",
        "## Part V: theory",
    ):
        assert section in md, section
    assert "## Part IV" not in md and TEXT_SKIPPED in md and TEXT_SKIPPED in lines
    assert "FAILED" not in md  # theory checks ran and passed
    # Explanations: written into the first run dir of each experiment, read back by the report.
    assert md.count("### What the networks look at") == 2
    assert "gradcam_top_losses.png" in md and "permutation_importance.png" in md
    assert (out / "images" / "resnet18-digits" / "s0" / "explain" / "explain.json").exists()
    assert "load_digits" in md and "Stocks.csv" in md  # the report says which data it used
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["key"] for e in manifest["experiments"]] == [
        "resnet18-digits",
        "rnn-stocks",
        "lstm-stocks",
        "gru-stocks",
    ]
    assert manifest["eda"]["sales"]  # the sales EDA runs on the stocks columns
    summary = md.split("## Summary", 1)[1].split("\n\n", 2)[1].splitlines()[2:]
    assert len(summary) == 4 and all(r.split("|")[4].strip() == "—" for r in summary)
    info = json.loads((out / "sales" / "rnn-stocks" / "s0" / "data.json").read_text())
    assert info["time_step"] == "calendar month" and info["n_series"] == 10
    assert info["n_steps"] == 390  # 1990-01 .. 2022-06, one step per month, no gaps
    assert (report / "index.html").stat().st_size > 10_000


def test_demo_data_must_hold_the_study_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "images3/, walmart/ or twitter_airline/" in capsys.readouterr().err
