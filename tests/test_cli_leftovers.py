"""Leftovers of a user probe of the CLI: output cut short by a pipe, help texts broken
mid-sentence, a second "interrupted" line after Ctrl-C, eval --all on split folders
without train/."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer

from archlab.cli import SIGPIPE_EXIT, app, main
from tests.conftest import REPO, write_image_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

# One intra-op thread per child (the tests run two at a time on two cores).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
# stdout as a user's shell gives it to a pipe: block-buffered (a PYTHONUNBUFFERED the tests
# inherit wrote each line at once, while the reader was still there).
BUFFERED = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}


def _archlab(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "archlab", *args], cwd=REPO, text=True,
                            stderr=subprocess.PIPE, **kw)  # fmt: skip


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    "args", [["--help"], ["eval", "--help"], ["train", "--list-presets"]], ids=" ".join
)
def test_a_reader_gone_ends_as_sigpipe_does_silently(args: list[str], unbuffered: bool) -> None:
    # `archlab ... | head -1`: exit 141 (128 + SIGPIPE) as other tools, not 1 ("anything else
    # failed"), and nothing on stderr (no "Exception ignored ... BrokenPipeError" at exit).
    # The reader is gone before the first write, so the test does not race it; unbuffered,
    # the first print fails inside the command, buffered the flush at the end does.
    read, write = os.pipe()
    os.close(read)
    env = {**ENV, "PYTHONUNBUFFERED": "1"} if unbuffered else BUFFERED
    with _archlab(args, stdout=write, env=env) as proc:
        os.close(write)
        err = proc.stderr.read() if proc.stderr else ""
    assert (proc.returncode, err) == (SIGPIPE_EXIT, ""), err


def test_a_reader_that_reads_a_line_then_closes(tmp_path: Path) -> None:
    # As `| head -1`: more output than the pipe holds, so the reader's close is seen.
    with _archlab(["--help"], stdout=subprocess.PIPE, env={**ENV, "COLUMNS": "40000"}) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else ""
    assert (proc.returncode, err) == (SIGPIPE_EXIT, ""), err


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group of the CLI, with the words that name it."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def _paragraphs(text: str | None) -> list[str]:
    return [" ".join(p.split()) for p in (text or "").split("\n\n") if p.strip()]


COMMANDS = _commands(typer.main.get_command(app))  # help as the docstrings wrote it


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "-" for p, _ in COMMANDS])
def test_help_keeps_no_line_break_of_a_docstring(
    path: tuple[str, ...], command: Any, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    # A terminal wide enough for every paragraph on one line: each is one line of the help (a
    # docstring's line breaks showed as lines cut mid-sentence: explain, export, predict...).
    monkeypatch.setenv("COLUMNS", "1000")
    assert main([*path, "--help"]) == 0
    lines = [" ".join(line.strip(" │").split()) for line in capsys.readouterr().out.splitlines()]
    for paragraph in _paragraphs(command.help):
        assert paragraph in lines, (paragraph, lines)
    for name, sub in getattr(command, "commands", {}).items():  # the one-line summaries
        summary = _paragraphs(sub.short_help or sub.help)[0]
        assert any(line == f"{name} {summary}" for line in lines), (name, summary, lines)
    # Arguments in capitals in the usage line, as a metavar names them (explain said run_dir).
    usage = next(line for line in lines if line.startswith("Usage: "))
    positional = usage.split("[OPTIONS]", 1)[1].replace("[", " ").replace("]", " ")
    assert all(word.isupper() for word in re.findall(r"[A-Za-z_]+", positional)), usage


def test_run_dir_commands_share_the_metavar(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("eval", "explain", "export", "predict"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert f"Usage: archlab {command} [OPTIONS] RUN_DIR" in out, out
        assert "run_dir" not in out, out
    assert main(["explain", "--help"]) == 0
    assert "Usage: archlab explain [OPTIONS] RUN_DIR [INPUT]..." in capsys.readouterr().out


def test_ctrl_c_in_training_says_interrupted_once(tmp_path: Path) -> None:
    # The runner's line says where training stopped and how to resume; a bare "archlab:
    # interrupted" after it said nothing more.
    images = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    args = ["train", "--task", "images", "--data", str(images), "--epochs", "500",
            "--set", "data.size=8", "--set", "train.threads=1", "--set", "train.amp=off",
            "--set", "train.progress=plain", "--out", str(tmp_path / "runs")]  # fmt: skip
    with _archlab(args, stdout=subprocess.PIPE, env=ENV) as proc:
        assert proc.stderr is not None
        err = []
        for line in proc.stderr:  # an epoch has ended: training is under way
            err.append(line)
            if line.startswith("epoch 1/"):
                proc.send_signal(signal.SIGINT)
                break
        err += proc.stderr.readlines()
        proc.wait(timeout=120)
    assert proc.returncode == 130, "".join(err)
    said = [line for line in err if "interrupted" in line]
    assert len(said) == 1, "".join(err)
    # at the next step, or (the signal came before the epoch's end was done) at that end
    assert re.match(r"archlab: interrupted (at|after) epoch \d+.*resume with: archlab train "
                    "--resume ", said[0]), said  # fmt: skip


def test_ctrl_c_where_nothing_was_said_still_says_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab import runner

    def pressed(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "evaluate", pressed)
    assert main(["eval", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "archlab: interrupted\n"


def test_a_closed_stdout_met_while_stopping_on_ctrl_c_is_still_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A command whose Ctrl-C handling writes to stdout (a summary) after `| tee` died of the
    # same Ctrl-C: that write's BrokenPipeError ended it as 141.
    from archlab import runner

    def pressed(*args: object, **kw: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise BrokenPipeError(32, "Broken pipe")  # noqa: B904 (a print in the handler)

    monkeypatch.setattr(runner, "evaluate", pressed)
    assert main(["eval", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "archlab: interrupted\n"


# The CLI, with a line on stdout before training, as a command that prints as it goes
# (reproduce's notes) has: still in stdout's buffer when the Ctrl-C comes.
_SAYS_FIRST = """
import sys
from archlab import runner
from archlab.cli import main

prepare = runner.prepare


def says_first(*args, **kw):
    print("a line for stdout's reader")
    return prepare(*args, **kw)


runner.prepare = says_first
sys.exit(main(sys.argv[1:]))
"""


def _until_epoch_1(proc: subprocess.Popen[bytes], reader: Any, log: Path) -> None:
    """Wait until training is under way: its first epoch's line, read from the pipe (2>&1) or
    from the stderr file."""
    seen = b""
    while b"epoch 1/" not in seen:
        ended = proc.poll() is not None
        if reader is not None:
            got = reader.read(4096)
            seen, ended = seen + got, ended or not got
        else:
            time.sleep(0.1)
            seen = log.read_bytes()
        if ended:
            pytest.fail(f"ended before epoch 1: {seen.decode(errors='replace')}")


@pytest.mark.parametrize("joined", [False, True], ids=["stdout|tee", "2>&1|tee"])
def test_ctrl_c_that_ended_the_reader_too_still_exits_130(tmp_path: Path, joined: bool) -> None:
    # `archlab train ... | tee log`, Ctrl-C: the terminal sends SIGINT to the whole pipeline,
    # tee dies first; the run kept its checkpoint but exited 141 ("output pipe closed"),
    # not 130 ("interrupted, resumable").
    images = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    args = ["train", "--task", "images", "--data", str(images), "--epochs", "500",
            "--set", "data.size=8", "--set", "train.threads=1", "--set", "train.amp=off",
            "--set", "train.progress=plain", "--out", str(tmp_path / "runs")]  # fmt: skip
    read, write = os.pipe()
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _SAYS_FIRST, *args], cwd=REPO,
                                env=BUFFERED, stdout=write, stderr=write if joined else err,
                                start_new_session=True)  # fmt: skip
    os.close(write)
    try:
        with os.fdopen(read, "rb", buffering=0) as reader:  # tee: gone before the SIGINT
            _until_epoch_1(proc, reader if joined else None, log)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: to the process group
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = "" if joined else log.read_text()
    assert proc.returncode == 130, said
    assert len(list((tmp_path / "runs").glob("*/state.pt"))) == 1, said
    if not joined:
        assert "Traceback" not in said and "resume with: archlab train --resume" in said, said


class _SlowStderr(io.StringIO):
    """stderr whose first epoch line is still being written when the Ctrl-C comes (a slow
    `2>&1 | tee`); a write inside it fails as Python's buffered stream does."""

    writing = False

    def write(self, text: str) -> int:
        if self.writing:
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")
        self.writing = True
        try:
            if text.startswith("epoch 1/"):
                os.kill(os.getpid(), signal.SIGINT)  # its handler runs inside this write
            return super().write(text)
        finally:
            self.writing = False


def test_ctrl_c_inside_a_write_to_stderr_still_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler's "saving a checkpoint" line raised "reentrant call": exit 1, no checkpoint.
    images = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    err = _SlowStderr()
    monkeypatch.setattr(sys, "stderr", err)
    assert (
        main(
            [
                "train",
                "--task",
                "images",
                "--data",
                str(images),
                "--epochs",
                "3",
                "--set",
                "data.size=8",
                "--set",
                "train.threads=1",
                "--set",
                "train.amp=off",
                "--set",
                "train.progress=plain",
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        == 130
    )
    said = err.getvalue()
    assert len(list((tmp_path / "runs").glob("*/state.pt"))) == 1, said
    # said once, after the epoch's line, and before the one that says where training stopped
    assert said.count("archlab: Ctrl-C: saving a checkpoint after this step") == 1, said
    assert re.search(r"val_accuracy=\S+ \(.*\)\narchlab: Ctrl-C: saving a checkpoint.*\n"
                     r"archlab: interrupted after epoch 1 \(checkpoint saved\); resume with",
                     said), said  # fmt: skip


def _pasted(word: str) -> bytes:
    """What bash makes of ``word`` pasted as one argument."""
    run = subprocess.run([b"bash", b"-c", b"printf %s " + word.encode("ascii")],
                         capture_output=True, check=True)  # fmt: skip
    return run.stdout


@pytest.mark.parametrize(
    "name",
    [b"caf\xe9", b"it's a \\ caf\xe9 \xff9\nrun", "r\u00e9sum\u00e9 ".encode() + b"\xe9"],
    ids=["latin-1", "quote+backslash+newline", "utf-8+latin-1"],
)
def test_a_name_that_is_no_utf8_pastes_back_as_its_bytes(name: bytes) -> None:
    # shlex.quote's 'caf\udce9', printed with backslashreplace, pasted as another name.
    from archlab.utils import shell_quote

    word = shell_quote(os.fsdecode(name))
    assert word.isascii() and word.startswith("$'"), word
    assert _pasted(word) == name
    assert shell_quote("my runs/r1") == "'my runs/r1'"  # UTF-8 names: shlex.quote's, as before


def test_the_resume_hint_of_a_run_in_a_folder_that_is_no_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    out = tmp_path / os.fsdecode(b"caf\xe9 runs")
    err = _SlowStderr()  # a Ctrl-C during epoch 1's line
    monkeypatch.setattr(sys, "stderr", err)
    assert (
        main(
            [
                "train",
                "--task",
                "images",
                "--data",
                str(images),
                "--epochs",
                "3",
                "--set",
                "data.size=8",
                "--set",
                "train.threads=1",
                "--set",
                "train.amp=off",
                "--set",
                "train.progress=plain",
                "--out",
                str(out),
            ]
        )
        == 130
    )
    (run_dir,) = out.iterdir()
    hint = re.search(r"resume with: archlab train --resume (.+)$", err.getvalue(), re.M)
    assert hint, err.getvalue()
    assert _pasted(hint.group(1)) == os.fsencode(run_dir)


@pytest.mark.parametrize("splits", [("test",), ("val", "test")], ids="+".join)
def test_eval_all_scores_split_folders_without_train(
    splits: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archlab import runner
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS

    imgs = write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20}, size=(8, 8))
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], [
        f"data.path={imgs}", "data.size=8", "train.epochs=1", "train.threads=1",
        "train.amp=off", "train.progress=off"])  # fmt: skip
    run_dir = runner.train(cfg, tmp_path / "runs")
    held = tmp_path / "held"
    write_image_folder(held / "test", {"cat": 3, "dog": 4}, size=(8, 8), seed=5)
    if "val" in splits:  # a class of val/ that test/ lacks: every image counts, wherever it is
        write_image_folder(held / "val", {"cat": 2, "eel": 5}, size=(8, 8), seed=6)
    n = 7 + (7 if "val" in splits else 0)
    assert main(["eval", str(run_dir), "--data", str(held), "--all"]) == 0
    out, err = capsys.readouterr()
    classes = 3 if "val" in splits else 2
    assert f"scored all {n} images ({classes} of the run's 3 classes present)" in err, err
    per_class = [sum(row) for row in json.loads(out)["test_confusion_matrix"]]
    assert per_class == ([5, 4, 5] if "val" in splits else [3, 4, 0])
    # Without --all such a folder is still refused: it has no training split.
    assert main(["eval", str(run_dir), "--data", str(held)]) == 2
    assert "no train/ folder" in capsys.readouterr().err


def test_the_folder_of_runs_given_for_a_run_names_one(tmp_path: Path, capsys) -> None:
    from archlab.cli import main

    for name in ("a-run", "b-run"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.yaml").write_text("task: images\n")
    assert main(["eval", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    runs = tmp_path / "runs"
    assert err == (f"archlab: error: {runs}: not a run directory (no config.yaml); it holds 2 "
                   f"run directories (e.g. {runs / 'b-run'}): name one\n")  # fmt: skip
