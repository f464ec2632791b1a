"""Every '-smoke' preset trains end to end and writes a complete run directory: on the shared
data where it is present, else on a tiny data set of the same shape that the test writes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA_DIR

from archlab import runner
from archlab.config import RunConfig, apply_overrides
from archlab.presets import PRESETS, TECHNIQUES
from tests.helpers import write_panel, write_tweets

# Where each task's smoke preset gets its data when it has no embedded default.
TASK_DATA = {
    "sales": DATA_DIR / "walmart",
    "text": DATA_DIR / "twitter_airline" / "Tweets.csv",
}
SMOKE = sorted(n for n in PRESETS if n.endswith("-smoke"))
# Image technique presets differ from their base only in `reg` (checked below), so one training
# run per base preset covers them; the ablation test trains techniques end to end.
TECH_SUFFIXES = tuple(f"-{t}-smoke" for t in TECHNIQUES.get("images", {}))
RUN = [n for n in SMOKE if not (PRESETS[n].task == "images" and n.endswith(TECH_SUFFIXES))]


def _generated(cfg: RunConfig, root: Path) -> RunConfig:
    """``cfg`` on a tiny data set of its task's shape, written under ``root`` (a fresh clone
    has no shared data): a 70-week Walmart-shaped panel, or 90 tweets."""
    root.mkdir(parents=True, exist_ok=True)
    if cfg.task == "text":
        return apply_overrides(cfg, [f"data.path={write_tweets(root / 'tweets.csv')}"])
    sets = [f"data.path={write_panel(root / 'walmart')}", "data.test_steps=8", "data.val_steps=4"]
    if cfg.data.horizon > 1:  # 4 steps at once, a season the 70 weeks hold twice over
        sets += ["data.horizon=4", "data.season=8", "data.window=8", "data.val_gap=0"]
    return apply_overrides(cfg, sets)


@pytest.mark.parametrize("name", RUN)
def test_smoke_preset_runs(name: str, tmp_path: Path) -> None:
    cfg = PRESETS[name]
    if not cfg.data.path and cfg.task in TASK_DATA:
        path = TASK_DATA[cfg.task]
        if path.exists():
            cfg = replace(cfg, data=replace(cfg.data, path=str(path)))
        else:  # a fresh clone: the same preset on data the test writes
            cfg = _generated(cfg, tmp_path / "data")
    if getattr(cfg.data, "embeddings", ""):  # the -glove presets: a tiny vectors file
        vec = tmp_path / "vectors.txt"
        words = ["the", "to", "flight", "thanks", "delayed", "great", "you", "!", "n't", "my"]
        vec.write_text("".join(f"{w} {i / 10} {-i / 10} 0.5\n" for i, w in enumerate(words)))
        cfg = replace(cfg, data=replace(cfg.data, embeddings=str(vec)))
    run_dir = runner.train(cfg, tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] >= 1
    assert (run_dir / "model.safetensors").exists() and (run_dir / "history.csv").exists()
    assert all(k.startswith(("test_", "baseline_")) or k in runner.RUN_KEYS for k in metrics)


@pytest.mark.parametrize("name", sorted(set(SMOKE) - set(RUN)))
def test_technique_presets_change_only_regularization(name: str) -> None:
    cfg = PRESETS[name]
    base = PRESETS[name.rsplit("-", 2)[0] + "-smoke"]
    assert replace(cfg, reg=base.reg) == base
    assert cfg.reg != base.reg


def test_tensorboard_logging(tmp_path: Path) -> None:
    cfg = PRESETS["images-resnet18-smoke"]
    cfg = replace(cfg, train=replace(cfg.train, tensorboard=True, epochs=1))
    run_dir = runner.train(cfg, tmp_path)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
