"""Image loaders, splits and augmentation on small folders/npz written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IMAGES3, needs_shared, write_image_folder, write_npz
from PIL import Image

from archlab.data.augment import AUGMENTATIONS, translate
from archlab.data.images import load_image_set
from archlab.data.splits import stratified_split
from archlab.errors import ArchlabError


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
@pytest.mark.parametrize("channels", [1, 3])
def test_folder_any_mode_to_channels_and_size(tmp_path: Path, mode: str, channels: int) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 3, "b": 4}, size=(13, 9), mode=mode)
    s = load_image_set(str(root), fmt="auto", size=20, channels=channels)
    assert s.images.shape == (7, channels, 20, 20) and s.images.dtype == np.uint8
    assert s.class_names == ["a", "b"] and s.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_folder_mixed_sizes_nested_and_non_images(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 3, "b": 3})
    Image.new("RGB", (50, 20)).save(root / "a" / "wide.jpg")
    (root / "a" / "sub").mkdir()
    Image.new("L", (7, 7)).save(root / "a" / "sub" / "nested.bmp")
    (root / "b" / "notes.txt").write_text("not an image")
    s = load_image_set(str(root), fmt="auto", size=16, channels=1)
    assert (s.labels == 0).sum() == 5 and (s.labels == 1).sum() == 3
    assert s.ignored == 1


def test_npz_layout_and_grayscale(npz_file: Path) -> None:
    s = load_image_set(str(npz_file), fmt="auto", size=16, channels=1)
    assert s.images.shape == (60, 1, 16, 16)
    assert s.class_names == ["c0", "c1", "c2"]


def test_digits_default_is_real_data() -> None:
    s = load_image_set("", fmt="auto", size=32, channels=1)
    assert s.images.shape == (1797, 1, 32, 32) and len(s.class_names) == 10


def test_split_is_stratified_70_15_15_and_seeded() -> None:
    labels = np.repeat(np.arange(3), 200)
    a = stratified_split(labels, 0.15, 0.15, seed=3)
    b = stratified_split(labels, 0.15, 0.15, seed=3)
    c = stratified_split(labels, 0.15, 0.15, seed=4)
    assert {k: len(v) for k, v in a.items()} == {"train": 420, "val": 90, "test": 90}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    assert np.bincount(labels[a["test"]]).tolist() == [30, 30, 30]
    allidx = np.concatenate(list(a.values()))
    assert len(np.unique(allidx)) == 600


def test_provided_split_is_honoured(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "s.npz", n_per_class=40, split=True)
    s = load_image_set(str(path), fmt="auto", size=16, channels=1)
    sp = stratified_split(s.labels, 0.15, 0.15, seed=0, provided=s.provided_split)
    assert set(sp["test"]) == set(np.flatnonzero(s.provided_split == "test"))
    assert not set(sp["val"]) & set(sp["test"]) and len(sp["val"]) == 18


@needs_shared(IMAGES3)
def test_images3_split_matches_the_study_counts() -> None:
    s = load_image_set(str(IMAGES3), fmt="npz", size=32, channels=1)
    sp = stratified_split(s.labels, 0.15, 0.15, seed=0)
    assert {k: len(v) for k, v in sp.items()} == {"train": 12600, "val": 2700, "test": 2700}
    assert s.class_names == ["dog", "automobile", "ship"]


# --- bad input: one ArchlabError naming the file ---
def _corrupt(root: Path) -> Path:
    bad = root / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return bad


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 3, "b": 3})
    bad = _corrupt(root)
    with pytest.raises(ArchlabError, match=r"broken\.jpg.*skip_corrupt"):
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    s = load_image_set(str(root), fmt="auto", size=8, channels=1, skip_corrupt=True)
    assert s.skipped == [str(bad)] and len(s.labels) == 6


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (
            lambda r: (r / "a").mkdir(parents=True) or write_image_folder(r, {"b": 2}),
            "class folder has no images",
        ),
        (lambda r: write_image_folder(r, {"only": 3}), "at least 2"),
        (lambda r: r.mkdir(), "no class sub-folders"),
        (lambda r: None, "no such file"),
    ],
    ids=["empty-class", "one-class", "no-classes", "missing-path"],
)
def test_bad_folders(tmp_path: Path, make, needle: str) -> None:
    root = tmp_path / "data"
    make(root)
    with pytest.raises(ArchlabError, match=needle):
        load_image_set(str(root), fmt="auto", size=8, channels=1)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"pictures": np.zeros((2, 4, 4), np.uint8)}, "missing array"),
        ({"images": np.zeros((2, 4, 4), np.float32), "labels": np.array([0, 1])}, "dtype float32"),
        ({"images": np.zeros((2, 4), np.uint8), "labels": np.array([0, 1])}, "has shape"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 1, 1])}, "length 2"),
        (
            {
                "images": np.zeros((2, 4, 4), np.uint8),
                "labels": np.array([0, 5]),
                "class_names": np.array(["a", "b"]),
            },
            "outside 0..1",
        ),
    ],
    ids=["missing-keys", "wrong-dtype", "wrong-shape", "label-length", "label-range"],
)
def test_bad_npz(tmp_path: Path, arrays: dict, needle: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ArchlabError, match=needle):
        load_image_set(str(path), fmt="auto", size=8, channels=1)


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"hello")
    with pytest.raises(ArchlabError, match=r"not a readable \.npz"):
        load_image_set(str(path), fmt="auto", size=8, channels=1)


# --- augmentation ---
@pytest.mark.parametrize("name", [n for n, f in AUGMENTATIONS.items() if f is not None])
def test_augmentations_keep_shape_and_are_seeded(name: str) -> None:
    x = torch.randn(8, 1, 16, 16)
    f = AUGMENTATIONS[name]
    a = f(x, torch.Generator().manual_seed(0))
    b = f(x, torch.Generator().manual_seed(0))
    c = f(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_translate_shifts_pixels_exactly() -> None:
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = translate(x, torch.Generator().manual_seed(0), pixels=2)
    assert y.sum() == 1.0  # a shift within the padding keeps the single bright pixel
    r, c = (y[0, 0] == 1).nonzero()[0].tolist()
    assert abs(r - 4) <= 2 and abs(c - 4) <= 2


def test_flip_tta_averages_the_mirror_logits_in_evaluation_only() -> None:
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from archlab.tasks.image_cls import ImageClassification

    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], ["model.tta=flip"])
    task = ImageClassification(cfg)
    data = task.build_data(torch.device("cpu"))
    model = task.build_model()
    x, y = data.test.fetch(torch.arange(8), None)
    model.eval()
    with torch.no_grad():
        out, targets = task.step(model, (x, y))
        want = (model(x) + model(x.flip(-1))) / 2
    torch.testing.assert_close(out, want)
    assert torch.equal(targets, y)
    assert not torch.allclose(out, model(x).detach())  # the mirror image changed the logits
    model.train()
    torch.manual_seed(0)
    a = task.step(model, (x, y))[0]
    torch.manual_seed(0)
    torch.testing.assert_close(a, model(x))  # training sees the plain forward pass
