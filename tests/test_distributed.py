"""torchrun DDP (2 CPU processes, gloo), Ctrl-C checkpoints at a step boundary, failed writes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archlab import rundir, runner
from archlab.config import apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.train.callbacks import Callback
from tests.helpers import write_panel

SETS = ["data.test_steps=8", "data.val_steps=4", "model.loss=mse", "reg.dropout=0.0",
        "train.batch_size=16", "train.epochs=2", "train.threads=1",
        "train.checkpoint_every_s=0"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "archlab", *args]  # fmt: skip
    # Loopback: gloo otherwise picks the interface its hostname resolves to (absent in some CI).
    env = {"GLOO_SOCKET_IFNAME": "lo", **os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # fmt: skip


def _train_args(panel: Path, out: Path, sets: list[str]) -> list[str]:
    flags = [x for s in sets for x in ("--set", s)]
    return ["train", "--preset", "sales-rnn-smoke", "--data", str(panel), "--out", str(out),
            *flags]  # fmt: skip


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / rundir.WEIGHTS))


@pytest.mark.xdist_group("ddp")
def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    panel = write_panel(tmp_path / "walmart")
    sets = [*SETS, "train.max_steps_per_epoch=3"]  # full batches only: no wrap-around padding
    proc = _torchrun(_train_args(panel, tmp_path / "ddp", sets))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    run_dir = Path(out.strip().splitlines()[-1])
    assert [p.name for p in (tmp_path / "ddp").iterdir()] == [run_dir.name]  # rank 0 wrote alone
    m = json.loads((run_dir / rundir.METRICS).read_text())
    assert m["world_size"] == 2
    digests = m["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # bitwise identical on both ranks

    cfg = apply_overrides(PRESETS["sales-rnn-smoke"], [f"data.path={panel}", *sets])
    single = runner.train(cfg, tmp_path / "single")
    w1, w2 = _weights(single), _weights(run_dir)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    m1 = json.loads((single / rundir.METRICS).read_text())
    assert m["test_rmse"] == pytest.approx(m1["test_rmse"], rel=1e-4)


@pytest.mark.xdist_group("ddp")
def test_torchrun_killed_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    panel = write_panel(tmp_path / "walmart", weeks=120)
    sets = [*SETS, "train.epochs=3", "train.max_steps_per_epoch=0", "train.batch_size=8"]
    full = _torchrun(_train_args(panel, tmp_path / "full", sets))
    killed = _torchrun(_train_args(panel, tmp_path / "killed", sets), start_new_session=True)
    history = None
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        found = list((tmp_path / "killed").glob("*/history.csv"))
        if found and len(found[0].read_text().splitlines()) >= 2:  # at least one epoch saved
            history = found[0]
            break
        time.sleep(0.02)
    assert history is not None and killed.poll() is None, "run ended before it could be killed"
    os.killpg(killed.pid, signal.SIGKILL)  # torchrun and both workers, mid-run
    killed.wait()
    run_dir = history.parent
    assert not (run_dir / rundir.METRICS).exists()
    resumed = _torchrun(["train", "--resume", str(run_dir)])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err[-3000:]
    full_dir = Path(out.strip().splitlines()[-1])
    w1, w2 = _weights(run_dir), _weights(full_dir)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


class _CtrlC(Callback):
    """Sends this process SIGINT after global step ``at`` (as a user pressing Ctrl-C)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None:
        if trainer.state.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_checkpoints_at_the_next_step_and_resumes_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    panel = write_panel(tmp_path / "walmart")
    cfg = apply_overrides(
        PRESETS["sales-rnn-smoke"],
        [f"data.path={panel}", *SETS, "train.max_steps_per_epoch=0", "train.batch_size=8"],
    )
    full = runner.train(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "cut", callbacks=[_CtrlC(at=5)])
    run_dir = next((tmp_path / "cut").iterdir())
    err = capsys.readouterr().err
    assert "step 5 (checkpoint saved)" in err and f"--resume {run_dir}" in err
    state = rundir.load_state(run_dir / rundir.STATE)
    assert (state["epoch"], state["step"], state["batch"]) == (0, 5, 5)  # mid-epoch 1
    assert not (run_dir / rundir.METRICS).exists()
    before = state["partial"][0]["seconds"]  # epoch 1's time up to the Ctrl-C
    runner.train(None, tmp_path, resume_dir=run_dir)
    assert float(rundir.read_history(run_dir / rundir.HISTORY)[0]["seconds"]) > before > 0
    w1, w2 = _weights(full), _weights(run_dir)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert _history(full) == _history(run_dir)


class _CtrlCAt(Callback):
    """SIGINT after the ``i``-th step (0-based) of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, i: int) -> None:
        self.epoch, self.i = epoch, i

    def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None:
        if (trainer.state.epoch, step) == (self.epoch, self.i):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("earlier", [False, True], ids=["first-epoch", "after-a-checkpoint"])
def test_a_second_ctrl_c_says_no_checkpoint_was_saved_and_what_resume_starts_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, earlier: bool
) -> None:
    panel = write_panel(tmp_path / "walmart")
    sets = [f"data.path={panel}", *SETS, "train.max_steps_per_epoch=0", "train.batch_size=8"]
    cfg = apply_overrides(PRESETS["sales-rnn-smoke"], sets)
    save = rundir.save_state

    def second_ctrl_c(state: dict, path: Path) -> None:  # pressed while Ctrl-C's state is written
        if state["batch"]:
            raise KeyboardInterrupt
        save(state, path)

    monkeypatch.setattr(rundir, "save_state", second_ctrl_c)
    # Epoch 1's end writes a checkpoint (checkpoint_every_s=0) before a Ctrl-C in epoch 2.
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "cut", callbacks=[_CtrlCAt(1 if earlier else 0, 2)])
    run_dir = next((tmp_path / "cut").iterdir())
    err = capsys.readouterr().err
    assert "checkpoint saved" not in err and (run_dir / rundir.STATE).exists() == earlier
    resume = f"archlab train --resume {run_dir}"
    if earlier:
        assert f"at epoch 2, step 3, without a checkpoint of it: {resume} starts from the " in err
    else:
        assert f"at epoch 1, step 3, before any checkpoint was written: {resume} trains " in err


def test_ctrl_c_while_testing_keeps_the_training_and_resume_only_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    panel = write_panel(tmp_path / "walmart")
    cfg = apply_overrides(PRESETS["sales-rnn-smoke"], [f"data.path={panel}", *SETS])
    full = runner.train(cfg, tmp_path / "full")
    assert not (full / rundir.STATE).exists()  # a finished run keeps no resume state
    assert rundir.STATE not in json.loads((full / rundir.MANIFEST).read_text())
    finish = runner.finish

    def ctrl_c(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "finish", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "cut")
    run_dir = next((tmp_path / "cut").iterdir())
    assert "interrupted while testing; training is saved (all 2 epochs)" in capsys.readouterr().err
    monkeypatch.setattr(runner, "finish", finish)
    trained: list[int] = []

    class Steps(Callback):
        def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None:
            trained.append(step)

    runner.train(None, tmp_path, resume_dir=run_dir, callbacks=[Steps()])
    assert not trained  # nothing trained again: only tested
    m1, m2 = (json.loads((d / rundir.METRICS).read_text()) for d in (full, run_dir))
    assert {k: v for k, v in m1.items() if k.startswith("test_")} == {
        k: v for k, v in m2.items() if k.startswith("test_")
    }


@pytest.mark.parametrize("where", ["last-validation", "fit-end", "weights"])
def test_ctrl_c_after_the_last_step_keeps_the_training_and_resume_only_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # No epoch's checkpoint is written yet (every 60 s): a Ctrl-C in the last validation, while
    # the fit ends or while the weights are written lost the whole run (or, in the validation,
    # was ignored and the run tested and exited 0).
    from archlab.train.trainer import Trainer

    panel = write_panel(tmp_path / "walmart")
    sets = [f"data.path={panel}", *SETS, "train.checkpoint_every_s=60"]
    cfg = apply_overrides(PRESETS["sales-rnn-smoke"], sets)
    full = runner.train(cfg, tmp_path / "full")
    evaluate, save_weights = Trainer.evaluate, rundir.save_weights

    def ctrl_c_in_last_validation(self: Trainer, *a: object, **kw: object) -> object:
        if self.state.epoch == 1:  # epoch 2's validation (the test's runs at epoch 2)
            os.kill(os.getpid(), signal.SIGINT)
        return evaluate(self, *a, **kw)

    class CtrlCAtFitEnd(Callback):
        def on_fit_end(self, trainer: object) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    def ctrl_c_in_save(*a: object) -> None:
        raise KeyboardInterrupt

    cbs: list[Callback] = [CtrlCAtFitEnd()] if where == "fit-end" else []
    if where == "last-validation":
        monkeypatch.setattr(Trainer, "evaluate", ctrl_c_in_last_validation)
    if where == "weights":
        monkeypatch.setattr(rundir, "save_weights", ctrl_c_in_save)
    with pytest.raises(KeyboardInterrupt):
        runner.train(cfg, tmp_path / "cut", callbacks=cbs)
    run_dir = next((tmp_path / "cut").iterdir())
    err = capsys.readouterr().err
    assert f"interrupted after training (all 2 epochs, checkpoint saved): archlab train --resume " \
           f"{run_dir} only tests it" in err, err  # fmt: skip
    assert not (run_dir / rundir.METRICS).exists()
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    monkeypatch.setattr(rundir, "save_weights", save_weights)
    runner.train(None, tmp_path, resume_dir=run_dir)
    w1, w2 = _weights(full), _weights(run_dir)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert _history(full) == _history(run_dir)


def _history(run_dir: Path) -> list[list[str]]:
    """history.csv without the wall-time column (everything else must match exactly)."""
    rows = [r.split(",") for r in (run_dir / rundir.HISTORY).read_text().splitlines()]
    drop = rows[0].index("seconds")
    return [[c for j, c in enumerate(r) if j != drop] for r in rows]


def test_failed_checkpoint_write_mid_run_keeps_the_previous_one(
    tmp_path: Path, monkeypatch
) -> None:
    panel = write_panel(tmp_path / "walmart")
    cfg = apply_overrides(
        PRESETS["sales-rnn-smoke"], [f"data.path={panel}", *SETS, "train.epochs=3"]
    )
    real_save, calls = torch.save, []

    def flaky_save(obj, f, *args, **kwargs):  # the disk fills up in the 2nd epoch's checkpoint
        calls.append(obj["epoch"])
        if len(calls) == 2:
            Path(f).write_bytes(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(
        ArchlabError, match=r"could not write the checkpoint .*previous one is kept"
    ):
        runner.train(cfg, tmp_path / "runs")
    run_dir = next((tmp_path / "runs").iterdir())
    assert rundir.load_state(run_dir / rundir.STATE)["epoch"] == 1
    assert not (run_dir / rundir.METRICS).exists()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    runner.train(None, tmp_path, resume_dir=run_dir)  # and the run can go on from there
    assert json.loads((run_dir / rundir.METRICS).read_text())["epochs_run"] == 3


@pytest.mark.xdist_group("ddp")
def test_torchrun_with_batchnorm_ends_on_one_model(tmp_path: Path) -> None:
    # BatchNorm's running statistics follow each rank's batches: the run ends on rank 0's.
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "imgs", {"a": 16, "b": 16}, size=(32, 32))
    sets = ["data.size=32", "train.epochs=1", "train.batch_size=4", "train.threads=1",
            "train.max_steps_per_epoch=2", "train.checkpoint_every_s=0"]  # fmt: skip
    args = ["train", "--preset", "images-resnet18", "--data", str(root), "--out",
            str(tmp_path / "ddp"), *(x for s in sets for x in ("--set", s))]  # fmt: skip
    proc = _torchrun(args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    m = json.loads((Path(out.strip().splitlines()[-1]) / rundir.METRICS).read_text())
    assert m["world_size"] == 2 and len(set(m["replica_digests"])) == 1
