"""Text folders (class and split folders of text files, read as a text CSV would be), and the
data's own split: split folders or a CSV's data.split_column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import runner
from archlab.cli import main
from archlab.data.text import load_text_table
from archlab.errors import ArchlabError
from archlab.tasks.text_cls import TextData
from tests.helpers import WORDS, text_cfg


def write_folder(root: Path, splits: dict[str, int] | None = None, seed: int = 0) -> Path:
    """root/<split>/<class>/<i>.txt (or root/<class>/... without ``splits``), one tweet-like
    text a file, the words of WORDS telling the classes apart."""
    rng = np.random.default_rng(seed)
    for split, n in (splits or {"": 12}).items():
        for label, words in WORDS.items():
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(n):
                w = rng.choice(words, size=3)
                (d / f"{i}.txt").write_text(f"{w[0]} flight {split} {i} {w[1]} {w[2]}\n")
    return root


def test_class_folders_read_as_a_table_with_notes(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "set")
    (root / "README.md").write_text("about this set")
    (root / "positive" / "image.png").write_bytes(b"\x89PNG\x00")
    (root / "negative" / "no_suffix").write_text("rude cancelled flight")  # 20 Newsgroups style
    (root / "negative" / "cp1252.txt").write_bytes("caf\xe9 awful delayed".encode("cp1252"))
    (root / "negative" / "binary.txt").write_bytes(b"\x00\x01\x02")
    (root / "neutral" / ".ipynb_checkpoints").mkdir()
    (root / "neutral" / ".ipynb_checkpoints" / "0.txt").write_text("a checkpoint copy")
    (root / "__MACOSX" / "negative").mkdir(parents=True)
    (root / "__MACOSX" / "negative" / "._0.txt").write_bytes(b"\x00\x05")
    t = load_text_table(root)
    assert t.class_names == ["negative", "neutral", "positive"]
    assert np.bincount(t.labels).tolist() == [14, 12, 12]
    assert "café awful delayed" in t.texts and t.provided_split is None
    assert t.notes == [
        f"data: {root}: 1 file not UTF-8, read as cp1252 (else latin-1; data.encoding=auto: "
        "set data.encoding=NAME to read them otherwise)",
        f"data: {root}: ignored 1 file, binary (not text) (negative/binary.txt)",
        f"data: {root}: ignored 1 file, not text files (positive/image.png); a text file ends "
        "in .txt or .text, or has no suffix",
        f"data: {root}: ignored 1 file, outside the class folders (README.md)",
    ]
    assert len(t.files) == 39  # every text file read, for the run's fingerprint


def test_split_folders_give_the_split_and_val_is_carved_from_train(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "set", {"train": 20, "test": 6})
    # The same text in train/ and test/ is one sample, in train: never trained and scored.
    same = (root / "train" / "positive" / "0.txt").read_text()
    (root / "test" / "positive" / "dup.txt").write_text(same)
    cfg = text_cfg(root)
    data = TextData(cfg).build(torch.device("cpu"))
    assert data.info["split_sizes"] == {"train": 48, "val": 12, "test": 18}
    assert data.info["split_source"] == {
        "train": "train/",
        "val": "carved from train/: 15% of all the distinct texts, stratified",
        "test": "test/",
    }
    test_texts = {data.context.texts[i] for i in data.context.split["test"]}
    assert all(" test " in t for t in test_texts) and same not in test_texts
    assert "data: 1 text found in more than one split: each is one sample, in train " \
        "where one copy is there" in data.notes  # fmt: skip
    assert any(n.startswith("data: splits from the data: train: train/;") for n in data.notes)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"val": 4, "test": 4}, "holds split folders (test, val) but no train/ folder"),
        ({"train": 4, "extra": 4}, "split folders (train) beside other folders ['extra']"),
        ({"train": 4, "Training": 4}, "both Training/ and train/ name the train split; keep one"),
    ],
)
def test_bad_split_folders_are_one_line(
    tmp_path: Path, layout: dict[str, int], message: str
) -> None:
    root = write_folder(tmp_path / "set", layout)
    with pytest.raises(ArchlabError, match=f"^{root}: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        load_text_table(root)


def test_an_empty_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    with pytest.raises(ArchlabError, match="a folder without class sub-folders"):
        load_text_table(tmp_path / "set")
    (tmp_path / "set" / "a").mkdir()
    (tmp_path / "set" / "a" / "x.csv").write_text("text\nhello")
    with pytest.raises(ArchlabError, match="no text files in its class folders"):
        load_text_table(tmp_path / "set")


def test_a_folder_run_predicts_and_scores_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_folder(tmp_path / "set", {"train": 20, "test": 6})
    cfg = text_cfg(root, "train.epochs=1", "train.threads=1", "train.amp=off")
    run_dir = runner.train(cfg, tmp_path / "runs")
    capsys.readouterr()
    # predict --file FOLDER: a row per text file, naming it.
    (root / "test" / "neutral" / "z_empty.txt").write_text(" \n\t\n")  # no text: left out
    assert main(["predict", str(run_dir), "--file", str(root / "test" / "neutral")]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert "ignored 1 file, empty (no text) (z_empty.txt)" in err
    (root / "test" / "neutral" / "z_empty.txt").unlink()
    assert [r["file"] for r in rows] == sorted(
        str(p) for p in (root / "test" / "neutral").iterdir()
    )
    assert all(r["label"] in WORDS for r in rows)
    # eval --all on the test/ folder alone (class folders), and on a held-out set laid out as
    # split folders without train/: every text file is scored.
    assert main(["eval", str(run_dir), "--data", str(root / "test"), "--all"]) == 0
    out, err = capsys.readouterr()
    assert sum(map(sum, json.loads(out)["test_confusion_matrix"])) == 18
    # Its own test/ folder: no training text is in it, and the warning claims none is.
    assert "any of its training and validation texts among it are scored too" in err
    # Without --all: the folder's own test split, and how much of it that is.
    assert main(["eval", str(run_dir), "--data", str(root)]) == 0
    assert "scored its test split (test/): 18 of 78 texts" in capsys.readouterr().err
    held = write_folder(tmp_path / "held", {"val": 2, "test": 3}, seed=3)
    assert main(["eval", str(run_dir), "--data", str(held), "--all"]) == 0
    assert sum(map(sum, json.loads(capsys.readouterr().out)["test_confusion_matrix"])) == 15
    assert main(["eda", "--task", "text", "--data", str(root), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "label_counts.png").exists()
    # The run's split follows the folders.
    split = json.loads((run_dir / "split.json").read_text())
    data = pd.read_json(run_dir / "data.json", typ="series")
    assert len(split["test"]) == 18 and data["split_source"]["test"] == "test/"


def test_a_split_column_gives_the_split(tmp_path: Path) -> None:
    rows = [
        {"review": f"{w} flight {i}", "stars": label, "part": part}
        for label, words in WORDS.items()
        for i, w in enumerate(words * 4)
        for part in [" Train " if i < 18 else "TEST"]
    ]
    path = tmp_path / "split.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    sets = ("data.text_column=review", "data.label_column=stars", "data.split_column=part")
    data = TextData(text_cfg(path, *sets)).build(torch.device("cpu"))
    assert data.info["split_sizes"] == {"train": 43, "val": 11, "test": 18}
    assert data.info["split_source"]["test"] == "part=test"
    assert {int(data.context.texts[i].split()[-1]) for i in data.context.split["test"]} == {
        18,
        19,
        20,
        21,
        22,
        23,
    }
    pd.DataFrame(rows).assign(part="holdout").to_csv(path, index=False)
    with pytest.raises(ArchlabError, match=r"data row 1: 'holdout' names no split \(use train, "
                       r"val or test; 72 rows name none\)"):  # fmt: skip
        TextData(text_cfg(path, *sets)).build(torch.device("cpu"))
    pd.DataFrame(rows).assign(part="test").to_csv(path, index=False)
    with pytest.raises(ArchlabError, match="tags no row train"):
        TextData(text_cfg(path, *sets)).build(torch.device("cpu"))
    with pytest.raises(ArchlabError, match=r"no column 'split' for data\.split_column"):
        TextData(text_cfg(path, *sets[:2], "data.split_column=split")).build(torch.device("cpu"))


def test_folders_named_like_20_newsgroups_splits_and_a_class_only_in_test(tmp_path: Path) -> None:
    # 20news-bydate-train/ beside 20news-bydate-test/: split folders by their last word.
    root = write_folder(tmp_path / "ng", {"20news-bydate-train": 6, "20news-bydate-test": 3})
    t = load_text_table(root)
    assert t.class_names == list(WORDS) and sorted(set(t.provided_split)) == ["test", "train"]
    # A class named like a split beside other classes stays a class.
    flat = write_folder(tmp_path / "flat")
    (flat / "positive").rename(flat / "bullet_train")
    assert load_text_table(flat).class_names == ["bullet_train", "negative", "neutral"]
    # A class with test texts but no training text cannot be learnt: refused, named.
    (root / "20news-bydate-train" / "neutral").rename(tmp_path / "gone")
    with pytest.raises(ArchlabError, match=r"class 'neutral' has texts in 20news-bydate-test/ "
                       r"but none in 20news-bydate-train/"):  # fmt: skip
        load_text_table(root)


def test_a_byte_order_mark_is_read_whatever_the_encoding_set(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "set")
    (root / "neutral" / "u16.txt").write_bytes("gate schedule question".encode("utf-16"))
    t = load_text_table(root, encoding="latin-1")
    assert "gate schedule question" in t.texts


def test_predict_file_with_no_text_is_one_line(tmp_path: Path) -> None:
    from archlab.data.text import read_input_texts

    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ArchlabError, match=r"empty\.txt: no text in it \(one text a line"):
        read_input_texts(tmp_path / "empty.txt", "text", "auto")


def test_class_folders_holding_folders_are_warned_of(tmp_path: Path) -> None:
    # A set nested one level deeper than --data: the "classes" are the two outer folders.
    write_folder(tmp_path / "outer" / "bydate")
    write_folder(tmp_path / "outer" / "other", seed=1)
    t = load_text_table(tmp_path / "outer")
    assert t.class_names == ["bydate", "other"]
    assert t.notes[-1] == (
        "data: warning: 2 class folder(s) hold folders (e.g. bydate/negative, bydate/neutral, "
        f"bydate/positive), read as the class 'bydate'; if those folders are the classes, give "
        f"--data {tmp_path / 'outer' / 'bydate'}"
    )


def test_a_broken_link_is_left_out_and_named(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "set", {"": 12})
    cls = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (cls / "gone.txt").symlink_to(tmp_path / "unmounted" / "x.txt")  # a cache not mounted
    table = load_text_table(root)
    assert any(f"broken links ({cls.name}/gone.txt)" in n for n in table.notes), table.notes
