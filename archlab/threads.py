"""CPU threads: how many intra-op threads torch uses, following the machine's load.

Why epochs run 10-70x slower beside other CPU jobs: torch's CPU kernels run on
an OpenMP team (libgomp), one thread per core. Every parallel op ends at a barrier that needs
every thread of the team to have run its share, and a thread that arrives first spins (~300,000
polls) before it sleeps. When other jobs hold the cores, one of the team's threads sits in the
run queue behind them for a scheduler slice (milliseconds) while its partner spins, op after op:
an op of microseconds costs milliseconds, and a small LSTM (thousands of small ops per epoch)
collapses. A single thread has no barrier to wait at, so it just gets its share of a core.

So ``train.threads=0`` follows the load: ``CpuLoad`` measures how much of this process's CPUs
other processes kept busy (``/proc/stat`` minus our own CPU time) and ``choose_threads`` keeps
one thread per CPU left free, at least one. On an idle machine that is torch's own count, with
libgomp's own waiting, so an idle run is unchanged. ``AutoThreads`` (``archlab.train.callbacks``)
re-checks every 2 s. ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once) was measured too and left out:
it does not prevent the collapse (both threads must still be scheduled at every barrier), and
in an early, noisy measurement here it made epochs alone ~15% slower (a futex wake-up per op).
``bench/threads.py`` times an epoch alone and beside CPU hogs at the old and new defaults.

numpy's BLAS (OpenBLAS: the sales baselines' SVDs, scikit-learn's solvers) keeps a pool of its
own, one thread per core, that torch's count does not reach; it collapses the same way beside
other jobs (a 40 x 1,000 SVD took 34 ms against 1.5 ms on one thread, and a daily panel's 91
test origins spent 100 s in them), so it follows the same count.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_quota(text: str) -> int | None:
    """Whole CPUs allowed by a cgroup v2 ``cpu.max`` line ('200000 100000' -> 2; 'max' -> None).

    A container started with ``--cpus 2`` on a 64-core host sees 64 cores but may use 2; more
    threads than that oversubscribe it exactly like other jobs do.
    """
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def _cgroup_cpus() -> int | None:
    try:
        return cpu_quota(CGROUP_CPU_MAX.read_text())
    except OSError:
        return None


def intra_op_threads(requested: int, current: int, quota: int | None) -> int:
    """``train.threads``: N > 0 is used as given; 0 keeps torch's count (``current``, one per
    core the process may run on) but never more than a cgroup CPU quota allows."""
    if requested > 0:
        return requested
    return min(current, quota) if quota else current


def choose_threads(max_threads: int, cpus: int, others: float) -> int:
    """Threads for the CPUs that ``others`` (CPUs' worth of other processes' work) leave free.

    2 CPUs: idle -> 2, one other busy job -> 1, two -> 1; never above ``max_threads``.
    """
    return max(1, min(max_threads, round(cpus - others)))


def _busy_ticks(cpus: set[int], stat: str) -> int:
    """Busy clock ticks (user, nice, system, irq, softirq, steal) of ``cpus`` in /proc/stat."""
    total = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            total += user + nice + system + irq + softirq + steal
    return total


class CpuLoad:
    """How many of this process's CPUs other processes kept busy since the last ``others()``.

    Linux only (``/proc/stat``); elsewhere ``others()`` returns None and nothing adapts.
    """

    STAT = Path("/proc/stat")

    def __init__(self) -> None:
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            busy = _busy_ticks(self.cpus, self.STAT.read_text()) / self.tick
        except (OSError, ValueError):
            return None
        return busy, time.process_time(), time.monotonic()

    def others(self, min_window_s: float = 0.2) -> float | None:
        """CPUs' worth of other work over the window since the last call (None if too short)."""
        now = self._sample()
        if now is None or self._last is None or now[2] - self._last[2] < min_window_s:
            return None
        (busy0, own0, t0), (busy1, own1, t1) = self._last, now
        self._last = now
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


class ThreadGovernor:
    """``train.threads=0`` at run time: one intra-op thread per CPU other jobs leave free."""

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self.load = CpuLoad()

    def adjust(self) -> int | None:
        """Re-measure and set torch's thread count; returns it (None if not measured)."""
        import torch

        others = self.load.others()
        if others is None or not self.load.cpus:
            return None
        n = choose_threads(self.max_threads, len(self.load.cpus), others)
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            limit_blas(n)
        return n


def limit_blas(n: int) -> None:
    """Use ``n`` threads in the BLAS libraries numpy and scipy loaded (for the whole process)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


# torch's own count, read once before archlab changes it; the governor of the current run.
_MAX_THREADS: list[int] = []
_GOVERNOR: list[ThreadGovernor] = []


def set_threads(requested: int) -> int:
    """Apply ``train.threads`` to torch's intra-op pool; returns the count in use.

    For 0 it also starts the run's ``ThreadGovernor`` (``governor()``), whose first load
    window spans the data loading that follows.
    """
    import torch

    if not _MAX_THREADS:
        _MAX_THREADS.append(torch.get_num_threads())
    n = intra_op_threads(requested, _MAX_THREADS[0], _cgroup_cpus())
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    limit_blas(n)
    _GOVERNOR[:] = [ThreadGovernor(n)] if requested == 0 and n > 1 else []
    return n


def governor() -> ThreadGovernor | None:
    """The governor ``set_threads(0)`` started (None for a fixed ``train.threads`` or 1 CPU)."""
    return _GOVERNOR[0] if _GOVERNOR else None
