"""A budget trial's image decoding, cold and reused: load_image_set twice on one folder of JPEG
photos (generated: smooth random colour fields, 256x256, 10 classes) at 64x64 RGB, in one
process, with the run's fingerprint recording, and prints both times and their ratio.

    python bench/image_decode_cache.py [N_IMAGES]   (default 3,800, a small photo set)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from archlab import fingerprint
from archlab.data.images import load_image_set


def write_photos(root: Path, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(
            d / f"{i:05d}.jpg", quality=90
        )


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        write_photos(root, n, np.random.default_rng(0))
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            with fingerprint.recording() as reads:
                s = load_image_set(str(root), fmt="auto", size=64, channels=3)
            times.append(time.perf_counter() - t0)
            assert len(reads) == n and s.images.shape == (n, 3, 64, 64)
        print(f"{n} JPEGs (256x256) -> 64x64 RGB: cold {times[0]:.2f} s, reused {times[1]:.3f} s "
              f"({times[0] / times[1]:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3800)
