"""Matplotlib figures written as PNG files (headless Agg backend): a run's figures here, the
sales and text figures in eda_sales and eda_text.

A low layer (docs/architecture.md): the tasks, the runner and the explanations draw with it;
it imports only data readers and utilities, never a task or the report.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from archlab.utils import atomic_path

# Fonts with the scripts DejaVu Sans lacks (Chinese, Japanese, Korean, Arabic, Devanagari):
# matplotlib falls back to them glyph by glyph where a machine has them installed.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans", "WenQuanYi Zen Hei",
                  "Noto Sans Arabic", "Noto Sans Devanagari", "Arial Unicode MS")  # fmt: skip
_GLYPH = re.compile(r"Glyph \d+ \((.+)\) missing from font")


@cache
def _use_fallback_fonts() -> None:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    extra = [f for f in FALLBACK_FONTS if f in have]
    if extra:
        plt.rcParams["font.family"] = ["DejaVu Sans", *extra]


def _save(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as a PNG atomically; characters no font here can draw (labels in Chinese
    on a machine without a CJK font) are one note naming them, not a warning per glyph."""
    _use_fallback_fonts()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught, atomic_path(path) as tmp:
        warnings.simplefilter("always")
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    missing: dict[str, None] = {}
    for w in caught:
        if m := _GLYPH.match(str(w.message)):
            missing[m.group(1)] = None
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if missing:
        chars = [_char(name) for name in missing]
        print(f"archlab: note: {path.name}: {len(chars)} character(s) ({''.join(chars[:10])}"
              f"{'...' if len(chars) > 10 else ''}) have no glyph in the fonts installed and "
              "show as boxes; install a font with them (e.g. Noto Sans CJK) to draw them",
              file=sys.stderr)  # fmt: skip


def _char(name: str) -> str:
    """``\\N{CJK UNIFIED IDEOGRAPH-822A}`` (matplotlib's spelling of a glyph) as the character."""
    try:
        return name.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        return name


def learning_curves(
    runs: dict[str, Sequence[dict[str, float]]],
    path: Path,
    metrics: Sequence[str] = ("loss", "accuracy"),
) -> None:
    """Train (dashed) and val (solid) curves per metric; several runs overlay in one figure."""
    metrics = [m for m in metrics if any(f"val_{m}" in r for rows in runs.values() for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    one_epoch = all(len(rows) < 2 for rows in runs.values())
    for ax, m in zip(axes[0], metrics, strict=True):
        for i, (label, rows) in enumerate(runs.items()):
            color = f"C{i % 10}"
            ep = [r["epoch"] for r in rows]
            one = len(ep) < 2  # a one-epoch line draws nothing without a marker
            if f"train_{m}" in rows[0]:
                ax.plot(ep, [r[f"train_{m}"] for r in rows], "--", color=color, alpha=0.7,
                        marker="s" if one else None, fillstyle="none")  # fmt: skip
            ax.plot(ep, [r[f"val_{m}"] for r in rows], "-", color=color, label=label,
                    marker="o" if one else None)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        lo, hi = ax.get_xlim()
        if hi - lo < 1:  # one epoch: one tick at it, not 0.95 ... 1.05
            e = round((lo + hi) / 2)
            ax.set_xlim(e - 0.5, e + 0.5)
            ax.set_xticks([e])
        ax.set_ylabel(m)
        ax.set_title(f"{m} (val: dot, train: square)" if one_epoch else
                     f"{m} (solid: val, dashed: train)", fontsize=10)  # fmt: skip
        ax.grid(alpha=0.3)
        if len(runs) > 1 or m == metrics[0]:
            ax.legend(fontsize=8)
    _save(fig, path)


def grid_shape(n: int, per_row: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` panels, at most ``per_row`` a row; at least 1 x 1."""
    cols = max(1, min(per_row, n))
    return max(1, -(-n // cols)), cols


def short_label(name: str, width: int = 24) -> str:
    """A class name cut to ``width`` characters for a tick label or title (metrics.json and the
    HTML pages keep it whole)."""
    return name if len(name) <= width else name[: width - 1] + "…"


def confusion_matrix(cm: np.ndarray, names: Sequence[str], path: Path, title: str = "") -> None:
    """Heatmap of counts; rows are true classes, columns predictions. Past 30 classes the
    cells lose their numbers and the figure stops growing (a 100-class one was 5,800 px)."""
    n = len(names)
    cell = 0.6 if n <= 30 else max(0.16, 18 / n)
    font = 8 if n <= 30 else 5
    fig, ax = plt.subplots(figsize=(2.4 + cell * n, 2.0 + 0.92 * cell * n))
    ax.imshow(cm, cmap="Blues")
    labels = [short_label(str(x)) for x in names]
    ax.set_xticks(range(n), labels, rotation=45 if n <= 30 else 90, ha="right", fontsize=font,
                  rotation_mode="anchor")  # fmt: skip
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(n if n <= 30 else 0):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > thresh else "black", fontsize=8)  # fmt: skip
    _save(fig, path)


def image_grid(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    conf: np.ndarray,
    names: Sequence[str],
    path: Path,
    cols: int = 8,
) -> None:
    """Sample test images titled 'true / pred (p)'; red titles mark mistakes. Names are cut to
    a column's width (metrics.json keeps them whole)."""
    # "pred <name> (0.99)" at 8 pt with 11 of the widest letters (W) fills a 1.8 in column;
    # whole names ran into the neighbours' titles. Constrained layout: the default margins
    # left each image a 1.2 in column.
    width = 11
    k = len(images)
    rows = max(1, -(-k // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for i in range(k):
        ax = axes.flat[i]
        img = images[i].transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ok = pred[i] == true[i]
        ax.set_title(
            f"true {short_label(str(names[true[i]]), width)}\n"
            f"pred {short_label(str(names[pred[i]]), width)} ({conf[i]:.2f})",
            fontsize=8,  # about 7 px on a phone, in the report's sideways-scrolling box
            color="black" if ok else "red",
        )
    _save(fig, path)
