"""The HTML report a person reads: math, code, tables, plots; checked in headless Chromium."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from archlab import plots, rundir
from archlab.plots import eda_sales
from archlab.report.mathmd import to_html
from archlab.report.report import THEORY_DOC, Block, render_html, run_table, with_live_outputs


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
    from archlab.tasks.sales_horizon import strongest_baseline

    extra = {"baseline_last_step_wmae": 90.6, "baseline_seasonal_naive_wmae": 392.4,
             "baseline_mean_wmae": 222.3}  # fmt: skip
    names = ["last_step", "seasonal_naive", "mean"]
    assert strongest_baseline(extra, names) == "last_step"
    extra["baseline_last_step_wmae"] = float("nan")  # a baseline with no rows never wins
    assert strongest_baseline(extra, names) == "mean"


def test_model_summary_prints_units_and_the_given_classes() -> None:
    from archlab.report.summary import model_summary

    text = model_summary("resnet18", "1x32x32", 10)
    assert "Units." not in text
    assert re.search(r"Total mult-adds \(M\): [\d.]+", text)
    assert re.search(r"Linear \(fc\)\s+\[1, 10\]\s+5,130", text)


def test_characters_no_font_can_draw_are_one_note(tmp_path: Path, capsys) -> None:
    import warnings

    from matplotlib import font_manager

    from archlab.plots import FALLBACK_FONTS, _save

    if {f.name for f in font_manager.fontManager.ttflist} & set(FALLBACK_FONTS):
        pytest.skip("this machine has a CJK font: the characters draw")
    fig, ax = plt.subplots()
    ax.set_title("航班 航班 delayed")  # a class or token name in Chinese
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no per-glyph UserWarning gets out
        _save(fig, tmp_path / "f.png")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("archlab: note: f.png: 2 character(s) (航班)")
    assert (tmp_path / "f.png").stat().st_size > 1000
