"""Faults and security: safe checkpoint loading, atomic writes, SIGKILL + resume, safe paths."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archlab import rundir, runner
from archlab.errors import ArchlabError
from archlab.rundir import new_run_dir


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['ARCHLAB_PWNED']}",))


def test_malicious_pickle_resume_state_is_refused(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ARCHLAB_PWNED", str(marker))
    path = tmp_path / rundir.STATE
    torch.save({"epoch": 1, "payload": _Evil()}, path)
    with pytest.raises(ArchlabError, match="refused to load"):
        rundir.load_state(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ARCHLAB_PWNED", str(marker))
    path = tmp_path / rundir.STATE
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ArchlabError):
        rundir.load_state(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_detected(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    path = tmp_path / rundir.WEIGHTS
    rundir.save_weights(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchlabError, match=r"truncated or modified .*\(\d+ bytes, expected"):
        rundir.load_weights(torch.nn.Linear(4, 3), path)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped: the size is kept
    with pytest.raises(ArchlabError, match=rf"\(the same {len(data)} bytes, another sha256 than"):
        rundir.load_weights(torch.nn.Linear(4, 3), path)
    state = tmp_path / rundir.STATE  # the resume state: the error says how to go on
    rundir.save_state({"epoch": 1, "model": model.state_dict()}, state)
    state.write_bytes(state.read_bytes()[:-10])
    with pytest.raises(ArchlabError, match="delete it, and train --resume trains the run again"):
        rundir.load_state(state)


def test_wrong_architecture_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / rundir.WEIGHTS
    rundir.save_weights(torch.nn.Linear(4, 3), path)
    with pytest.raises(ArchlabError, match="do not fit this model"):
        rundir.load_weights(torch.nn.Linear(5, 3), path)
    with pytest.raises(ArchlabError, match="file not found"):
        rundir.load_weights(torch.nn.Linear(4, 3), tmp_path / "nope.safetensors")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / rundir.STATE
    rundir.save_state({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        rundir.save_state({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = rundir.load_state(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_writes_honour_the_umask(tmp_path: Path) -> None:
    # A run's files are as readable as any file the user writes (mkstemp alone gives 0600).
    import os
    import stat

    from archlab.utils import write_text_atomic

    write_text_atomic(tmp_path / "a.json", "{}")
    rundir.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("a.json", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("name", ["../../evil", "/etc/passwd", "..", "a/../../b", ".hidden"])
def test_run_names_cannot_escape_the_output_dir(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    d = new_run_dir(out, name)
    assert d.resolve().parent == out.resolve()


def test_runs_started_in_one_second_get_names_of_their_own(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: new_run_dir(tmp_path / "out", "r"), range(16)))
    assert len(set(made)) == 16 and all(d.is_dir() for d in made)


def test_out_never_writes_over_a_run_or_the_data_it_recorded(tmp_path: Path) -> None:
    from archlab import rundir

    run, data = tmp_path / "run", tmp_path / "data" / "sales.csv"
    run.mkdir()
    data.parent.mkdir()
    data.write_text("x\n")
    for name in (rundir.CONFIG, rundir.FITTED, rundir.METRICS):
        (run / name).write_text("{}")
    (run / rundir.INPUTS).write_text(json.dumps({"root": str(data.parent),
                                                 "files": {"sales.csv": {}}}))  # fmt: skip
    for out in (run / rundir.METRICS, run / rundir.CONFIG):
        with pytest.raises(ArchlabError, match="is a file of the run directory"):
            rundir.check_out_file(out, [])
    with pytest.raises(ArchlabError, match=r"is an input of this command \(.*sales.csv\)"):
        rundir.check_out_file(data, [str(run)])
    rundir.check_out_file(run / "new.csv", [str(run)])  # a new file beside them is fine
    rundir.check_out_file(tmp_path / "other.csv", [str(run)])


def _strip(m: dict) -> dict:
    return {k: v for k, v in m.items() if "seconds" not in k}


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(
    tmp_path: Path, image_folder: Path
) -> None:
    sets = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "data.size=32",
            "--set", "train.progress=plain", "--set", "train.max_steps_per_epoch=0",
            "--set", "train.checkpoint_every_s=0"]  # fmt: skip
    base = [sys.executable, "-m", "archlab", "train", "--preset", "images-resnet18-smoke",
            "--data", str(image_folder), *sets]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*base, "--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    history = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/history.csv"))
        if found and len(found[0].read_text().splitlines()) == 2:  # header + epoch 1
            history = found[0]
            time.sleep(0.3)  # now inside epoch 2
            break
        time.sleep(0.05)
    assert history is not None and proc.poll() is None, "run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = history.parent
    assert not (run_dir / rundir.METRICS).exists()
    resumed = subprocess.run([sys.executable, "-m", "archlab", "train", "--resume", str(run_dir)],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    full = subprocess.run([*base, "--out", str(tmp_path / "full")], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert full.returncode == 0, full.stderr
    full_dir = Path(full.stdout.strip().splitlines()[-1])
    m1 = json.loads((run_dir / rundir.METRICS).read_text())
    m2 = json.loads((full_dir / rundir.METRICS).read_text())
    assert _strip(m1) == _strip(m2)
    w1, w2 = (
        load_file(str(run_dir / rundir.WEIGHTS)),
        load_file(str(full_dir / rundir.WEIGHTS)),
    )
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_resume_of_a_finished_run_changes_nothing(
    tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture
) -> None:
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS

    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"], [f"data.path={image_folder}", "train.epochs=1"]
    )
    run_dir = runner.train(cfg, tmp_path)
    before = (run_dir / rundir.METRICS).stat().st_mtime_ns
    assert runner.train(None, tmp_path, resume_dir=run_dir) == run_dir
    assert (run_dir / rundir.METRICS).stat().st_mtime_ns == before
    # The CLI says so in one line, then prints the run's metrics and directory as train does.
    from archlab.cli import main

    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert err == f"archlab: {run_dir} finished already: nothing to resume; its metrics:\n"
    assert out.splitlines()[-1] == str(run_dir) and "test_accuracy=" in out
    assert (run_dir / rundir.METRICS).stat().st_mtime_ns == before


def test_a_ctrl_c_while_waiting_for_a_checkpoint_write_still_lets_it_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C inside Thread.join marks the writer as stopped while it still writes (CPython
    # bpo-45274): the process then exited under it, leaving state.pt and checkpoint.json apart.
    import os
    import signal
    import threading
    import time
    from types import SimpleNamespace

    from archlab import rundir
    from archlab.train.callbacks import Checkpoint

    real = rundir.save_state

    def slow(state: dict, path: Path) -> None:
        time.sleep(0.6)
        real(state, path)

    monkeypatch.setattr(rundir, "save_state", slow)
    trainer = SimpleNamespace(state=SimpleNamespace(batch=0, epoch=6),
                              state_dict=lambda: {"epoch": 6})  # fmt: skip
    ck = Checkpoint(tmp_path)
    ck._save(trainer, background=True)
    threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        ck.on_fit_end(trainer)  # waiting for the write
    ck.on_fit_abort(trainer)  # the trainer's abort path: waits the write out
    assert ck.saved_epoch == 6
    assert rundir.load_state(tmp_path / rundir.STATE)["epoch"] == 6  # recorded, so it loads


def test_a_run_another_process_is_training_is_refused(
    tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture
) -> None:
    # A --resume of a run still training (or two resumes at once) wrote the same files.
    from archlab.cli import main
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from archlab.train.callbacks import Callback

    class CtrlC(Callback):
        def on_epoch_end(self, trainer: object, row: dict) -> None:
            raise KeyboardInterrupt

    cfg = apply_overrides(
        PRESETS["images-resnet18-smoke"], [f"data.path={image_folder}", "train.epochs=2"]
    )
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "runs", callbacks=[CtrlC()])
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / rundir.LOCK).exists()  # released with the process's training
    hold = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, b'4242'); "
            "print('held', flush=True); time.sleep(60)")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", hold, str(run_dir / rundir.LOCK)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline() == "held\n"
        capsys.readouterr()
        assert main(["train", "--resume", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert f"{run_dir.resolve()}: another process (pid 4242) is training this run" in err
        assert main(["eval", str(run_dir)]) == 2  # not "finish it with --resume"
        assert "the run has not finished: process 4242 is training it" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    assert main(["train", "--resume", str(run_dir)]) == 0  # the other is gone: the lock too
    assert (run_dir / rundir.METRICS).exists()


def test_a_filesystem_without_locks_trains_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some network mounts answer flock with ENOLCK: that is no other trainer, and no refusal.
    import errno
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    rundir.lock_training(tmp_path)
    assert rundir.training_pid(tmp_path) == ""
    rundir.unlock_training(tmp_path)  # nothing held: nothing to release


def test_a_write_into_a_read_only_folder_names_the_file_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It named the hidden temp file: ".../.s.csv.dszv2d64.tmp: Read-only file system".
    import errno
    import tempfile

    from archlab.utils import write_text_atomic

    def read_only(prefix: str, suffix: str, dir: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}x1y2{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as e:
        write_text_atomic(tmp_path / "s.csv", "x")
    assert e.value.errno == errno.EROFS and e.value.filename == str(tmp_path / "s.csv")
