"""Every '-smoke' preset trains end to end and writes a complete run directory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA_DIR

from archlab import runner
from archlab.presets import PRESETS, TECHNIQUES

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


@pytest.mark.parametrize("name", RUN)
def test_smoke_preset_runs(name: str, tmp_path: Path) -> None:
    cfg = PRESETS[name]
    if not cfg.data.path and cfg.task in TASK_DATA:
        path = TASK_DATA[cfg.task]
        if not path.exists():
            pytest.skip(f"shared dataset not found at {path} (set ARCHLAB_DATA_DIR)")
        cfg = replace(cfg, data=replace(cfg.data, path=str(path)))
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
