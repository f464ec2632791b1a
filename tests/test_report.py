"""The HTML report a person reads: math, code, tables, plots; checked in headless Chromium."""

from __future__ import annotations

import html
import itertools
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from archlab import plots, rundir
from archlab.plots import eda_sales
from archlab.report.datanotes import CIFAR3_SHA256
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
    # a name is never broken (not even at its underscores): a table too wide scrolls instead
    assert '<td class="nw"><code>baseline_last_week</code></td>' in body and "<wbr>" not in body


def test_names_in_tables_never_wrap_and_wide_figures_scroll_on_a_phone(tmp_path: Path) -> None:
    fig, _ = plt.subplots(1, 3, figsize=(12, 3.2))  # side-by-side panels: learning curves
    fig.savefig(tmp_path / "curves.png")
    fig = plt.figure(figsize=(4, 4))
    fig.savefig(tmp_path / "square.png")
    plt.close("all")
    from archlab import plots  # the sample grid: 8 small captioned images a row, as runs draw it

    k, names = 32, [str(i) for i in range(10)]
    plots.image_grid(np.zeros((k, 1, 32, 32), np.uint8), np.arange(k) % 10, np.arange(k) % 10,
                     np.full(k, 0.9), names, tmp_path / "grid.png")  # fmt: skip
    page = render_html(
        [
            Block("table", [["metric", "s0"], ["test_r2_std", "0.5"], ["two words", "1"]]),
            Block("img", tmp_path / "curves.png", "learning curves"),
            Block("img", tmp_path / "square.png", "confusion matrix"),
            Block("img", tmp_path / "grid.png", "samples"),
        ]
    )
    assert "th.nw,td.nw{white-space:nowrap}" in page and ".scroll{overflow-x:auto" in page
    assert '<td class="nw">test_r2_std</td>' in page and "<td>two words</td>" in page
    assert "figure.wide{overflow-x:auto" in page
    assert page.count('<figure class="wide">') == 2  # curves and grid; the square one scales
    assert re.search(r'style="--phone-width:\d+px"><figcaption>samples', page)
    assert re.search(r'style="--phone-width:\d+px"><figcaption>learning curves', page)


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


# --- what the report says about the runs' data and networks ---------------------------------
def _study_out(tmp_path: Path, experiments: list[dict]) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    manifest = {"profile": "smoke", "seeds": 1, "data_dir": "mine", "experiments": experiments,
                "skipped": {}, "eda": {}}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _run(out: Path, part: str, key: str, metrics: dict, data: dict) -> dict:
    d = out / part / key / "s0"
    d.mkdir(parents=True)
    rundir.write_metrics(metrics, d)
    (d / rundir.DATA).write_text(json.dumps(data))
    return {"part": part, "key": key, "title": key, "kind": "run", "preset": key,
            "study": [], "runs": {"": ["s0"]}}  # fmt: skip


IMAGE_DATA = {"source": "my/photos", "layout": "class_folders", "class_names": ["blue", "red"],
              "channels": 1, "size": 32, "n_images": 40,
              "split_sizes": {"train": 28, "val": 6, "test": 6},
              "split_source": {"test": "15% of all images, stratified"}}  # fmt: skip


def test_differences_describe_the_images_the_runs_read(tmp_path: Path) -> None:
    from archlab.report.report import build_report

    out = _study_out(tmp_path, [])
    exp = _run(out, "images", "vgg13", {"test_accuracy": 0.5}, IMAGE_DATA)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "experiments": [exp]}))
    md = (build_report(out) / "report.md").read_text()
    differs = md.split("## What differs from the study", 1)[1].split("\n## ", 1)[0]
    assert "CIFAR" not in md and "18,000" not in md and "12,600" not in md
    assert "`my/photos`: 2 classes (blue, red) at 32×32" in differs
    assert "40 images, split 28/6/6 (train/validation/test)" in differs
    assert "Sales:" not in differs and "Text:" not in differs  # parts that did not run
    # the study's stand-in (checked by its hash) is named as such
    files = {"cifar10_dog_automobile_ship.npz": {"bytes": 1, "sha256": CIFAR3_SHA256}}
    (out / "images" / "vgg13" / "s0" / rundir.INPUTS).write_text(json.dumps({"files": files}))
    md = (build_report(out) / "report.md").read_text()
    assert "three CIFAR-10 classes (blue, red)" in md


def test_a_sales_network_left_unused_is_said_beside_its_numbers(tmp_path: Path) -> None:
    from archlab.report.report import build_report

    out = _study_out(tmp_path, [])
    m = {"test_wmae": 46.1155, "baseline_mean_wmae": 46.1155, "baseline_last_step_wmae": 59.0,
         "correction_scale": 0.0, "test_blend_wmae": 50.26, "blend_weight": 0.0}  # fmt: skip
    exps = [_run(out, "sales", k, m, {"framing": "forecast"}) for k in ("rnn", "lstm")]
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "experiments": exps}))
    where = out / "sales" / "rnn" / "s0" / "explain"
    where.mkdir()
    fig = plt.figure()
    for f in ("ig_feature_groups.png", "permutation_importance.png"):
        fig.savefig(where / f)
    plt.close(fig)
    note = "the run's correction scale is 0 (chosen on validation): its forecasts are ..."
    summary = {"task": "sales", "note": note, "test_wmae": 46.1155,
               "files": ["ig_feature_groups.png", "permutation_importance.png"],
               "ig_mean_abs_sales": {"recent sales": 0.0, "calendar": 0.0},
               "permutation": {"recent sales": {"wmae_rise": 0.0},
                               "calendar": {"wmae_rise": 0.0}}}  # fmt: skip
    (where / "explain.json").write_text(json.dumps(summary))
    md = (build_report(out) / "report.md").read_text()
    assert "| rnn (network not used) | test_wmae | 46.1155 |" in md  # flagged in the summary
    summary_part = md.split("## What differs", 1)[0]
    assert "Network not used in rnn, lstm: the correction scale is 0" in summary_part
    assert "`test_wmae` equals `baseline_mean_wmae` (46.1155)" in summary_part
    assert "`blend_weight` 0 (0: the peer alone)" in summary_part
    assert md.count("Network not used in run s0") == 2  # beside each run table
    assert "most: by" not in md and "The run's correction scale is 0" in md
    assert "explain/permutation_importance.png" not in md  # empty plots left out, said why
    assert "Its plots are left out: every attribution and effect in them is 0." in md


def test_an_ablation_whose_best_techniques_tie_says_so(tmp_path: Path) -> None:
    from archlab.report.tables import summary_rows

    out = _study_out(tmp_path, [])
    for t, acc in (("baseline", 0.6444), ("dropout", 0.6444), ("l2", 0.6)):
        (out / "text" / "v" / f"{t}-s0").mkdir(parents=True)
        rundir.write_metrics({"test_accuracy": acc}, out / "text" / "v" / f"{t}-s0")
    exp = {"part": "text", "key": "v", "title": "variants", "kind": "ablation", "study": [],
           "runs": {t: [f"{t}-s0"] for t in ("baseline", "dropout", "l2")}}  # fmt: skip
    (row,) = summary_rows(out, {"experiments": [exp]}, {"results": {}})
    assert row[2] == "tied: baseline, dropout 0.6444"


def test_a_sales_blend_that_leaves_the_network_out_is_said(tmp_path: Path) -> None:
    # The network corrects its own forecasts, but the blend predict answers chose scale 0:
    # variants of the network (the dropout/L2 table) cannot change what predict says.
    from archlab.report.report import build_report

    out = _study_out(tmp_path, [])
    m = {"test_wmae": 40.5, "baseline_mean_wmae": 46.1, "correction_scale": 0.6,
         "test_blend_wmae": 38.2, "blend_weight": 0.3, "blend_correction_scale": 0.0}  # fmt: skip
    exps = [_run(out, "sales", "rnn", m, {"framing": "forecast"})]
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "experiments": exps}))
    md = (build_report(out) / "report.md").read_text()
    assert "| rnn (its blend does not use the network) | test_wmae | 40.5000 |" in md
    assert ("The blend in run s0 does not use the network: its correction scale is 0 (chosen "
            "on validation), so what `predict` answers (0.3 × the naive base + 0.7 × the "
            "peer)") in md  # fmt: skip
    summary_part = md.split("## Summary")[1].split("## ")[0]
    assert "The blend in rnn does not use the network" in summary_part  # beside the summary too
    assert "Network not used" not in md


def test_the_error_by_date_legend_sits_outside_the_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from archlab.plots import horizon

    figs = _captured(monkeypatch, horizon)
    dates = np.arange("2012-02-03", "2012-11-01", 7, dtype="datetime64[D]")
    names = ["model", "seasonal_naive", "mean", "last_step", "mstl_ets", "a", "b", "c"]
    horizon.error_by_date(dates, {n: np.linspace(10, 100, len(dates)) for n in names},
                          tmp_path / "e.png")  # fmt: skip
    fig = figs[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # right of the axes, not over them
    assert legend.x1 <= fig.bbox.x1 + 1  # and inside the figure


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


def test_a_one_epoch_curve_is_a_point_on_its_epoch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A line through one point draws nothing: a 1-epoch run's curves were empty panels on an
    # axis of 0.945 ... 1.050.
    figs = _captured(monkeypatch, plots)
    rows = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}]
    plots.learning_curves({"run": rows}, tmp_path / "c.png", metrics=["loss"])
    ax = figs[0].axes[0]
    assert [line.get_marker() for line in ax.get_lines()] == ["s", "o"]  # train, val
    assert ax.get_title() == "loss (val: dot, train: square)"
    lo, hi = ax.get_xlim()
    assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0]


def test_a_confusion_matrix_of_many_long_classes_stays_readable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 100 classes with an 80-character name made a 5,800 px figure with a number in each cell.
    figs = _captured(monkeypatch, plots)
    names = ["L" * 80] + [f"class_{i}" for i in range(99)]
    plots.confusion_matrix(np.eye(100, dtype=int), names, tmp_path / "cm.png", "Test predictions")
    fig, ax = figs[0], figs[0].axes[0]
    assert max(fig.get_size_inches()) < 22 and not ax.texts
    assert ax.get_xticklabels()[0].get_text() == "L" * 23 + "…"
    assert ax.get_title() == "Test predictions"
    plots.confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"], tmp_path / "cm3.png")
    assert len(figs[1].axes[0].texts) == 9  # a small one keeps its counts


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


def test_text_eda_labels_no_font_can_draw_are_one_note_per_plot(tmp_path: Path, capsys) -> None:
    import warnings

    from matplotlib import font_manager

    from archlab.cli import main
    from archlab.plots import FALLBACK_FONTS

    if {f.name for f in font_manager.fontManager.ttflist} & set(FALLBACK_FONTS):
        pytest.skip("this machine has a CJK font: the characters draw")
    rows = "".join(f"text number {i},{('好', '坏')[i % 2]}\n" for i in range(24))
    (tmp_path / "t.csv").write_text("text,label\n" + rows, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no per-glyph UserWarning gets out
        assert main(["eda", "--task", "text", "--data", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / "eda")]) == 0  # fmt: skip
    notes = [n for n in capsys.readouterr().err.splitlines() if "have no glyph" in n]
    assert notes and all(n.startswith("archlab: note: ") for n in notes)


def _text_eda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv: str) -> dict[str, plt.Figure]:
    """`archlab eda --task text` of the CSV text ``csv``: its figures by file name, drawn (so
    their layout can be measured) and saved as usual."""
    import archlab.plots.eda_text as eda
    from archlab.cli import main

    figs: dict[str, plt.Figure] = {}
    save = eda.save_png

    def keep(fig: plt.Figure, path: Path) -> None:
        fig.canvas.draw()
        figs[path.name] = fig
        save(fig, path)

    monkeypatch.setattr(eda, "save_png", keep)
    (tmp_path / "t.csv").write_text(csv)
    assert main(["eda", "--task", "text", "--data", str(tmp_path / "t.csv"),
                 "--out", str(tmp_path / "eda")]) == 0  # fmt: skip
    return figs


def test_text_eda_puts_the_group_legend_beside_the_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # inside the counts panel it covered the tallest group's bar
    rows = "".join(f"text number {i},{('pos', 'neg')[i % 2]},{'AB'[i % 3 % 2]}\n"
                   for i in range(24))  # fmt: skip
    figs = _text_eda(tmp_path, monkeypatch, "text,label,airline\n" + rows)
    counts, share = figs["label_by_airline.png"].axes
    legend = share.get_legend()
    assert counts.get_legend() is None and legend is not None
    assert legend.get_window_extent().x0 >= share.get_window_extent().x1


def test_text_eda_of_many_long_classes_does_not_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 12 names of ~22 characters printed on top of each other under vertical bars, and the
    # length histograms' legend covered the plot at 100 classes.
    names = [f"complaint_about_topic_{i:02d}" for i in range(40)]
    rows = "".join(f"text number {i} here,{names[i % 40]}\n" for i in range(120))
    figs = _text_eda(tmp_path, monkeypatch, "text,label\n" + rows)
    ax = figs["label_counts.png"].axes[0]
    assert ax.get_title() == "label counts (120 rows)"  # the file's column, not the default's
    boxes = [t.get_window_extent() for t in ax.get_yticklabels() if t.get_text()]
    assert len(boxes) == 40
    assert all(a.y1 <= b.y0 + 0.5 or b.y1 <= a.y0 + 0.5
               for a, b in itertools.pairwise(boxes))  # fmt: skip
    lengths = figs["text_lengths.png"].axes
    assert lengths[1].get_legend() is None and "all 40 classes" in lengths[0].get_title()


@pytest.mark.parametrize(
    "name", ["back`tick", "<script>alert(1)</script>", "*star*", "[link](http://x)", "a|b", "_u_"]
)
def test_class_names_in_prose_are_shown_as_written(name: str) -> None:
    # A class named back`tick opened a code span to the next backtick, and report.md wrote
    # <b>, *star* and [link](...) raw for a Markdown viewer to render.
    from markdown_it import MarkdownIt  # CommonMark, as GitHub and editors read report.md

    from archlab.report.blocks import literal, render_md

    text = f"The panels toward {literal(name)} and `code` are empty."
    page = render_html([Block("p", text)])
    assert f"The panels toward {html.escape(name)} and <code>code</code> are empty." in page
    md = render_md([Block("p", text)], Path("."))
    shown = MarkdownIt("commonmark").render(md)
    assert f"toward {html.escape(name, quote=False)} and <code>code</code>" in shown


def test_a_pipe_in_a_markdown_table_cell_stays_in_its_cell() -> None:
    from markdown_it import MarkdownIt

    from archlab.report.blocks import render_md

    md = render_md([Block("table", [["class", "n"], ["a|b", "1"]])], Path("."))
    shown = MarkdownIt("commonmark").enable("table").render(md)
    assert "<td>a|b</td>" in shown and "<td>1</td>" in shown
    assert ">a|b</td>" in render_html([Block("table", [["class", "n"], ["a|b", "1"]])])
