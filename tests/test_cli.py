"""CLI: train/eval/predict/summary/ablate end to end, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES3, needs_shared, write_image_folder
from PIL import Image

from archlab.cli import main
from archlab.errors import ArchlabError
from archlab.models import MODELS
from archlab.presets import PRESETS

SMOKE = ["--set", "train.progress=off"]


def _last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_train_eval_predict_round_trip(tmp_path: Path, image_folder: Path, capsys) -> None:
    args = ["train", "--preset", "images-resnet18-smoke", "--data", str(image_folder),
            "--out", str(tmp_path), "--set", "train.max_steps_per_epoch=0", *SMOKE]  # fmt: skip
    assert main(args) == 0
    run_dir = Path(_last_line(capsys.readouterr().out))
    for name in ("config.yaml", "command.txt", "data.json", "split.json", "history.csv",
                 "metrics.json", "model.safetensors", "plots/learning_curves.png",
                 "plots/confusion_matrix.png", "plots/samples.png"):  # fmt: skip
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_precision_macro", "test_recall_macro", "test_f1_macro",
                "test_confusion_matrix", "epochs_run", "train_seconds",
                "test_f1_class_cat"):  # fmt: skip
        assert key in metrics
    assert sum(map(sum, metrics["test_confusion_matrix"])) == 9  # 15% of 60 images

    assert main(["eval", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    again = json.loads(printed)
    lines = printed.splitlines()  # the confusion matrix prints as a matrix: a row per line
    assert all(f"    {json.dumps(r)}," in lines or f"    {json.dumps(r)}" in lines
               for r in metrics["test_confusion_matrix"])  # fmt: skip
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert again["test_confusion_matrix"] == metrics["test_confusion_matrix"]
    # The baselines on the same test rows, beside the network's numbers, as metrics.json has them.
    base = {k: v for k, v in metrics.items() if k.startswith("baseline_")}
    assert base and {k: again[k] for k in base} == base

    img = next((image_folder / "dog").iterdir())
    assert main(["predict", str(run_dir), str(img)]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.strip())
    assert row["label"] in ("cat", "dog", "eel")
    assert sum(row[c] for c in ("cat", "dog", "eel")) == pytest.approx(1.0, abs=1e-5)
    assert captured.err == ""  # an image like the training ones: no warning

    # The same image inverted (light on dark -> dark on light): still a prediction, but flagged.
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - np.asarray(Image.open(img).convert("RGB"))).save(inverted)
    assert main(["predict", str(run_dir), str(img), str(inverted)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2
    (warning,) = captured.err.splitlines()
    assert warning.startswith(f"archlab: warning: {inverted}: mean pixel ")
    assert "SD from the training images'" in warning and "do not trust" in warning


def test_flags_alone_on_a_new_folder(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "five", {f"k{i}": 12 for i in range(5)}, size=(40, 36))
    args = ["train", "--task", "images", "--model", "vgg13_bn", "--data", str(root),
            "--epochs", "1", "--out", str(tmp_path / "runs"), "--set", "data.size=40",
            "--set", "data.channels=3", "--set", "train.batch_size=8", *SMOKE]  # fmt: skip
    assert main(args) == 0
    run_dir = Path(_last_line(capsys.readouterr().out))
    info = json.loads((run_dir / "data.json").read_text())
    assert info["class_names"] == [f"k{i}" for i in range(5)] and info["channels"] == 3
    assert len(json.loads((run_dir / "metrics.json").read_text())["test_confusion_matrix"]) == 5


def test_ablation_two_techniques_one_seed(tmp_path: Path, image_folder: Path, capsys) -> None:
    out = tmp_path / "abl"
    args = ["ablate", "--task", "images", "--model", "resnet18", "--data", str(image_folder),
            "--techniques", "baseline,dropout", "--seeds", "1", "--epochs", "1", "--out", str(out),
            "--set", "train.batch_size=16", *SMOKE]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err  # the study's recipe is named before anything is read
    assert err.startswith("archlab: note: ablate starts from preset images-resnet18 (")
    table = (out / "ablation.md").read_text()
    assert "| baseline | 1 |" in table and "| dropout | 1 |" in table
    assert (out / "ablation_curves.png").exists()
    cfg = (out / "dropout-s0" / "config.yaml").read_text()
    assert "dropout: 0.5" in cfg and "augment: none" in cfg
    # Re-running skips finished runs (same metrics files, untouched).
    before = (out / "baseline-s0" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "baseline-s0" / "metrics.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.task == "images"])
def test_summary_prints_torchinfo_table(name: str, capsys) -> None:
    assert main(["summary", name, "--input", "1x32x32", "--classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "Total params" in out and "Conv2d" in out


def test_summary_exact_counts(capsys) -> None:
    main(["summary", "vgg13", "--input", "1x64x64"])
    assert "Total params: 38,677,859" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--task", "images", "--data", "/no/such/dir"], "/no/such/dir: no such file"),
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--task", "images", "--set", "optim.lr=-1"], "optim.lr=-1.0: must be > 0"),
        (["train", "--task", "images", "--set", "train.epochs=-3"], "train.epochs=-3"),
        (["train", "--task", "images", "--set", "optim.foo=1"], "unknown key optim.foo"),
        (["train", "--task", "images", "--set", "reg.augment=warp"], "reg.augment='warp'"),
        (["train", "--task", "images", "--set", "reg.patience=-1"], "reg.patience"),
        (["summary", "alexnet"], "unknown model 'alexnet'"),
        (["summary", "vgg13", "--input", "1x8x8"], "does not fit the model (Given input size"),
        (["summary", "resnet18", "--classes", "0"], "--classes 0: a classifier needs at least 2"),
        (["eval", "/no/such/run"], "no such run directory"),
        (["train", "--bogus"], "No such option"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("framing", ["forecast", "parity"])
def test_sales_data_refuses_score_all_before_reading(framing: str, tmp_path: Path) -> None:
    import torch

    from archlab.config import apply_overrides
    from archlab.errors import ArchlabError
    from archlab.tasks import TASKS

    # eval --all: a forecast's test is the last steps of each series, never "every row". The
    # folder does not exist: refused before anything is read.
    sets = [f"data.path={tmp_path / 'none'}", f"data.framing={framing}"]
    cfg = apply_overrides(PRESETS["sales-rnn-smoke"], sets)
    with pytest.raises(ArchlabError, match="sales eval --data scores OTHER's last test steps"):
        TASKS["sales"].data(cfg).build(torch.device("cpu"), None, score_all=True)


def test_eval_all_needs_data(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.yaml").write_text("task: text\n")
    assert main(["eval", str(tmp_path), "--all"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("archlab: error: eval --all needs --data OTHER: it scores every image or row "
                   "of OTHER; without --data eval scores the run's own test split")  # fmt: skip


def test_error_from_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"junk")
    proc = subprocess.run(
        [sys.executable, "-m", "archlab", "train", "--task", "images", "--data", str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"archlab: error: {bad}: not a readable .npz file")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_list_presets(capsys) -> None:
    from archlab.presets import describe

    assert main(["train", "--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PRESETS)
    for name, line in zip(PRESETS, lines, strict=True):  # name, epochs, a one-line description
        assert line.split()[0] == name and f" {PRESETS[name].train.epochs} ep  " in line
        assert line.endswith(describe(name)) and len(describe(name)) > 20
    assert "images-resnet18-smoke" in lines[1] and "[smoke: 2 epochs x 3 steps" in lines[1]


def test_version_and_help_conventions(capsys) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"archlab {version('archlab')}\n"
    for args, usage in (
        (["eval", "--help"], "Usage: archlab eval [OPTIONS] RUN_DIR"),
        (["predict", "--help"], "Usage: archlab predict [OPTIONS] RUN_DIR [INPUT]..."),
        (["ensemble", "--help"], "Usage: archlab ensemble [OPTIONS] RUN_DIR..."),
        (["theory", "conv", "--help"], "Usage: archlab theory conv [OPTIONS]"),
        (["train", "--help"], "Usage: archlab train [OPTIONS]"),
    ):
        assert main(args) == 0
        out = capsys.readouterr().out
        assert usage in out, out
        assert "<bool>" not in out and "{" not in out, out  # no type beside plain flags


# Commands that must answer without paying for torch (seconds to import on a small machine).
NO_TORCH = [
    ["--help"],
    ["--version"],
    ["train", "--help"],
    ["train", "--list-presets"],
    ["theory", "conv", "--input", "3x28x32", "--filters", "10", "--kernel", "5"],
]


@pytest.mark.parametrize("args", NO_TORCH, ids=" ".join)
def test_quick_commands_do_not_import_torch(args: list[str]) -> None:
    code = (
        "import sys; from archlab.cli import main; rc = main(sys.argv[1:]); "
        "heavy = [m for m in ('torch', 'pandas', 'sklearn', 'matplotlib') if m in sys.modules]; "
        "print('RESULT', rc, heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "RESULT 0 []", proc.stdout + proc.stderr


@needs_shared(IMAGES3)
def test_real_images3_slice_trains(tmp_path: Path, capsys) -> None:
    args = ["train", "--preset", "images-resnet18-smoke", "--data", str(IMAGES3),
            "--out", str(tmp_path), *SMOKE]  # fmt: skip
    assert main(args) == 0
    run_dir = Path(_last_line(capsys.readouterr().out))
    info = json.loads((run_dir / "data.json").read_text())
    assert info["class_names"] == ["dog", "automobile", "ship"] and info["n_images"] == 240


def test_resume_before_the_first_checkpoint_says_so(tmp_path: Path, image_folder: Path, capsys):
    # A run killed (kill -9, power loss) before its first checkpoint: state.pt is written at
    # most every train.checkpoint_every_s (60 s), so a short run has none. Resume said nothing
    # and silently started over.
    args = ["train", "--preset", "images-resnet18-smoke", "--data", str(image_folder),
            "--out", str(tmp_path), "--set", "train.threads=1", *SMOKE]  # fmt: skip
    assert main(args) == 0
    run_dir = Path(_last_line(capsys.readouterr().out))
    assert not (run_dir / "state.pt").exists()
    for name in ("metrics.json", "model.safetensors"):  # as a kill after epoch 2 leaves it
        (run_dir / name).unlink()
    config = (run_dir / "config.yaml").read_text()
    # Runtime settings (threads, progress...) may change on resume; they are not the run's.
    rc = main(["train", "--resume", str(run_dir), "--set", "train.threads=1",
               "--set", "train.progress=plain"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    notes = [line for line in captured.err.splitlines() if "no checkpoint" in line]
    assert notes == [
        f"archlab: {run_dir}: no checkpoint to resume from (the run stopped before its first one "
        "was written); training it again from epoch 1 in the same directory"
    ]
    assert "epoch 2/2 train_loss=" in captured.err  # train.progress=plain took effect
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 2
    assert (run_dir / "config.yaml").read_text() == config  # the run's own config is kept


def test_a_run_with_a_relative_data_path_works_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archlab import runner
    from tests.helpers import text_cfg, write_tweets

    home = tmp_path / "project"
    (home / "data").mkdir(parents=True)
    write_tweets(home / "data" / "tweets.csv")
    monkeypatch.chdir(home)
    cfg = text_cfg(Path("data/tweets.csv"), "train.epochs=1")
    run = runner.train(cfg, Path("runs"))
    first = runner.evaluate(run)
    # ablate, reproduce and sweep run again from here: the cell's config is the one it wrote
    # (the trained-in path made absolute read as "holds a run with a different config")
    cell = runner.train_at(cfg, home / "cells" / "c1")
    assert runner.train_at(cfg, home / "cells" / "c1") == cell
    monkeypatch.chdir(tmp_path)  # elsewhere: data/tweets.csv does not exist from here
    assert not Path("data/tweets.csv").exists()
    assert runner.evaluate(home / run) == first
    assert runner.load_config(home / run).data.path == str(home / "data" / "tweets.csv")
    from archlab.cli import build_config  # --config RUN/config.yaml: trains again from here

    again = build_config(None, None, None, None, None, None, None, home / run / "config.yaml")
    assert again.data.path == str(home / "data" / "tweets.csv")
    # Another project's data/tweets.csv here is not the run's data "changed": the run reads
    # the file it was trained on, where it still is.
    (tmp_path / "data").mkdir()
    write_tweets(tmp_path / "data" / "tweets.csv", n_per_class=12, seed=1)
    assert runner.evaluate(home / run) == first
    (tmp_path / "data" / "tweets.csv").unlink()
    (home / "data").rename(home / "moved")  # gone from where it was: said, with the way out
    said = r"the data .* was trained on, which evaluate reads; put it back; eval --data PATH"
    with pytest.raises(ArchlabError, match=said):
        runner.evaluate(home / run)


def test_a_manifest_runs_relative_image_root_works_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archlab import runner
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from tests.conftest import write_image_folder

    home = tmp_path / "project"
    write_image_folder(home / "data" / "imgs", {"cat": 12, "dog": 12}, size=(32, 32))
    (home / "manifests").mkdir()
    rows = [f"{c}/{i:03d}.png,{c}" for c in ("cat", "dog") for i in range(12)]
    (home / "manifests" / "rel.csv").write_text("\n".join(["image,label", *rows]) + "\n")
    monkeypatch.chdir(home)
    cfg = apply_overrides(PRESETS["images-resnet18-study-smoke"],
                          ["data.path=manifests/rel.csv", "data.image_root=data/imgs",
                           "data.size=32", "train.epochs=1", "train.progress=off"])  # fmt: skip
    run = home / runner.train(cfg, Path("runs"))
    first = runner.evaluate(run)
    monkeypatch.chdir(tmp_path)  # elsewhere: data/imgs does not exist from here
    assert runner.evaluate(run) == first
    assert runner.load_config(run).data.image_root == str(home / "data" / "imgs")


def test_every_command_refuses_an_unfinished_run_in_the_same_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tests.helpers import train_cli, write_tweets

    csv = write_tweets(tmp_path / "tweets.csv")
    run = train_cli(tmp_path / "runs", "--task", "text", "--data", str(csv), "--epochs", "1")
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    (cut / "metrics.json").unlink()  # as a run stopped before its end leaves it
    capsys.readouterr()  # training's own lines
    commands = (
        ["eval", str(cut)],
        ["predict", str(cut), "great"],
        ["ensemble", str(run), str(cut)],
        ["export", str(cut)],
        ["explain", str(cut)],
    )
    for args in commands:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err == (
            f"archlab: error: {cut}: the run has not finished (no complete metrics.json); finish "
            f"it with archlab train --resume {cut}"
        ), args
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: no such run directory" in capsys.readouterr().err
    assert main(["ensemble", str(run), str(run)]) == 2
    assert f"{run}: given twice" in capsys.readouterr().err
    # --out never writes over a run's own files
    assert main(["ensemble", str(run), "--out", str(run / "metrics.json")]) == 2
    assert "is a file of the run directory" in capsys.readouterr().err


def test_sigterm_keeps_work_as_ctrl_c_does_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from archlab import runner
    from tests.helpers import write_tweets

    csv = write_tweets(tmp_path / "tweets.csv")

    def killed(*args: object, **kw: object) -> None:  # `kill` while the test split is scored
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(runner, "finish", killed)
    args = ["train", "--task", "text", "--data", str(csv), "--epochs", "1",
            "--out", str(tmp_path / "runs"), "--set", "train.threads=1",
            "--set", "train.progress=off"]  # fmt: skip
    assert main(args) == 143
    err = capsys.readouterr().err
    assert "interrupted while testing; training is saved" in err
    assert err.strip().splitlines()[-1] == "archlab: terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_mid_epoch_checkpoints_at_the_step_as_a_first_ctrl_c(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    request: pytest.FixtureRequest,
) -> None:
    # `timeout`, a scheduler's stop or `docker stop` send SIGTERM, a closed terminal or a
    # dropped ssh session SIGHUP (which lost the training): the step's work is kept.
    import os
    import signal

    from archlab import runner
    from archlab.train.callbacks import Callback
    from tests.helpers import write_tweets

    sig = signal.Signals[name]
    # As a terminal's session starts it: CI may run under nohup, where SIGHUP is ignored (and
    # stays so: test_nohup_keeps_sighup_ignored).
    before = signal.signal(sig, signal.SIG_DFL)
    request.addfinalizer(lambda: signal.signal(sig, before))

    class Term(Callback):
        def on_batch_end(self, trainer, step: int, loss: object) -> None:
            if trainer.state.step == 2:  # twice, as a closed terminal sends SIGHUP: the
                os.kill(os.getpid(), sig)  # second is no abort (only a second Ctrl-C is)
                os.kill(os.getpid(), sig)

    made = runner.default_callbacks
    monkeypatch.setattr(runner, "default_callbacks", lambda *a, **k: [*made(*a, **k), Term()])
    csv = write_tweets(tmp_path / "tweets.csv")
    args = ["train", "--task", "text", "--data", str(csv), "--epochs", "2",
            "--out", str(tmp_path / "runs"), "--set", "train.threads=1",
            "--set", "train.batch_size=8", "--set", "train.progress=off"]  # fmt: skip
    assert main(args) == 128 + sig
    err = capsys.readouterr().err
    assert "interrupted at epoch 1, step 2 (checkpoint saved)" in err, err
    assert f"archlab: {name}: saving a checkpoint after this step" in err  # not "Ctrl-C"
    assert err.strip().splitlines()[-1] == f"archlab: terminated ({name})"
    assert signal.getsignal(sig) is signal.SIG_DFL  # restored after the command


def test_nohup_keeps_sighup_ignored() -> None:
    # `nohup archlab train ... &` then logging out: the run must go on (its SIGHUP is ignored).
    import signal

    from archlab.cli import _terminate_as_interrupt

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with _terminate_as_interrupt([]):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_log_reader_gone_leaves_the_training_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `archlab train ... 2>&1 | head`: the training died at its next stderr line, with no
    # checkpoint. Now its lines go to devnull and it finishes.
    import os
    import sys

    from tests.helpers import write_tweets

    read_end, write_end = os.pipe()
    os.close(read_end)

    class Head:  # a reader that took one line and left
        lines = 0

        def write(self, text: str) -> int:
            Head.lines += 1
            if Head.lines > 1:
                raise BrokenPipeError(32, "Broken pipe")
            return len(text)

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return write_end

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stderr", Head())
    csv = write_tweets(tmp_path / "tweets.csv")
    args = ["train", "--task", "text", "--data", str(csv), "--epochs", "2",
            "--out", str(tmp_path / "runs"), "--set", "train.threads=1"]  # fmt: skip
    try:
        assert main(args) == 0
    finally:
        os.close(write_end)
    assert Head.lines == 2 and len(list((tmp_path / "runs").glob("*/metrics.json"))) == 1
    assert isinstance(sys.stderr, Head)  # given back as it was


def test_out_of_range_seeds_and_no_techniques_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import write_tweets

    for args in (["theory", "softmax", "--seed", "-1"],
                 ["theory", "lstm-grad", "--seed", str(2**64)]):  # fmt: skip
        assert main(args) == 2
        assert "Invalid value for '--seed'" in capsys.readouterr().err
    csv = write_tweets(tmp_path / "t.csv")
    args = ["ablate", "--task", "text", "--data", str(csv), "--techniques", " , ",
            "--out", str(tmp_path / "abl")]  # fmt: skip
    assert main(args) == 2
    assert "--techniques names no technique" in capsys.readouterr().err
    assert not (tmp_path / "abl").exists()  # no empty table written


def test_a_terminal_that_cannot_encode_gets_escapes_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # PYTHONIOENCODING=ascii (or latin-1): summary's box characters, a run directory named
    # in Chinese, crashed after the work was done.
    import io
    import sys

    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["summary", "resnet18", "--input", "1x32x32", "--classes", "3"]) == 0
    out.flush()
    assert b"\\u251c" in out.buffer.getvalue()  # torchinfo's tree, escaped
    monkeypatch.undo()
    assert main(["-h"]) == 0 and "Usage" in capsys.readouterr().out  # -h as --help
    assert main(["theory", "-h"]) == 0 and "softmax" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdout", None)  # `>&-`: eval's scores were lost with exit 0
    assert main(["theory", "softmax"]) == 2
    assert "stdout is closed" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stderr", None)  # `2>&-`: the messages go nowhere, no traceback
    assert main(["theory", "softmax"]) == 2


def test_shell_paths_as_a_person_types_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from archlab import rundir

    # A dangling symlink (a scratch disk not mounted) as --out: a FileExistsError traceback.
    (tmp_path / "scratch").symlink_to(tmp_path / "not-mounted")
    out = str(tmp_path / "scratch")
    assert main(["eda", "--task", "text", "--data", "x.csv", "--out", out]) == 2
    assert f"{out}: is a symlink to {tmp_path / 'not-mounted'}, which does not exist" in (
        capsys.readouterr().err
    )
    # An empty --out (an unset $OUTDIR) wrote the run into the current folder.
    assert main(["eda", "--task", "text", "--data", "x.csv", "--out", ""]) == 2
    assert "--out '': give a folder" in capsys.readouterr().err
    # `--out=~/x` is no word the shell expands: it made a folder named ~.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["eda", "--task", "text", "--data=~/t.csv", "--out=~/eda"]) == 2
    assert f"{tmp_path}/home/t.csv" in capsys.readouterr().err and not os.path.exists("~")
    from archlab.cli import _paths  # predict's texts are inputs, never rewritten

    texts = ["predict", "RUN", "~/Desktop is full again", "note=~", "/dev/null", "--out="]
    assert _paths(texts[:-1]) == texts[:-1]
    assert _paths(["x", "--set=data.path=~/a.csv"]) == [
        "x",
        f"--set=data.path={tmp_path}/home/a.csv",
    ]
    # A hint to paste: a run folder with a space in its name is quoted.
    run = tmp_path / "my runs" / "r1"
    run.mkdir(parents=True)
    (run / rundir.CONFIG).write_text("task: text\n")
    with pytest.raises(ArchlabError, match=r"finish it with archlab train --resume '.*my runs/r1'"):
        rundir.require_finished(run)


def test_names_that_are_no_utf8_train(
    tmp_path: Path,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A folder from a Latin-1 or Windows archive: one image named caf\xe9.png or a class folder
    # d\xf6g crashed training with a UnicodeEncodeError traceback (the fingerprint, then
    # history.csv's per-class columns), and so did a text CSV named t\xe9xt.csv (command.txt).
    import json
    import os
    import sys

    from tests.helpers import write_tweets

    root = os.fsencode(image_folder)
    os.rename(os.path.join(root, b"dog"), os.path.join(root, b"d\xf6g"))
    cat = os.path.join(root, b"cat")
    first = sorted(os.listdir(cat))[0]
    os.rename(os.path.join(cat, first), os.path.join(cat, b"caf\xe9.png"))
    args = ["--epochs", "1", "--out", str(tmp_path / "runs"), "--set", "train.threads=1",
            "--set", "train.progress=off"]  # fmt: skip
    assert main(["train", "--task", "images", "--model", "resnet18", "--data",
                 str(image_folder), *args]) == 0  # fmt: skip
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    info = json.loads((run / "data.json").read_text())
    assert info["class_names"] == ["cat", "dög", "eel"]
    assert any("'d\\udcf6g' -> 'dög'" in n and "Windows-1252" in n for n in info["notes"])
    assert main(["eval", str(run)]) == 0
    import shutil  # a UTF-8 dög beside the Latin-1 one: two classes, not one merged silently

    shutil.copytree(os.path.join(root, b"eel"), os.path.join(root, "dög".encode()))
    assert main(["train", "--task", "images", "--model", "resnet18", "--data",
                 str(image_folder), *args]) == 2  # fmt: skip
    assert "both read as 'dög'" in capsys.readouterr().err
    csv = write_tweets(tmp_path / "tweets.csv")
    odd = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"t\xe9xt.csv"))
    os.rename(csv, odd)
    argv = ["train", "--task", "text", "--data", odd, *args]
    monkeypatch.setattr(sys, "argv", ["archlab", *argv])  # command.txt's source
    assert main(argv) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert b"t\xe9xt.csv" in (run / "command.txt").read_bytes()  # as typed: it pastes back
    assert main(["eval", str(run)]) == 0


def test_a_pipe_given_as_a_file_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--data <(cmd)`, /dev/null, `--file -`: "no such file", or for sales "the file is empty"
    # (the pipe read once to fingerprint it, then again to parse it).
    from archlab.cli import _not_a_file

    for args, said in (
        (["train", "--task", "text", "--data", "/dev/null"], "/dev/null: a pipe or device"),
        (["predict", str(tmp_path), "--file", "-"], "--file -: standard input is not read"),
    ):
        assert main(args) == 2
        assert said in capsys.readouterr().err
    assert _not_a_file("/dev/null") and not _not_a_file(str(tmp_path))
    assert not _not_a_file("a text to predict")  # only paths under /dev and /proc are looked at


def test_an_unwritable_home_gets_one_matplotlib_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only HOME: matplotlib's two-line warning on every command that draws, and its
    # font cache rebuilt each time in a fresh temporary folder.
    import os
    import tempfile

    from archlab.cli import _matplotlib_cache

    (tmp_path / "home").write_text("not a folder")  # no ~/.config can be made under it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    _matplotlib_cache()
    cache = os.environ["MPLCONFIGDIR"]
    assert cache.startswith(tempfile.gettempdir()) and os.path.isdir(cache)
    monkeypatch.setenv("HOME", str(tmp_path))  # a writable home: matplotlib's own place
    monkeypatch.delenv("MPLCONFIGDIR")
    _matplotlib_cache()
    assert "MPLCONFIGDIR" not in os.environ
