"""How long the image task's pixel baseline (archlab/tasks/pixels.py) takes, and what it scores.

Builds an image data set as a run does (any --set, e.g. data.size=64 data.channels=3), then
times ``pixels_baseline`` alone: the part of a run's end it adds. The machine is shared, so
the seconds are wall time under whatever load there is (printed beside them).

    .venv/bin/python bench/pixel_baseline.py --set data.path=DIR/images3/...npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archlab.config import apply_overrides
from archlab.presets import PRESETS
from archlab.tasks.image_cls import ImageData
from archlab.tasks.pixels import pixels_baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="images-resnet18")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = apply_overrides(PRESETS[args.preset], args.sets)
    data = ImageData(cfg).build(torch.device("cpu"))
    ctx = data.context
    sizes = {k: len(v) for k, v in ctx.split.items()}
    t0 = time.perf_counter()
    m = pixels_baseline(ctx.images, ctx.labels, ctx.split, list(data.fitted.class_names))
    seconds = time.perf_counter() - t0
    print(f"{data.notes[0]}; splits {sizes}; images {tuple(ctx.images.shape[1:])}")
    print(f"pixels_baseline: {seconds:.1f} s wall, 1 thread, load {os.getloadavg()[0]:.1f}")
    print({k: round(v, 4) for k, v in m.items()})


if __name__ == "__main__":
    main()
