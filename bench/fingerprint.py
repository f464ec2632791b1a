"""Benchmark: what the data fingerprint (inputs.json) costs beside reading the data it hashes.

Writes a folder of random-noise PNGs (~100 MB by default: noise does not compress, so the
bytes on disk are what a photo set of that size holds), then times, best of N, in one run:
decoding the folder as a run does (``load_image_set``, 32x32 grayscale) and hashing every file
(``fingerprint.fingerprint``). The ratio is what a run pays on top of reading its images; both
read from the page cache after the first pass. Wall and CPU time: on a shared machine wall time
also measures the other jobs.

Usage: python bench/fingerprint.py [--mb 100] [--repeat 3] [--dir /tmp/fp-bench]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from explain_speed import best_of  # best of N, wall and CPU time
from PIL import Image

from archlab import fingerprint
from archlab.data.images import load_image_set


def write_folder(root: Path, mb: int) -> list[str]:
    """Three class folders of 160x160 RGB noise PNGs (~77 kB each) up to ``mb`` megabytes."""
    rng = np.random.default_rng(0)
    paths, total, i = [], 0, 0
    while total < mb * 1_000_000:
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:05d}.png"
        if not p.exists():
            Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(p)
        total += p.stat().st_size
        paths.append(str(p))
        i += 1
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/archlab-fingerprint-bench"))
    args = ap.parse_args()
    paths = write_folder(args.dir, args.mb)
    size = sum(os.path.getsize(p) for p in paths) / 1e6
    decode = best_of(
        lambda: load_image_set(str(args.dir), fmt="auto", size=32, channels=1),
        args.repeat,
    )
    hashing = best_of(lambda: fingerprint.fingerprint(paths), args.repeat)
    print(f"{len(paths)} PNG files, {size:.1f} MB; load average {os.getloadavg()[0]:.1f}")
    print(f"decode (load_image_set, 32x32 L): wall {decode[0]:.2f} s, cpu {decode[1]:.2f} s")
    print(f"fingerprint (sha256 of each file): wall {hashing[0]:.2f} s, cpu {hashing[1]:.2f} s")
    print(f"fingerprint / decode: wall {hashing[0] / decode[0]:.2f}x, "
          f"cpu {hashing[1] / decode[1]:.2f}x; {size / hashing[0]:.0f} MB/s hashed")  # fmt: skip


if __name__ == "__main__":
    main()
