"""CPU threads: train.threads=0 keeps one thread per core other processes leave free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info

from archlab import runner, threads
from archlab.config import apply_overrides
from archlab.presets import PRESETS
from archlab.train.callbacks import AutoThreads


@pytest.mark.parametrize(
    ("max_threads", "cpus", "others", "want"),
    [
        (2, 2, 0.0, 2),  # idle 2-core machine: torch's own count, as before
        (2, 2, 0.3, 2),  # a little background noise does not cost a thread
        (2, 2, 1.0, 1),  # one other busy job: one core left
        (2, 2, 2.0, 1),  # two CPU hogs: never below one thread
        (2, 2, 9.0, 1),  # a crowded machine
        (16, 16, 4.0, 12),
        (8, 16, 0.0, 8),  # never above torch's count
    ],
)
def test_threads_follow_the_cpus_left_free(
    max_threads: int, cpus: int, others: float, want: int
) -> None:
    assert threads.choose_threads(max_threads, cpus, others) == want


def test_cpu_quota_and_explicit_threads() -> None:
    assert threads.cpu_quota("200000 100000\n") == 2
    assert threads.cpu_quota("150000 100000") == 2
    assert threads.cpu_quota("max 100000") is None
    assert threads.intra_op_threads(0, 16, 2) == 2  # a --cpus 2 container on a 16-core host
    assert threads.intra_op_threads(0, 2, None) == 2
    assert threads.intra_op_threads(3, 2, 1) == 3  # train.threads=N is used as given


def test_cpu_load_counts_other_processes_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stat = tmp_path / "stat"
    line = "cpu{} {} 0 0 500 0 0 0 0 0 0\n"
    stat.write_text("cpu  0 0 0 0 0 0 0 0\n" + line.format(0, 100) + line.format(1, 100))
    monkeypatch.setattr(threads.CpuLoad, "STAT", stat)
    load = threads.CpuLoad()
    load.cpus, load.tick = {0, 1}, 100
    load._last = load._sample()
    t0, own0 = load._last[2], load._last[1]
    # one second later both CPUs were busy all the time and this process used 0.5 s of CPU
    stat.write_text(line.format(0, 200) + line.format(1, 200) + line.format(2, 999))
    monkeypatch.setattr(threads.time, "monotonic", lambda: t0 + 1.0)
    monkeypatch.setattr(threads.time, "process_time", lambda: own0 + 0.5)
    assert load.others() == pytest.approx(1.5)


def test_governor_drops_to_one_thread_beside_hogs(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    gov = threads.ThreadGovernor(2)
    gov.load.cpus = {0, 1}
    try:
        monkeypatch.setattr(gov.load, "others", lambda: 2.0)
        assert gov.adjust() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(gov.load, "others", lambda: 0.0)
        assert gov.adjust() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_numpys_blas_follows_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenBLAS's own pool, one thread per core, collapsed beside other jobs like torch's did
    before, blas = torch.get_num_threads(), _blas_threads()
    assert blas, "numpy loaded no BLAS threadpoolctl can see"
    try:
        threads.set_threads(1)
        assert _blas_threads() == {1}
        gov = threads.ThreadGovernor(2)
        gov.load.cpus = {0, 1}
        monkeypatch.setattr(gov.load, "others", lambda: 0.0)
        assert gov.adjust() == 2 and _blas_threads() == {2}
    finally:
        torch.set_num_threads(before)
        threads.limit_blas(max(blas))


def test_fixed_threads_start_no_governor() -> None:
    before = torch.get_num_threads()
    try:
        assert threads.set_threads(1) == 1 and threads.governor() is None
    finally:
        torch.set_num_threads(before)


def test_default_threads_add_the_load_following_callback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_MAX_THREADS", [2])  # torch's count on a 2-core machine
    cfg = apply_overrides(PRESETS["images-resnet18-smoke"], ["train.threads=0"])
    try:
        assert threads.set_threads(0) == 2 and threads.governor() is not None
        cbs = runner.default_callbacks(
            cfg, ("val_loss", "min"), tmp_path, runner.distributed.SINGLE
        )
        assert sum(isinstance(cb, AutoThreads) for cb in cbs) == 1
        threads.set_threads(1)  # a fixed count: no callback
        cbs = runner.default_callbacks(
            cfg, ("val_loss", "min"), tmp_path, runner.distributed.SINGLE
        )
        assert not any(isinstance(cb, AutoThreads) for cb in cbs)
    finally:
        torch.set_num_threads(before)
