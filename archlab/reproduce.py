"""`archlab reproduce`: every experiment of the study from presets, then one report.

Each experiment is a normal run dir (or an ablation dir of run dirs) under a fixed path, so an
interrupted reproduce resumes and skips finished runs. A part whose data is missing is skipped
with one line naming what was looked for; the rest still runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from archlab.ablate import run_ablation
from archlab.config import RunConfig, apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.runner import train_at
from archlab.utils import write_json_atomic, write_text_atomic

PROFILES = ("smoke", "quick", "full")
PARTS = {
    "images": "Parts I-II: VGG-13 and ResNet-18",
    "sales": "Part III: sales forecasting",
    "text": "Part IV: sentiment with LSTMs",
}


@dataclass(frozen=True)
class Experiment:
    """One row of the study: a preset trained over seeds, or an ablation over techniques."""

    part: str
    key: str  # folder name under <out>/<part>/
    title: str
    preset: str
    techniques: tuple[str, ...] = ()  # non-empty: an ablation of these techniques
    study: tuple[str, ...] = ()  # keys of archlab/data/study.yaml this row is compared with


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "images", "vgg13", "VGG-13 (tuned recipe)", "images-vgg13", study=("vgg13_accuracy",)
    ),
    Experiment(
        "images",
        "vgg13-ablation",
        "VGG-13 regularization ablation",
        "images-vgg13",
        techniques=("baseline", "dropout", "early_stop", "augment", "l2"),
    ),
    Experiment(
        "images",
        "resnet18",
        "ResNet-18 (tuned recipe)",
        "images-resnet18",
        study=("resnet18_accuracy",),
    ),
    Experiment(
        "images",
        "resnet18-ablation",
        "ResNet-18 regularization ablation",
        "images-resnet18",
        techniques=("baseline", "early_stop", "l2"),
    ),
    Experiment(
        "sales",
        "rnn-parity",
        "RNN, study parity (row per sample)",
        "sales-rnn-parity",
        study=("rnn_r2", "rnn_rmse"),
    ),
    Experiment("sales", "rnn", "RNN forecaster (time split)", "sales-rnn"),
    Experiment("sales", "lstm", "LSTM forecaster (time split)", "sales-lstm"),
    Experiment("sales", "gru", "GRU forecaster (time split)", "sales-gru"),
    Experiment(
        "sales",
        "rnn-ablation",
        "RNN variants: dropout, L2",
        "sales-rnn",
        techniques=("baseline", "dropout", "l2"),
    ),
    Experiment("text", "lstm-basic", "3-layer LSTM", "text-lstm-basic"),
    Experiment(
        "text", "bilstm", "2-layer BiLSTM (study settings)", "text-bilstm", study=("lstm_accuracy",)
    ),
    Experiment(
        "text",
        "bilstm-variants",
        "BiLSTM variants: dropout, learning rate",
        "text-bilstm",
        techniques=("baseline", "dropout", "lr"),
    ),
)

# Where each part's data lives inside --data-dir (first existing candidate wins).
DATA_PATHS: dict[str, tuple[str, ...]] = {
    "images": ("images3/cifar10_dog_automobile_ship.npz", "images3"),
    "sales": ("walmart",),
    "text": ("twitter_airline/Tweets.csv",),
}
# The quick profile (<= 60 min on 2 CPU cores): subsets and fewer epochs, stated in the report.
QUICK: dict[str, tuple[str, ...]] = {
    "images": ("data.subset=2000", "train.epochs=3"),
    "sales": ("train.epochs=2",),
    "text": ("train.epochs=4",),
}
SMOKE_TECHNIQUES = 2  # ablations in the smoke profile keep the first two techniques


def profile_config(preset: str, profile: str, data_path: str) -> RunConfig:
    """The preset as run under ``profile`` with its data path set."""
    if profile == "smoke":
        cfg = PRESETS[f"{preset}-smoke"]
    else:
        cfg = PRESETS[preset]
        if profile == "quick":
            cfg = apply_overrides(cfg, QUICK.get(cfg.task, ()))
    return replace(
        cfg, data=replace(cfg.data, path=data_path), train=replace(cfg.train, progress="plain")
    )


def find_data(data_dir: Path, part: str) -> Path | None:
    for rel in DATA_PATHS[part]:
        if (data_dir / rel).exists():
            return data_dir / rel
    return None


def run_experiment(exp: Experiment, cfg: RunConfig, seeds: int, out_dir: Path) -> dict[str, Any]:
    """Train one experiment (resumable); returns its manifest entry."""
    entry: dict[str, Any] = {
        "part": exp.part,
        "key": exp.key,
        "title": exp.title,
        "preset": exp.preset,
        "study": list(exp.study),
    }
    if exp.techniques:
        techs = list(exp.techniques)
        run_ablation(cfg, techs, seeds, out_dir)
        entry["kind"] = "ablation"
        entry["runs"] = {t: [f"{t}-s{cfg.seed + s}" for s in range(seeds)] for t in techs}
    else:
        entry["kind"] = "run"
        entry["runs"] = {"": [f"s{cfg.seed + s}" for s in range(seeds)]}
        for s in range(seeds):
            train_at(
                replace(cfg, seed=cfg.seed + s),
                out_dir / f"s{cfg.seed + s}",
                command=f"reproduce {exp.preset}",
            )
    return entry


def reproduce(
    data_dir: Path,
    profile: str,
    seeds: int,
    out: Path,
    *,
    experiments: tuple[Experiment, ...] = EXPERIMENTS,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> Path:
    """Run the study into ``out`` and build ``out/report``; returns the report directory."""
    from archlab.report.extras import eda_plots, model_summaries, theory_outputs
    from archlab.report.report import build_report

    if profile not in PROFILES:
        raise ArchlabError(f"--profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if seeds < 1:
        raise ArchlabError(f"--seeds {seeds}: must be >= 1")
    if not data_dir.is_dir():
        raise ArchlabError(f"{data_dir}: --data-dir is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "profile": profile,
        "seeds": seeds,
        "data_dir": str(data_dir),
        "experiments": [],
        "skipped": {},
        "eda": {},
    }
    for part in PARTS:
        path = find_data(data_dir, part)
        if path is None:
            looked = ", ".join(str(data_dir / r) for r in DATA_PATHS[part])
            msg = f"skipping {PARTS[part]}: no data found (looked for {looked})"
            log(msg)
            manifest["skipped"][part] = msg
            continue
        for exp in (e for e in experiments if e.part == part):
            cfg = profile_config(exp.preset, profile, str(path))
            if profile == "smoke" and exp.techniques:
                exp = replace(exp, techniques=exp.techniques[:SMOKE_TECHNIQUES])
            log(f"[{part}] {exp.title} ({exp.preset}, profile {profile})")
            manifest["experiments"].append(run_experiment(exp, cfg, seeds, out / part / exp.key))
        manifest["eda"][part] = [
            str(p.relative_to(out)) for p in eda_plots(part, path, out / "eda" / part)
        ]
    manifest["theory"] = theory_outputs(out / "theory")
    manifest["summaries"] = model_summaries(out / "summaries")
    write_json_atomic(out / "manifest.json", manifest)
    write_text_atomic(
        out / "command.txt",
        f"reproduce --data-dir {data_dir} --profile {profile} --seeds {seeds}\n",
    )
    return build_report(out)
