"""Bad input, everywhere: a catalogue of broken files, flags and checkpoints, plus fuzzing.

Every catalogue case runs the CLI in-process and must end with exit code 2, exactly one
``archlab: error:`` line on stderr naming the offending file/column/value/key, no traceback,
and nothing written (no run directory, no stray files) anywhere under the test's folder.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from archlab import rundir
from archlab.cli import main
from archlab.data.sales import load_sales
from archlab.data.text import load_text_table
from archlab.errors import ArchlabError
from archlab.task_configs import SalesDataConfig

QUIET = ["--set", "train.threads=1", "--set", "train.progress=off"]
TINY = [*QUIET, "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]


# --- writers of good inputs, which each case then breaks in one way ---
def _png_bytes(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def _images(tmp: Path, classes: dict[str, int] | None = None) -> Path:
    return write_image_folder(tmp / "imgs", classes or {"cat": 4, "dog": 4}, size=(8, 8))


def _train_images(data: Path, *extra: str) -> list[str]:
    return ["train", "--task", "images", "--data", str(data), "--out", "out", *TINY, *extra]


def _npz(tmp: Path, **arrays: np.ndarray) -> Path:
    base = {
        "images": np.zeros((6, 8, 8), np.uint8),
        "labels": np.array([0, 1, 2, 0, 1, 2]),
        "class_names": np.array(["a", "b", "c"]),
    }
    base.update(arrays)
    path = tmp / "set.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


SALES_HEADER = "Store,Dept,Date,Weekly_Sales,IsHoliday"


def _sales_rows(weeks: int = 6) -> list[str]:
    return [
        f"{s},{d},2010-{1 + w // 4:02d}-{1 + 7 * (w % 4):02d},{100 + w + s * d}.5,FALSE"
        for s in (1, 2)
        for d in (1, 2)
        for w in range(weeks)
    ]


def _sales_dir(tmp: Path, text: str | bytes | None = None, name: str = "train.csv") -> Path:
    d = tmp / "shop"
    d.mkdir(exist_ok=True)
    if text is None:
        text = "\n".join([SALES_HEADER, *_sales_rows()]) + "\n"
    (d / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return d


# A bare train.csv: no features/stores tables and no covariates.
BARE = ["--set", "data.features_file=", "--set", "data.stores_file=", "--set", "data.covariates="]


def _train_sales(data: Path, *extra: str) -> list[str]:
    return ["train", "--task", "sales", "--data", str(data), "--out", "out", *BARE, *TINY, *extra]


def _sales_text(replace_line: tuple[int, str] | None = None, header: str = SALES_HEADER) -> str:
    rows = _sales_rows()
    if replace_line:
        rows[replace_line[0]] = replace_line[1]
    return "\n".join([header, *rows]) + "\n"


TEXT_HEADER = "text,airline_sentiment"


def _text_rows() -> list[str]:
    words = {"negative": "awful late", "neutral": "which gate", "positive": "great thanks"}
    return [f"{w} flight {i},{lab}" for lab, w in words.items() for i in range(5)]


def _text_csv(tmp: Path, text: str | bytes | None = None) -> Path:
    path = tmp / "tweets.csv"
    if text is None:
        text = "\n".join([TEXT_HEADER, *_text_rows()]) + "\n"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _train_text(data: Path, *extra: str) -> list[str]:
    return ["train", "--task", "text", "--data", str(data), "--out", "out", *TINY, *extra]


# --- the catalogue: id -> build(tmp) -> (argv, needles the one-line message must contain) ---
Build = Callable[[Path], tuple[list[str], list[str]]]


def _img_case(name: str, content: bytes, sub: str = "") -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        root = _images(tmp)
        target = root / "cat" / sub / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return _train_images(root), [name, "cannot decode image", "data.skip_corrupt=true"]

    return build


def _one_class(tmp: Path) -> tuple[list[str], list[str]]:
    return _train_images(_images(tmp, {"solo": 4})), ["imgs", "1 class(es) (solo)", "at least 2"]


def _empty_class(tmp: Path) -> tuple[list[str], list[str]]:
    root = _images(tmp)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not an image")
    return _train_images(root), ["empty", "class folder has no images"]


def _no_class_folders(tmp: Path) -> tuple[list[str], list[str]]:
    root = tmp / "flat"
    root.mkdir()
    (root / "a.png").write_bytes(_png_bytes())
    return _train_images(root), ["flat", "no class sub-folders"]


def _images_wrong_file(tmp: Path) -> tuple[list[str], list[str]]:
    path = tmp / "pics.txt"
    path.write_text("a,b\n1,2\n")
    return _train_images(path), ["pics.txt", "expected a folder of class sub-folders, a .csv"]


def _split_folders(_: None, broken: Callable[[Path], object], needles: list[str]) -> Build:
    """Good train/ val/ test/ folders, then one change that breaks the layout."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        root = tmp / "ds"
        for name in ("train", "val", "test"):
            write_image_folder(root / name, {"cat": 3, "dog": 3}, size=(8, 8))
        broken(root)
        return _train_images(root), needles

    return build


def _manifest_case(header: str, rows: list[str], needles: list[str], *sets: str) -> Build:
    """labels.csv beside img/a.png and img/b.png, with the given header and rows."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        (tmp / "img").mkdir()
        for n in ("a", "b", "c", "d"):
            (tmp / "img" / f"{n}.png").write_bytes(_png_bytes())
        path = tmp / "labels.csv"
        path.write_text("\n".join([header, *rows]) + "\n")
        extra = [a for kv in sets for a in ("--set", kv)]
        return _train_images(path, *extra), ["labels.csv", *needles]

    return build


_MANIFEST_OK = ["img/a.png,cat,train", "img/b.png,dog,train", "img/c.png,cat,test"]


# --- image cases: copies across splits, 16-bit and wider pixels, manifest paths ---
def _manifest_files(files: dict[str, bytes], rows: list[str], needles: list[str]) -> Build:
    """labels.csv (path,label,split) beside the given files (paths relative to the CSV)."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(content)
        path = tmp / "labels.csv"
        path.write_text("\n".join(["path,label,split", *rows]) + "\n")
        return _train_images(path), ["labels.csv", *needles]

    return build


def _tiff_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _wide_pixels(name: str, arr: np.ndarray, needles: list[str]) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        root = _images(tmp)
        (root / "cat" / name).write_bytes(_tiff_bytes(arr))
        return _train_images(root), [name, *needles]

    return build


_FOUR = {f"img/{n}.png": _png_bytes() for n in "abcd"}
IMAGE_TRUST_CASES: dict[str, Build] = {
    "img-manifest-same-file-in-two-splits": _manifest_files(
        _FOUR,
        [
            "img/a.png,cat,train",
            "img/b.png,dog,train",
            "img/c.png,cat,test",
            "./img/a.png,cat,test",
        ],
        ["lines 2 and 5", "the same image", "in the train and the test split", "keep one"],
    ),
    "img-manifest-path-is-a-folder": _manifest_files(
        _FOUR,
        ["img/a.png,cat,train", "img/b.png,dog,train", "img/c.png,cat,test", "img,dog,test"],
        ["line 5", "image 'img'", "is a folder", "not an image file"],
    ),
    "img-manifest-id-matches-two-files": _manifest_files(
        {**_FOUR, "img/e.jpg": _png_bytes(), "img/e.png": _png_bytes()},
        ["img/a.png,cat,train", "img/b.png,dog,train", "img/c.png,cat,test", "img/e,dog,test"],
        ["line 5", "image id 'e'", "e.jpg and e.png", "with its extension"],
    ),
    "img-32bit-float-tiff": _wide_pixels(
        "float.tif", np.full((8, 8), 0.5, np.float32), ["32-bit float pixels", "8- or 16-bit"]
    ),
    "img-32bit-integer-tiff": _wide_pixels(
        "wide.tif", np.full((8, 8), 70000, np.int32), ["32-bit integer pixels", "70000"]
    ),
}
# --- end of the image cases ---


def _npz_case(needles: list[str], **arrays: np.ndarray | None) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        return _train_images(_npz(tmp, **arrays)), ["set.npz", *needles]

    return build


def _npz_garbage(tmp: Path) -> tuple[list[str], list[str]]:
    path = tmp / "set.npz"
    path.write_bytes(b"PK\x03\x04 this is not really a zip file")
    return _train_images(path), ["set.npz", "not a readable .npz"]


def _sales_case(
    text: str | bytes, needles: list[str], name: str = "train.csv", *sets: str
) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        extra = [a for kv in sets for a in ("--set", kv)]
        return _train_sales(_sales_dir(tmp, text, name), *extra), [name, *needles]

    return build


def _sales_with(name: str, text: str, needles: list[str]) -> Build:
    """A good train.csv plus a broken features.csv or stores.csv."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        d = _sales_dir(tmp)
        (d / name).write_text(text)
        key = "features_file" if name.startswith("features") else "stores_file"
        return _train_sales(d, "--set", f"data.{key}={name}"), needles

    return build


def _sales_no_train(tmp: Path) -> tuple[list[str], list[str]]:
    d = tmp / "shop"
    d.mkdir()
    (d / "other.csv").write_text(SALES_HEADER + "\n")
    return _train_sales(d), ["train.csv", "no such file"]


def _sales_missing_covariate(tmp: Path) -> tuple[list[str], list[str]]:
    args = _train_sales(_sales_dir(tmp), "--set", "data.covariates=Temperature")
    return args, ["shop", "['Temperature']", "data.covariates"]


def _sales_bad_features(tmp: Path) -> tuple[list[str], list[str]]:
    d = _sales_dir(tmp)
    (d / "features.csv").write_text("Shop,Date,Temperature\n1,2010-01-01,5\n")
    args = _train_sales(d, "--set", "data.features_file=features.csv")
    return args, ["features.csv", "['Store']"]


def _sales_file(tmp: Path, text: str) -> Path:
    path = tmp / "transactions.csv"
    path.write_text(text)
    return path


def _sales_file_case(text: str, needles: list[str], *sets: str) -> Build:
    """One sales CSV given as --data, with the three flags a daily store panel needs."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        goal = ["data.target=transactions", "data.date_column=date", "data.series_keys=store_nbr"]
        extra = [a for kv in [*goal, *sets] for a in ("--set", kv)]
        argv = ["train", "--task", "sales", "--data", str(_sales_file(tmp, text)), "--out", "out"]
        return [*argv, *TINY, *extra], ["transactions.csv", *needles]

    return build


# Day-first dates whose days never pass 12: day-first and month-first both read them.
_AMBIGUOUS = "date,store_nbr,transactions\n" + "".join(
    f"{d:02d}/{m:02d}/2016,{s},{900 + d}\n"
    for s in (1, 2)
    for m in (1, 2, 3)
    for d in (1, 5, 9, 12)
)
_DAILY = "date,store_nbr,transactions\n" + "".join(
    f"{d:02d}/01/2016,{s},{900 + d}\n" for s in (1, 2) for d in range(1, 29)
)


def _weighted_text(third: str, every: bool = False) -> str:
    """The good tweets with a 'conf' column: 1 on every row but the third (or on none)."""
    rows = [f"{r},{third if every or i == 2 else 1}" for i, r in enumerate(_text_rows())]
    return "\n".join([TEXT_HEADER + ",conf", *rows]) + "\n"


def _text_case(text: str | bytes, needles: list[str], *extra: str) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        path = _text_csv(tmp, text)
        return _train_text(path, *extra), needles if extra else [path.name, *needles]

    return build


def _text_folder(tmp: Path) -> tuple[list[str], list[str]]:
    d = tmp / "tweets"
    d.mkdir()
    return _train_text(d), ["tweets", "a folder", "CSV file"]


def _vec_case(
    content: str | bytes | None, needles: list[str], *extra: str, name: str = "vecs.txt"
) -> Build:
    """A good tweets CSV with a broken word-vectors file (data.embeddings; None = no file)."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        vec = tmp / name
        if content is not None:
            vec.write_bytes(content.encode() if isinstance(content, str) else content)
        rows = [r.replace(",", f" {i},") for i in range(4) for r in _text_rows()]  # 60 texts
        csv = _text_csv(tmp, "\n".join([TEXT_HEADER, *rows]) + "\n")
        argv = _train_text(csv, "--set", f"data.embeddings={vec}", *extra)
        return argv, [name, *needles]

    return build


_VEC_OK = "awful 0.1 0.2 0.3\nlate 0.3 0.2 0.1\n"


def _flags(*argv: str, needles: list[str]) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        return list(argv), needles

    return build


def _broken_yaml_beside_task(tmp: Path) -> tuple[list[str], list[str]]:
    # Not "names its task" (it names none): what is wrong with the file.
    (tmp / "b.yaml").write_text("optim:\n  lr: 0.01\n  bad indent\n")
    return ["train", "--config", "b.yaml", "--task", "images", "--out", "out"], [
        "b.yaml",
        "not valid YAML (could not find expected ':', line 4 column 1)",
    ]


def _text_without_data(tmp: Path) -> tuple[list[str], list[str]]:
    # Folders in the working directory are not a data set (Path("") is the cwd): it trained on
    # them, or read a runs/ folder's files as texts.
    for d in ("notes", "logs"):
        (tmp / d).mkdir()
        for i in range(6):
            (tmp / d / f"{i}.txt").write_text(f"some words {i}\n")
    return ["train", "--task", "text", "--out", "out", *TINY], ["no text data given", "--data"]


def _ok_images(*extra: str) -> list[str]:
    return ["train", "--task", "images", "--out", "out", *QUIET, *extra]


def _train_set(flag: str, name: str, override: str) -> list[str]:
    return ["train", flag, name, "--out", "out", "--set", override]


_TEXT_OK = [TEXT_HEADER, *_text_rows()]


def _out_is_a_file(command: str, under: bool = False) -> Build:
    """--out naming an existing file (or a folder under one): was a NotADirectoryError."""

    def build(tmp: Path) -> tuple[list[str], list[str]]:
        (tmp / "taken.txt").write_text("not a folder")
        out = "taken.txt/runs" if under else "taken.txt"
        where = "lies under taken.txt, which is a file" if under else "is a file"
        imgs = str(_images(tmp))
        argv = {
            "train": ["train", "--task", "images", "--data", imgs, *TINY],
            "ablate": ["ablate", "--task", "images", "--data", imgs, *TINY],
            "reproduce": ["reproduce", "--data-dir", str(tmp), "--profile", "smoke"],
        }[command]
        return [*argv, "--out", out], [f"--out {out}", where, "not a directory"]

    return build


def _interrupted_run(tmp: Path) -> Path:
    """A run directory as `archlab train` leaves it when stopped before its first epoch."""
    from archlab.cli import build_config

    run = tmp / "run"
    run.mkdir()
    cfg = build_config("images", None, str(_images(tmp)), None, None, None, QUIET[1::2])
    (run / rundir.CONFIG).write_text(cfg.to_yaml())
    return run


def _resume_with(*extra: str, needles: list[str]) -> Build:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        run = _interrupted_run(tmp)
        return ["train", "--resume", str(run), *extra], [str(run), *needles]

    return build


CATALOGUE: dict[str, Build] = {
    # image folders
    "img-corrupt-jpg": _img_case("broken.jpg", b"\xff\xd8\xff\xe0" + bytes(range(7, 200, 3))),
    "img-truncated-png": _img_case("half.png", _png_bytes((40, 40))[:60]),
    "img-zero-byte-file": _img_case("empty.png", b""),
    "img-text-named-png": _img_case("notes.png", b"this is text, not a picture\n"),
    "img-corrupt-in-nested-folder": _img_case("deep.gif", b"GIF89a garbage", sub="a/b"),
    "img-only-one-class": _one_class,
    "img-empty-class-folder": _empty_class,
    "img-no-class-folders": _no_class_folders,
    "img-csv-given-as-images": _images_wrong_file,
    "img-split-class-missing-from-train": _split_folders(
        None,
        lambda r: write_image_folder(r / "test", {"eel": 2}, size=(8, 8)),
        ["ds", "class 'eel' is missing from the training split", "test/eel/"],
    ),
    "img-split-folders-beside-another-folder": _split_folders(
        None,
        lambda r: write_image_folder(r / "extras", {"x": 2}, size=(8, 8)),
        ["ds", "['extras']", "move those out"],
    ),
    "img-split-unlabelled-test-images": _split_folders(
        None,
        lambda r: (r / "test" / "x.png").write_bytes(_png_bytes()),
        ["test", "x.png", "outside class folders"],
    ),
    "img-split-no-train-folder": _split_folders(
        None, lambda r: shutil.rmtree(r / "train"), ["ds", "no train/ folder"]
    ),
    "img-manifest-missing-label-column": _manifest_case(
        "path,label,split",
        _MANIFEST_OK,
        ["no label column 'kind'", "data.label_column", "['path', 'label', 'split']"],
        "data.label_column=kind",
    ),
    "img-manifest-undetectable-columns": _manifest_case(
        "a,b", ["1,2"], ["which column holds the image paths", "['a', 'b']", "data.path_column"]
    ),
    "img-manifest-missing-file": _manifest_case(
        "path,label,split",
        [*_MANIFEST_OK, "img/gone.png,dog,test"],
        ["line 5", "'img/gone.png'", "not found"],
    ),
    "img-manifest-unknown-split": _manifest_case(
        "path,label,split",
        [*_MANIFEST_OK, "img/d.png,dog,holdout"],
        ["unknown split value 'holdout'", "column 'split'", "line 5"],
    ),
    "img-manifest-class-missing-from-train": _manifest_case(
        "path,label,split",
        [*_MANIFEST_OK, "img/d.png,eel,test"],
        ["class 'eel' is missing from the training split"],
    ),
    "img-too-small-for-vgg": _flags(
        *_ok_images("--model", "vgg13", "--set", "data.size=16"),
        needles=["16x16", "vgg13 needs at least 32x32", "data.size=32"],
    ),
    **IMAGE_TRUST_CASES,
    # npz arrays
    "npz-not-a-zip": _npz_garbage,
    "npz-missing-labels": _npz_case(["missing array(s) ['labels']"], labels=None),
    "npz-images-float": _npz_case(
        ["'images' has dtype float32", "uint8"], images=np.zeros((6, 8, 8), np.float32)
    ),
    "npz-images-wrong-shape": _npz_case(
        ["'images' has shape (6, 64)"], images=np.zeros((6, 64), np.uint8)
    ),
    "npz-labels-float": _npz_case(["'labels'", "dtype float64"], labels=np.zeros(6)),
    "npz-labels-wrong-length": _npz_case(["'labels'", "length 6", "(4,)"], labels=np.zeros(4, int)),
    "npz-labels-negative": _npz_case(
        ["outside 0..2", "-1..2"], labels=np.array([0, 1, 2, 0, 1, -1])
    ),
    "npz-labels-out-of-range": _npz_case(
        ["outside 0..2", "0..7"], labels=np.array([0, 1, 2, 0, 1, 7])
    ),
    "npz-object-array": _npz_case(
        ["no pickled objects"], labels=np.array([0, 1, 2, 0, 1, "x"], dtype=object)
    ),
    # sales CSVs (bare train.csv)
    "sales-no-train-file": _sales_no_train,
    "sales-missing-column": _sales_case(
        _sales_text(header="Store,Dept,Date,Sales,IsHoliday"), ["['Weekly_Sales']", "Sales"]
    ),
    "sales-bad-date": _sales_case(
        _sales_text((3, "1,1,2010-13-45,5.0,FALSE")), ["'2010-13-45'", "line 5", "data.date_format"]
    ),
    "sales-non-numeric-sales": _sales_case(
        _sales_text((2, "1,1,2010-01-15,lots,FALSE")), ["'Weekly_Sales'", "'lots'", "line 4"]
    ),
    "sales-bad-holiday-flag": _sales_case(
        _sales_text((1, "1,1,2010-01-08,5.0,maybe")), ["'IsHoliday'", "'maybe'", "line 3"]
    ),
    "sales-duplicate-key": _sales_case(
        _sales_text((1, "1,1,2010-01-01,5.0,FALSE")), ["duplicate", "(1, 1, 2010-01-01)"]
    ),
    # --- non-finite numbers: inf is an error naming file, column and line; NaN stays missing ---
    "sales-target-inf": _sales_case(
        _sales_text((2, "1,1,2010-01-15,inf,FALSE")),
        ["'Weekly_Sales'", "non-finite value inf", "line 4"],
    ),
    "sales-target-minus-infinity": _sales_case(
        _sales_text((5, "1,2,2010-02-08,-Infinity,FALSE")),
        ["'Weekly_Sales'", "non-finite value -inf", "line 7"],
    ),
    "sales-covariate-inf": _sales_with(
        "features.csv",
        "Store,Date,Temperature\n1,2010-01-01,5\n2,2010-01-01,inf\n",
        ["features.csv", "'Temperature'", "non-finite value inf", "line 3"],
    ),
    "sales-stores-size-inf": _sales_with(
        "stores.csv", "Store,Size\n1,1e400\n2,5\n", ["stores.csv", "'Size'", "inf", "line 2"]
    ),
    "text-weight-inf": _text_case(
        _weighted_text("inf"), ["'conf'", "data row 3", "'inf'"], "--set", "data.weight_column=conf"
    ),
    "vec-inf-value": _vec_case(_VEC_OK + "gate 0.5 inf 0.5\n", ["'gate'", "nan or inf"]),
    "sales-empty-file": _sales_case("", ["empty"]),
    "sales-header-only": _sales_case(SALES_HEADER + "\n", ["no data rows"]),
    "sales-non-utf8": _sales_case(
        _sales_text().encode().replace(b"FALSE", b"FALSE\xff", 1),
        ["cannot decode as utf-8", "0xff"],
        "train.csv",
        "data.encoding=utf-8",
    ),
    # data.encoding=auto reads the byte as cp1252 (ÿ): the flag column then names the value
    "sales-non-utf8-auto": _sales_case(
        _sales_text().encode().replace(b"FALSE", b"FALSE\xff", 1), ["non-boolean", "'FALSEÿ'"]
    ),
    "sales-binary": _sales_case(b"\x00\x01\x02" * 50, ["binary"]),
    "sales-workbook": _sales_case(b"PK\x03\x04\x14\x00" + b"\x00" * 40, ["zip archive", "as CSV"]),
    "sales-gz-not-gzip": _sales_case(_sales_text(), ["not a readable CSV"], "train.csv.gz"),
    "sales-gz-truncated": _sales_case(
        gzip.compress(_sales_text().encode() * 20)[:200], ["not a readable CSV"], "train.csv.gz"
    ),
    "sales-features-missing-store": _sales_bad_features,
    "sales-features-duplicate-week": _sales_with(
        "features.csv",
        "Store,Date,Temperature\n1,2010-01-01,5\n1,2010-01-01,6\n",
        ["features.csv", "duplicate (Store, Date)", "line 3"],
    ),
    "sales-stores-duplicate-store": _sales_with(
        "stores.csv", "Store,Type\n1,A\n2,B\n1,C\n", ["stores.csv", "Store '1'", "line 4"]
    ),
    "sales-stores-join-type-mismatch": _sales_with(
        "stores.csv", "Store,Type\nS1,A\nS2,B\n", ["stores.csv", "'Store'", "'S1'", "int64"]
    ),
    "sales-empty-series-key": _sales_case(
        _sales_text((4, ",1,2010-01-08,5.0,FALSE")), ["'Store'", "empty cell", "line 6"]
    ),
    "sales-parity-empty-target": _sales_case(
        _sales_text((4, "1,1,2010-01-29,,FALSE")),
        ["'Weekly_Sales'", "data.framing=parity"],
        "train.csv",
        "data.framing=parity",
        "data.parity_onehot=Store,Dept",
    ),
    "sales-missing-covariate": _sales_missing_covariate,
    # sales from one CSV file
    "sales-file-ambiguous-day-month": _sales_file_case(
        _AMBIGUOUS, ["'%d/%m/%Y' and '%m/%d/%Y'", "data.date_format=%d/%m/%Y"]
    ),
    "sales-file-missing-holiday-column": _sales_file_case(
        _DAILY, ["['Promo']", "data.holiday_column"], "data.holiday_column=Promo"
    ),
    "sales-file-missing-named-table": _sales_file_case(
        _DAILY,
        ["weather.csv", "no such file", "data.features_file="],
        "data.features_file=weather.csv",
    ),
    "sales-file-store-filter-without-column": _sales_file_case(
        _DAILY, ["data.stores", "'Store'", "data.store_column"], "data.stores=1"
    ),
    "sales-path-missing": _flags(
        "train",
        "--task",
        "sales",
        "--data",
        "nowhere.csv",
        "--out",
        "out",
        needles=["nowhere.csv", "no such file"],
    ),
    # text CSVs
    "text-missing-text-column": _text_case(
        "words,airline_sentiment\nhi,positive\n", ["no column 'text'", "data.text_column"]
    ),
    "text-missing-label-column": _text_case(
        "text,mood\nhi,positive\n", ["no column 'airline_sentiment'"]
    ),
    "text-all-texts-empty": _text_case(
        TEXT_HEADER + "\n" + '"",positive\n   ,negative\n', ["no usable rows", "2 empty texts"]
    ),
    "text-one-class": _text_case(
        TEXT_HEADER + "\n" + "".join(f"t{i} word,positive\n" for i in range(9)),
        ["only one class in column 'airline_sentiment' ('positive')"],
    ),
    "text-bad-encoding": _text_case(
        ("\n".join(_TEXT_OK) + "\ncafé,positive\n").encode("latin-1"),
        ["cannot decode as utf-8", "0xe9", "data.encoding=latin-1"],
        "--set",
        "data.encoding=utf-8",
    ),
    "text-unknown-encoding": _text_case(
        None, ["'klingon'", "data.encoding=latin-1"], "--set", "data.encoding=klingon"
    ),
    "text-empty-file": _text_case("", ["empty"]),
    "text-folder-given": _text_folder,
    # per-text training weights (data.weight_column)
    "text-weight-column-missing": _text_case(
        None,
        ["no column 'conf'", "data.weight_column", "'text', 'airline_sentiment'"],
        "--set",
        "data.weight_column=conf",
    ),
    "text-weight-not-a-number": _text_case(
        _weighted_text("high"),
        ["tweets.csv", "'conf'", "data row 3", "'high'"],
        "--set",
        "data.weight_column=conf",
    ),
    "text-weight-negative": _text_case(
        _weighted_text("-0.5"),
        ["'conf'", "data row 3", "'-0.5'", ">= 0"],
        "--set",
        "data.weight_column=conf",
    ),
    "text-weight-all-zero": _text_case(
        _weighted_text("0", every=True),
        ["'conf'", "0 in every usable row"],
        "--set",
        "data.weight_column=conf",
    ),
    "text-weight-column-is-the-label": _text_case(
        None,
        ["data.weight_column=airline_sentiment"],
        "--set",
        "data.weight_column=airline_sentiment",
    ),
    # word vectors for the text models (data.embeddings)
    "vec-missing-file": _vec_case(None, ["no such vectors file"], name="nowhere.vec"),
    "vec-binary-word2vec-name": _vec_case(b"2 3\n", ["binary word2vec", "text"], name="w.bin"),
    "vec-binary-word2vec-content": _vec_case(
        b"2 3\nawful \x00\x00\x80\xbf\xcd\xcc\x4c\x3e", ["line 2", "binary word2vec"]
    ),
    "vec-ragged-row": _vec_case(_VEC_OK + "gate 0.5 0.5\n", ["line 3", "2 numbers", "expected 3"]),
    "vec-not-a-number": _vec_case(_VEC_OK + "gate 0.5 x 0.5\n", ["line 3", "'x' is not a number"]),
    "vec-empty-file": _vec_case("", ["the file is empty"]),
    "vec-header-only": _vec_case("5 3\n", ["the file is empty"]),
    "vec-no-word-in-common": _vec_case("zebra 0.1 0.2 0.3\n", ["no word in common", "tweets.csv"]),
    "vec-embed-dim-conflict": _vec_case(
        _VEC_OK, ["model.embed_dim=8", "3-dimensional", "set it to 3"], "--set", "model.embed_dim=8"
    ),
    # configs and flags
    "set-unknown-key": _flags(*_ok_images("--set", "optim.lrr=1"), needles=["optim.lrr", "lr"]),
    "set-unknown-section": _flags(*_ok_images("--set", "optimizer.lr=1"), needles=["optimizer"]),
    "set-no-equals": _flags(*_ok_images("--set", "optim.lr"), needles=["'optim.lr'", "=value"]),
    "set-wrong-type": _flags(
        *_ok_images("--set", "train.batch_size=big"), needles=["train.batch_size='big'", "integer"]
    ),
    "set-bad-bool": _flags(
        *_ok_images("--set", "reg.early_stop=maybe"), needles=["reg.early_stop", "true or false"]
    ),
    "set-bad-choice": _flags(
        *_ok_images("--set", "optim.name=rmsprop"), needles=["'rmsprop'", "adam"]
    ),
    "epochs-negative": _flags(*_ok_images("--epochs", "-3"), needles=["train.epochs=-3", ">= 1"]),
    "lr-zero": _flags(*_ok_images("--set", "optim.lr=0"), needles=["optim.lr=0.0", "> 0"]),
    "lr-negative": _flags(*_ok_images("--set", "optim.lr=-1e-3"), needles=["optim.lr=-0.001"]),
    "patience-negative": _flags(
        *_ok_images("--set", "reg.patience=-1"), needles=["reg.patience=-1", ">= 0"]
    ),
    "unknown-model": _flags(*_ok_images("--model", "alexnet"), needles=["'alexnet'", "resnet18"]),
    "unknown-device": _flags(
        *_ok_images("--set", "train.device=gpu"), needles=["train.device='gpu'", "cuda:N"]
    ),
    "absent-mps-device": _flags(
        *_ok_images("--set", "train.device=mps"), needles=["train.device='mps'", "no Apple MPS"]
    ),
    "broken-config-beside-task": _broken_yaml_beside_task,
    "text-without-data": _text_without_data,
    # reg knobs are checked against the task's when the config is built (archlab.task_configs)
    "sales-augment": _flags(
        *_train_set("--task", "sales", "reg.augment=banana"),
        needles=["invalid config value reg.augment='banana' for task sales; valid: none"],
    ),
    "text-augment": _flags(
        *_train_set("--task", "text", "reg.augment=flip"),
        needles=["invalid config value reg.augment='flip' for task text; valid: none"],
    ),
    "images-augment": _flags(
        *_ok_images("--set", "reg.augment=banana"),
        needles=["reg.augment='banana' for task images; valid: none, flip, translate, study"],
    ),
    "sales-label-smoothing": _flags(
        *_train_set("--preset", "sales-rnn", "reg.label_smoothing=0.1"),
        needles=[
            "reg.label_smoothing=0.1 is not used by task sales; it uses reg.dropout, "
            "reg.weight_decay, reg.l2_mode, reg.early_stop, reg.patience, reg.min_delta"
        ],
    ),
    "unknown-task": _flags("train", "--task", "audio", "--out", "out", needles=["'audio'"]),
    "unknown-preset": _flags(
        "train", "--preset", "images-alexnet", "--out", "out", needles=["'images-alexnet'"]
    ),
    "preset-path-traversal": _flags(
        "train", "--preset", "../images-resnet18", "--out", "out", needles=["'../images-resnet18'"]
    ),
    "data-does-not-exist": _flags(*_ok_images("--data", "nowhere.npz"), needles=["nowhere.npz"]),
    "out-is-a-file": _out_is_a_file("train"),
    "out-under-a-file": _out_is_a_file("train", under=True),
    "ablate-out-is-a-file": _out_is_a_file("ablate"),
    "reproduce-out-is-a-file": _out_is_a_file("reproduce"),
    # --resume keeps the run's config: a change to what it computes is refused, with the keys
    "resume-set-changes-lr": _resume_with(
        "--set",
        "optim.lr=0.5",
        needles=["a resumed run keeps its config", "optim.lr: 0.001 -> 0.5", "--config"],
    ),
    "resume-epochs-and-dropout": _resume_with(
        "--epochs",
        "3",
        "--set",
        "reg.dropout=0.2",
        needles=["reg.dropout: 0.0 -> 0.2; train.epochs: 10 -> 3", "train.threads"],
    ),
    "resume-with-preset": _resume_with(
        "--preset", "images-resnet18", needles=["drop --task, --preset and --config"]
    ),
    "resume-not-a-run-dir": _flags(
        "train", "--resume", "nowhere", needles=["nowhere", "no such run directory"]
    ),
    "resume-elsewhere": _flags(
        "train", "--resume", "nowhere", "--out", "out", needles=["continues in that run", "--out"]
    ),
}

# The generic horizon recipe on a daily panel (28 days x 2 stores).
_DAILY_PROMO = "date,store_nbr,transactions,promo\n" + "".join(
    f"{d:02d}/01/2016,{s},{900 + d},{'' if (s, d) == (2, 27) else d % 2}\n"
    for s in (1, 2)
    for d in range(1, 29)
)
CATALOGUE.update(
    {
        "sales-season-longer-than-history": _sales_file_case(
            _DAILY,
            [
                "data.horizon=7 are the test, leave 21 steps of history, not more than the season "
                "of data.season (21 steps)",
                "lower data.season",
            ],
            "data.horizon=7",
            "data.season=21",
        ),
        "sales-horizon-longer-than-history": _sales_file_case(
            _DAILY,
            ["data.horizon=22 are the test, leave 6 steps", "lower data.horizon"],
            "data.horizon=22",
        ),
        "sales-known-covariate-gap-in-future": _sales_file_case(
            _DAILY_PROMO,
            ["data.known_covariates 'promo' has no value for series (2,) on 2016-01-27"],
            "data.horizon=3",
            "data.covariates=promo",
            "data.known_covariates=promo",
            "data.window=3",
        ),
    }
)


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def _assert_one_line_error(rc: int, err: str, needles: list[str]) -> str:
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("archlab: error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# A warning would be an extra line on stderr (ResourceWarnings are hidden outside tests).
@pytest.mark.filterwarnings("error", "ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("build", CATALOGUE.values(), ids=CATALOGUE.keys())
def test_bad_input_catalogue(build: Build, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths (--out out, the default runs/) land here
    argv, needles = build(tmp_path)
    before = _snapshot(tmp_path)
    rc = main(argv)
    _assert_one_line_error(rc, capsys.readouterr().err, needles)
    assert _snapshot(tmp_path) == before, "a failed run left files behind"


# --- checkpoints: one tiny finished run, damaged in copies ---
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step run on a folder mixing sizes and PIL modes, with a batch larger than the data."""
    root = tmp_path_factory.mktemp("mixed") / "imgs"
    write_image_folder(root, {"cat": 5}, size=(8, 8), mode="RGB")
    write_image_folder(root, {"dog": 5}, size=(20, 12), mode="L", seed=1)
    write_image_folder(root, {"eel": 5}, size=(9, 31), mode="RGBA", seed=2)
    (root / "eel" / "readme.txt").write_text("ignored")
    Image.new("P", (5, 5), 3).save(root / "cat" / "palette.gif")
    Image.new("I;16", (6, 6), 300).save(root / "dog" / "deep.png")
    out = root.parent / "out"
    # data.size=16: every image is resized as it is decoded, to RGB (data.channels=auto: the
    # RGB and RGBA images have colour; the palette, 16-bit and grey ones get equal channels).
    # train.batch_size=1000 > 11 training images: one batch holds them all (no error, no clamp
    # needed: batches are slices of a shuffled index, the last one as short as it must be).
    argv = _train_images(root, "--model", "resnet18", "--set", "data.size=16",
                         "--set", "train.batch_size=1000")  # fmt: skip
    argv[argv.index("out")] = str(out)
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_mixed_sizes_modes_and_oversized_batch_train(finished_run: Path) -> None:
    info = json.loads((finished_run / "data.json").read_text())
    assert info["class_names"] == ["cat", "dog", "eel"]
    assert info["n_images"] == 17 and info["ignored_non_images"] == 1
    assert (info["channels"], info["size"], info["colour_images"]) == (3, 16, 10)
    assert json.loads((finished_run / "metrics.json").read_text())["epochs_run"] == 1


def _run_copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(src, dst)
    return dst


def _truncate_weights(run: Path) -> list[str]:
    w = run / rundir.WEIGHTS
    w.write_bytes(w.read_bytes()[:1000])
    return [rundir.WEIGHTS, "truncated"]


def _foreign_weights(run: Path) -> list[str]:
    rundir.save_weights(torch.nn.Linear(4, 3), run / rundir.WEIGHTS)  # recorded, but wrong
    return [rundir.WEIGHTS, "do not fit this model"]


def _foreign_unrecorded_weights(run: Path) -> list[str]:
    (run / rundir.WEIGHTS).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    _unrecord(run, rundir.WEIGHTS)
    return [rundir.WEIGHTS, "not a readable safetensors"]


def _missing_weights(run: Path) -> list[str]:
    (run / rundir.WEIGHTS).unlink()
    return [rundir.WEIGHTS, "file not found"]


def _unrecord(run: Path, name: str) -> None:
    """Drop a file's entry from checkpoint.json, as in a run written before it was recorded."""
    manifest = json.loads((run / rundir.MANIFEST).read_text())
    manifest.pop(name)
    (run / rundir.MANIFEST).write_text(json.dumps(manifest))


def _broken_config(run: Path) -> list[str]:
    _unrecord(run, rundir.CONFIG)
    (run / rundir.CONFIG).write_text("task: images\ndata: [unclosed\n")
    return [rundir.CONFIG, "not valid YAML"]


def _unknown_config_key(run: Path) -> list[str]:
    _unrecord(run, rundir.CONFIG)
    text = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(text.replace("\n  epochs:", "\n  epochz:", 1))
    return ["train.epochz"]


def _edited_config(run: Path) -> list[str]:
    text = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(text.replace("\n  epochs: 1", "\n  epochs: 2", 1))
    return [rundir.CONFIG, "modified since the run wrote it"]


def _fitted_size(run: Path, size: int) -> None:
    fitted = json.loads((run / rundir.FITTED).read_text())
    fitted["size"] = size
    (run / rundir.FITTED).write_text(json.dumps(fitted))


def _edited_fitted(run: Path) -> list[str]:
    _fitted_size(run, 100_000)
    return [rundir.FITTED, "modified since the run wrote it"]


def _unrecorded_fitted_out_of_range(run: Path) -> list[str]:
    _unrecord(run, rundir.FITTED)
    _fitted_size(run, 100_000)
    return [rundir.FITTED, "size", "100000"]


CHECKPOINTS: dict[str, Callable[[Path], list[str]]] = {
    "eval-truncated-weights": _truncate_weights,
    "eval-wrong-architecture": _foreign_weights,
    "eval-garbage-weights": _foreign_unrecorded_weights,
    "eval-missing-weights": _missing_weights,
    "eval-broken-config": _broken_config,
    "eval-unknown-config-key": _unknown_config_key,
    "eval-edited-config": _edited_config,
    "eval-edited-fitted": _edited_fitted,
    "eval-unrecorded-fitted-out-of-range": _unrecorded_fitted_out_of_range,
}


@pytest.mark.parametrize("damage", CHECKPOINTS.values(), ids=CHECKPOINTS.keys())
def test_bad_checkpoint_catalogue(
    damage: Callable[[Path], list[str]], finished_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    run = _run_copy(finished_run, tmp_path)
    needles = damage(run)
    before = _snapshot(tmp_path)
    rc = main(["eval", str(run)])
    _assert_one_line_error(rc, capsys.readouterr().err, needles)
    assert _snapshot(tmp_path) == before


def test_predict_on_a_broken_image(finished_run: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    rc = main(["predict", str(finished_run), str(bad), str(tmp_path / "missing.png")])
    _assert_one_line_error(rc, capsys.readouterr().err, ["photo.jpg", "cannot read image"])


# --- inputs that are odd but valid: they must load ---
def test_non_image_files_are_ignored_and_counted(tmp_path: Path) -> None:
    from archlab.data.images import load_image_set

    root = _images(tmp_path)
    (root / "cat" / "notes.txt").write_text("hello")
    (root / "dog" / "nested" / "deeper").mkdir(parents=True)
    (root / "dog" / "nested" / "deeper" / "x.png").write_bytes(_png_bytes((30, 7), "LA"))
    s = load_image_set(str(root), fmt="auto", size=8, channels=3)
    assert s.ignored == 1 and s.images.shape == (9, 3, 8, 8)
    assert np.bincount(s.labels).tolist() == [4, 5]


def test_quoted_embedded_newlines_are_valid_text_csv(tmp_path: Path) -> None:
    # RFC 4180: a quoted field may span lines; it is one text, not a broken row.
    rows = "\n".join(_TEXT_OK[1:])
    path = _text_csv(
        tmp_path, f'{TEXT_HEADER}\n"first line\nsecond line, great",positive\n{rows}\n'
    )
    table = load_text_table(path)
    assert "first line\nsecond line, great" in table.texts
    assert table.counts["rows_read"] == 16


def test_catalogue_baselines_load(tmp_path: Path) -> None:
    """The good files the cases start from do load: each case breaks exactly one thing."""
    df = load_sales(_bare_cfg(_sales_dir(tmp_path)))
    assert len(df) == 24
    assert load_text_table(_text_csv(tmp_path)).class_names == ["negative", "neutral", "positive"]
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "train.csv.gz").write_bytes(gzip.compress(_sales_text().encode()))
    assert len(load_sales(_bare_cfg(gz))) == 24


# --- one real process: exit 2 without a traceback, and the traceback with --debug ---
def test_subprocess_exit_code_and_debug_traceback(tmp_path: Path) -> None:
    bad = _npz(tmp_path, labels=np.array([0, 1, 2, 0, 1, 9]))
    argv = [sys.executable, "-m", "archlab", "train", "--task", "images", "--data", str(bad),
            "--out", str(tmp_path / "out"), *QUIET]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Both at once: each spends most of its time importing torch.
    procs = [
        subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for a in (argv, [*argv, "--debug"])
    ]
    (out, err), (_, debug_err) = (p.communicate(timeout=180) for p in procs)
    line = _assert_one_line_error(procs[0].returncode, err, ["set.npz", "0..9"])
    assert out == ""
    assert procs[1].returncode != 0 and "Traceback" in debug_err
    assert "ArchlabError" in debug_err and line.removeprefix("archlab: error: ") in debug_err
    assert not (tmp_path / "out").exists()


# --- path safety: names from data and configs never leave the output directory ---
EVIL = ["../evil", "a/b", "/abs"]


def _files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def test_npz_class_names_stay_inside_the_output_dir(tmp_path: Path, capsys) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    labels = np.arange(18) % 3
    images = np.repeat(labels * 100, 64).astype(np.uint8).reshape(18, 8, 8)
    images[:, 0, 0] = np.arange(18)  # distinct images: copies would be split as one
    npz = inside / "evil.npz"
    np.savez(npz, images=images, labels=labels, class_names=np.array(EVIL))
    out = inside / "out"
    assert main(_train_images(npz, "--out", str(out), "--set", "data.size=8")) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((run_dir / "data.json").read_text())["class_names"] == EVIL
    assert (run_dir / "plots" / "confusion_matrix.png").exists()
    outside = {p for p in _files(tmp_path) if inside.resolve() not in p.parents}
    assert outside == set()


def test_series_keys_are_only_plot_labels(tmp_path: Path) -> None:
    import pandas as pd

    from archlab.tasks.sales_common import series_plot as _series_plot

    run_dir = tmp_path / "deep" / "run"
    run_dir.mkdir(parents=True)
    dates = np.array(["2010-01-01", "2010-01-08"], dtype="datetime64[D]")
    rows = pd.DataFrame({"Store": ["../evil", "a/b"] * 2, "Dept": ["/abs", ".."] * 2,
                         "Date": np.repeat(dates, 2), "actual": 1.0, "forecast": 2.0,
                         "mean": 1.5})  # fmt: skip
    _series_plot(rows, ["Store", "Dept"], "Date", ("../evil-/abs",), run_dir)
    assert _files(tmp_path) == {(run_dir / "plots" / "actual_vs_forecast.png").resolve()}


def test_text_eda_group_column_cannot_escape(tmp_path: Path, capsys) -> None:
    evil = "x/../../../escaped"
    rows = "".join(f"{r},{evil[:3]}{i % 2}\n" for i, r in enumerate(_TEXT_OK[1:]))
    path = _text_csv(tmp_path, f'{TEXT_HEADER},"{evil}"\n{rows}')
    out = tmp_path / "deep" / "er" / "eda"
    args = ["eda", "--task", "text", "--data", str(path), "--out", str(out),
            "--set", f"data.group_column={evil}"]  # fmt: skip
    assert main(args) == 0
    written = _files(tmp_path) - {path.resolve()}
    assert written and all(out.resolve() in p.parents for p in written), written
    assert any("escaped" in p.name for p in written)


# --- fuzzing the CSV loaders: only ArchlabError (or a clean load) may come out ---
SALES_COLUMNS = ["Store", "Dept", "Date", "Weekly_Sales", "IsHoliday", "Temperature", "x", ""]
TEXT_COLUMNS = ["text", "airline_sentiment", "airline", "negativereason", "label", ""]
ODD_CELLS = ["1", "0", "-1", "1.5", "1e400", "nan", "NA", "TRUE", "false", "2010-01-01",
             "2010-02-30", "01/02/2010", "é", "inf", "", " ", '"', '""', "a,b", "\n", "\x00",
             "9" * 30]  # fmt: skip
CELLS = st.sampled_from(ODD_CELLS) | st.text(alphabet=string.printable, max_size=8)


# Plausible cells per column, so that many examples get past parsing into merging and grouping.
PLAUSIBLE = {
    "Store": st.sampled_from(["1", "2", "3"]),
    "Dept": st.sampled_from(["1", "2"]),
    "Date": st.integers(0, 60).map(lambda w: str(np.datetime64("2010-01-01") + 7 * w)),
    "Weekly_Sales": st.sampled_from(["1.5", "20", "-3", "0"]),
    "IsHoliday": st.sampled_from(["TRUE", "FALSE", "0", "1"]),
    "Temperature": st.sampled_from(["5", "NA", ""]),
    "text": st.builds(
        "{} {}".format, st.sampled_from(["great", "awful :(", "gate?"]), st.integers(0, 99)
    ),
    "airline_sentiment": st.sampled_from(["positive", "negative", "neutral"]),
}


@st.composite
def csv_bytes(draw: st.DrawFn, columns: list[str], required: list[str]) -> bytes:
    """Random bytes, or a CSV with random columns (often all required ones) and random cells."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    header = draw(st.lists(st.sampled_from(columns), min_size=0, max_size=6))
    if draw(st.booleans()):  # get past the column checks, into parsing and merging
        header = draw(st.permutations([*required, *header]))
    width = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    cell = [PLAUSIBLE.get(h, CELLS) if draw(st.integers(0, 9)) else CELLS for h in header]
    cell += [CELLS] * max(0, width - len(cell))
    row = st.tuples(*cell[: max(0, width)]).map(list)
    rows = draw(st.lists(row, max_size=16))
    sep = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    return text.encode(draw(st.sampled_from(["utf-8", "latin-1"])), errors="replace")


def _bare_cfg(path: Path, features_file: str = "") -> SalesDataConfig:
    return SalesDataConfig(
        path=str(path), features_file=features_file, stores_file="", covariates=()
    )


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.filterwarnings("error")  # a warning would be an extra line on stderr
@FUZZ
@given(
    train=csv_bytes(SALES_COLUMNS, SALES_COLUMNS[:5]),
    features=st.none() | csv_bytes(SALES_COLUMNS, ["Store", "Date"]),
)
def test_fuzz_sales_loader(train: bytes, features: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "train.csv").write_bytes(train)
        if features is not None:
            Path(d, "features.csv").write_bytes(features)
        cfg = _bare_cfg(Path(d), features_file="features.csv" if features is not None else "")
        try:
            df = load_sales(cfg)
        except ArchlabError as e:
            assert "\n" not in str(e)
        else:
            assert len(df) > 0


@pytest.mark.filterwarnings("error")  # a warning would be an extra line on stderr
@FUZZ
@given(
    data=csv_bytes(TEXT_COLUMNS, TEXT_COLUMNS[:2]),
    encoding=st.sampled_from(["utf-8", "latin-1", "ascii"]),
)
def test_fuzz_text_loader(data: bytes, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "t.csv")
        path.write_bytes(data)
        try:
            table = load_text_table(path, encoding=encoding)
        except ArchlabError as e:
            assert "\n" not in str(e)
        else:
            assert len(table.class_names) >= 2


def test_an_error_quoting_a_line_break_stays_one_line(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text('"body\nof tweet",airline_sentiment\nhello,positive\nbye,negative\n')
    rc = main(["train", "--task", "text", "--data", str(csv), "--out", str(tmp_path / "o")])
    _assert_one_line_error(rc, capsys.readouterr().err, ["no column 'text'", "body\\nof tweet"])
    assert str(ArchlabError("a\r\nb\rc\nd")) == "a\\nb\\rc\\nd"


def test_predict_on_a_folder_leaves_out_an_image_of_a_refused_mode(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    # One 32-bit float TIFF among good photos stopped the folder with no prediction at all.
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "good.png").write_bytes(_png_bytes())
    Image.fromarray(np.ones((8, 8), np.float32), mode="F").save(folder / "float.tiff")
    assert main(["predict", str(finished_run), str(folder)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(r)["input"] for r in out.splitlines()] == [str(folder / "good.png")]
    assert "1 image that cannot be read left out (float.tiff)" in err


def test_predict_runs_many_images_in_batches_with_the_same_answers(
    finished_run: Path, tmp_path: Path
) -> None:
    # One forward of every input at once held all their activations (10,000 photos: 6.4 GB).
    from dataclasses import replace

    from archlab import runner

    cfg, task, model = runner.restore_task(finished_run)
    rng = np.random.default_rng(0)
    files = []
    for i in range(5):
        f = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(f)
        files.append(str(f))
    whole = task.predict(model, files)
    small = type(task)(replace(cfg, train=replace(cfg.train, eval_batch_size=2)), task.fitted)
    sizes: list[int] = []
    hook = model.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        batched = small.predict(model, files)
    finally:
        hook.remove()
    assert sizes == [2, 2, 1]
    assert [r["label"] for r in batched] == [r["label"] for r in whole]
    for a, b in zip(batched, whole, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
