"""Image data that must not mislead: 16-bit pixels, copies of one image across splits, and
what the loaders say about empty split folders (bad inputs are in test_bad_inputs.py)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from PIL import Image

from archlab.data.images import load_image_set
from archlab.data.splits import duplicate_groups, stratified_split
from archlab.errors import ArchlabError


def _image_task(path: Path, *sets: str):
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from archlab.tasks.image_cls import ImageClassification, ImageData

    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], [f"data.path={path}", *sets])
    data = ImageData(cfg).build(torch.device("cpu"))
    return ImageClassification(cfg, data.fitted), data


# --- 16-bit images ---
def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grayscale for (H, W), RGB for (H, W, 3)), written by hand: PIL cannot
    write 16-bit RGB."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", w, h, 16, 2 if arr.ndim == 3 else 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + (chunk(b"IEND", b""))
    )


def _ramp(k: int, shape: tuple[int, ...]) -> np.ndarray:
    """16-bit values spread over 0..65535 (different for each k)."""
    n = int(np.prod(shape))
    return ((np.arange(n) * 4099 + k * 7919) % 65536).astype(np.uint16).reshape(shape)


def _folder16(root: Path, rgb: bool) -> dict[Path, np.ndarray]:
    """Two classes of six 8x8 16-bit PNGs each; returns file -> its 16-bit array."""
    files = {}
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            arr = _ramp(6 * c + i, (8, 8, 3) if rgb else (8, 8))
            p = root / name / f"{i}.png"
            p.write_bytes(png16(arr))
            files[p] = arr
    return files


@pytest.mark.parametrize("rgb", [False, True], ids=["gray16", "rgb16"])
def test_16bit_pngs_keep_their_range_in_training_and_predict(tmp_path: Path, rgb: bool) -> None:
    files = _folder16(tmp_path / "f", rgb)
    if not rgb:
        assert Image.open(next(iter(files))).mode == "I;16"
    channels = 3 if rgb else 1
    task, data = _image_task(tmp_path / "f", "data.size=8", f"data.channels={channels}")
    s = load_image_set(str(tmp_path / "f"), fmt="auto", size=8, channels=channels)
    for p, arr, got in zip(files, files.values(), s.images, strict=True):
        want = arr / 257.0  # 65535 -> 255, for every image alike
        want = want.transpose(2, 0, 1) if rgb else want[None]
        assert np.abs(got.astype(float) - want).max() <= 1.0, p  # PIL's RGB keeps the high byte
    assert 100 < data.info["pixel_stats"]["mean_mean"] < 155  # not all white (255)
    # predict and explain read files through the same decoder: the very same pixels
    again = task.read_images([str(p) for p in files]).numpy()
    np.testing.assert_array_equal(again, s.images)


def test_16bit_grayscale_as_rgb_and_every_mode_reads_alike_in_predict(tmp_path: Path) -> None:
    root = tmp_path / "f"
    write_image_folder(root, {"a": 8, "b": 8}, size=(8, 8))
    (root / "a" / "deep.png").write_bytes(png16(_ramp(9, (8, 8))))
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 200, 40, 90] + [0] * 762)
    pal.info["transparency"] = 1
    pal.save(root / "b" / "palette.png")
    Image.new("LA", (8, 8), (90, 0)).save(root / "b" / "gray_alpha.png")
    task, _ = _image_task(root, "data.size=8", "data.channels=3")
    s = load_image_set(str(root), fmt="auto", size=8, channels=3)
    paths = sorted(p for p in root.rglob("*.png"))
    np.testing.assert_array_equal(task.read_images([str(p) for p in paths]).numpy(), s.images)
    deep = s.images[paths.index(root / "a" / "deep.png")]
    np.testing.assert_allclose(deep[0], np.round(_ramp(9, (8, 8)) / 257.0), atol=1)
    assert (deep[0] == deep[1]).all() and (deep[1] == deep[2]).all()


# --- copies of one image across splits ---
def test_grouped_split_keeps_copies_together_and_changes_nothing_without_copies() -> None:
    labels = np.repeat(np.arange(3), 40)
    plain = stratified_split(labels, 0.15, 0.15, seed=0)
    same = stratified_split(labels, 0.15, 0.15, seed=0, groups=np.arange(120))
    assert all(np.array_equal(plain[k], same[k]) for k in plain)  # no copies: the same split
    # Every image of class 0 and 1 has a copy (pairs 2i, 2i+1 of one class).
    keys = [f"k{i // 2}" if i < 80 else f"u{i}" for i in range(120)]
    groups = duplicate_groups(keys)
    for seed in range(5):
        sp = stratified_split(labels, 0.15, 0.15, seed=seed, groups=groups)
        where = {int(i): k for k, v in sp.items() for i in v}
        assert all(where[i] == where[i + 1] for i in range(0, 80, 2)), seed
        assert sorted(where) == list(range(120))
        assert 12 <= len(sp["test"]) <= 24 and set(labels[sp["test"]]) == {0, 1, 2}


def test_carved_splits_of_a_folder_with_copies_are_clean(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"cat": 20, "dog": 20}, size=(8, 8))
    for name in ("cat", "dog"):  # every image twice, once under another name
        for p in sorted((root / name).iterdir())[:10]:
            shutil.copy(p, p.with_name(f"copy_{p.name}"))
    _, data = _image_task(root, "data.size=8")
    dup = data.info["duplicates"]
    assert dup == {"images": 40, "groups": 20, "across_splits": {"val": 0, "test": 0}}
    assert any(
        "40 images are byte-identical copies of another (20 groups)" in n for n in data.notes
    )
    assert not any("warning" in n for n in data.notes)


def test_npz_copies_are_found_by_their_array_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(60, 8, 8), dtype=np.uint8)
    images[30:] = images[:30]  # each image twice
    labels = np.arange(60) % 3
    np.savez(tmp_path / "s.npz", images=images, labels=labels)
    _, data = _image_task(tmp_path / "s.npz", "data.size=8")
    assert data.info["duplicates"]["groups"] == 30
    assert data.info["duplicates"]["across_splits"] == {"val": 0, "test": 0}


def test_copies_across_given_splits_are_counted_and_said_first(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 10, "dog": 10}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 3, "dog": 3}, size=(8, 8), seed=1)
    shutil.copy(root / "train" / "cat" / "000.png", root / "test" / "cat" / "leak.png")
    shutil.copy(root / "train" / "dog" / "001.png", root / "test" / "dog" / "leak.png")
    _, data = _image_task(root, "data.size=8")
    assert data.info["duplicates"]["across_splits"] == {"val": 0, "test": 2}
    assert any(
        n.startswith("data: warning: 2 test images (test/) copy an image of an earlier split")
        for n in data.notes
    ), data.notes
    assert data.info["split_sizes"]["test"] == 8  # the given split is kept as it is


def test_manifest_copies_under_two_names_are_counted(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "img", {"cat": 6, "dog": 6}, size=(8, 8))
    shutil.copy(tmp_path / "img" / "cat" / "000.png", tmp_path / "img" / "same.png")
    rows = ["path,label,split", "img/same.png,cat,test"]
    rows += [f"img/{c}/{i:03d}.png,{c},{'test' if i == 5 else 'train'}"
             for c in ("cat", "dog") for i in range(6)]  # fmt: skip
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    _, data = _image_task(tmp_path / "labels.csv", "data.size=8")
    assert data.info["duplicates"]["across_splits"]["test"] == 1


# --- what the loaders say ---
def test_an_empty_val_folder_is_reported_as_carved_from_train(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 10, "dog": 10}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 3, "dog": 3}, size=(8, 8), seed=1)
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "dog").mkdir(parents=True)
    _, data = _image_task(root, "data.size=8")
    assert data.info["split_source"]["val"].startswith("carved from train/: 15% of all images")
    assert data.info["split_sizes"]["val"] == 4
    assert any("val 4 (carved from train/" in n for n in data.notes)


# --- a class a split lacks, turned phone photos, what eval --data scores ---
def test_a_class_without_test_images_is_warned_and_left_out_of_the_macro(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 12, "dog": 12}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 5}, size=(8, 8), seed=1)
    (root / "test" / "dog").mkdir()
    task, data = _image_task(root, "data.size=8")
    assert ("data: warning: class 'dog' has no test images: it is not scored there (the test "
            "macro averages are over the other classes)") in data.notes  # fmt: skip
    assert not any("'cat' has no" in n for n in data.notes)
    perfect = torch.tensor([[5.0, 0.0]] * 5)  # every test image (all cats) right
    m = task.metrics(perfect, torch.zeros(5, dtype=torch.long))
    assert m["f1_macro"] == m["recall_macro"] == m["balanced_accuracy"] == 1.0
    assert m["support_class_dog"] == 0


def test_exif_orientation_is_applied_in_training_and_predict(tmp_path: Path) -> None:
    from archlab.data.image_set import decode_image

    root = write_image_folder(tmp_path / "f", {"a": 10, "b": 10}, size=(8, 8))
    upright = np.zeros((40, 40, 3), np.uint8)
    upright[:20] = 255  # white on top, as a viewer shows the photo
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as the sensor read it
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    stored.save(root / "a" / "phone.jpg", exif=exif.tobytes(), quality=95)
    pixels = decode_image(root / "a" / "phone.jpg", 1, 8)[..., 0]
    assert pixels[:3].mean() > 200 and pixels[-3:].mean() < 50
    s = load_image_set(str(root), fmt="folder", size=8, channels=1)
    task, _ = _image_task(root, "data.size=8", "data.channels=1")
    read = task.read_images([str(root / "a" / "phone.jpg")])[0, 0].numpy()
    np.testing.assert_array_equal(s.images[10, 0], pixels)  # a's last file: 000..009.png first
    np.testing.assert_array_equal(read, pixels)


def test_eval_on_other_data_says_how_much_of_it_is_scored() -> None:
    from archlab.runner import _test_share

    info = {"n_images": 24, "split_sizes": {"train": 16, "val": 4, "test": 4},
            "split_source": {"test": "15% of all images, stratified, split seed 0"}}  # fmt: skip
    assert _test_share(info) == (
        "; scored its test split (15% of all images, stratified, split seed 0): 4 of 24 images"
    )
    assert _test_share({"n_samples": 10, "split_sizes": {"test": 2}}) == ""  # text: unchanged


def test_eval_all_scores_every_image_of_a_folder_with_some_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import json

    from archlab import runner
    from archlab.cli import main
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS

    imgs = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], [
        f"data.path={imgs}", "data.size=8", "data.skip_corrupt=true", "train.epochs=1",
        "train.threads=1", "train.amp=off", "train.progress=off"])  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    # A new batch holding 2 of the run's 3 classes, and a file the reader skips (said).
    other = write_image_folder(tmp_path / "other", {"dog": 7, "eel": 5}, size=(8, 8), seed=3)
    (other / "eel" / "broken.png").write_bytes(b"not a png")
    assert main(["eval", str(run_dir), "--data", str(other), "--all"]) == 0
    out, err = capsys.readouterr()
    assert err == (f"archlab: {other}: scored all 12 images (2 of the run's 3 classes present); "
                   "not scored: 1 unreadable file skipped (data.skip_corrupt=true)\n")  # fmt: skip
    got = json.loads(out)
    assert [sum(r) for r in got["test_confusion_matrix"]] == [0, 7, 5]
    files = sorted(str(f) for f in other.rglob("0*.png"))
    _, task, model = runner.restore_task(run_dir)
    preds = [r["label"] for r in task.predict(model, files)]
    truth = [Path(f).parent.name for f in files]
    assert got["test_accuracy"] == pytest.approx(np.mean(np.array(preds) == np.array(truth)))
    assert got["test_support_class_cat"] == 0
    # Without --all the folder is still refused (a split needs the run's classes), with a hint.
    assert main(["eval", str(run_dir), "--data", str(other)]) == 2
    assert "eval --data PATH --all" in capsys.readouterr().err
    # A class the run never learnt: one line naming it and the run's classes.
    write_image_folder(other, {"fox": 2}, size=(8, 8), seed=4)
    assert main(["eval", str(run_dir), "--data", str(other), "--all"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"archlab: error: {other}: class(es) 'fox' not among the run's classes "
                   "['cat', 'dog', 'eel']; remove their samples to score the rest"]  # fmt: skip


def test_predict_nests_the_probabilities_and_a_class_named_like_a_key_leaves_the_flat_layer(
    tmp_path: Path,
) -> None:
    root = write_image_folder(tmp_path / "f", {"input": 8, "label": 8, "cat": 8}, size=(8, 8))
    task, _ = _image_task(root, "data.size=8", "train.threads=1")
    files = [str(root / "input" / "000.png"), str(root / "label" / "001.png")]
    rows = task.predict(task.build_model(), files)
    for f, r in zip(files, rows, strict=True):
        assert r["input"] == f and r["label"] in ("input", "label", "cat")  # not overwritten
        p = r["probabilities"]
        assert set(p) == {"input", "label", "cat"} and sum(p.values()) == pytest.approx(1.0)
        assert r["cat"] == p["cat"]  # a class with a free name stays flat too (older readers)
        assert r["label"] == max(p, key=p.__getitem__)
    # A folder: every image under it, each named; other files left out.
    (root / "cat" / "notes.txt").write_text("not a picture")
    rows = task.predict(task.build_model(), [str(root / "cat")])
    assert [r["input"] for r in rows] == [str(root / "cat" / f"{i:03d}.png") for i in range(8)]
    (root / "cat" / "zz_broken.png").write_bytes(b"not a png")  # left out, named
    assert [r["input"] for r in task.predict(task.build_model(), [str(root / "cat")])] == [
        str(root / "cat" / f"{i:03d}.png") for i in range(8)
    ]
    with pytest.raises(ArchlabError, match=r"zz_broken.png: cannot read image"):
        task.predict(task.build_model(), [str(root / "cat" / "zz_broken.png")])  # given alone
    with pytest.raises(ArchlabError, match=r"a folder with no image files \(1 other file"):
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "a.txt").write_text("x")
        task.predict(task.build_model(), [str(tmp_path / "docs")])
