"""Exploratory plots of a short-text CSV: class counts, classes by group, reasons, lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archlab.data.text import read_labelled
from archlab.errors import ArchlabError
from archlab.plots import _save as save_png
from archlab.plots import plt, short_label
from archlab.rundir import safe_name

REASON_COLUMN = "negativereason"  # the airline file's reason for a negative tweet
DEFAULT_GROUP = "airline"


def _save(fig: plt.Figure, path: Path) -> Path:
    save_png(fig, path)  # a label no font draws (CJK) is one note, not a warning per glyph
    return path


def text_eda(cfg: Any, out_dir: Path) -> list[Path]:
    """Write the text task's exploratory PNGs into ``out_dir``; return their paths.

    ``cfg`` is a RunConfig whose ``data`` is a TextDataConfig. An explicitly chosen
    ``data.group_column`` must exist; by default the 'airline' column is used when present.
    """

    c = cfg.data
    group = c.group_column or DEFAULT_GROUP
    df = read_labelled(c.path, c.text_column, c.label_column, c.encoding, (group, REASON_COLUMN),
                       layout=c.layout)  # fmt: skip
    if c.group_column and c.group_column not in df.columns:
        raise ArchlabError(f"{c.path}: no column {c.group_column!r} for data.group_column")
    df = df[(df[c.text_column].str.strip() != "") & (df[c.label_column].str.strip() != "")]
    label = df[c.label_column]
    # the file's own name for it: a file without the default column reads another one
    named = df.attrs.get("label_from", c.label_column)
    order = list(c.labels) if c.labels else sorted(label.unique())
    out_dir = Path(out_dir)
    written = []

    counts = label.value_counts().reindex(order, fill_value=0)
    # Horizontal bars, a row per class: side by side, 12 names of 20 characters overlapped.
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.3 * len(order)))
    # Positions, not the cut names: two classes cut to one label stay two bars.
    ax.barh(range(len(order)), counts.values[::-1],
            color=[f"C{i % 10}" for i in range(len(order))][::-1])  # fmt: skip
    ax.set_yticks(range(len(order)), [short_label(str(n)) for n in order][::-1])
    for i, v in enumerate(counts.values[::-1]):
        ax.text(v, i, f" {v} ({v / max(1, counts.sum()):.0%})", va="center", fontsize=8)
    ax.set_xlim(0, counts.max() * 1.3 + 1)  # room for the counts right of the longest bar
    ax.set_title(f"{named} counts ({len(df)} rows)")
    written.append(_save(fig, out_dir / "label_counts.png"))

    if group in df.columns:
        table = pd.crosstab(df[group], label).reindex(columns=order, fill_value=0)
        share = table.div(table.sum(axis=1), axis=0)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        table.plot.bar(stacked=True, ax=axes[0], rot=30, legend=False)
        axes[0].set_title(f"{named} by {group} (counts)")
        share.plot.bar(stacked=True, ax=axes[1], rot=30, legend=False)
        axes[1].set_title("share within group")
        # One legend, right of the panels: inside the counts it covered the tallest bar.
        handles, names = axes[0].get_legend_handles_labels()
        axes[1].legend(handles, names, title=named, loc="upper left",
                       bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip
        # The column name comes from the data: made file-name-safe so it cannot leave out_dir.
        written.append(_save(fig, out_dir / f"label_by_{safe_name(group)}.png"))

    if REASON_COLUMN in df.columns:
        reasons = df.loc[df[REASON_COLUMN].str.strip() != "", REASON_COLUMN].value_counts()
        if len(reasons):
            fig, ax = plt.subplots(figsize=(6, 0.35 * len(reasons) + 1))
            ax.barh(reasons.index[::-1], reasons.values[::-1], color="C3")
            ax.set_title(f"{REASON_COLUMN} ({int(reasons.sum())} rows)")
            written.append(_save(fig, out_dir / "negative_reasons.png"))

    chars = df[c.text_column].str.len()
    words = df[c.text_column].str.split().str.len()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    # Shared bin edges so the classes' histograms are comparable bar by bar.
    char_bins = np.linspace(chars.min(), chars.max(), 31)
    word_bins = np.arange(words.min(), words.max() + 2) - 0.5
    overlaid = len(order) <= 10  # past 10 colours repeat and the histograms hide each other
    for name in order if overlaid else []:
        mask = label == name
        axes[0].hist(chars[mask], bins=char_bins, alpha=0.5, label=short_label(str(name)))
        axes[1].hist(words[mask], bins=word_bins, alpha=0.5, label=short_label(str(name)))
    if not overlaid:
        axes[0].hist(chars, bins=char_bins, color="C0")
        axes[1].hist(words, bins=word_bins, color="C0")
    axes[0].set_xlabel("characters")
    axes[1].set_xlabel("whitespace-separated words")
    axes[0].set_title("text length by class" if overlaid else
                      f"text length (all {len(order)} classes together)")  # fmt: skip
    if overlaid:
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    written.append(_save(fig, out_dir / "text_lengths.png"))
    return written
