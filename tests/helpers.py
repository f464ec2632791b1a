"""Builders the test modules share: tiny data sets written to disk (sales panels, tweets,
vectors), small configs and runs, a toy trainer task, and the report's Chromium checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archlab.cli import main
from archlab.config import OptimConfig, RegConfig, RunConfig, TrainConfig, apply_overrides
from archlab.presets import PRESETS
from archlab.task_configs import TextDataConfig
from archlab.train.callbacks import Callback
from archlab.train.protocol import Batches, Splits
from archlab.train.trainer import Trainer

N_WEEKS = 70


def write_panel(
    root: Path, stores: int = 2, depts: int = 3, weeks: int = N_WEEKS, seed: int = 0
) -> Path:
    """A tiny Walmart-shaped panel: seasonal sales, NA markdowns, CR-only stores.csv, a gap."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    dates = pd.date_range("2010-02-05", periods=weeks, freq="7D")
    hol = dates.isin(pd.to_datetime(["2010-11-26", "2010-12-31", "2011-02-11"]))
    rows = []
    for s in range(1, stores + 1):
        for d in range(1, depts + 1):
            level = 1000.0 * s * d
            for i, dt in enumerate(dates):
                if (s, d) == (1, 2) and i == 10:
                    continue  # a missing week
                y = level * (1 + 0.3 * np.sin(2 * np.pi * i / 52)) + rng.normal(0, 50)
                rows.append((s, d, dt.strftime("%Y-%m-%d"), round(y, 2), bool(hol[i])))
    train = pd.DataFrame(rows, columns=["Store", "Dept", "Date", "Weekly_Sales", "IsHoliday"])
    train.to_csv(root / "train.csv", index=False)
    feats = []
    for s in range(1, stores + 1):
        for i, dt in enumerate(dates):
            md = "NA" if i < 30 else f"{rng.uniform(0, 100):.2f}"
            cpi = "NA" if i in (5, 6) else f"{210 + i * 0.1:.3f}"
            feats.append(
                f"{s},{dt:%Y-%m-%d},{50 + i % 30},{2.5 + i * 0.01:.3f},{md},NA,{md},NA,{md},"
                f"{cpi},8.1,{'TRUE' if hol[i] else 'FALSE'}"
            )
    header = (
        "Store,Date,Temperature,Fuel_Price,MarkDown1,MarkDown2,MarkDown3,MarkDown4,MarkDown5,"
        "CPI,Unemployment,IsHoliday"
    )
    (root / "features.csv").write_text("\n".join([header, *feats]) + "\n")
    types = "ABC"
    lines = ["Store,Type,Size", *(f"{s},{types[s % 3]},{100000 + s}" for s in range(1, stores + 1))]
    (root / "stores.csv").write_bytes("\r".join(lines).encode())  # CR-only, as the real file
    return root


# --- end to end ---
def sales_smoke(root: Path, preset: str = "sales-rnn-smoke", *sets: str):
    cfg = apply_overrides(
        PRESETS[preset], [f"data.path={root}", "data.test_steps=8", "data.val_steps=4", *sets]
    )
    return cfg


def write_daily_panel(path: Path, stores: int = 3, days: int = 120) -> Path:
    """A daily store panel as Kaggle's Favorita transactions.csv, with day-first dates."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2016-01-01", periods=days, freq="D")
    rows = [
        (f"{d:%d/%m/%Y}", s, round(900 + 100 * s + 300 * (d.day_of_week >= 5) + rng.normal(0, 20)))
        for s in range(1, stores + 1)
        for d in dates
    ]
    pd.DataFrame(rows, columns=["date", "store_nbr", "transactions"]).to_csv(path, index=False)
    return path


WORDS = {
    "negative": ["delayed", "lost", "rude", "worst", "cancelled", "awful"],
    "neutral": ["when", "which", "gate", "tomorrow", "schedule", "question"],
    "positive": ["thanks", "great", "love", "awesome", "best", "kind"],
}


def write_tweets(path: Path, n_per_class: int = 30, seed: int = 0) -> Path:
    """A small airline-like CSV with duplicates, a conflicting repeat and a quoted newline."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, words in WORDS.items():
        for i in range(n_per_class):
            w = rng.choice(words, size=3)
            text = f"@united {w[0]} flight {i} {w[1]} {w[2]} http://t.co/x{i}"
            reason = "Late Flight" if label == "negative" else ""
            rows.append({"text": text, "airline_sentiment": label, "airline": "United",
                         "negativereason": reason})  # fmt: skip
    rows.append(dict(rows[0]))  # exact duplicate row
    rows.append({**rows[1], "text": rows[1]["text"].replace("x1", "other")})  # same after cleaning
    rows.append({**rows[2], "airline_sentiment": "neutral"})  # conflicting repeat, a tie: dropped
    rows.append({"text": "line one\nline two :) great", "airline_sentiment": "positive",
                 "airline": "Delta", "negativereason": ""})  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def text_cfg(path: Path, *sets: str) -> RunConfig:
    cfg = replace(PRESETS["text-bilstm-smoke"], data=TextDataConfig(path=str(path)))
    return apply_overrides(cfg, list(sets))


UNSEEN = "superb"  # has a vector in the files below, never appears in the tweets


def write_vectors(
    path: Path, dim: int = 6, header: bool = False, trailing: str = "", seed: int = 0
) -> dict[str, np.ndarray]:
    """A tiny vectors file: the tweets' words, 'flight', the unseen word, and a few others."""
    rng = np.random.default_rng(seed)
    words = [w for ws in WORDS.values() for w in ws] + ["flight", "the", UNSEEN, "zebra"]
    vecs = {w: rng.normal(0, 0.5, dim).round(4).astype(np.float32) for w in words}
    lines = [f"{w} " + " ".join(f"{v:.4f}" for v in vec) + trailing for w, vec in vecs.items()]
    text = "\n".join(([f"{len(vecs)} {dim}"] if header else []) + lines) + "\n"
    if path.suffix == ".gz":
        import gzip

        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return vecs


QUIET = ["--set", "train.threads=1", "--set", "train.progress=off"]


def train_cli(out: Path, *args: str) -> Path:
    """A tiny run trained by the CLI; its directory."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["train", *args, *QUIET, "--out", str(out)]) == 0
    return Path(buf.getvalue().strip().splitlines()[-1])


def tiny_runs(root: Path) -> dict[str, Path]:
    """One finished run of each exported kind, on data the tests write."""
    from tests.conftest import write_image_folder

    imgs = write_image_folder(root / "imgs", {"cat": 20, "dog": 20, "eel": 20})
    tweets = write_tweets(root / "tweets.csv")
    panel = write_panel(root / "walmart")
    sales = ["--preset", "sales-gru-smoke", "--data", str(panel), "--set", "data.val_steps=4"]
    return {
        "images": train_cli(
            root / "runs", "--preset", "images-resnet18-smoke", "--data", str(imgs)
        ),
        "text": train_cli(root / "runs", "--preset", "text-bilstm-smoke", "--data", str(tweets)),
        "sales": train_cli(root / "runs", *sales, "--set", "data.test_steps=8"),
        "horizon": train_cli(root / "runs", *sales, "--set", "data.horizon=8", "--set",
                         "data.window=4"),
    }  # fmt: skip


class ToyTask:
    """Linear classification on fixed random data; ``flip_val`` makes val labels adversarial."""

    name = "toy"
    monitor = ("val_loss", "min")

    def __init__(self, n: int = 64, flip_val: bool = False, nan_after_steps: int = 0) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 5, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.flip_val = flip_val
        self.nan_after_steps = nan_after_steps
        self.steps = 0

    def build_data(self, device: torch.device) -> Splits:
        yv = 1 - self.y if self.flip_val else self.y

        def fetch(y: torch.Tensor):
            return lambda i, g: (self.x[i], y[i])

        n = len(self.y)
        return Splits(Batches(n, fetch(self.y)), Batches(n, fetch(yv)), Batches(n, fetch(self.y)))

    def build_model(self) -> nn.Module:
        torch.manual_seed(0)
        return nn.Linear(5, 2)

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if model.training:
            self.steps += 1
        return model(x), y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(outputs, targets)
        if self.nan_after_steps and self.steps > self.nan_after_steps:
            loss = loss * float("nan")
        return loss

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        return {"accuracy": float((outputs.argmax(1) == targets).float().mean())}


def toy_trainer(epochs: int, lr: float, callbacks: list[Callback] = (), **train: Any) -> Trainer:
    return Trainer(
        TrainConfig(**{"epochs": epochs, "batch_size": 16, "progress": "off", **train}),
        OptimConfig(name="adam", lr=lr),
        RegConfig(),
        seed=0,
        device=torch.device("cpu"),
        callbacks=list(callbacks),
    )


WIDTHS = (1400, 800, 390)


def chromium() -> str:
    """The chromium binary; skips (fails under CI, which installs it) when it is absent."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (CI installs it: apt-get install chromium)")
    return found


# Runs inside the harness: per iframe width, what a reader would hit.
PROBE = """
function probe(f){var d=f.contentDocument,w=d.defaultView,main=d.querySelector('main');
var imgs=[].slice.call(d.images),li=[].slice.call(d.querySelectorAll('li'));
var wide=[].slice.call(d.querySelectorAll('.scroll')).filter(function(s){
  return s.scrollWidth>s.clientWidth+1}).map(function(s){return s.innerText.slice(0,60)});
var text=d.body.innerText,first=d.querySelector('table tbody');
return {width:w.innerWidth,page:d.documentElement.scrollWidth,main:main.scrollWidth,
  mainClient:main.clientWidth,wideTables:wide,images:imgs.length,
  loaded:imgs.filter(function(i){return i.complete&&i.naturalWidth>0}).length,
  rows:first?first.rows.length:0,
  math:d.querySelectorAll('math').length,rawMath:(text.match(/\\$\\$/g)||[]).length,
  latex:(text.match(/\\\\(frac|begin|delta|sum)/g)||[]).length,
  backtickItems:li.filter(function(l){return l.innerText.indexOf('`')>=0}).length};}
var frames=[].slice.call(document.querySelectorAll('iframe')),done=0,out={};
frames.forEach(function(f){f.onload=function(){out[f.width]=probe(f);
  if(++done==frames.length)document.body.setAttribute('data-result',JSON.stringify(out));};
  f.src='index.html';});
"""


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=15000",
]


def read_in_chromium(report: Path, profile: Path) -> tuple[dict[int, dict], str]:
    """Load ``report/index.html`` at each of WIDTHS; return the probe per width and the log."""
    harness = report / "harness.html"
    frames = "".join(f"<iframe width={w} height=900></iframe>" for w in WIDTHS)
    harness.write_text(f"<!doctype html><body>{frames}<script>{PROBE}</script></body>")
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--window-size=2400,1000",
           "--dump-dom", harness.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert 'data-result="' in dom.stdout, dom.stderr[-2000:]
    raw = dom.stdout.split('data-result="', 1)[1].split('"', 1)[0].replace("&quot;", '"')
    return {int(k): v for k, v in json.loads(raw).items()}, dom.stderr


def screenshot(report: Path, width: int, shot: Path, profile: Path) -> None:
    """What a person looks at: the top 3000 px of the report at ``width``."""
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},3000",
           f"--screenshot={shot}", (report / "index.html").as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (width, 3000)


def assert_readable(result: dict[int, dict]) -> None:
    """No sideways scroll of the page or the main column at any width, nor of any table from
    800 px up (on a phone a wide table scrolls in its own box); every image loaded."""
    for width in WIDTHS:
        r = result[width]
        assert r["page"] <= r["width"], r  # no horizontal scroll of the page
        assert r["main"] <= r["mainClient"], r  # nothing sticks out of the main column
        if width >= 800:
            assert r["wideTables"] == [], r  # every table fits: baselines, epochs_run visible
        assert r["images"] > 3 and r["loaded"] == r["images"], r
        assert r["rawMath"] == 0 and r["latex"] == 0 and r["backtickItems"] == 0, r
