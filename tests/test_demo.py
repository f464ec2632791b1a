"""`archlab demo`: the study's report from shipped data (tiny settings); text skipped in a line."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from archlab.cli import main
from archlab.demo import TEXT_SKIPPED, run_demo, stocks_panel
from tests.helpers import WIDTHS, assert_readable, read_in_chromium, screenshot


def test_stocks_panel_is_long_and_monthly() -> None:
    df = stocks_panel()
    assert list(df.columns) == ["Symbol", "Date", "Close"]
    assert df["Symbol"].nunique() == 10 and df["Close"].notna().all()
    assert (df["Date"].str[8:] == "01").all()  # first-of-month rows only
    assert not df.duplicated(["Symbol", "Date"]).any()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo (tiny settings): digits and stock-price runs, theory, summaries, report; its
    report folder and the lines it printed. Built once for every test below (~17 s)."""
    lines: list[str] = []
    return run_demo(tmp_path_factory.mktemp("demo") / "out", tiny=True, log=lines.append), lines


@pytest.fixture
def demo_report(demo: tuple[Path, list[str]]) -> Path:
    return demo[0]


@pytest.mark.xdist_group("demo")  # one worker builds the demo
def test_demo_builds_the_study_report_on_shipped_data(
    demo: tuple[Path, list[str]], request: pytest.FixtureRequest
) -> None:
    if getattr(request.config.option, "loadgroup", False):  # a worker of `-n 2 --dist loadgroup`
        # the group reached the scheduler (it did not under pytest 9): one worker builds the demo
        assert request.node.nodeid.endswith("@demo"), request.node.nodeid
    report, lines = demo
    out = report.parent
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


# --- the demo's report, as a reader sees it -------------------------------------------------
@pytest.mark.xdist_group("demo")  # one worker builds the demo
def test_demo_report_summaries_use_the_runs_classes(demo_report: Path) -> None:
    md = (demo_report / "report.md").read_text()
    assert "### resnet18 (input 1x32x32, 10 classes)" in md  # digits: 10 classes at 32x32
    assert re.search(r"Linear \(fc\)\s+\[1, 10\]", md) and "Units." not in md


@pytest.mark.xdist_group("demo")  # one worker builds the demo
def test_demo_report_theory_shows_this_runs_lstm_output(demo_report: Path) -> None:
    out = demo_report.parent
    live = (out / "theory" / "04-lstm-grad.txt").read_text().strip()
    page = (demo_report / "index.html").read_text()
    doc = html.unescape(page.split('<div class="doc">', 1)[1])
    assert live in doc
    numbers = re.findall(r"dL/dw_hh\s+(\S+)", live)
    assert re.findall(r"dL/dw_hh\s+(\S+)", doc) == numbers  # the derivation's block is live


@pytest.mark.xdist_group("demo")  # one worker builds the demo
def test_demo_report_in_chromium_at_desktop_tablet_and_phone_widths(
    demo_report: Path, tmp_path: Path
) -> None:
    result, log = read_in_chromium(demo_report, tmp_path / "chrome-profile")
    assert_readable(result)
    for width in WIDTHS:
        assert result[width]["images"] >= 10 and result[width]["math"] > 100, result[width]
        assert result[width]["rows"] == 4  # the summary: one row per experiment
    assert [ln for ln in log.splitlines() if "CONSOLE" in ln and "index.html" in ln] == []
    for width in WIDTHS:
        screenshot(demo_report, width, tmp_path / f"report-{width}.png", tmp_path / "profile")
