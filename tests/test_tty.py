"""archlab on a terminal: the long-running commands on a pseudo-terminal with the progress bar on,
to completion; Ctrl-C typed on the terminal exits 130 and --resume then finishes the run.

CI has no terminal: pexpect gives each command a pty of its own (the child is a session leader
with the pty as controlling terminal, so a typed Ctrl-C reaches it as SIGINT, as in a shell).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest
from rich.progress import Progress as RichProgress

from tests.conftest import REPO, write_image_folder
from tests.helpers import write_tweets

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

# One intra-op thread per child (the tests run two at a time on two cores), a wide terminal.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
LOSS = re.compile(r"loss \d+\.\d{4}")  # the bar's loss once a step has ended
ETA = re.compile(r"eta \d\d:\d\d")


def spawn(args: list[str], cwd: Path) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "archlab", *args], cwd=str(cwd), env=ENV,
        dimensions=(40, 160), encoding="utf-8", codec_errors="replace", timeout=240,
    )  # fmt: skip


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Read to the end; the exit code and everything the terminal showed."""
    child.expect(pexpect.EOF)
    out = child.before
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}:\n{out}"
    return child.exitstatus, out


def run_on_pty(args: list[str], cwd: Path) -> tuple[str, Path]:
    """Run to completion on a pty; check exit 0, no traceback, archlab's bar drawn; the last
    line (the run or output directory)."""
    rc, out = finish(spawn(args, cwd))
    assert rc == 0, out
    assert "Traceback" not in out, out
    assert LOSS.search(out) and ETA.search(out), f"no progress bar drawn:\n{out}"
    assert "loss nan" not in out, out  # the loss is blank until the first step has ended
    last = [line for line in out.splitlines() if line.strip()][-1]
    return out, cwd / re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last).strip()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "imgs", {"cat": 20, "dog": 20, "eel": 20})


def _finished(run_dir: Path) -> dict:
    for name in ("config.yaml", "history.csv", "model.safetensors", "plots/learning_curves.png"):
        assert (run_dir / name).exists(), f"{name} missing in {run_dir}"
    return json.loads((run_dir / "metrics.json").read_text())


def test_train_on_a_terminal_finishes(tmp_path: Path, images: Path) -> None:
    # The first run anyone makes: before, epoch 1's end raised KeyError: 'loss' (exit 1).
    args = ["train", "--task", "images", "--data", str(images), "--epochs", "2",
            "--set", "train.batch_size=8", "--out", "runs"]  # fmt: skip
    out, run_dir = run_on_pty(args, tmp_path)
    assert _finished(run_dir)["epochs_run"] == 2
    assert "epoch 1/2 train_loss=" in out and "epoch 2/2 train_loss=" in out


def test_text_smoke_preset_shows_archlab_bar_not_the_tokenizers(tmp_path: Path) -> None:
    tweets = write_tweets(tmp_path / "tweets.csv")
    args = ["train", "--preset", "text-bilstm-smoke", "--data", str(tweets), "--out", "runs"]
    out, run_dir = run_on_pty(args, tmp_path)
    assert _finished(run_dir)["epochs_run"] == 2
    assert "Pre-processing sequences" not in out  # the tokenizers library's own bar


def test_ablate_on_a_terminal_finishes(tmp_path: Path, images: Path) -> None:
    args = ["ablate", "--task", "images", "--model", "resnet18", "--data", str(images),
            "--techniques", "baseline,l2", "--epochs", "1", "--out", "abl",
            "--set", "train.max_steps_per_epoch=2"]  # fmt: skip
    _, out_dir = run_on_pty(args, tmp_path)
    assert (out_dir / "ablation.md").exists()
    for tech in ("baseline", "l2"):
        assert _finished(out_dir / f"{tech}-s0")["epochs_run"] == 1


def test_sweep_on_a_terminal_finishes(tmp_path: Path) -> None:
    tweets = write_tweets(tmp_path / "tweets.csv", n_per_class=10)
    args = ["sweep", "--trials", "2", "--preset", "text-bilstm-smoke", "--data", str(tweets),
            "--set", "model.embed_dim=8", "--set", "model.hidden_size=8",
            "--set", "data.min_frequency=1", "--out", "sw"]  # fmt: skip
    _, out_dir = run_on_pty(args, tmp_path)
    assert (out_dir / "best.yaml").exists() and (out_dir / "trials.csv").exists()


def test_reproduce_smoke_on_a_terminal_finishes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "twitter_airline").mkdir(parents=True)
    write_tweets(data / "twitter_airline" / "Tweets.csv")  # the text part only: the cheapest
    args = ["reproduce", "--data-dir", str(data), "--profile", "smoke", "--parts", "text",
            "--out", "rep"]  # fmt: skip
    out, out_dir = run_on_pty(args, tmp_path)
    assert (out_dir / "report" / "index.html").exists()
    assert _finished(out_dir / "text" / "bilstm" / "s0")["epochs_run"] == 2
    assert "Pre-processing sequences" not in out


def test_ctrl_c_on_a_terminal_exits_130_then_resume_finishes(tmp_path: Path, images: Path) -> None:
    # 2 epochs of 5 steps: the keystroke, sent as step 1 ends, lands well before the end.
    args = ["train", "--task", "images", "--data", str(images), "--epochs", "2",
            "--set", "train.batch_size=8", "--out", "runs"]  # fmt: skip
    child = spawn(args, tmp_path)
    child.expect(LOSS)  # a step of epoch 1 has ended: training is under way
    child.send("\x03")  # Ctrl-C typed on the terminal: the line discipline sends SIGINT
    rc, out = finish(child)
    assert rc == 130, out
    assert "Traceback" not in out, out
    match = re.search(r"interrupted (at epoch \d, step \d|after \d finished epoch)", out)
    assert match, out
    resume = re.search(r"resume with: archlab train --resume (\S+)", out)
    assert resume, out
    run_dir = tmp_path / resume.group(1)
    assert not (run_dir / "metrics.json").exists()

    rc, out = finish(spawn(["train", "--resume", str(run_dir)], tmp_path))
    assert rc == 0, out
    assert _finished(run_dir)["epochs_run"] == 2


def test_eta_shows_after_the_first_slow_step() -> None:
    # rich's TimeRemainingColumn needs two updates and a steady rate: with slow steps it showed
    # -:--:-- for a whole epoch. Ours estimates from the mean step time as soon as one ended.
    from archlab.train.callbacks import _EtaColumn

    bar = RichProgress()
    task_id = bar.add_task("train", total=10, first=0)
    task = bar.tasks[0]
    assert _EtaColumn().render(task).plain == "eta -:--"
    time.sleep(0.05)
    bar.update(task_id, completed=1)
    first = _EtaColumn().render(task).plain
    assert re.fullmatch(r"eta \d\d:\d\d", first), first
    task.start_time = task.get_time() - 30.0  # the first step took 30 s: 9 left, about 4.5 min
    assert _EtaColumn().render(task).plain == "eta 04:30"


@pytest.mark.xdist_group("tty")
def test_ctrl_c_stops_a_budget_search_and_keeps_the_best_finished_trial(tmp_path: Path) -> None:
    from tests.helpers import write_tweets

    csv = write_tweets(tmp_path / "tw.csv", n_per_class=100)
    child = spawn(["train", "--task", "text", "--data", str(csv), "--budget", "5m", "--epochs",
                   "40", "--set", "train.threads=1", "--set", "train.progress=plain", "--out",
                   "runs"], tmp_path)  # fmt: skip
    child.expect("trial 0: complete")
    child.expect("epoch 2/")  # inside trial 1
    child.sendintr()
    code, out = finish(child)
    assert code == 130, out
    assert "the --budget search stopped; the best finished trial so far on validation" in out
    (search,) = (tmp_path / "runs").iterdir()
    rec = json.loads((search / "search.json").read_text())
    assert rec["stopped_by"] == "Ctrl-C" and rec["chosen"]["trial"] == 0
    assert (search / "trial-0" / "model.safetensors").exists()
    assert (search / "trial-1" / "state.pt").exists()  # the interrupted trial keeps its checkpoint
