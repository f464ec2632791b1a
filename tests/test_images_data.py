"""Image loaders, splits and augmentation on small folders/npz written by the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IMAGES3, needs_shared, write_image_folder, write_npz
from PIL import Image

from archlab.data.augment import AUGMENTATIONS, translate
from archlab.data.images import Manifest, load_image_set
from archlab.data.splits import stratified_split
from archlab.errors import ArchlabError
from archlab.task_configs import ImageDataConfig


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
    # A class folder holding a folder is read as one class, and a first line warns of it.
    assert s.notes[-1].startswith("data: warning: 1 class folder(s) hold folders (e.g. a/sub), ")


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
            # a folder of files but no image: a class whose pictures are not read (an empty
            # folder is no class: test_an_empty_class_folder_is_no_class)
            lambda r: (
                (r / "a").mkdir(parents=True)
                or (r / "a" / "x.heic").write_bytes(b"?")
                or write_image_folder(r, {"b": 2})
            ),
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


def test_trivial_augment_applies_one_op_per_image_in_its_ranges() -> None:
    from archlab.data import augment as A

    x = torch.rand(400, 3, 12, 12) * 2 - 1
    gen = torch.Generator().manual_seed(3)
    op = torch.randint(0, len(A._TRIVIAL_OPS), (400,), generator=torch.Generator().manual_seed(3))
    y = A.trivial_augment(x, gen)
    assert y.shape == x.shape and torch.isfinite(y).all()
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-6
    kind = [A._TRIVIAL_OPS[i] for i in op]
    ident = torch.tensor([k == "identity" for k in kind])
    assert not changed[ident].any() and changed[~ident].float().mean() > 0.95
    # The colour ops are blends: a per-image mean (contrast) and the grey level (saturation)
    # are kept, and brightness is a constant shift within +-0.9 in standardized units.
    for i, k in enumerate(kind):
        if k == "contrast":
            assert torch.allclose(y[i].mean(), x[i].mean(), atol=1e-5)
        if k == "saturation":
            assert torch.allclose(y[i].mean(0), x[i].mean(0), atol=1e-5)
        if k == "brightness":
            d = y[i] - x[i]
            assert torch.allclose(d, d.flatten()[0].expand_as(d)) and d.abs().max() <= 0.9 + 1e-6
    # Grey images never get the saturation op's change.
    g = torch.rand(50, 1, 8, 8)
    assert A.trivial_augment(g, torch.Generator().manual_seed(0)).shape == g.shape


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
    from archlab.tasks.image_cls import ImageClassification, ImageData

    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], ["model.tta=flip"])
    data = ImageData(cfg).build(torch.device("cpu"))
    task = ImageClassification(cfg, data.fitted)
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


# --- the user's own layouts: split folders and CSV manifests ---
def _image_cfg(path: Path, *sets: str):
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS

    return apply_overrides(
        PRESETS["images-resnet18-smoke"], [f"data.path={path}", "data.size=8", *sets]
    )


def _image_task(path: Path, *sets: str):
    from archlab.tasks.image_cls import ImageClassification, ImageData

    cfg = _image_cfg(path, *sets)
    data = ImageData(cfg).build(torch.device("cpu"))
    return ImageClassification(cfg, data.fitted), data


CLASSES = {"cat": 10, "dog": 10, "eel": 10}


@pytest.mark.parametrize(
    "folders",
    [
        ("train", "val", "test"),
        ("train", "valid", "test"),
        ("train", "validation", "test"),
        ("Train", "Validation", "Test"),
    ],
)
def test_split_folders_are_honoured(tmp_path: Path, folders: tuple[str, ...]) -> None:
    root = tmp_path / "ds"
    for i, (name, n) in enumerate(zip(folders, (10, 3, 4), strict=True)):
        write_image_folder(root / name, dict.fromkeys(CLASSES, n), size=(8, 8), seed=i)
    _, data = _image_task(root)
    info = data.info
    assert info["class_names"] == ["cat", "dog", "eel"]  # not the split folders' names
    assert info["layout"] == "split_folders"
    assert info["split_sizes"] == {"train": 30, "val": 9, "test": 12}
    assert info["class_counts"]["val"] == [3, 3, 3] and info["class_counts"]["test"] == [4, 4, 4]
    assert info["split_source"] == {
        "train": f"{folders[0]}/", "val": f"{folders[1]}/", "test": f"{folders[2]}/"
    }  # fmt: skip
    # The test split is exactly the test folder's images (seed 2 wrote them).
    want = load_image_set(str(root / folders[2]), fmt="folder", size=8, channels=1)
    np.testing.assert_array_equal(data.context.test_images.numpy(), want.images)
    assert any("split folders" in n for n in data.notes)
    assert any(f"test 12 ({folders[2]}/)" in n for n in data.notes)


def test_train_and_test_folders_carve_a_stratified_seeded_val(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 20, "dog": 20}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 5, "dog": 5}, size=(8, 8), seed=1)
    _, a = _image_task(root)
    _, b = _image_task(root)
    _, c = _image_task(root, "seed=5")
    assert a.info["split_sizes"] == {"train": 32, "val": 8, "test": 10}
    assert a.info["class_counts"]["test"] == [5, 5]
    assert a.info["class_counts"]["val"] == [4, 4]  # stratified
    assert a.splits == b.splits and a.splits["val"] != c.splits["val"]
    assert a.splits["test"] == c.splits["test"]  # the given test split never moves
    assert a.info["split_source"]["val"].startswith("carved from train/: 15% of all images")
    assert "split seed 0" in a.info["split_source"]["val"]


def test_train_and_valid_folders_carve_the_test_split(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 20, "dog": 20}, size=(8, 8))
    write_image_folder(root / "valid", {"cat": 4, "dog": 4}, size=(8, 8), seed=1)
    _, data = _image_task(root)
    assert data.info["split_sizes"] == {"train": 33, "val": 8, "test": 7}
    assert data.info["split_source"]["val"] == "valid/"
    assert data.info["split_source"]["test"].startswith("carved from train/")


def test_a_class_missing_from_train_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 5, "dog": 5}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 2, "dog": 2, "eel": 2}, size=(8, 8))
    with pytest.raises(ArchlabError, match=r"class 'eel' is missing from the training split"):
        load_image_set(str(root), fmt="auto", size=8, channels=1)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda r: write_image_folder(r / "extra", {"x": 2}), r"beside other folders \['extra'\]"),
        (lambda r: Image.new("L", (8, 8)).save(r / "test" / "loose.png"), "outside class folders"),
        (lambda r: write_image_folder(r / "validation", {"cat": 2}), "both val/ and validation/"),
        (
            lambda r: (
                Image.new("L", (8, 8)).save(r / "test" / "0001.png"),
                (r / "test_labels.csv").write_text("id,label\n0001,cat\n"),
            ),
            r"labels them, read it as a manifest: --data .*test_labels.csv --set "
            r"data.image_root=.*test$",
        ),
    ],
    ids=["extra-folder", "unlabelled-test-images", "two-val-folders", "kaggle-labels-beside"],
)
def test_bad_split_folders(tmp_path: Path, make, needle: str) -> None:
    root = tmp_path / "ds"
    for name in ("train", "val", "test"):
        write_image_folder(root / name, {"cat": 3, "dog": 3}, size=(8, 8))
    make(root)
    with pytest.raises(ArchlabError, match=needle):
        load_image_set(str(root), fmt="auto", size=8, channels=1)


def test_split_folders_without_train_and_the_classes_override(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for name in ("val", "test"):
        write_image_folder(root / name, {"cat": 3}, size=(8, 8))
    with pytest.raises(ArchlabError, match="no train/ folder"):
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    write_image_folder(root / "train", {"cat": 3}, size=(8, 8))
    s = load_image_set(str(root), fmt="auto", size=8, channels=1, layout="classes")
    assert s.class_names == ["test", "train", "val"] and s.layout == "class_folders"
    plain = write_image_folder(tmp_path / "plain", {"a": 2, "b": 2}, size=(8, 8))
    with pytest.raises(ArchlabError, match="no train/ folder"):
        load_image_set(str(plain), fmt="auto", size=8, channels=1, layout="split")


def _manifest(tmp: Path, header: str, rows: list[str], name: str = "labels.csv") -> Path:
    path = tmp / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _pngs(folder: Path, n: int, ext: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"im{i:02d}{ext}" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("L", (8, 8), 20 * i).save(folder / name)
    return names


def test_manifest_with_split_column(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 24)
    labels = ["10", "2", "7"]
    tags = ["train"] * 15 + ["valid"] * 3 + ["TEST"] * 6
    rows = [
        f"img/{n},{labels[i % 3]},{t}" for i, (n, t) in enumerate(zip(names, tags, strict=True))
    ]
    path = _manifest(tmp_path, "filepath,class,split", rows)
    _, data = _image_task(path)
    assert data.info["layout"] == "manifest"
    assert data.info["class_names"] == ["2", "7", "10"]  # integer labels in numeric order
    assert data.info["split_sizes"] == {"train": 15, "val": 3, "test": 6}
    assert data.info["split_source"]["test"] == "column 'split'"
    assert data.splits["test"] == list(range(18, 24))
    first = np.asarray(Image.open(tmp_path / "img" / names[18]))
    np.testing.assert_array_equal(data.context.test_images[0, 0].numpy(), first)


def test_manifest_finds_a_folder_written_in_the_other_unicode_form(tmp_path: Path) -> None:
    # A folder made on macOS (NFD: "e" + combining accent) and a manifest typed elsewhere
    # (NFC: one character): "not found at" a path that looked exactly like the folder.
    import unicodedata

    folder = unicodedata.normalize("NFD", "imágenes")
    names = _pngs(tmp_path / folder, 24)
    tags = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    rows = [f"{unicodedata.normalize('NFC', 'imágenes')}/{n},{'ab'[i % 2]},{tags[i]}"
            for i, n in enumerate(names)]  # fmt: skip
    _, data = _image_task(_manifest(tmp_path, "path,label,split", rows))
    assert data.info["split_sizes"] == {"train": 16, "val": 4, "test": 4}


def test_manifest_labels_that_are_one_number_are_one_class(tmp_path: Path) -> None:
    # A spreadsheet that wrote some labels 0.0 and others 0: three classes, not six, said.
    names = _pngs(tmp_path / "img", 12)  # 12 distinct images
    spelt = [("0", "0.0"), ("1", "1.0"), ("2", "2.00")]
    tags = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    rows = [f"img/{n},{spelt[i % 3][i % 2]},{tags[i]}" for i, n in enumerate(names)]
    _, data = _image_task(_manifest(tmp_path, "filepath,label,split", rows))
    assert data.info["class_names"] == ["0", "1", "2"]
    assert any("labels that are the same number are one class: '0' / '0.0' -> '0'" in n
               for n in data.notes)  # fmt: skip


def test_manifest_written_on_windows_reads_backslash_paths_and_semicolons(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img" / "sub", 12)
    rows = [f"img\\sub\\{n};{'ab'[i % 2]}" for i, n in enumerate(names)]
    path = _manifest(tmp_path, "file;label", rows)
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)
    assert s.class_names == ["a", "b"] and len(s.images) == 12
    first = np.asarray(Image.open(tmp_path / "img" / "sub" / names[0]))
    np.testing.assert_array_equal(s.images[0, 0], first)


def test_manifest_saved_by_a_windows_tool_in_cp1252_reads_and_says_so(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 24)
    labels = ["crème", "café", "naïve"]
    tags = ["train"] * 15 + ["val"] * 3 + ["test"] * 6
    rows = [
        f"img/{n},{labels[i % 3]},{t}" for i, (n, t) in enumerate(zip(names, tags, strict=True))
    ]
    path = tmp_path / "labels.csv"
    path.write_bytes(("\n".join(["file,label,split", *rows]) + "\n").encode("cp1252"))
    _, data = _image_task(path)
    assert data.info["class_names"] == sorted(labels) and data.info["encoding"] == "cp1252"
    assert any("is not UTF-8 (byte 0xe8" in n and "read as cp1252" in n for n in data.notes)
    utf8 = _manifest(tmp_path, "file,label,split", rows, "utf8.csv")
    _, again = _image_task(utf8)
    assert again.info["encoding"] == "utf-8" and not any("UTF-8" in n for n in again.notes)


def test_kaggle_manifest_ids_without_extension_and_image_root(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "train", 20, ".jpg")
    rows = [f"{n.removesuffix('.jpg')},{i % 2}" for i, n in enumerate(names)]
    path = _manifest(tmp_path, "id,has_cactus", rows, "train.csv")
    s = load_image_set(
        str(path), fmt="auto", size=8, channels=1,
        manifest=Manifest(image_root=str(tmp_path / "train")),
    )  # fmt: skip
    assert s.class_names == ["0", "1"] and s.labels.tolist() == [i % 2 for i in range(20)]
    assert s.provided_split is None  # no split column: the usual seeded stratified split
    # Columns by flag: the same file with its columns named explicitly.
    t = load_image_set(
        str(path), fmt="manifest", size=8, channels=1,
        manifest=Manifest("id", "has_cactus", image_root=str(tmp_path / "train")),
    )  # fmt: skip
    np.testing.assert_array_equal(s.images, t.images)


@pytest.mark.parametrize(
    ("header", "row", "manifest", "needle"),
    [
        ("file,label", "img/im00.png,a", Manifest(label_column="kind"),
         r"no label column 'kind' \(data.label_column\); columns are \['file', 'label'\]"),
        ("a,b,c", "img/im00.png,x,y", Manifest(),
         r"which column holds the labels; columns are \['a', 'b', 'c'\]; set data.label_column"),
        ("file,label", "img/nope.png,a", Manifest(), r"line 3: image 'img/nope.png'.*not found"),
        ("file,label,split", "img/im00.png,a,holdout", Manifest(),
         r"unknown split value 'holdout' in column 'split' at line 3"),
        ("file,label", "img/im00.png,", Manifest(), r"empty label in column 'label' at line 3"),
    ],
    ids=["missing-label-column", "undetectable-columns", "missing-file", "bad-split", "no-label"],
)  # fmt: skip
def test_bad_manifests(tmp_path: Path, header: str, row: str, manifest, needle: str) -> None:
    _pngs(tmp_path / "img", 2)
    ok = "img/im01.png,b" + (",train" if header.endswith("split") else "")
    ok = ok if not header.startswith("a,") else "img/im01.png,x,y"
    path = _manifest(tmp_path, header, [ok, row])
    with pytest.raises(ArchlabError, match=needle):
        load_image_set(str(path), fmt="auto", size=8, channels=1, manifest=manifest)


def test_manifest_split_column_can_be_ignored(tmp_path: Path) -> None:
    _pngs(tmp_path / "img", 8)
    rows = [f"img/im{i:02d}.png,{'ab'[i % 2]},holdout" for i in range(8)]
    path = _manifest(tmp_path, "path,label,set", rows)
    with pytest.raises(ArchlabError, match=r"'holdout' in column 'set'.*data.split_column=none"):
        load_image_set(str(path), fmt="auto", size=8, channels=1)
    s = load_image_set(
        str(path), fmt="auto", size=8, channels=1, manifest=Manifest(split_column="none")
    )
    assert s.provided_split is None and len(s.labels) == 8


def test_manifest_class_missing_from_train(tmp_path: Path) -> None:
    _pngs(tmp_path / "img", 4)
    rows = ["img/im00.png,a,train", "img/im01.png,b,train", "img/im02.png,c,test"]
    with pytest.raises(ArchlabError, match=r"class 'c' is missing from the training split"):
        load_image_set(str(_manifest(tmp_path, "path,label,split", rows)), fmt="auto",
                       size=8, channels=1)  # fmt: skip


def test_image_class_weights_and_balanced_accuracy(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"common": 40, "rare": 10}, size=(8, 8))
    plain, plain_data = _image_task(root)
    task, data = _image_task(root, "data.class_weights=true")
    n = data.info["class_counts"]["train"]
    want = [sum(n) / (2 * k) for k in n]
    assert data.info["class_weights"] == pytest.approx(want, rel=1e-5)
    assert plain.weight is None and "class_weights" not in plain_data.info
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([0, 1])
    manual = -(want[0] * logits.log_softmax(1)[0, 0] + want[1] * logits.log_softmax(1)[1, 1])
    torch.testing.assert_close(task.loss(logits, y), manual / sum(want))
    m = task.metrics(torch.tensor([[1.0, 0.0]] * 4), torch.tensor([0, 0, 0, 1]))
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == 0.5
    # data.class_weight_power=0.5: the square roots of the full weights (rare classes up less).
    _, sqrt_data = _image_task(root, "data.class_weights=true", "data.class_weight_power=0.5")
    assert sqrt_data.info["class_weights"] == pytest.approx([w**0.5 for w in want], rel=1e-5)


def test_cli_run_says_the_layout_first(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    root = tmp_path / "ds"
    write_image_folder(root / "train", {"cat": 12, "dog": 12}, size=(8, 8))
    write_image_folder(root / "test", {"cat": 3, "dog": 3}, size=(8, 8), seed=1)
    sets = ["data.size=8", "train.epochs=1", "train.max_steps_per_epoch=1", "train.threads=1",
            "train.progress=plain"]  # fmt: skip
    argv = ["train", "--task", "images", "--data", str(root), "--out", str(tmp_path / "runs")]
    assert main([*argv, *(f"--set={kv}" for kv in sets)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()[1:]  # after the config line: what was read, before any epoch
    assert lines[0].endswith("ds (split folders), 30 images, 2 classes")
    assert lines[1].startswith("data: splits train 20 (train/), val 4 (carved from train/: 15%")
    assert lines[1].endswith("test 6 (test/)")
    info = json.loads((Path(out.splitlines()[-1]) / "data.json").read_text())
    assert info["layout"] == "split_folders" and info["class_names"] == ["cat", "dog"]
    m = json.loads((Path(out.splitlines()[-1]) / "metrics.json").read_text())
    assert 0 <= m["test_balanced_accuracy"] <= 1


def test_a_run_without_fitted_json_is_refused_in_one_line(tmp_path: Path) -> None:
    # Run directories from before fitted.json (before 0.1.0) are no longer read: CHANGELOG.md.
    from archlab import runner
    from archlab.cli import main

    root = write_image_folder(tmp_path / "f", {"common": 30, "rare": 10}, size=(8, 8))
    (root / "README.txt").write_text("about the photos")
    cfg = _image_cfg(root, "train.epochs=1", "train.threads=1", "train.max_steps_per_epoch=2",
                     "train.progress=off")  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    notes = json.loads((run_dir / "data.json").read_text())["notes"]  # what the run said
    assert any("1 file(s) beside the class folders left out (README.txt)" in n for n in notes)
    (run_dir / "fitted.json").unlink()
    image = str(next((root / "rare").iterdir()))
    for argv in (["predict", str(run_dir), image], ["eval", str(run_dir)]):
        assert main(argv) == 2
    with pytest.raises(ArchlabError, match=r"no fitted.json: .* before archlab 0.1.0"):
        runner.restore_task(run_dir)


def test_a_decoded_set_is_reused_until_its_files_change(tmp_path: Path, monkeypatch) -> None:
    """Later runs in one process (budget trials, ablation cells) copy the decoded set instead of
    decoding every file again; each still records every file in its fingerprint."""
    from archlab import fingerprint
    from archlab.data import image_set

    root = write_image_folder(tmp_path / "imgs", {"a": 4, "b": 4})
    calls = []
    real = image_set.decode_image
    monkeypatch.setattr(image_set, "decode_image", lambda *a: calls.append(1) or real(*a))

    def load() -> tuple[object, set[str]]:
        with fingerprint.recording() as reads:
            s = load_image_set(str(root), fmt="auto", size=8, channels=1)
        return s, set(reads)

    first, reads1 = load()
    assert len(calls) == 8 and len(reads1) == 8
    first.images[:] = 0  # a caller's copy is its own
    second, reads2 = load()
    assert len(calls) == 8 and reads2 == reads1  # no decode, the same files recorded
    assert second.images.any() and second.labels.tolist() == first.labels.tolist()
    # A changed file, or one more file, is decoded again.
    Image.new("RGB", (12, 10), (255, 0, 0)).save(root / "a" / "000.png")
    third, _ = load()
    assert len(calls) == 16 and not np.array_equal(third.images, second.images)
    Image.new("RGB", (12, 10), (0, 255, 0)).save(root / "b" / "new.png")
    fourth, _ = load()
    assert len(calls) == 25 and len(fourth.labels) == 9


# --- data.channels=0 (auto, the task's default): colour decides, the presets keep grayscale ---
def _grey_as_rgb_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):  # grey pictures a camera or an editor saved as RGB JPEG
        grey = Image.fromarray(rng.integers(0, 255, (10, 12), dtype=np.uint8), "L")
        grey.convert("RGB").save(folder / f"{i}.jpg", quality=80)


def test_auto_channels_reads_colour_as_rgb_and_grey_as_grayscale(tmp_path: Path) -> None:
    colour = write_image_folder(tmp_path / "colour", {"a": 3, "b": 3})
    s = load_image_set(str(colour), fmt="auto", size=8, channels=0)
    assert s.images.shape[1] == 3
    assert "data: 6 of 6 images have colour: read as RGB (data.channels=1 for grayscale)" in s.notes
    grey = write_image_folder(tmp_path / "grey", {"a": 3, "b": 3}, mode="L")
    s = load_image_set(str(grey), fmt="auto", size=8, channels=0)
    assert s.images.shape[1] == 1 and s.notes == ["data: no image has colour: read as grayscale"]
    jpegs = tmp_path / "jpegs"
    _grey_as_rgb_jpegs(jpegs / "a", 3)
    _grey_as_rgb_jpegs(jpegs / "b", 3, seed=1)  # other pictures: no copies across classes
    assert load_image_set(str(jpegs), fmt="auto", size=8, channels=0).images.shape[1] == 1
    Image.fromarray(np.full((10, 12, 3), (200, 30, 30), np.uint8)).save(jpegs / "b" / "red.png")
    s = load_image_set(str(jpegs), fmt="auto", size=8, channels=0)
    assert s.images.shape[1] == 3 and s.notes[0].startswith("data: 1 of 7 images have colour")
    assert load_image_set(str(jpegs), fmt="auto", size=8, channels=1).images.shape[1] == 1
    # The bundled digits are grayscale arrays: auto keeps one channel.
    assert load_image_set("", fmt="auto", size=8, channels=0).images.shape[1] == 1


def test_a_saved_run_reads_new_images_with_its_own_channels(tmp_path: Path) -> None:
    from archlab.tasks.image_cls import ImageData

    _, data = _image_task(write_image_folder(tmp_path / "colour", CLASSES), "data.channels=0")
    assert data.fitted.channels == 3 and data.info["channels"] == 3
    assert data.info["colour_images"] == 30  # data.json says what auto chose from
    grey = write_image_folder(tmp_path / "grey", CLASSES, mode="L", seed=1)
    cfg = _image_cfg(grey, "data.channels=0")
    again = ImageData(cfg).build(torch.device("cpu"), data.fitted)  # eval on other images
    assert again.context.images.shape[1] == 3  # the network's stem, not what auto would pick


def test_generic_images_decide_channels_and_the_study_presets_keep_grayscale() -> None:
    from archlab.config import task_defaults
    from archlab.presets import PRESETS
    from archlab.task_configs import ImageDataConfig

    assert task_defaults("images").data.channels == 0
    assert {p.data.channels for p in PRESETS.values() if p.task == "images"} == {1}
    with pytest.raises(ArchlabError, match=r"data.channels=2: 1, 3 or 0 \(auto\)"):
        ImageDataConfig(channels=2)


def test_new_images_with_other_classes_than_the_run_are_refused(tmp_path: Path) -> None:
    from archlab.tasks.image_cls import ImageData

    _, data = _image_task(write_image_folder(tmp_path / "a", CLASSES))
    other = write_image_folder(tmp_path / "b", {"cat": 5, "cow": 5, "eel": 5})
    with pytest.raises(ArchlabError, match=r"classes \['cat', 'cow', 'eel'\] differ from the run"):
        ImageData(_image_cfg(other)).build(torch.device("cpu"), data.fitted)


def test_colour_is_counted_per_image_in_bounded_chunks() -> None:
    from archlab.data.images import colour_images

    big = np.zeros((5, 3, 1500, 1500), np.uint8)  # 2 images per 16M-pixel chunk
    big[[1, 4], 0] = 40  # red-tinted: |R-G| = 40 everywhere
    big[2, 2, :10] = 255  # 10 blue rows of 1,500: mean spread 1.7 levels, under 2
    assert colour_images(big) == 2
    assert colour_images(big[:, :1]) == 0 and colour_images(big[:0]) == 0


# --- data.size=0 (auto, the default): the images' median shorter side, held to 32..64 ---
@pytest.mark.parametrize(
    ("side", "size"), [(8, 32), (32, 32), (50, 48), (63, 56), (64, 64), (96, 64), (4000, 64)]
)
def test_auto_size_holds_the_median_side_to_32_64_in_steps_of_8(side: int, size: int) -> None:
    from archlab.data.image_set import auto_size

    assert auto_size(side) == size


def _photos(folder: Path, sizes: list[tuple[int, int]]) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"IMG_{i:04d}.jpg", quality=80)


def test_auto_size_reads_photos_at_their_median_side_and_small_images_at_32(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    _photos(photos / "a", [(120, 96), (96, 128), (640, 480)])  # shorter sides 96, 96, 480
    _photos(photos / "b", [(40, 50), (50, 40), (44, 60)])  # 40, 40, 44: median of all 70
    s = load_image_set(str(photos), fmt="auto", size=0, channels=0)
    assert s.images.shape[-2:] == (64, 64) and s.native_side == 70
    note = "data: images resized to 64x64 (data.size=auto: their median shorter side is 70 px"
    assert any(n.startswith(note) for n in s.notes)
    for k in ("a", "b"):
        _photos(tmp_path / "small" / k, [(40, 50), (50, 46)])  # 40, 46: median 43, to 40
    small = load_image_set(str(tmp_path / "small"), fmt="auto", size=0, channels=0)
    assert small.images.shape[-2:] == (40, 40) and small.native_side == 43
    # The 12x10 test images and the bundled 8x8 digits are read at 32, as before auto.
    assert load_image_set("", fmt="auto", size=0, channels=0).images.shape[-2:] == (32, 32)
    tiny = write_image_folder(tmp_path / "tiny", {"a": 2, "b": 2})
    assert load_image_set(str(tiny), fmt="auto", size=0, channels=0).native_side == 10
    # An .npz: its own side (16 -> held to 32); a size given is used as given.
    npz = write_npz(tmp_path / "x.npz", n_per_class=2, size=48)
    assert load_image_set(str(npz), fmt="auto", size=0, channels=0).images.shape[-1] == 48
    assert load_image_set(str(photos), fmt="auto", size=24, channels=0).native_side is None


def test_a_saved_run_reads_new_images_at_its_own_size(tmp_path: Path) -> None:
    from archlab.tasks.image_cls import ImageData

    photos = tmp_path / "photos"
    for k in CLASSES:
        _photos(photos / k, [(96, 80)] * 10)
    _, data = _image_task(photos, "data.size=0")
    assert data.fitted.size == 64 and data.info["native_side"] == 80
    small = write_image_folder(tmp_path / "small", CLASSES, seed=1)  # 12x10: auto would say 32
    again = ImageData(_image_cfg(small, "data.size=0")).build(torch.device("cpu"), data.fitted)
    assert again.context.images.shape[-2:] == (64, 64)


def test_generic_images_decide_their_size() -> None:
    from archlab.config import task_defaults
    from archlab.presets import PRESETS

    assert task_defaults("images").data.size == 0
    assert all(p.data.size for p in PRESETS.values() if p.task == "images")  # the study's
    with pytest.raises(ArchlabError, match=r"data.size=1: must be 2\.\.\d+ \(or 0 = auto"):
        ImageDataConfig(size=1)


# --- messy folders and manifests (a new user's data) ---
@pytest.mark.parametrize(
    "folders",
    [("training", "testing"), ("training_set", "test_set"), ("Train", "valid"),
     ("train", "validation")],
)  # fmt: skip
def test_more_split_folder_names_are_splits_not_classes(
    tmp_path: Path, folders: tuple[str, str]
) -> None:
    root = tmp_path / "ds"
    write_image_folder(root / folders[0], {"cat": 6, "dog": 6}, size=(8, 8))
    write_image_folder(root / folders[1], {"cat": 2, "dog": 2}, size=(8, 8), seed=1)
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert s.layout == "split_folders" and s.class_names == ["cat", "dog"]
    assert sorted(s.split_origin.values()) == sorted(f"{f}/" for f in folders)
    assert (s.provided_split == "train").sum() == 12


def test_hidden_folders_and_macosx_are_skipped(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"cat": 3, "dog": 3}, size=(8, 8))
    (root / "cat" / ".ipynb_checkpoints").mkdir()
    Image.new("L", (8, 8)).save(root / "cat" / ".ipynb_checkpoints" / "000-checkpoint.png")
    (root / "__MACOSX" / "cat").mkdir(parents=True)  # a macOS zip extracted elsewhere
    (root / "__MACOSX" / "cat" / "._000.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert s.class_names == ["cat", "dog"] and len(s.labels) == 6 and s.ignored == 0
    # Beside split folders, __MACOSX (and a "._" file loose in test/) breaks nothing.
    split = tmp_path / "split"
    for name in ("train", "test"):
        write_image_folder(split / name, {"cat": 4, "dog": 4}, size=(8, 8))
    (split / "__MACOSX" / "train").mkdir(parents=True)
    (split / "test" / "._000.png").write_bytes(b"\x00\x05\x16\x07")
    s = load_image_set(str(split), fmt="auto", size=8, channels=1)
    assert s.layout == "split_folders" and s.class_names == ["cat", "dog"] and len(s.labels) == 16


def test_other_folders_beside_split_folders_hint_layout_classes_only_for_image_folders(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ds"
    for name in ("train", "test"):
        write_image_folder(root / name, {"cat": 3, "dog": 3}, size=(8, 8))
    write_image_folder(root, {"extra": 2}, size=(8, 8))
    with pytest.raises(ArchlabError, match=r"\['extra'\]; move those out$"):
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    vehicles = write_image_folder(tmp_path / "v", {"train": 3, "bus": 3}, size=(8, 8))
    with pytest.raises(ArchlabError, match=r"set data\.layout=classes"):  # a class of trains
        load_image_set(str(vehicles), fmt="auto", size=8, channels=1)


def test_skipped_and_ignored_files_are_said_first_and_jfif_is_an_image(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 6, "b": 6}, size=(8, 8))
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "b" / "saved.jfif", format="JPEG")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / "Thumbs.db").write_bytes(b"\x00")
    _corrupt(root)
    _, data = _image_task(root, "data.skip_corrupt=true")
    assert data.info["n_images"] == 13 and data.info["ignored_non_images"] == 2
    assert "data: skipped 1 unreadable file(s) (data.skip_corrupt=true): a/broken.jpg" in (
        data.notes
    )
    assert any(n.startswith("data: ignored 2 non-image file(s) (a/notes.txt, b/Thumbs.db)")
               for n in data.notes)  # fmt: skip


def test_an_image_over_pils_pixel_limit_is_one_line_or_skipped(tmp_path: Path, monkeypatch) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 10, "b": 10}, size=(8, 8))
    Image.new("L", (40, 40)).save(root / "a" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # over 2x: DecompressionBombError
    for size in (8, 0):  # 0: auto, which reads every header first
        with pytest.raises(ArchlabError, match=r"huge\.png: cannot decode image \(over PIL's "):
            load_image_set(str(root), fmt="auto", size=size, channels=1)
    s = load_image_set(str(root), fmt="auto", size=0, channels=1, skip_corrupt=True)
    assert s.skipped == [str(root / "a" / "huge.png")] and len(s.labels) == 20
    task, _ = _image_task(root, "data.skip_corrupt=true")
    with pytest.raises(ArchlabError, match=r"huge\.png: cannot read image \(over PIL's pixel"):
        task.read_images([str(root / "a" / "huge.png")])
    # Between the limit and twice it PIL only warns, naming no file: named here too.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ArchlabError, match=r"huge\.png: cannot decode image \(over PIL's "):
        load_image_set(str(root), fmt="auto", size=8, channels=1)


def test_manifest_without_a_header_keeps_its_first_image(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 12)
    path = tmp_path / "noheader.csv"
    path.write_text("".join(f"img/{n},{'ab'[i % 2]}\n" for i, n in enumerate(names)))
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)
    assert len(s.labels) == 12 and s.class_names == ["a", "b"] and s.labels[0] == 0
    assert any("has no header line" in n and "col1, col2" in n for n in s.notes)
    path.write_text(f"img/{names[0]},a\nimg/nope.png,b\n")  # line numbers count from 1
    with pytest.raises(ArchlabError, match=r"line 2: image 'img/nope.png'"):
        load_image_set(str(path), fmt="auto", size=8, channels=1)


def test_manifest_one_file_under_two_labels_is_refused_and_repeats_dropped(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 8)
    rows = [f"img/{n},{'ab'[i % 2]}" for i, n in enumerate(names)]
    path = _manifest(tmp_path, "file,label", [*rows, "img/im02.png,b"])
    with pytest.raises(ArchlabError, match=r"lines 4 and 10 list the same image .*im02\.png' "
                       r"with the labels 'a' and 'b' \(column 'label'\); keep one"):  # fmt: skip
        load_image_set(str(path), fmt="auto", size=8, channels=1)
    path = _manifest(tmp_path, "file,label", rows + rows)
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)
    assert len(s.labels) == 8
    assert any("dropped 8 row(s) that repeat an earlier one" in n and "line 10 repeats line 2" in n
               for n in s.notes)  # fmt: skip
    tagged = [f"{r},{'train' if i < 6 else 'test'}" for i, r in enumerate(rows)]
    path = _manifest(tmp_path, "file,label,split", [*tagged, tagged[7]])
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)  # split tags stay aligned
    assert s.provided_split.tolist() == ["train"] * 6 + ["test"] * 2


def test_files_beside_the_class_folders_are_counted_and_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"cat": 3, "dog": 3}, size=(8, 8))
    Image.new("L", (8, 8)).save(root / "loose.png")
    Image.new("RGB", (8, 8)).save(root / "IMG_0001.JPG", format="JPEG")
    (root / "README.txt").write_text("hi")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: not the user's data
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert len(s.labels) == 6 and s.ignored == 0  # left out, as before; now said
    want = (
        f"data: {root}: 3 file(s) beside the class folders left out (IMG_0001.JPG, "
        "README.txt, loose.png); an image there has no class: move it into a class folder "
        "to use it"
    )
    assert want in s.notes
    # Beside split folders, and a non-image file right in one (an image there is refused).
    split = tmp_path / "split"
    for name in ("Train", "Test"):
        write_image_folder(split / name, {"cat": 4, "dog": 4}, size=(8, 8))
    (split / "Train" / "notes.txt").write_text("hi")
    (split / "labels.csv").write_text("x\n")
    s = load_image_set(str(split), fmt="auto", size=8, channels=1)
    assert s.layout == "split_folders" and len(s.labels) == 16
    want = (
        f"data: {split}: 2 file(s) beside the class folders left out (labels.csv, Train/notes.txt)"
    )
    assert want in s.notes
    tidy = write_image_folder(tmp_path / "tidy", {"cat": 3, "dog": 3}, size=(8, 8))
    s = load_image_set(str(tidy), fmt="auto", size=8, channels=1)
    assert not any("beside the class folders" in n for n in s.notes)


def test_classes_differing_only_in_letter_case_are_named_not_merged(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 12)
    labels = ["dog", "Dog", "ship ", "ship"]  # spaces around a label are no difference
    rows = [f"img/{n},{labels[i % 4]}" for i, n in enumerate(names)]
    path = _manifest(tmp_path, "filepath,label", rows)
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)
    assert s.class_names == ["Dog", "dog", "ship"]
    want = (
        f"data: {path}: labels 'Dog' / 'dog' differ only in letter case and are classes of "
        "their own; write each label one way in the file to merge them"
    )
    assert want in s.notes
    root = write_image_folder(tmp_path / "f", {"Dog": 3, "dog": 3, "ship": 3}, size=(8, 8))
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert s.class_names == ["Dog", "dog", "ship"]
    want = (
        f"data: {root}: class folders 'Dog' / 'dog' differ only in letter case and are "
        "classes of their own; move their images into one folder to merge them"
    )
    assert want in s.notes
    plain = write_image_folder(tmp_path / "plain", {"dog": 3, "ship": 3}, size=(8, 8))
    s = load_image_set(str(plain), fmt="auto", size=8, channels=1)
    assert not any("letter case" in n for n in s.notes)


def test_linked_folders_are_read_once_and_a_broken_link_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"a": 3, "b": 3}, size=(8, 8))
    more = write_image_folder(tmp_path / "cache", {"more": 4}, size=(8, 8), seed=1) / "more"
    (root / "a" / "more").symlink_to(more)  # a class folder linking into a data cache
    (root / "b" / "loop").symlink_to(root)  # a link to a parent: no loop, no other class
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert np.bincount(s.labels).tolist() == [7, 3]
    assert not any("b/loop" in n for n in s.notes)
    (root / "a" / "gone.png").symlink_to(tmp_path / "unmounted" / "x.png")
    with pytest.raises(ArchlabError, match=r"gone.png: cannot decode image \(a broken symbolic "
                       r"link, to .*unmounted/x.png\)"):  # fmt: skip
        load_image_set(str(root), fmt="auto", size=8, channels=1)


def test_a_class_name_in_decomposed_unicode_is_its_composed_class(tmp_path: Path) -> None:
    # macOS writes names decomposed: "gru\u0308n" looks like "grün" and is that class.
    nfd, nfc = "gru\u0308n", "gr\u00fcn"
    root = write_image_folder(tmp_path / "f", {nfc: 3, "rot": 3}, size=(8, 8))
    write_image_folder(tmp_path / "f", {nfd: 3}, size=(8, 8), seed=1)
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    assert s.class_names == [nfc, "rot"] and np.bincount(s.labels).tolist() == [6, 3]
    assert any("class folder name(s) in decomposed Unicode" in n and "'gru\\u0308n' -> 'grün'"
               in n for n in s.notes)  # fmt: skip
    names = _pngs(tmp_path / "img", 8)
    rows = [f"img/{n},{[nfd, nfc, 'rot', 'rot'][i % 4]}" for i, n in enumerate(names)]
    s = load_image_set(str(_manifest(tmp_path, "filepath,label", rows)), fmt="auto", size=8,
                       channels=1)  # fmt: skip
    assert s.class_names == [nfc, "rot"]
    assert any("labels in decomposed Unicode" in n for n in s.notes)


def test_identical_images_under_two_labels_are_warned_and_the_split_is_unchanged(
    tmp_path: Path,
) -> None:
    import shutil

    from archlab.data.splits import duplicate_groups

    root = write_image_folder(tmp_path / "f", {"dog": 10, "ship": 10}, size=(8, 8))
    for i in range(3):  # one photo sorted into two classes
        shutil.copy(root / "dog" / f"00{i}.png", root / "ship" / f"dup_00{i}.png")
    shutil.copy(root / "dog" / "005.png", root / "dog" / "copy.png")  # same label: no clash
    s = load_image_set(str(root), fmt="auto", size=8, channels=1)
    want = (
        "data: warning: 3 group(s) of identical images carry different labels (dog/000.png "
        "= ship/dup_000.png, dog/001.png = ship/dup_001.png, ...); each copy is learnt and "
        "scored under its own label: keep each picture under one"
    )
    assert want in s.notes
    # Every image is used and the split is carved as without the warning: whole copy groups.
    _, data = _image_task(root)
    assert data.info["n_images"] == 24 and data.info["duplicates"]["groups"] == 4
    want = stratified_split(s.labels, 0.15, 0.15, 0, None, duplicate_groups(s.digests))
    assert data.splits == {k: v.tolist() for k, v in want.items()}
    assert any("byte-identical copies of another (4 groups)" in n for n in data.notes)
    # A manifest names each file with its label; an npz each image by its index.
    _pngs(tmp_path / "img", 6)
    rows = [f"img/im{i:02d}.png,{'ab'[i % 2]}" for i in range(6)]
    shutil.copy(tmp_path / "img" / "im00.png", tmp_path / "img" / "twin.png")
    path = _manifest(tmp_path, "path,label", [*rows, "img/twin.png,b"])
    s = load_image_set(str(path), fmt="auto", size=8, channels=1)
    assert any("1 group(s) of identical images carry different labels (img/im00.png (a) = "
               "img/twin.png (b))" in n for n in s.notes)  # fmt: skip
    images = np.zeros((6, 4, 4), np.uint8)
    images[1:] = np.arange(1, 6)[:, None, None]
    np.savez(tmp_path / "c.npz", images=images, labels=np.array([0, 1, 0, 1, 0, 1]))
    images[5] = images[0]
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 0, 1, 0, 1]))
    s = load_image_set(str(tmp_path / "c.npz"), fmt="auto", size=8, channels=1)
    assert not any("identical images" in n for n in s.notes)
    s = load_image_set(str(tmp_path / "d.npz"), fmt="auto", size=8, channels=1)
    assert any("(image 0 (0) = image 5 (1))" in n for n in s.notes)


def test_a_class_of_one_image_is_refused_naming_it(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    root = write_image_folder(tmp_path / "f", {"cat": 8, "dog": 8, "lonely": 1}, size=(8, 8))
    needle = (r"f: too few images for a stratified test split: class 'lonely' has 1 image \(need "
              r">= 2 per class to carve train, val and test\); add images to it or remove its "
              r"folder$")  # fmt: skip
    with pytest.raises(ArchlabError, match=needle):
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    argv = ["train", "--task", "images", "--data", str(root), "--out", str(tmp_path / "runs"),
            "--set", "train.threads=1", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("archlab: error: ") and "class 'lonely' has 1 image" in err[-1]
    # Two such classes, and a manifest's fix; a class of 2 copies of one picture is one too.
    write_image_folder(tmp_path / "f", {"solo": 1}, size=(8, 8), seed=3)
    (root / "pair").mkdir()
    Image.new("L", (8, 8), 99).save(root / "pair" / "a.png")
    Image.new("L", (8, 8), 99).save(root / "pair" / "b.png")
    with pytest.raises(ArchlabError, match=r"classes 'lonely' \(1 image\), 'pair' \(1 "
                       r"distinct image of 2\), 'solo' \(1 image\) .*; add images to each or "
                       r"remove its folder$"):  # fmt: skip
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    _pngs(tmp_path / "img", 5)
    rows = [f"img/im{i:02d}.png,{'abbbc'[i]}" for i in range(5)]
    with pytest.raises(ArchlabError, match=r"classes 'a' \(1 image\), 'c' \(1 image\) .*; add "
                       r"rows of each to the manifest or remove its rows$"):  # fmt: skip
        load_image_set(str(_manifest(tmp_path, "path,label", rows)), fmt="auto", size=8,
                       channels=1)  # fmt: skip
    # Scored whole (eval --all), or with val/ and test/ of its own, such a class is no error.
    s = load_image_set(str(root), fmt="auto", size=8, channels=1, held_out=True)
    assert "lonely" in s.class_names
    split = tmp_path / "split"
    write_image_folder(split / "train", {"cat": 6, "dog": 6, "lonely": 1}, size=(8, 8))
    for name in ("val", "test"):
        write_image_folder(split / name, {"cat": 2, "dog": 2}, size=(8, 8), seed=1)
    _, data = _image_task(split)
    assert data.info["class_counts"]["train"] == [6, 6, 1]


def test_many_small_classes_carve_one_image_per_class_and_say_so(tmp_path: Path) -> None:
    # 12 classes of 4 images: 15% of 48 is 7, fewer than the classes; stratifying needs 12.
    root = write_image_folder(tmp_path / "many", {f"c{k:02d}": 4 for k in range(12)}, (8, 8))
    _, data = _image_task(root)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 24, "val": 12, "test": 12}
    for k in ("val", "test"):
        assert data.info["class_counts"][k] == [1] * 12
    want = (f"data: {root}: 48 images in 12 classes: a 15% test split (7 images) and a 15% val "
            "split (7 images) would hold fewer than one per class, which stratifying needs: "
            "carved one per class at least instead (test 12, val 12 images)")  # fmt: skip
    assert want in data.notes
    assert data.info["split_source"]["test"].startswith("one per class (12; 15% would hold fewer)")
    # A set that splits at its fractions splits as before, without the line.
    plain = stratified_split(np.repeat(np.arange(3), 20), 0.15, 0.15, seed=0, notes=(said := []))
    assert [len(plain[k]) for k in ("val", "test")] == [9, 9] and said == []
    # Too few even for one per class: the line names the data, the class and the fix.
    root = write_image_folder(tmp_path / "two", {f"c{k}": 2 for k in range(6)}, (8, 8))
    at = re.escape(str(root))
    with pytest.raises(ArchlabError, match=rf"^{at}: too few images for a stratified val split: "
                       r"6 images left after the test split, 6 classes, and 'c0' has 1 of them; "
                       r"each class needs at least 3 images"):  # fmt: skip
        _image_task(root)


def test_a_split_of_copies_says_the_files_are_copies(tmp_path: Path) -> None:
    # Each class one placeholder picture copied 15 times: 30 files, 2 distinct images.
    root = tmp_path / "dupes"
    for k, name in enumerate(("plain", "rot")):
        (root / name).mkdir(parents=True)
        for i in range(15):
            Image.new("L", (8, 8), 40 + 100 * k).save(root / name / f"{i:02d}.png")
    at = re.escape(str(root))
    with pytest.raises(ArchlabError, match=rf"^{at}: too few distinct images for a stratified "
                       r"test split: the 30 images are 2 distinct ones and byte-identical copies "
                       r"of them \(a split keeps copies together\): .*'plain' has 1 of them; "
                       r"each class needs at least 3 distinct images"):  # fmt: skip
        _image_task(root)


def test_manifest_labels_read_as_text_reads_them(tmp_path: Path) -> None:
    names = _pngs(tmp_path / "img", 12)
    # Invisible characters at a label's end are removed as spaces are, and said.
    rows = [f"img/{n},{'dog' if i % 2 else 'cat'}{chr(0x200B) * (i % 3 == 0)}"
            for i, n in enumerate(names)]  # fmt: skip
    s = load_image_set(str(_manifest(tmp_path, "path,label", rows)), fmt="auto", size=8, channels=1)
    assert s.class_names == ["cat", "dog"]
    said = (r"4 label(s) held invisible format characters (U+200B 4), removed as spaces are: "
            r"'cat\u200b' -> 'cat', 'dog\u200b' -> 'dog'")  # fmt: skip
    assert any(said in n for n in s.notes)
    # A missing value's spellings are missing labels, as for text: refused like an empty one.
    for missing in ("NaN", "nan", "NA", "N/A", "null", "None"):
        bad = [*rows[:4], f"img/{names[4]},{missing}", *rows[5:7], f"img/{names[7]},{missing}"]
        path = _manifest(tmp_path, "path,label", bad)
        with pytest.raises(ArchlabError, match=rf"labels.csv: missing label '{missing}' \(a "
                           r"missing value, as text runs read it\) in column 'label' at line 6 "
                           r"\(2 rows without a label\); label each image or "
                           r"remove its row$"):  # fmt: skip
            load_image_set(str(path), fmt="auto", size=8, channels=1)


def test_an_empty_class_folder_is_no_class(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", {"cat": 4, "dog": 4}, size=(8, 8))
    (root / "empty").mkdir()
    (root / "empty" / ".DS_Store").write_bytes(b"")  # hidden: the folder holds no file
    want = f"data: {root}: 1 class folder(s) hold no files (empty): not classes, left out"
    for held_out in (False, True):  # training, and eval --all
        s = load_image_set(str(root), fmt="auto", size=8, channels=1, held_out=held_out)
        assert s.class_names == ["cat", "dog"] and want in s.notes
    # In split folders: a class whose folders are empty in every split.
    split = tmp_path / "s"
    write_image_folder(split / "train", {"cat": 4, "dog": 4}, size=(8, 8))
    write_image_folder(split / "test", {"cat": 2, "dog": 2}, size=(8, 8))
    (split / "train" / "owl").mkdir()
    (split / "test" / "owl").mkdir()
    for held_out in (False, True):
        s = load_image_set(str(split), fmt="auto", size=8, channels=1, held_out=held_out)
        assert s.class_names == ["cat", "dog"]
        assert (
            f"data: {split}: 1 class folder(s) hold no files (test/owl, train/owl): not "
            "classes, left out" in s.notes
        )


# --- images kept in Parquet files (the Hugging Face Hub's image data sets) ---


def _image_parquet(path: Path, files: list[tuple[Path, int]], names: list[str] | None) -> Path:
    """A Parquet file as the Hub writes an image set: {bytes, path} structs and class ids, the
    class names in its metadata (None: plain string labels, no metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [{"bytes": p.read_bytes(), "path": None} for p, _ in files]
    labels = [y for _, y in files] if names else [f"c{y}" for _, y in files]
    table = pa.table({"image": images, "label": labels})
    if names:
        label = {"names": names, "_type": "ClassLabel"}
        info = {"info": {"features": {"image": {"_type": "Image"}, "label": label}}}
        table = table.replace_schema_metadata({b"huggingface": json.dumps(info).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_images_in_parquet_files_decode_as_their_files(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "pics", {"cat": 10, "dog": 10})
    files = [(p, k) for k, c in enumerate(("cat", "dog")) for p in sorted((folder / c).iterdir())]
    want = load_image_set(str(folder), fmt="auto", size=16, channels=3)
    # A Hub repository: data/ beside README.md, train and test files; test's labels are -1.
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("# card\n")
    _image_parquet(
        repo / "data" / "train-00000-of-00001.parquet", files[2:10] + files[12:], ["cat", "dog"]
    )
    _image_parquet(
        repo / "data" / "test-00000-of-00001.parquet", files[:2] + files[10:12], ["cat", "dog"]
    )
    s = load_image_set(str(repo), fmt="auto", size=16, channels=3)
    assert s.layout == "table" and s.class_names == ["cat", "dog"]
    assert s.split_origin == {"test": "test-00000-of-00001.parquet",
                              "train": "train-00000-of-00001.parquet"}  # fmt: skip
    # Each image is the same pixels as its file, named FILE#ROW.
    by_digest = dict(zip(want.digests, want.images, strict=True))
    for img, d, f in zip(s.images, s.digests, s.files, strict=True):
        np.testing.assert_array_equal(img, by_digest[d])
        assert re.fullmatch(r".*/data/t(rain|est)-00000-of-00001\.parquet#\d+", f)
    assert sorted(s.provided_split.tolist()).count("test") == 4
    assert any("labels from column 'label' (the names its Hugging Face metadata" in n
               for n in s.notes)  # fmt: skip
    # Hidden test labels (-1) are no test images; plain string labels need no metadata.
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = pq.read_table(repo / "data" / "test-00000-of-00001.parquet")
    hidden = test.set_column(1, "label", pa.array([-1] * 4, pa.int64()))
    pq.write_table(hidden, repo / "data" / "test-00000-of-00001.parquet")
    s = load_image_set(str(repo), fmt="auto", size=16, channels=3)
    assert "test" not in s.split_origin and len(s.labels) == 16
    assert any("4 row(s) without a label left out" in n for n in s.notes)
    one = _image_parquet(tmp_path / "one.parquet", files, None)
    s = load_image_set(str(one), fmt="auto", size=16, channels=3)
    assert s.class_names == ["c0", "c1"] and s.provided_split is None and len(s.labels) == 20
    # A Parquet file of image paths (no image bytes) is a manifest, as its CSV would be.
    import pandas as pd

    pd.DataFrame({"path": [str(p) for p, _ in files], "label": [y for _, y in files]}).to_parquet(
        tmp_path / "list.parquet"
    )
    assert (
        load_image_set(str(tmp_path / "list.parquet"), fmt="auto", size=16, channels=3).layout
        == "manifest"
    )
    # A row without image bytes is one line naming it.
    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"image": [{"bytes": b"", "path": None}], "label": ["x"]}), broken)
    with pytest.raises(
        ArchlabError, match=r"broken\.parquet: row 0: no image bytes in column 'image'"
    ):
        load_image_set(str(broken), fmt="auto", size=16, channels=3)
