"""`archlab reproduce`: every experiment of the study from presets, then one report.

Each experiment is a normal run dir (or an ablation dir of run dirs) under a fixed path, so an
interrupted reproduce resumes and skips finished runs. A part whose data is missing is skipped
with one line naming what was looked for; the rest still runs. ``run_study`` takes each part's
data path and --set overrides, so `archlab demo` builds the same report from other data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from archlab import rundir
from archlab.ablate import committed_cells, run_ablation
from archlab.config import RunConfig, apply_overrides, labelled, task_defaults
from archlab.errors import ArchlabError
from archlab.presets import LONG, PRESETS, PROFILE_SETTINGS, QUICK
from archlab.runner import train_at
from archlab.utils import write_json_atomic, write_text_atomic

PROFILES = ("smoke", "quick", "full", "long")
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
    overrides: tuple[str, ...] = ()  # --set overrides on top of the preset and profile
    vectors: bool = False  # needs pretrained word vectors (found under <data-dir>/glove/)


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
    # Each row with pretrained vectors follows the same model without them.
    Experiment("text", "lstm-basic", "3-layer LSTM", "text-lstm-basic"),
    Experiment(
        "text",
        "lstm-basic-glove",
        "3-layer LSTM + GloVe vectors",
        "text-lstm-basic-glove",
        vectors=True,
    ),
    Experiment(
        "text", "bilstm", "2-layer BiLSTM (study settings)", "text-bilstm", study=("lstm_accuracy",)
    ),
    Experiment(
        "text", "bilstm-glove", "2-layer BiLSTM + GloVe vectors", "text-bilstm-glove", vectors=True
    ),
    Experiment(
        "text",
        "bilstm-glove-distill",
        "2-layer BiLSTM + GloVe, distilled from TF-IDF",
        "text-bilstm-glove-distill",
        vectors=True,
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
# Pretrained word vectors for the text rows that use them: the first such file in <data-dir>/glove/.
VECTORS_DIR = "glove"
VECTOR_FILES = ("*.txt.gz", "*.txt", "*.vec.gz", "*.vec")
ENSEMBLE_FILE = "ensemble.json"  # the seeds' averaged prediction (experiments sharing a split)
SMOKE_TECHNIQUES = 2  # ablations in the smoke profile keep the first two techniques


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def profile_config(
    preset: str, profile: str, data_path: str, overrides: tuple[str, ...] = ()
) -> RunConfig:
    """The preset as run under ``profile`` with its data path set, then ``overrides``.

    Profiles other than smoke and quick (full, long, demo) run the preset as it is (settings
    per experiment, such as the ablations' epochs in full and long: ``experiment_config``).
    """
    name = f"{preset}-smoke" if profile == "smoke" else preset
    cfg = labelled(PRESETS[name], task_defaults(PRESETS[name].task), f"preset {name}")
    if profile == "quick":
        cfg = apply_overrides(cfg, QUICK.get(cfg.task, ()), "reproduce: the quick profile")
    cfg = apply_overrides(cfg, [f"data.path={data_path}"], "reproduce: --data")
    return apply_overrides(cfg, overrides, "--set")


def profile_note(profile: str) -> str:
    """What ``profile`` changes in the presets, in a sentence for the report ("" for full)."""
    if profile == "smoke":
        return "Smoke profile: tiny slices, 2 epochs of 3 steps; numbers are not results."
    if profile == "quick":
        return "Quick profile: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in QUICK.items())
    if profile == "long":
        return ("Long profile (the full one, with the tuned image recipes trained longer): "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in LONG.items()))  # fmt: skip
    return ""


def experiment_config(
    exp: Experiment, profile: str, data_path: str, part_sets: tuple[str, ...] = ()
) -> RunConfig:
    """``exp``'s config under ``profile``: the profile's settings for this experiment (e.g. the
    ablations' epochs), then the part's --set overrides, then the experiment's own."""
    own = PROFILE_SETTINGS.get(profile, {}).get(f"{exp.part}/{exp.key}", ())
    return profile_config(exp.preset, profile, data_path, (*own, *part_sets, *exp.overrides))


def eda_plots(
    part: str, data_path: Path, out_dir: Path, overrides: tuple[str, ...] = ()
) -> list[Path]:
    """The task's exploratory plots for ``data_path`` (none for images); ``overrides`` are
    --set strings such as the column names of the panel."""
    from archlab.config import RunConfig, apply_overrides
    from archlab.task_configs import TASK_CONFIGS
    from archlab.tasks import TASKS

    spec = TASKS.get(part)
    if spec is None or spec.eda is None:
        return []
    configs = TASK_CONFIGS[part]
    cfg = RunConfig(
        task=part, data=configs.data_config(path=str(data_path)), model=configs.model_config()
    )
    cfg = apply_overrides(cfg, overrides)
    try:
        return list(spec.eda(cfg, out_dir))
    except ArchlabError as e:
        print(f"archlab: EDA for {part} skipped: {e}", file=sys.stderr)
        return []


def find_data(data_dir: Path, part: str) -> Path | None:
    """A part's data under ``data_dir``: the first of DATA_PATHS that exists; for images, a
    folder holding one .npz (another name than the study's file) is that file."""
    for rel in DATA_PATHS[part]:
        found = data_dir / rel
        if found.is_dir() and len(npz := sorted(found.glob("*.npz"))) == 1:
            return npz[0]  # not read as class folders (it said "no class sub-folders found")
        if found.exists():
            return found
    return None


def find_vectors(data_dir: Path) -> Path | None:
    folder = data_dir / VECTORS_DIR
    found = sorted(p for pat in VECTOR_FILES for p in folder.glob(pat)) if folder.is_dir() else []
    return found[0] if found else None


def run_experiment(
    exp: Experiment, cfg: RunConfig, seeds: int, out_dir: Path, cells: Path | None = None
) -> dict[str, Any]:
    """Train one experiment (resumable); returns its manifest entry. An ablation takes the
    cells found in ``cells/<model>/`` for its exact config and data instead of training them."""
    entry: dict[str, Any] = {
        "part": exp.part,
        "key": exp.key,
        "title": exp.title,
        "preset": exp.preset,
        "study": list(exp.study),
    }
    if exp.techniques:
        techs = list(exp.techniques)
        found = None if cells is None else cells / cfg.model.name
        run_ablation(cfg, techs, seeds, out_dir, cells_from=found)
        used = committed_cells(out_dir)
        entry["kind"] = "ablation"
        if used:
            entry["committed_cells"] = used
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
        entry["ensemble"] = seed_ensemble([out_dir / r for r in entry["runs"][""]], out_dir)
    return entry


def seed_ensemble(run_dirs: list[Path], out_dir: Path) -> str:
    """Average the seeds' test predictions into ``out_dir/ensemble.json`` when they share a
    test split (sales: the time split; images and text draw a split per seed, so they do not).
    Returns the file name, or "" when there is nothing to average."""
    from archlab.ensemble import evaluate_ensemble

    if len(run_dirs) < 2:
        return ""
    tests = [json.loads((d / rundir.SPLIT).read_text()).get("test") for d in run_dirs]
    if any(t != tests[0] for t in tests):
        return ""
    write_json_atomic(out_dir / ENSEMBLE_FILE, evaluate_ensemble(run_dirs))
    return ENSEMBLE_FILE


def reproduce(
    data_dir: Path,
    profile: str,
    seeds: int,
    out: Path,
    *,
    experiments: tuple[Experiment, ...] = EXPERIMENTS,
    parts: tuple[str, ...] = tuple(PARTS),
    log: Callable[[str], None] = to_stderr,
    cells: Path | None = None,
) -> Path:
    """Run the study on the data found under ``data_dir`` (see ``DATA_PATHS``) into ``out``.

    ``parts`` limits it to some of images/sales/text (e.g. to time one part).
    """
    if profile not in PROFILES:
        raise ArchlabError(f"--profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if not data_dir.is_dir():
        raise ArchlabError(f"{data_dir}: --data-dir is not a directory")
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ArchlabError(f"--parts {','.join(parts)}: choose from {', '.join(PARTS)}")
    paths: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for part in PARTS:
        if part not in parts:
            skipped[part] = f"skipping {PARTS[part]}: not in --parts"
            continue
        path = find_data(data_dir, part)
        if path is None:
            looked = ", ".join(str(data_dir / r) for r in DATA_PATHS[part])
            skipped[part] = f"skipping {PARTS[part]}: no data found (looked for {looked})"
        else:
            paths[part] = str(path)
    vectors = find_vectors(data_dir)
    return run_study(
        paths,
        profile,
        seeds,
        out,
        experiments=experiments,
        skipped=skipped,
        manifest_extra={"data_dir": str(data_dir)},
        vectors=str(vectors or ""),
        vectors_looked=", ".join(str(data_dir / VECTORS_DIR / p) for p in VECTOR_FILES),
        cells=cells,
        command=f"reproduce --data-dir {data_dir} --profile {profile} --seeds {seeds}"
        + ("" if set(parts) == set(PARTS) else f" --parts {','.join(parts)}"),
        log=log,
        keep=tuple(p for p in PARTS if p not in parts),
    )


def _image_shape(out: Path, manifest: dict[str, Any]) -> tuple[str, int] | None:
    """Input shape and class count of the first image run (model summaries use them)."""
    from archlab.report.extras import image_run_shape

    for exp in manifest["experiments"]:
        if exp["part"] == "images":
            runs = next(iter(exp["runs"].values()), [])
            if runs:
                return image_run_shape(out / exp["part"] / exp["key"] / runs[0])
    return None


def _run_part(
    part: str,
    path: str,
    part_sets: tuple[str, ...],
    experiments: tuple[Experiment, ...],
    profile: str,
    seeds: int,
    out: Path,
    *,
    cells: Path | None,
    vectors: str,
    vectors_looked: str,
    log: Callable[[str], None],
    skipped: dict[str, str],
) -> list[dict[str, Any]]:
    """Run one part's experiments; returns their manifest entries. An experiment whose data
    cannot be read (or that fails on them: any ArchlabError) is skipped with one line, kept in
    ``skipped`` under "part/key" for the report, and the others still run."""
    entries: list[dict[str, Any]] = []
    errors: dict[str, str] = {}  # experiment key -> why it was skipped
    for exp in (e for e in experiments if e.part == part):
        if exp.vectors and not vectors:
            line = (f"skipping {exp.title}: no word vectors found"
                    + (f" (looked for {vectors_looked})" if vectors_looked else ""))  # fmt: skip
            log(line)
            skipped[f"{part}/{exp.key}"] = line  # in the report too, not only on stderr
            continue
        if exp.vectors:
            exp = replace(exp, overrides=(*exp.overrides, f"data.embeddings={vectors}"))
        left_out = exp.techniques[SMOKE_TECHNIQUES:] if profile == "smoke" else ()
        if left_out:
            exp = replace(exp, techniques=exp.techniques[:SMOKE_TECHNIQUES])
        log(f"[{part}] {exp.title} ({exp.preset}, profile {profile})")
        try:
            cfg = experiment_config(exp, profile, path, part_sets)
            entry = run_experiment(exp, cfg, seeds, out / part / exp.key, cells)
        except ArchlabError as e:
            errors[exp.key] = f"{e}{_missing_tables(part, path, str(e))}"
            log(f"skipping [{part}] {exp.title}: {errors[exp.key]}")
            skipped[f"{part}/{exp.key}"] = f"skipping {exp.title}: {errors[exp.key]}"
            continue
        if left_out:  # the title names them: the report says why their rows are missing
            entry["left_out"] = list(left_out)
        if entry.get("committed_cells"):
            log(f"  {len(entry['committed_cells'])} cell(s) read from {cells}, not trained")
        entries.append(entry)
    if not entries and len(set(errors.values())) == 1:  # the part's data: one line in the report
        for key in errors:
            del skipped[f"{part}/{key}"]
        skipped[part] = f"skipping {PARTS[part]}: {next(iter(errors.values()))}"
    return entries


# Tables beside the sales panel in Walmart's layout that some experiments need (the study
# parity's one-hot store Type comes from stores.csv): named when an experiment fails.
SALES_TABLES = ("stores.csv", "features.csv")


def _earlier(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest an earlier run of this study left in ``out`` ({} where there is none, or
    it was another profile, seed count or data folder: its runs would not compare)."""
    try:
        earlier = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    same = ("profile", "seeds", "data_dir")
    if not isinstance(earlier, dict) or any(earlier.get(k) != manifest[k] for k in same):
        return {}
    return earlier


def _missing_tables(part: str, path: str, error: str) -> str:
    """Which of Walmart's optional tables a sales folder lacks, when a column is missing."""
    folder = Path(path)
    if part != "sales" or "column" not in error or not folder.is_dir():
        return ""
    missing = [t for t in SALES_TABLES
               if not (folder / t).exists() and not (folder / f"{t}.gz").exists()]  # fmt: skip
    return f" ({folder} has no {' or '.join(missing)})" if missing else ""


def run_study(
    paths: dict[str, str],
    profile: str,
    seeds: int,
    out: Path,
    *,
    experiments: tuple[Experiment, ...] = EXPERIMENTS,
    overrides: dict[str, tuple[str, ...]] | None = None,
    skipped: dict[str, str] | None = None,
    manifest_extra: dict[str, Any] | None = None,
    command: str = "",
    log: Callable[[str], None] = to_stderr,
    vectors: str = "",
    vectors_looked: str = "",
    cells: Path | None = None,
    keep: tuple[str, ...] = (),
) -> Path:
    """Run ``experiments`` into ``out`` and build ``out/report``; returns the report directory.

    ``keep``: parts not run now (not in --parts) whose experiments an earlier run of the same
    study (profile, seeds, data) left in ``out``: the report keeps them. A run in which no
    experiment ran leaves an earlier report as it was (an error, exit 2).

    ``cells``: a folder of committed ablation cells (``<model>/<technique>-s<seed>/``, e.g.
    bench/results/ablation_cpu) used instead of training the cells they match exactly.

    Experiments that need word vectors get ``data.embeddings=vectors``, or are skipped with one
    line (naming ``vectors_looked``) when ``vectors`` is "".

    ``paths`` gives each part's data path ("" is the task's default, e.g. the bundled digits);
    ``overrides`` adds --set overrides per part (column names of another panel...); parts in
    ``skipped`` are logged with their one line and appear in the report as skipped.
    ``manifest_extra`` adds report fields (title, data, differences, profile_note, data_dir).
    """
    from archlab.report.extras import model_summaries, theory_outputs
    from archlab.report.report import build_report

    if seeds < 1:
        raise ArchlabError(f"--seeds {seeds}: must be >= 1")
    overrides, skipped = overrides or {}, skipped or {}
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "profile": profile,
        "profile_note": profile_note(profile),
        "seeds": seeds,
        "data_dir": "",
        "experiments": [],
        "skipped": {},
        "eda": {},
        **(manifest_extra or {}),
    }
    earlier = _earlier(out, manifest)
    for part in PARTS:
        kept = [e for e in earlier.get("experiments", [])
                if e.get("part") == part and (out / part / str(e.get("key"))).is_dir()]  # fmt: skip
        if part in keep and kept:
            log(f"keeping {PARTS[part]} from the earlier report in {out} (not in --parts)")
            manifest["experiments"] += kept
            manifest["eda"][part] = earlier.get("eda", {}).get(part, [])
            continue
        if part in skipped:
            log(skipped[part])
            manifest["skipped"][part] = skipped[part]
            continue
        if part not in paths:
            continue
        path, part_sets = paths[part], overrides.get(part, ())
        manifest["experiments"] += _run_part(
            part, path, part_sets, experiments, profile, seeds, out,
            cells=cells, vectors=vectors, vectors_looked=vectors_looked, log=log,
            skipped=manifest["skipped"],
        )  # fmt: skip
        manifest["eda"][part] = [
            str(p.relative_to(out))
            for p in eda_plots(part, Path(path), out / "eda" / part, part_sets)
        ]
    if (out / "manifest.json").exists() and not manifest["experiments"]:
        raise ArchlabError(f"{out}: no experiment ran (the lines above say why); the report "
                           "there is left as it was")  # fmt: skip
    from archlab.explain import explain_study

    explain_study(out, manifest["experiments"], profile, log)  # into each RUN_DIR/explain/
    manifest["theory"] = theory_outputs(out / "theory")
    manifest["summaries"] = model_summaries(out / "summaries", _image_shape(out, manifest))
    write_json_atomic(out / "manifest.json", manifest)
    write_text_atomic(out / rundir.COMMAND, command + "\n")
    return build_report(out)
