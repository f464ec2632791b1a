"""Write a photo folder laid out as users keep theirs, from images3 (a stand-in, not a photo set).

N images3 pictures (a stratified random subset) saved as JPEGs of 96-128 px sides (upsampled
from 32 px: no detail is added) in ``train/``, ``validation/``, ``test/`` (70/15/15) class
folders, named ``IMG_00012.jpg``. The 20-minute `--budget` run and `bench/size_auto.sh` of the
closing notes used a folder made this way (3,801 images).

    python bench/photo_proxy.py DIR/images3/cifar10_dog_automobile_ship.npz OUT_DIR [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split


def main(npz: str, out: str, n: int = 3801) -> None:
    z = np.load(npz)
    images, labels = z["images"], z["labels"]
    names = [str(c) for c in z["class_names"]]
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels,
                               random_state=0)  # fmt: skip
    train, rest = train_test_split(keep, train_size=0.7, stratify=labels[keep], random_state=0)
    val, test = train_test_split(rest, train_size=0.5, stratify=labels[rest], random_state=0)
    rng = np.random.default_rng(0)
    for split, idx in (("train", train), ("validation", val), ("test", test)):
        for i in idx:
            folder = Path(out) / split / names[labels[i]].capitalize()
            folder.mkdir(parents=True, exist_ok=True)
            w, h = (int(v) for v in rng.integers(96, 129, 2))
            im = Image.fromarray(images[i]).resize((w, h), Image.Resampling.BICUBIC)
            im.save(folder / f"IMG_{i:05d}.jpg", quality=90)
    print(f"{out}: {len(train)} / {len(val)} / {len(test)} images")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
