"""Times CLI start-up against `python -c "import torch"`, in one run, as ratios.

Goal: `archlab --help` under half the time of importing torch. Each command runs ``--repeats``
times, interleaved with the torch import (so a busy machine slows both alike); the medians of
wall time and of CPU time (user + system of the child) are compared.

Usage: python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "import torch": [sys.executable, "-c", "import torch"],
    "archlab --help": [sys.executable, "-m", "archlab", "--help"],
    "archlab --version": [sys.executable, "-m", "archlab", "--version"],
    "archlab theory conv": [
        *[sys.executable, "-m", "archlab", "theory", "conv"],
        *["--input", "3x28x32", "--filters", "10", "--kernel", "5"],
    ],
    "archlab train --list-presets": [sys.executable, "-m", "archlab", "train", "--list-presets"],
}
GOAL = 0.5


def run_once(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "COLUMNS": "100"})  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the page cache and __pycache__ once
        run_once(cmd)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            samples[name].append(run_once(cmd))
    med = {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for name, s in samples.items()
    }
    torch_wall, torch_cpu = med["import torch"]
    print(f"{'command':30s} {'wall s':>7s} {'cpu s':>7s} {'wall/torch':>10s} {'cpu/torch':>9s}")
    for name, (wall, cpu) in med.items():
        print(f"{name:30s} {wall:7.2f} {cpu:7.2f} {wall / torch_wall:10.2f} {cpu / torch_cpu:9.2f}")
    wall, cpu = med["archlab --help"]
    verdict = "met" if wall / torch_wall < GOAL else "NOT met"
    print(f"goal `archlab --help` < {GOAL} x `import torch` (wall, median of {args.repeats}): "
          f"{wall / torch_wall:.2f} -> {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
