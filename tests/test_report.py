"""The HTML report a person reads: math, code, tables, plots; checked in headless Chromium."""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from archlab import plots, rundir
from archlab.plots import eda_sales
from archlab.report.mathmd import to_html
from archlab.report.report import THEORY_DOC, Block, render_html, run_table, with_live_outputs

WIDTHS = (1400, 800, 390)


def _captured(monkeypatch: pytest.MonkeyPatch, module: object) -> list[plt.Figure]:
    """Figures that ``module`` would save, kept open for inspection."""
    figs: list[plt.Figure] = []
    monkeypatch.setattr(module, "_save", lambda fig, path: figs.append(fig))
    return figs


# --- Markdown, math and code ---------------------------------------------------------------
def test_markdown_math_becomes_mathml_and_code_keeps_its_dollars() -> None:
    text = (
        "Energy $E = mc^2$, costs $5 and $6.\n\n"
        "$$\n\\begin{aligned}\na &= b \\\\\nc &\\mathrel{+}= d\n\\end{aligned}\n$$\n\n"
        "Run `$ archlab theory softmax`:\n\n```\n$ archlab theory softmax\nok\n```\n"
    )
    out = to_html(text)
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in out
    assert 'display="block"' in out and "<mtable>" in out  # aligned rows as a table
    assert "$$" not in out and "$E" not in out and "&</mi>" not in out
    assert "costs $5 and $6" in out  # prices are not math
    assert "<code>$ archlab theory softmax</code>" in out
    assert "<pre><code>$ archlab theory softmax\nok\n</code></pre>" in out


def test_theory_doc_renders_without_raw_latex() -> None:
    if not THEORY_DOC.exists():
        pytest.skip(f"{THEORY_DOC} not found (not a source checkout)")
    out = to_html(THEORY_DOC.read_text(), shift_headings=3)
    prose = re.sub(r"<pre>.*?</pre>|<code>.*?</code>", "", out, flags=re.S)
    assert prose.count("<math") > 100
    assert "$" not in prose and "\\frac" not in prose and "\\begin" not in prose
    assert "<table>" in out and "<h4>" in out and "<h1>" not in out


def test_backticks_render_as_code_in_lists_cells_and_prose() -> None:
    page = render_html(
        [
            Block("list", ["use `make demo DATA=dir` or `archlab reproduce`"]),
            Block("table", [["key", "value"], ["`baseline_last_week`", "1.5"]]),
            Block("p", "preset `sales-rnn`"),
        ]
    )
    body = page.split("<main>", 1)[1]
    assert "`" not in body
    assert "<li>use <code>make demo DATA=dir</code> or <code>archlab reproduce</code></li>" in body
    # a long name may wrap after its underscores on a phone, never mid-word
    assert "<td><code>baseline_<wbr>last_<wbr>week</code></td>" in body


def test_live_outputs_replace_the_documents_copies() -> None:
    doc = (
        "intro\n\n```\n$ archlab theory lstm-grad\nold numbers 6.621e-16\n```\n\n"
        "```\n$ archlab theory conv --pool\nquoted\n```\n"
    )
    out = with_live_outputs(doc, {"archlab theory lstm-grad": "new numbers 4.195e-16\n"})
    assert "new numbers 4.195e-16" in out and "6.621e-16" not in out
    assert "$ archlab theory conv --pool\nquoted" in out  # not run live: quoted as written


# --- tables ----------------------------------------------------------------------------------
def test_per_run_tables_put_metrics_down_and_runs_across(tmp_path: Path) -> None:
    dirs = []
    for seed in (0, 1):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        rundir.write_metrics(
            {"test_wmae": 10.0 + seed, "baseline_last_step_wmae": 12.0,
             "baseline_seasonal_naive_wmae": 15.0, "baseline_mean_wmae": 13.0,
             "epochs_run": 4, "train_seconds": 3.5},
            d,
        )  # fmt: skip
        dirs.append(d)
    table = run_table("sales", dirs, {"test_wmae": 10.2})
    assert table[0] == ["metric", "s0", "s1", "mean ± std", "seeds averaged"]
    names = [r[0] for r in table[1:]]
    assert names[-2:] == ["epochs_run", "train_seconds"] and "baseline_mean_wmae" in names
    assert table[1] == ["test_wmae", "10.0000", "11.0000", "10.5000 ± 0.7071", "10.2000"]
    assert {len(r) for r in table} == {5}


def test_a_horizon_runs_table_lists_its_own_baselines(tmp_path: Path) -> None:
    # A horizon run's metrics.json has no 1-step baselines, but four horizon ones.
    rundir.write_metrics(
        {"test_wmae": 1695.7, "baseline_seasonal_naive_wmae": 1841.5,
         "baseline_seasonal_naive_3wk_wmae": 1734.6, "baseline_svd_seasonal_naive_wmae": 1728.4,
         "baseline_level_seasonal_naive_wmae": 1580.4, "baseline_last_value_wmae": 3192.9,
         "epochs_run": 4},
        tmp_path,
    )  # fmt: skip
    table = run_table("sales", [tmp_path], {})
    rows = {r[0]: r[1] for r in table[1:]}
    assert rows["baseline_svd_seasonal_naive_wmae"] == "1,728.4"
    assert rows["baseline_level_seasonal_naive_wmae"] == "1,580.4"
    assert "baseline_last_step_wmae" not in rows and len(rows) == 7


# --- plots and summaries ---------------------------------------------------------------------
def test_learning_curve_ticks_fall_on_whole_epochs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch, plots)
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e} for e in range(1, 5)]
    plots.learning_curves({"run": rows}, tmp_path / "c.png", metrics=["loss"])
    ax = figs[0].axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_sample_grid_titles_show_true_and_predicted_label(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch, plots)
    images = np.zeros((2, 1, 8, 8), dtype=np.uint8)
    names = ["cat", "dog", "ship"]
    plots.image_grid(images, np.array([0, 2]), np.array([0, 1]), np.array([0.9, 0.6]), names,
                     tmp_path / "g.png", cols=2)  # fmt: skip
    titles = [ax.get_title() for ax in figs[0].axes[:2]]
    assert titles == ["true cat\npred cat (0.90)", "true ship\npred dog (0.60)"]
    assert figs[0].axes[1].title.get_color() == "red"


def test_forecast_panels_keep_titles_clear_of_dates_and_name_the_baseline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figs = _captured(monkeypatch, eda_sales)
    dates = np.arange("2019-07", "2022-07", dtype="datetime64[M]").astype("datetime64[D]")
    y = np.linspace(1, 2, len(dates))
    series = {f"S{i}": (dates, y, y, y) for i in range(4)}
    eda_sales.actual_vs_forecast(series, tmp_path / "f.png", baseline="last_week")
    fig = figs[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    for upper, lower in itertools.pairwise(axes):
        title = lower.title.get_window_extent(renderer)
        for label in upper.get_xticklabels():
            if label.get_text():
                assert not title.overlaps(label.get_window_extent(renderer)), label.get_text()
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "baseline (last_week)" in legend


def test_forecast_plot_draws_the_strongest_baseline() -> None:
    from archlab.tasks.forecast import strongest_baseline

    extra = {"baseline_last_step_wmae": 90.6, "baseline_seasonal_naive_wmae": 392.4,
             "baseline_mean_wmae": 222.3}  # fmt: skip
    assert strongest_baseline(extra) == "last_step"
    extra["baseline_last_step_wmae"] = float("nan")  # a baseline with no rows never wins
    assert strongest_baseline(extra) == "mean"


def test_model_summary_prints_units_and_the_given_classes() -> None:
    from archlab.report.summary import model_summary

    text = model_summary("resnet18", "1x32x32", 10)
    assert "Units." not in text
    assert re.search(r"Total mult-adds \(M\): [\d.]+", text)
    assert re.search(r"Linear \(fc\)\s+\[1, 10\]\s+5,130", text)


# --- the demo's report, as a reader sees it -------------------------------------------------
@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo (tiny settings): digits and stock-price runs, theory, summaries, report."""
    from archlab.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo") / "out", tiny=True, log=lambda s: None)


def test_demo_report_summaries_use_the_runs_classes(demo_report: Path) -> None:
    md = (demo_report / "report.md").read_text()
    assert "### resnet18 (input 1x32x32, 10 classes)" in md  # digits: 10 classes at 32x32
    assert re.search(r"Linear \(fc\)\s+\[1, 10\]", md) and "Units." not in md


def test_demo_report_theory_shows_this_runs_lstm_output(demo_report: Path) -> None:
    out = demo_report.parent
    live = (out / "theory" / "04-lstm-grad.txt").read_text().strip()
    page = (demo_report / "index.html").read_text()
    doc = html.unescape(page.split('<div class="doc">', 1)[1])
    assert live in doc
    numbers = re.findall(r"dL/dw_hh\s+(\S+)", live)
    assert re.findall(r"dL/dw_hh\s+(\S+)", doc) == numbers  # the derivation's block is live


def chromium() -> str:
    """The chromium binary; skips (fails under CI, which installs it) when it is absent."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (CI installs it: apt-get install chromium)")
    return found


# Runs inside the harness: per iframe width, what a reader would hit.
PROBE = """
function probe(f){var d=f.contentDocument,w=d.defaultView,main=d.querySelector('main');
var imgs=[].slice.call(d.images),li=[].slice.call(d.querySelectorAll('li'));
var wide=[].slice.call(d.querySelectorAll('.scroll')).filter(function(s){
  return s.scrollWidth>s.clientWidth+1}).map(function(s){return s.innerText.slice(0,60)});
var text=d.body.innerText,first=d.querySelector('table tbody');
return {width:w.innerWidth,page:d.documentElement.scrollWidth,main:main.scrollWidth,
  mainClient:main.clientWidth,wideTables:wide,images:imgs.length,
  loaded:imgs.filter(function(i){return i.complete&&i.naturalWidth>0}).length,
  rows:first?first.rows.length:0,
  math:d.querySelectorAll('math').length,rawMath:(text.match(/\\$\\$/g)||[]).length,
  latex:(text.match(/\\\\(frac|begin|delta|sum)/g)||[]).length,
  backtickItems:li.filter(function(l){return l.innerText.indexOf('`')>=0}).length};}
var frames=[].slice.call(document.querySelectorAll('iframe')),done=0,out={};
frames.forEach(function(f){f.onload=function(){out[f.width]=probe(f);
  if(++done==frames.length)document.body.setAttribute('data-result',JSON.stringify(out));};
  f.src='index.html';});
"""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=15000",
]


def read_in_chromium(report: Path, profile: Path) -> tuple[dict[int, dict], str]:
    """Load ``report/index.html`` at each of WIDTHS; return the probe per width and the log."""
    harness = report / "harness.html"
    frames = "".join(f"<iframe width={w} height=900></iframe>" for w in WIDTHS)
    harness.write_text(f"<!doctype html><body>{frames}<script>{PROBE}</script></body>")
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--window-size=2400,1000",
           "--dump-dom", harness.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert 'data-result="' in dom.stdout, dom.stderr[-2000:]
    raw = dom.stdout.split('data-result="', 1)[1].split('"', 1)[0].replace("&quot;", '"')
    return {int(k): v for k, v in json.loads(raw).items()}, dom.stderr


def screenshot(report: Path, width: int, shot: Path, profile: Path) -> None:
    """What a person looks at: the top 3000 px of the report at ``width``."""
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},3000",
           f"--screenshot={shot}", (report / "index.html").as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (width, 3000)


def assert_readable(result: dict[int, dict]) -> None:
    """No sideways scroll of the page or the main column at any width, nor of any table from
    800 px up (on a phone a wide table scrolls in its own box); every image loaded."""
    for width in WIDTHS:
        r = result[width]
        assert r["page"] <= r["width"], r  # no horizontal scroll of the page
        assert r["main"] <= r["mainClient"], r  # nothing sticks out of the main column
        if width >= 800:
            assert r["wideTables"] == [], r  # every table fits: baselines, epochs_run visible
        assert r["images"] > 3 and r["loaded"] == r["images"], r
        assert r["rawMath"] == 0 and r["latex"] == 0 and r["backtickItems"] == 0, r


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
