"""`archlab demo`: the study's pipeline and report on real data shipped inside pinned dependencies.

Images: scikit-learn's 1,797 handwritten 8x8 digits (upscaled to 32x32). Sales: monthly closing
prices of ten tickers from matplotlib's sample data (``mpl-data/sample_data/Stocks.csv``), turned
at run time into a long Symbol/Date/Close panel under ``<out>/data/stocks/``. No text corpus ships
in the dependencies, so the text part is skipped with one line. Everything else (runs, theory
checks, model summaries, EDA, report) goes through ``reproduce.run_study``: the demo report is
the study's report, with the data it used stated and no comparison with the study's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from archlab import rundir
from archlab.reproduce import PARTS, Experiment, run_study, to_stderr
from archlab.utils import write_text_atomic

STOCKS_FILE = "stocks_monthly.csv"
# The stocks panel in the sales task's terms: one series per ticker, no side tables, holiday
# flag or covariates; monthly steps (12 per season); the last 3 years test, the 2 before val.
STOCKS: tuple[str, ...] = (
    f"data.train_file={STOCKS_FILE}",
    "data.features_file=",
    "data.stores_file=",
    "data.series_keys=Symbol",
    "data.store_column=Symbol",
    "data.target=Close",
    "data.holiday_column=",
    "data.covariates=",
    "data.markdown_columns=",
    "data.ffill_columns=",
    "data.season=12",
    "data.require_lags=1,12",
    "data.test_steps=36",
    "data.val_steps=24",
    # Prices are close to a random walk: the network corrects last month's close instead of
    # the mean of last month and last year (the weekly-sales default).
    "data.residual=last_step",
)
# 8x8 digits upscaled to 32x32: no augmentation (a flipped or shifted digit is another glyph).
_DIGITS = ("train.epochs=4", "train.batch_size=64", "train.eval_batch_size=256", "reg.augment=none")
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "images", "resnet18-digits", "ResNet-18 on digits", "images-resnet18", overrides=_DIGITS
    ),
    Experiment("sales", "rnn-stocks", "RNN forecaster on monthly closes", "sales-rnn"),
    Experiment("sales", "lstm-stocks", "LSTM forecaster on monthly closes", "sales-lstm"),
    Experiment("sales", "gru-stocks", "GRU forecaster on monthly closes", "sales-gru"),
)
# `tiny=True` (tests only): one epoch of two small steps on 200 digits; numbers are not results.
TINY: dict[str, tuple[str, ...]] = {
    "images": ("data.subset=200", "train.epochs=1", "train.max_steps_per_epoch=2"),
    "sales": ("train.epochs=1", "train.max_steps_per_epoch=2"),
}
TEXT_SKIPPED = (
    f"skipping {PARTS['text']}: no text corpus ships in archlab's dependencies; point it at a "
    "CSV with `make demo DATA=dir` (dir/twitter_airline/Tweets.csv) or "
    "`archlab train --task text --data your.csv`"
)
DIFFERENCES = [
    "This is the demo: its data ship inside archlab's pinned dependencies and are not the "
    "study's, so no number here is compared with the study's (the study column stays empty). "
    "`make demo DATA=dir` or `archlab reproduce --data-dir dir` runs the study on the real data.",
    "Images: ResNet-18 only (4 epochs, batch 64, no augmentation). VGG-13 is left out: one epoch "
    "on the digits took over a minute of CPU time and stayed at chance accuracy (so did VGG-13-BN "
    "after 2 epochs on 600 digits); a run that learns does not fit the demo's 5 minutes. Its "
    "layer table is under Model summaries.",
    "Sales: share prices, not sales. One series per ticker, monthly steps (indexed by calendar "
    "month, 12 per season), no holiday flag (WMAE equals MAE) and no covariates; the last 36 "
    "months are test, the 24 before them validation. The network predicts a correction to last "
    "month's close; `baseline_last_step` is that last-value (naive) forecast, "
    "`baseline_seasonal_naive` the close 12 months earlier.",
    "Text: not run (no corpus ships in the dependencies).",
]


def stocks_panel() -> pd.DataFrame:
    """matplotlib's Stocks.csv as a long (Symbol, Date, Close) table of monthly closes."""
    from matplotlib import cbook

    wide = pd.read_csv(cbook.get_sample_data("Stocks.csv", asfileobj=False), comment="#")
    # The file mixes first-of-month rows with ~130 mid-month rows that are (nearly) all empty.
    wide = wide[pd.to_datetime(wide["Date"], format="%Y-%m-%d").dt.day == 1]
    long = wide.melt(id_vars="Date", var_name="Symbol", value_name="Close").dropna()
    return long[["Symbol", "Date", "Close"]].sort_values(["Symbol", "Date"], ignore_index=True)


def run_demo(out: Path, *, tiny: bool = False, log: Callable[[str], None] = to_stderr) -> Path:
    """Run the demo set into ``out`` and build ``out/report``; returns the report directory."""
    stocks = stocks_panel()
    stocks_dir = out / "data" / "stocks"
    write_text_atomic(stocks_dir / STOCKS_FILE, stocks.to_csv(index=False))
    symbols = ", ".join(stocks["Symbol"].unique())
    data = {
        "images": "scikit-learn's bundled handwritten digits (`sklearn.datasets.load_digits`: "
        "1,797 images of 8×8 pixels, 10 classes), upscaled to 32×32; not the study's images.",
        "sales": f"{len(stocks):,} monthly closes of {stocks['Symbol'].nunique()} tickers "
        f"({symbols}), {stocks['Date'].min()[:7]} to {stocks['Date'].max()[:7]}, from "
        "matplotlib's sample data (`mpl-data/sample_data/Stocks.csv`, Yahoo Finance), written "
        f"at run time to `data/stocks/{STOCKS_FILE}`; not the study's Walmart sales.",
        "text": "none (skipped).",
    }
    experiments = EXPERIMENTS
    note = "Demo settings: " + "; ".join(
        f"{e.title}: preset `{e.preset}`"
        + (f" with {', '.join(e.overrides)}" if e.overrides else "")
        for e in experiments
    )
    if tiny:
        experiments = tuple(
            replace(e, overrides=(*e.overrides, *TINY[e.part])) for e in experiments
        )
        note = (
            "Tiny test settings ("
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in TINY.items())
            + "): numbers are not results."
        )
    return run_study(
        {"images": "", "sales": str(stocks_dir)},
        "demo-tiny" if tiny else "demo",
        1,
        out,
        experiments=experiments,
        overrides={"sales": STOCKS},
        skipped={"text": TEXT_SKIPPED},
        manifest_extra={
            "title": "archlab demo: the study's pipeline on data shipped with its dependencies",
            "data": data,
            "differences": DIFFERENCES,
            "profile_note": note,
        },
        command="demo" + (" (tiny)" if tiny else ""),
        log=log,
    )


# metrics.json keys printed per run by `archlab demo`, when present.
SHOWN = (
    "test_accuracy",
    "test_f1_macro",
    "test_wmae",
    "baseline_last_step_wmae",
    "test_r2",
    "epochs_run",
    "train_seconds",
)


def result_lines(out: Path) -> list[str]:
    """One line per run of ``out/manifest.json``: its directory and main metrics."""
    manifest = json.loads((out / "manifest.json").read_text())
    lines = []
    for exp in manifest["experiments"]:
        for runs in exp["runs"].values():
            for run in runs:
                run_dir = out / exp["part"] / exp["key"] / run
                m = rundir.read_metrics(run_dir)
                shown = " ".join(
                    f"{k}={m[k]:.4f}" if isinstance(m[k], float) else f"{k}={m[k]}"
                    for k in SHOWN
                    if k in m
                )
                lines.append(f"{exp['part']}/{exp['key']}/{run}: {shown}")
    return lines
