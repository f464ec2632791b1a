"""Results that must never be silently wrong: changed data under a saved run, non-finite numbers,
byte-order marks, outputs over inputs, a full disk, and a panel's stray tail."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archlab import fingerprint, rundir
from archlab.cli import main
from archlab.errors import ArchlabError

QUIET = ["--set", "train.threads=1", "--set", "train.progress=off"]
BARE = ["--set", "data.features_file=", "--set", "data.stores_file=", "--set", "data.covariates="]


def write_daily_panel(path: Path, series: int = 12, days: int = 70, seed: int = 0) -> Path:
    """A daily store panel with weekly seasonality (no holiday column, no sibling tables)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-04", periods=days, freq="D")
    weekend = 30.0 * (dates.day_of_week >= 5)
    rows = [
        (s, d.strftime("%Y-%m-%d"), round(100 * (1 + s) + w + rng.normal(0, 3), 2))
        for s in range(series)
        for d, w in zip(dates, weekend, strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["shop", "day", "sales"]).to_csv(path, index=False)
    return path


DAILY = ["--set", "data.series_keys=shop", "--set", "data.date_column=day",
         "--set", "data.target=sales", "--set", "data.store_column=shop",
         "--set", "data.holiday_column=", *BARE]  # fmt: skip


def _train_daily(data: Path, out: Path, *extra: str) -> Path:
    argv = ["train", "--task", "sales", "--data", str(data), "--out", str(out), *DAILY, *QUIET,
            "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
            "--set", "data.test_steps=7", "--set", "data.val_steps=7", *extra]  # fmt: skip
    assert main(argv) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def daily_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("daily")
    return _train_daily(write_daily_panel(root / "shop.csv"), root / "out")


# --- the data fingerprint ---
def test_fingerprint_names_what_changed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n2\n")
    old = fingerprint.fingerprint([str(a), str(b)])
    assert not fingerprint.differences(old, fingerprint.fingerprint([str(b), str(a)]))
    b.write_text("x\n22\n")
    assert fingerprint.differences(old, fingerprint.fingerprint([str(a), str(b)])) == [
        "b.csv changed (4 -> 5 bytes)"
    ]
    b.write_text("x\n3\n")  # edited in place, its size kept
    assert fingerprint.differences(old, fingerprint.fingerprint([str(a), str(b)])) == [
        "b.csv changed (same size, 4 bytes, other content)"
    ]
    gone = fingerprint.differences(old, fingerprint.fingerprint([str(a)]))
    assert any("no longer read" in s for s in gone)
    # evaluating (subset): a file deleted from a folder it reads is a difference; the training
    # run's word vectors and another split's folder, which it does not read, are not
    (tmp_path / "test").mkdir()
    c, v = tmp_path / "test" / "c.csv", tmp_path / "vectors.txt"
    c.write_text("x\n3\n")
    v.write_text("w 0.1\n")
    with fingerprint.recording() as reads:
        for p in (a, b, c):
            fingerprint.record(p)
        fingerprint.record(v, aux=True)
    trained = fingerprint.fingerprint(reads)
    assert trained["files"]["vectors.txt"]["aux"] and "aux" not in trained["files"]["a.csv"]
    assert fingerprint.differences(trained, fingerprint.fingerprint([str(c)]), subset=True) == []
    assert fingerprint.differences(trained, fingerprint.fingerprint([str(a)]), subset=True) == [
        "1 file(s) no longer read (e.g. b.csv)"
    ]
    # a copy of the whole folder elsewhere keeps the fingerprint (paths are relative)
    copy = tmp_path / "moved"
    copy.mkdir()
    shutil.copy(a, copy / "a.csv")
    shutil.copy(b, copy / "b.csv")
    new = fingerprint.fingerprint([str(a), str(b)])
    assert not fingerprint.differences(new, fingerprint.fingerprint(
        [str(copy / "a.csv"), str(copy / "b.csv")]))  # fmt: skip


def test_resume_refuses_data_changed_since_the_run_started(
    daily_run: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(daily_run, run)
    inputs = json.loads((run / rundir.INPUTS).read_text())
    assert list(inputs["files"]) == ["shop.csv"]
    (run / rundir.METRICS).unlink()  # as if killed before the end
    data = Path(json.loads((run / "data.json").read_text())["source"])
    original = data.read_bytes()
    df = pd.read_csv(data)
    df["sales"] *= 3  # every value x3 between kill and resume
    df.to_csv(data, index=False)
    try:
        rc = main(["train", "--resume", str(run), *QUIET[2:]])
        err = capsys.readouterr().err
        assert rc == 2 and "cannot resume" in err and "shop.csv changed" in err, err
        assert not (run / rundir.METRICS).exists()
        # eval and ensemble of a finished run on changed data: refused the same way
        rc = main(["eval", str(daily_run)])
        err = capsys.readouterr().err
        assert rc == 2 and "cannot evaluate" in err and "eval --data" in err, err
        assert main(["explain", str(daily_run)]) == 2
        assert "cannot explain: the data differ" in capsys.readouterr().err
        tripled = data.read_bytes()
        data.write_text("when;what\n1;2\n")  # overwritten by another file: that, not its columns
        assert main(["eval", str(daily_run)]) == 2
        err = capsys.readouterr().err
        assert "cannot evaluate: the data differ" in err and "missing column" not in err, err
        data.write_bytes(tripled)
        twin = tmp_path / "twin"  # a second member: the same run twice is refused first
        shutil.copytree(daily_run, twin)
        rc = main(["ensemble", str(daily_run), str(twin)])
        assert rc == 2 and "cannot evaluate" in capsys.readouterr().err
        # other data, asked for by name: scored, and said to be other data
        rc = main(["eval", str(daily_run), "--data", str(data)])
        captured = capsys.readouterr()
        assert rc == 0 and "other data than the run was trained on" in captured.err
    finally:
        data.write_bytes(original)
    assert main(["eval", str(daily_run)]) == 0


def test_edited_inputs_record_is_refused(daily_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(daily_run, run)
    rec = json.loads((run / rundir.INPUTS).read_text())
    rec["sha256"] = "0" * 64
    (run / rundir.INPUTS).write_text(json.dumps(rec))
    assert main(["eval", str(run)]) == 2
    assert "inputs.json: truncated or modified" in capsys.readouterr().err


def test_every_file_restore_reads_is_checksummed(daily_run: Path) -> None:
    manifest = json.loads((daily_run / rundir.MANIFEST).read_text())
    for name in (rundir.CONFIG, rundir.FITTED, rundir.SPLIT, rundir.INPUTS, rundir.WEIGHTS):
        assert name in manifest, name


# --- a daily panel's stray tail ---
def test_stray_row_past_the_end_is_trimmed_and_said(tmp_path: Path, capsys) -> None:
    data = write_daily_panel(tmp_path / "shop.csv")
    df = pd.read_csv(data)
    stray = pd.DataFrame({"shop": [99], "day": ["2021-03-24"], "sales": [5.0]})  # 10 days late
    pd.concat([df, stray]).to_csv(data, index=False)
    run = _train_daily(data, tmp_path / "out", "--set", "train.progress=plain")
    err = capsys.readouterr().err
    assert "the last date, 2021-03-14, has values for 12 of 13 series" in err, err
    assert "dropped 1 row(s) on 1 later date(s) (2021-03-24..2021-03-24)" in err, err
    info = json.loads((run / "data.json").read_text())
    assert info["split_last_date"]["test"] == "2021-03-14"
    assert info["split_sizes"]["test"] == 7 * 12  # the test week keeps every series
    # kept on request: the stray day becomes the test period, which then has no samples
    argv = ["train", "--task", "sales", "--data", str(data), "--out", str(tmp_path / "o2"),
            *DAILY, *QUIET, "--set", "data.test_steps=7", "--set", "data.val_steps=7",
            "--set", "data.tail_min_coverage=0"]  # fmt: skip
    assert main(argv) == 2
    assert "no test samples" in capsys.readouterr().err


def test_a_row_past_a_hole_in_the_dates_is_stray_in_a_small_panel(tmp_path: Path) -> None:
    # One row of three series a year late (a mistyped year): a third of the series reach it,
    # over tail_min_coverage, but a hole of 51 empty weeks lies before it.
    from archlab.data import sales
    from archlab.task_configs import SalesDataConfig

    weeks = pd.date_range("2020-01-03", periods=60, freq="7D")
    df = pd.DataFrame([(s, d, 100.0 + s) for s in (1, 2, 3) for d in weeks],
                      columns=["shop", "week", "sales"])  # fmt: skip
    stray = pd.DataFrame({"shop": [1], "week": [weeks[-1] + pd.Timedelta(days=364)],
                          "sales": [5.0]})  # fmt: skip
    path = tmp_path / "p.csv"
    pd.concat([df, stray]).to_csv(path, index=False)
    cfg = SalesDataConfig(path=str(path), target="sales", date_column="week",
                          series_keys=("shop",))  # fmt: skip
    got = sales.load_sales(cfg)
    assert got.week.max() == weeks[-1] and len(got) == 180
    assert "dropped 1 row(s) on 1 later date(s)" in sales.tail_note(got)[0]
    # A gap every series shares but that all of them cross (a closure) is no stray tail; nor
    # is a long stretch after it that one series alone goes on with.
    later = df.assign(week=df.week + pd.Timedelta(days=700))
    pd.concat([df, later]).to_csv(path, index=False)
    assert len(sales.load_sales(cfg)) == 360
    pd.concat([df, later[later.shop == 1]]).to_csv(path, index=False)
    assert len(sales.load_sales(cfg)) == 240
    # tail_min_coverage=0 keeps every date, the stray one too.
    pd.concat([df, stray]).to_csv(path, index=False)
    assert len(sales.load_sales(replace(cfg, tail_min_coverage=0.0))) == 181
    # A year typed 2000 for 2020 at the start: dropped too, and said.
    early = stray.assign(week=weeks[0] - pd.Timedelta(days=364 * 20))
    pd.concat([early, df]).to_csv(path, index=False)
    got = sales.load_sales(cfg)
    assert got.week.min() == weeks[0] and len(got) == 180
    assert "dropped 1 row(s) on 1 early date(s)" in sales.tail_note(got)[0]


def test_missing_values_are_counted_in_the_first_lines(tmp_path: Path, capsys) -> None:
    data = write_daily_panel(tmp_path / "shop.csv")
    df = pd.read_csv(data)
    df.loc[[3, 40, 41], "sales"] = np.nan
    df.to_csv(data, index=False)
    _train_daily(data, tmp_path / "out", "--set", "train.progress=plain")
    assert "missing values (empty cells, kept as missing): sales 3" in capsys.readouterr().err


# --- predict --out never overwrites an input; writes are atomic; a full disk is one line ---
@pytest.fixture(scope="module")
def horizon_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("horizon")
    data = write_daily_panel(root / "shop.csv", days=90)
    argv = ["train", "--task", "sales", "--data", str(data), "--out", str(root / "out"), *DAILY,
            *QUIET, "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
            "--set", "data.horizon=7", "--set", "data.val_steps=7", "--set", "data.window=14",
            "--set", "data.level_steps=0"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (root / "out").iterdir()
    future = pd.DataFrame(
        [(s, d.strftime("%Y-%m-%d")) for s in range(12)
         for d in pd.date_range("2021-04-04", periods=7, freq="D")],
        columns=["shop", "day"],
    )  # fmt: skip
    future.to_csv(root / "test.csv", index=False)
    return run


def test_predict_out_refuses_to_overwrite_its_input(horizon_run: Path, capsys) -> None:
    test_csv = horizon_run.parent.parent / "test.csv"
    before = test_csv.read_bytes()
    for out in (test_csv, test_csv.parent / "." / "test.csv"):
        rc = main(["predict", str(horizon_run), "--file", str(test_csv), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and "is an input" in err and len(err.splitlines()) == 1, err
    assert test_csv.read_bytes() == before


def test_predict_out_existing_directory_is_one_line(
    horizon_run: Path, tmp_path: Path, capsys
) -> None:
    test_csv = horizon_run.parent.parent / "test.csv"
    rc = main(["predict", str(horizon_run), "--file", str(test_csv), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "is a directory" in err and "Traceback" not in err, err


def test_predict_out_disk_full_is_one_line_and_leaves_nothing(
    horizon_run: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    test_csv = horizon_run.parent.parent / "test.csv"
    out = tmp_path / "sub.csv"

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(a[0]) if a else None)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    rc = main(["predict", str(horizon_run), "--file", str(test_csv), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "sub.csv" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_torch_save_failure_becomes_a_one_line_checkpoint_error(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / rundir.STATE
    rundir.save_state({"epoch": 1}, path)

    def broken(obj, f, *a, **k):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing "
            "file data/3: file write failed"
        )

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="could not write"):
        rundir.save_state({"epoch": 2}, path)
    monkeypatch.undo()
    assert rundir.load_state(path)["epoch"] == 1


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(where)],
                        capture_output=True).returncode == 0  # fmt: skip
    return ok


def test_disk_full_during_training_is_one_line_and_resume_works(tmp_path: Path, capsys) -> None:
    """A real full disk (a 600 kB tmpfs): training stops with one line, no partial file, and
    the run resumes once there is room."""
    small = tmp_path / "small"
    if not _can_mount_tmpfs(small):
        pytest.skip("needs root and mount to make a small tmpfs")
    try:
        data = write_daily_panel(tmp_path / "shop.csv")
        argv = ["train", "--task", "sales", "--data", str(data), "--out", str(small), *DAILY,
                *QUIET, "--set", "train.epochs=2", "--set", "data.test_steps=7",
                "--set", "data.val_steps=7", "--set", "model.hidden_size=160",
                "--set", "train.checkpoint_every_s=0"]  # fmt: skip
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, err
        lines = [s for s in err.splitlines() if s.startswith("archlab:")]
        assert lines and "No space left on device" in lines[-1] and "Traceback" not in err, err
        (run,) = small.iterdir()
        assert not [p for p in run.rglob("*.tmp")], "a partial file was left behind"
        moved = tmp_path / "moved"
        shutil.copytree(run, moved / run.name)
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert main(["train", "--resume", str(moved / run.name), *QUIET[2:]]) == 0
    assert rundir.is_finished(moved / run.name)


def test_known_covariate_is_read_from_the_rows_to_forecast(tmp_path: Path, capsys) -> None:
    """A daily shop's planned promotions for the forecast days come in the --file rows."""
    data = write_daily_panel(tmp_path / "shop.csv", series=4, days=60)
    df = pd.read_csv(data)
    df["promo"] = (np.arange(len(df)) % 5 == 0).astype(int)
    df.to_csv(data, index=False)
    argv = ["train", "--task", "sales", "--data", str(data), "--out", str(tmp_path / "out"),
            *DAILY[:-2], "--set", "data.features_file=", "--set", "data.stores_file=",
            "--set", "data.covariates=promo", "--set", "data.known_covariates=promo", *QUIET,
            "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
            "--set", "data.horizon=7", "--set", "data.val_steps=7", "--set", "data.window=14",
            "--set", "data.level_steps=0"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "out").iterdir()
    days = pd.date_range("2021-03-05", periods=7, freq="D").strftime("%Y-%m-%d")
    rows = pd.DataFrame([(s, d, i % 2) for s in (0, 1) for i, d in enumerate(days)],
                        columns=["shop", "day", "promo"])  # fmt: skip
    rows.to_csv(tmp_path / "future.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(run), "--file", str(tmp_path / "future.csv")]) == 0
    out = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(out) == 14 and all(np.isfinite(r["forecast"]) for r in out)
    rows.drop(columns="promo").to_csv(tmp_path / "future.csv", index=False)
    assert main(["predict", str(run), "--file", str(tmp_path / "future.csv")]) == 2
    assert "'promo' has no value for series (0,)" in capsys.readouterr().err


# --- byte-order marks and odd vectors rows ---
BOM = "\ufeff"


def test_vectors_with_a_bom_keep_their_first_word(tmp_path: Path) -> None:
    from archlab.data.embeddings import load_vectors

    for name, head in (("v.txt", ""), ("v.vec", "2 3\n")):
        path = tmp_path / name
        path.write_text(BOM + head + "the 0.1 0.2 0.3\nnew york 1 2 3\nlate 0.3 0.2 0.1\n")
        vec = load_vectors(path, {"the", "late"})
        assert vec.words == ["the", "late"] and vec.dim == 3, name
        assert (vec.spaced_words, vec.first_spaced_line) == (1, 3 if head else 2)


def test_csv_files_with_a_bom_read_their_first_column(tmp_path: Path) -> None:
    from archlab.data.image_manifest import Manifest, load_manifest
    from archlab.data.sales import load_sales
    from archlab.data.text import load_text_table
    from archlab.task_configs import SalesDataConfig

    text = tmp_path / "t.csv"
    rows = [f"{w} {i},{lab}" for i in range(3) for w, lab in (("bad", "neg"), ("good", "pos"))]
    for enc in ("utf-8", "latin-1", "cp1252"):
        text.write_bytes(codecs_bom() + "\n".join(["text,label", *rows]).encode())
        t = load_text_table(text, "text", "label", encoding=enc)
        assert len(t.texts) == 6, enc
    sales = tmp_path / "s.csv"
    sales.write_text(BOM + "Store,Dept,Date,Weekly_Sales\n1,1,2010-02-05,5.0\n1,1,2010-02-12,6\n")
    df = load_sales(SalesDataConfig(path=str(sales), holiday_column="", features_file="",
                                    stores_file="", covariates=()))  # fmt: skip
    assert list(df["Store"]) == [1, 1]
    from PIL import Image

    Image.new("L", (4, 4), 9).save(tmp_path / "a.png")
    Image.new("L", (4, 4), 200).save(tmp_path / "b.png")
    man = tmp_path / "m.csv"
    man.write_text(BOM + "path,label\na.png,x\nb.png,y\n")
    got = load_manifest(man, Manifest(), channels=1, size=4, skip_corrupt=False)
    assert list(got.class_names) == ["x", "y"]


def codecs_bom() -> bytes:
    import codecs

    return codecs.BOM_UTF8


def test_unrecorded_tokenizer_with_ids_past_the_embedding_is_one_line(
    tmp_path: Path, capsys
) -> None:
    from tests.conftest import as_older_run

    data = tmp_path / "t.csv"
    rows = [f"{w} flight {i},{lab}" for i in range(6)
            for w, lab in (("awful late", "neg"), ("great thanks", "pos"))]  # fmt: skip
    data.write_text("\n".join(["text,airline_sentiment", *rows]) + "\n")
    argv = ["train", "--task", "text", "--data", str(data), "--out", str(tmp_path / "out"),
            *QUIET, "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp_path / "out").iterdir()
    fitted = json.loads((run / rundir.FITTED).read_text())
    fitted["tokenizer"]["model"]["vocab"]["awful"] = 1_000_000
    (run / rundir.FITTED).write_text(json.dumps(fitted))
    assert main(["predict", str(run), "awful"]) == 2
    assert "fitted.json: truncated or modified" in capsys.readouterr().err
    # checkpoint.json cut short or gone does not turn the checks off
    manifest = (run / rundir.MANIFEST).read_text()
    (run / rundir.MANIFEST).write_text(manifest[: len(manifest) // 2])
    assert main(["predict", str(run), "awful"]) == 2
    assert "checkpoint.json: damaged (not the JSON the run wrote)" in capsys.readouterr().err
    (run / rundir.MANIFEST).unlink()
    assert main(["predict", str(run), "awful"]) == 2
    assert "checkpoint.json: missing: the run's files cannot be checked" in (
        capsys.readouterr().err
    )
    (run / rundir.MANIFEST).write_text(manifest)
    as_older_run(run, rundir.FITTED)  # a run from before fitted.json was checksummed
    assert main(["predict", str(run), "awful"]) == 2
    err = capsys.readouterr().err
    assert "'awful' has id 1000000, outside" in err and len(err.splitlines()) == 1, err


def test_image_files_are_hashed_once_and_a_changed_one_again(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    from archlab.data.images import load_image_set
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "imgs", {"cat": 4, "dog": 4})
    with fingerprint.recording() as reads:
        load_image_set(str(root), fmt="auto", size=8, channels=1)
    opened: list[str] = []
    real_open = open

    def spy(path, *a, **k):  # the fingerprint's own reads of the files
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    fp = fingerprint.fingerprint(reads)
    assert opened == []  # every image's hash came from the read that decoded it
    for rel, e in fp["files"].items():
        assert e["sha256"] == hashlib.sha256((Path(fp["root"]) / rel).read_bytes()).hexdigest()
    one = next(iter(sorted(reads)))
    Path(one).write_bytes(Path(one).read_bytes() + b"\0")  # size and mtime change
    fingerprint.fingerprint(reads)
    assert opened == [one]
    fingerprint.fingerprint(reads)  # unchanged since: its hash is remembered too
    assert opened == [one]


def test_a_sibling_table_without_the_join_key_is_left_out_and_said(tmp_path: Path) -> None:
    from archlab.data.sales import load_sales, reading_notes
    from archlab.task_configs import SalesDataConfig

    panel = write_daily_panel(tmp_path / "shop" / "transactions.csv", series=3, days=20)
    pd.DataFrame({"store_nbr": [0, 1, 2], "city": ["a", "b", "c"]}).to_csv(
        tmp_path / "shop" / "stores.csv", index=False
    )
    cfg = SalesDataConfig(path=str(panel), series_keys=("shop",), date_column="day",
                          target="sales", holiday_column="")  # fmt: skip
    df = load_sales(cfg)  # before: "missing column(s) ['Store']" from stores.csv
    assert "city" not in df.columns and df.attrs["resolved"]["stores_file"] == ""
    (note,) = [n for n in reading_notes(df) if "not joined" in n]
    assert "stores.csv not joined: the panel has no column 'Store' (data.store_column)" in note
    assert df.attrs["read"]["tables_not_joined"] == ["stores_file"]  # the run's first line
    df = load_sales(replace(cfg, store_column="shop"))
    (note,) = [n for n in reading_notes(df) if "not joined" in n]
    assert "it has no column 'shop' (data.store_column); its columns: ['store_nbr', 'city']" in note
    pd.DataFrame({"shop": [0, 1, 2], "city": ["a", "b", "c"]}).to_csv(
        tmp_path / "shop" / "stores.csv", index=False
    )
    df = load_sales(replace(cfg, store_column="shop"))  # a key both have: joined
    assert list(df.groupby("shop")["city"].first()) == ["a", "b", "c"]
    assert not [n for n in reading_notes(df) if "not joined" in n]
    assert df.attrs["read"]["tables_not_joined"] == []
    # A table the user named keeps its one-line error.
    pd.DataFrame({"store_nbr": [0], "city": ["a"]}).to_csv(tmp_path / "shop" / "other.csv")
    with pytest.raises(ArchlabError, match=r"other.csv: missing column"):
        load_sales(replace(cfg, store_column="shop", stores_file="other.csv"))
