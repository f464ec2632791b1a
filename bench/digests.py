"""Behaviour digests: a fixed set of smoke runs (one per task and framing) on CPU at 1 thread.

For a refactor that must not change behaviour: run it before and after and diff the output.
Per run it prints short sha256 digests of metrics.json without timing keys, of the weights
(name-sorted tensors), of split.json and of history.csv without its seconds column.

Usage: python bench/digests.py [DATA_DIR] [OUT_DIR]   (defaults ../shared/data, a temp dir)
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.numpy import load_file

GLOVE = "glove/glove.6B.50d.top100k.txt.gz"
IMAGES = "images3/cifar10_dog_automobile_ship.npz"
TWEETS = "twitter_airline/Tweets.csv"
RUNS = {  # preset -> (data under DATA_DIR, extra --set values)
    "images-resnet18-smoke": (IMAGES, ()),
    "images-vgg13-study-smoke": (IMAGES, ()),
    "sales-gru-smoke": ("walmart", ()),
    "sales-rnn-parity-smoke": ("walmart", ()),
    "sales-rnn-h39-smoke": ("walmart", ()),
    "text-bilstm-smoke": (TWEETS, ()),
    "text-bilstm-glove-distill-smoke": (TWEETS, ("data.embeddings={data}/" + GLOVE,)),
}


def short(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def digest(run: Path) -> str:
    """The four digests of a finished run directory, and its main test metric."""
    m = json.loads((run / "metrics.json").read_text())
    m = {k: v for k, v in m.items() if "seconds" not in k}  # wall-clock timings differ
    weights = load_file(str(run / "model.safetensors"))
    w = hashlib.sha256()
    for k in sorted(weights):
        w.update(k.encode())
        w.update(weights[k].tobytes())
    rows = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    drop = {i for i, h in enumerate(rows[0]) if "seconds" in h}
    rows = [[c for i, c in enumerate(r) if i not in drop] for r in rows]
    return (
        f"metrics {short(json.dumps(m, sort_keys=True).encode())} weights {w.hexdigest()[:16]} "
        f"split {short((run / 'split.json').read_bytes())} "
        f"history {short(json.dumps(rows).encode())} "
        f"key {m.get('test_wmae', m.get('test_accuracy'))}"
    )


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="digests-"))
    for preset, (path, sets) in RUNS.items():
        flags = ["--set", "train.threads=1", "--set", "train.progress=off"]
        for s in sets:
            flags += ["--set", s.format(data=data)]
        cmd = [sys.executable, "-m", "archlab", "train", "--preset", preset, "--data",
               str(data / path), "--seed", "0", "--out", str(out / preset), *flags]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print(f"{preset:34s} FAILED: {r.stderr.strip().splitlines()[-1]}", flush=True)
            continue
        print(f"{preset:34s} {digest(Path(r.stdout.strip().splitlines()[-1]))}", flush=True)


if __name__ == "__main__":
    main()
