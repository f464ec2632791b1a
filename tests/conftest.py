"""Shared fixtures: tiny image folders/npz written by the tests, and the shared data location."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from PIL import Image

torch.set_num_threads(1)  # tests run two xdist workers on two cores

# Property tests draw the same examples on every run, so a CI result depends on the code, not
# on the draw; HYPOTHESIS_PROFILE=explore draws new ones (and keeps failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ARCHLAB_DATA_DIR", REPO.parent / "shared" / "data"))
IMAGES3 = DATA_DIR / "images3" / "cifar10_dog_automobile_ship.npz"


@pytest.fixture(autouse=True)
def _fresh_calibrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test times train.amp=auto's candidates afresh (a process keeps its calibrations
    for later runs of the same shapes: a search's trials), so tests stay independent."""
    from archlab.train import precision
    from archlab.utils import ContentCache

    monkeypatch.setattr(precision, "CALIBRATED", ContentCache())


def as_older_run(run_dir: Path, *names: str) -> None:
    """Forget the checksums of ``names`` in checkpoint.json, as in a run written before they
    were recorded (tests that edit such files on purpose to mimic an older run)."""
    import json

    path = run_dir / "checkpoint.json"
    manifest = json.loads(path.read_text())
    for name in names:
        manifest.pop(name, None)
    path.write_text(json.dumps(manifest))


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not path.exists(), reason=f"shared dataset not found at {path} (set ARCHLAB_DATA_DIR)"
    )


def write_image_folder(
    root: Path,
    classes: dict[str, int],
    size: tuple[int, int] = (12, 10),
    mode: str = "RGB",
    seed: int = 0,
) -> Path:
    """Class folders of random but class-dependent images (class k is bright at row 3k)."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8)
            arr[(k * 3) % size[1] : (k * 3) % size[1] + 3] = 250
            im = Image.fromarray(arr, "RGB")
            if mode != "RGB":
                im = im.convert(mode)
            im.save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20})


def write_npz(
    path: Path, n_per_class: int = 20, classes: int = 3, size: int = 16, split: bool = False
) -> Path:
    rng = np.random.default_rng(1)
    images, labels = [], []
    for k in range(classes):
        x = rng.integers(0, 60, size=(n_per_class, size, size, 3), dtype=np.uint8)
        x[:, k * 4 : k * 4 + 4] = 250
        images.append(x)
        labels += [k] * n_per_class
    arrays = {
        "images": np.concatenate(images),
        "labels": np.array(labels, dtype=np.uint8),
        "class_names": np.array([f"c{k}" for k in range(classes)]),
    }
    if split:
        arrays["split"] = np.array(["train", "train", "train", "test"] * (len(labels) // 4))
    np.savez(path, **arrays)
    return path


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "set.npz")
