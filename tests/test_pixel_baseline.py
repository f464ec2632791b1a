"""The image task's pixel baseline: fitted on train, chosen on validation, scored on test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from archlab import rundir, runner
from archlab.config import apply_overrides
from archlab.presets import PRESETS
from archlab.report.tables import run_table
from archlab.tasks.pixels import ALPHAS, pixel_features, pixels_baseline

NAMES = ["a", "b", "c"]


def _images(
    n_per_class: int = 40, size: int = 32, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """Noise images whose class k is bright in rows 8k..8k+7 (linearly separable on pixels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 80, (3 * n_per_class, 1, size, size), generator=g, dtype=torch.uint8)
    y = np.repeat(np.arange(3), n_per_class)
    for k in range(3):
        x[y == k, :, 8 * k : 8 * k + 8] = 240
    return x, y


def _split(y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(y))
    n = len(y) // 4
    return {"train": order[2 * n :], "val": order[:n], "test": order[n : 2 * n]}


def test_features_are_area_averages_on_a_small_grid() -> None:
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    x[:, :, :2, :2] = 255  # one 2x2 cell of the 16x16 grid
    f = pixel_features(x)
    assert f.shape == (2, 3 * 16 * 16) and f.dtype == np.float32
    assert f[0, 0] == pytest.approx(1.0) and f[0, 1] == 0.0
    assert pixel_features(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)).shape == (1, 64)  # kept


def test_baseline_learns_separable_pixels_and_is_chosen_without_test_labels() -> None:
    x, y = _images()
    split = _split(y)
    m = pixels_baseline(x, y, split, NAMES)
    assert m["baseline_pixels_accuracy"] == 1.0 and m["baseline_pixels_f1_macro"] == 1.0
    assert m["baseline_pixels_alpha"] in ALPHAS and m["baseline_pixels_val_f1_macro"] == 1.0
    # Scrambled test labels change the test scores only: the choice rests on validation.
    y2 = y.copy()
    y2[split["test"]] = np.roll(y[split["test"]], 1)
    m2 = pixels_baseline(x, y2, split, NAMES)
    assert m2["baseline_pixels_alpha"] == m["baseline_pixels_alpha"]
    assert m2["baseline_pixels_val_f1_macro"] == m["baseline_pixels_val_f1_macro"]
    assert m2["baseline_pixels_accuracy"] < 1.0


def test_image_run_records_the_baseline_and_the_report_shows_it(
    tmp_path: Path, image_folder: Path
) -> None:
    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"],
        [f"data.path={image_folder}", "data.size=32", "train.progress=off"],
    )
    run = runner.train(cfg, tmp_path)
    m = json.loads((run / rundir.METRICS).read_text())
    for k in ("accuracy", "balanced_accuracy", "f1_macro", "val_f1_macro"):
        assert 0.0 <= m[f"baseline_pixels_{k}"] <= 1.0
    rows = {r[0]: r[1] for r in run_table("images", [run], {})[1:]}
    assert "baseline_pixels_accuracy" in rows and "baseline_pixels_f1_macro" in rows
    assert rows["scored_epoch"] == str(m["scored_epoch"])
