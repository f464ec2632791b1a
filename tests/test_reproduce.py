"""`archlab reproduce`: smoke profile end to end, missing parts skipped, report rendered."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA_DIR, write_npz

from archlab.errors import ArchlabError
from archlab.reproduce import EXPERIMENTS, reproduce

SECTIONS = (
    "## Summary",
    "## What differs from the study",
    "## Parts I–II",
    "## Part III",
    "## Part IV",
    "## Model summaries",
    "## Part V: theory",
)


SMALL = tuple(e for e in EXPERIMENTS if e.key in ("resnet18", "resnet18-ablation"))


@pytest.fixture(scope="module")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reproduce one image experiment on a tiny npz; sales and text data are absent."""
    root = tmp_path_factory.mktemp("repro")
    data = root / "data"
    (data / "images3").mkdir(parents=True)
    write_npz(data / "images3" / "cifar10_dog_automobile_ship.npz", n_per_class=20, size=32)
    lines: list[str] = []
    reproduce(data, "smoke", 1, root / "out", experiments=SMALL, log=lines.append)
    (root / "log.txt").write_text("\n".join(lines))
    return root


@pytest.mark.xdist_group("small-study")  # one worker builds it
def test_missing_parts_are_skipped_with_one_line(small_study: Path) -> None:
    log = (small_study / "log.txt").read_text()
    assert "skipping Part III: sales forecasting: no data found (looked for" in log
    assert "twitter_airline/Tweets.csv" in log
    md = (small_study / "out" / "report" / "report.md").read_text()
    assert "ResNet-18 (tuned recipe)" in md and "| baseline | 1 |" in md
    assert "The smoke profile runs the first 2 techniques only: l2 left out." in md
    assert "passed" in md and "FAILED" not in md  # theory checks ran and passed
    # a tiny npz under the stand-in's file name is not the stand-in (its hash differs)
    assert "CIFAR" not in md and "18,000" not in md
    assert "60 images, split 42/9/9 (train/validation/test)" in md


@pytest.mark.xdist_group("small-study")  # one worker builds it
def test_rerun_skips_finished_runs(small_study: Path) -> None:
    out = small_study / "out"
    metrics = out / "images" / "resnet18" / "s0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    reproduce(small_study / "data", "smoke", 1, out, experiments=SMALL, log=lambda s: None)
    assert metrics.stat().st_mtime_ns == before


@pytest.mark.xdist_group("small-study")  # one worker builds it
def test_report_renders_in_headless_chromium(small_study: Path) -> None:
    from tests.helpers import WIDTHS, assert_readable, read_in_chromium, screenshot

    report = small_study / "out" / "report"
    result, log = read_in_chromium(report, small_study / "chrome-profile")
    assert_readable(result)  # at every width of WIDTHS, ablation table included
    assert all(result[w]["rows"] == 2 for w in WIDTHS)  # one summary row per experiment
    errors = [ln for ln in log.splitlines() if "CONSOLE" in ln and "index.html" in ln]
    assert errors == []
    screenshot(report, 412, report / "screenshot.png", small_study / "chrome-profile")


# Per part a plain run, and an ablation or a run with vectors: the study's layout of the real
# data end to end. Every experiment's preset also runs on it in tests/test_presets.py.
REAL = tuple(e for e in EXPERIMENTS if e.key in ("resnet18", "resnet18-ablation", "rnn-parity",
                                                 "rnn", "bilstm", "bilstm-glove"))  # fmt: skip


@pytest.mark.skipif(not DATA_DIR.exists(), reason=f"shared data not found at {DATA_DIR}")
def test_smoke_profile_on_the_shared_data(tmp_path: Path) -> None:
    report = reproduce(DATA_DIR, "smoke", 1, tmp_path / "out", experiments=REAL, log=lambda s: None)
    md = (report / "report.md").read_text()
    for section in SECTIONS:
        assert section in md, section
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped"] == {}
    assert [e["key"] for e in manifest["experiments"]] == [e.key for e in REAL]
    assert len(manifest["eda"]["sales"]) == 5 and manifest["eda"]["text"]


def test_an_experiment_whose_data_lack_a_table_is_skipped_and_the_rest_runs(
    tmp_path: Path,
) -> None:
    from tests.helpers import write_panel

    data = tmp_path / "data"
    write_panel(data / "walmart", weeks=143)
    (data / "walmart" / "stores.csv").unlink()  # the study parity's store Type comes from it
    exps = tuple(e for e in EXPERIMENTS if e.key in ("rnn-parity", "rnn"))
    lines: list[str] = []
    out = tmp_path / "out"
    report = reproduce(data, "smoke", 1, out, experiments=exps, parts=("sales",),
                       log=lines.append)  # fmt: skip
    skip = [ln for ln in lines if ln.startswith("skipping [sales]")]
    assert len(skip) == 1 and "RNN, study parity" in skip[0], lines
    assert "['Type'] not found" in skip[0] and "has no stores.csv" in skip[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["key"] for e in manifest["experiments"]] == ["rnn"]  # the forecaster still ran
    assert list(manifest["skipped"]) == ["images", "sales/rnn-parity", "text"]
    md = (report / "report.md").read_text()
    part = md.split("## Part III", 1)[1]
    assert "skipping RNN, study parity (row per sample):" in part and "### RNN forecaster" in part
    assert "CIFAR" not in md  # no image runs: nothing said about images


def test_a_part_whose_data_cannot_be_read_is_one_line_and_the_report_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "data" / "walmart").mkdir(parents=True)
    (tmp_path / "data" / "walmart" / "train.csv").write_text("a,b\n1,2\n")
    exps = tuple(e for e in EXPERIMENTS if e.key in ("rnn-parity", "rnn"))
    out = tmp_path / "out"
    report = reproduce(tmp_path / "data", "smoke", 1, out, experiments=exps, parts=("sales",),
                       log=lambda s: None)  # fmt: skip
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert skipped["sales"].startswith("skipping Part III: sales forecasting: ")
    assert "missing column(s)" in skipped["sales"] and "sales/rnn" not in skipped
    assert skipped["sales"] in (report / "report.md").read_text()


def test_every_experiment_names_an_existing_preset_and_study_key() -> None:
    from archlab.presets import PRESETS, TECHNIQUES
    from archlab.report.report import load_study

    study = load_study()["results"]
    for e in EXPERIMENTS:
        assert e.preset in PRESETS and f"{e.preset}-smoke" in PRESETS, e.preset
        assert all(s in study for s in e.study), e.study
        assert set(e.techniques) <= set(TECHNIQUES[e.part]), e.techniques


@pytest.mark.xdist_group("small-study")  # one worker builds it
def test_parts_limit_the_run(small_study: Path) -> None:
    out = small_study / "out"
    metrics = out / "images" / "resnet18" / "s0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    lines: list[str] = []
    with pytest.raises(ArchlabError, match="--parts audio: choose from images, sales, text"):
        reproduce(small_study / "data", "smoke", 1, out, parts=("audio",))
    reproduce(small_study / "data", "smoke", 1, out, experiments=SMALL, parts=("images",),
              log=lines.append)  # fmt: skip
    assert metrics.stat().st_mtime_ns == before  # finished: skipped, not redone
    assert any("skipping Part IV: sentiment with LSTMs: not in --parts" in s for s in lines)


@pytest.mark.xdist_group("small-study")  # one worker builds it
def test_a_rerun_of_other_parts_keeps_the_earlier_parts_in_the_report(
    small_study: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(small_study / "out", out)
    lines: list[str] = []
    report = reproduce(small_study / "data", "smoke", 1, out, experiments=SMALL, parts=("text",),
                       log=lines.append)  # fmt: skip
    assert any(ln.startswith("keeping Parts I-II") for ln in lines), lines
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["key"] for e in manifest["experiments"]} == {"resnet18", "resnet18-ablation"}
    assert "ResNet-18 (tuned recipe)" in (report / "report.md").read_text()
    # Another data folder where nothing runs: the report is left as it was, not emptied.
    (tmp_path / "empty").mkdir()
    before = (report / "report.md").read_text()
    with pytest.raises(ArchlabError, match=r"no experiment ran .* the report there is left"):
        reproduce(tmp_path / "empty", "smoke", 1, out, experiments=SMALL, log=lambda s: None)
    assert (report / "report.md").read_text() == before


def test_interrupted_reproduce_redoes_only_unfinished_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import archlab.ablate
    import archlab.reproduce
    from archlab.runner import train_at

    data = tmp_path / "data"
    (data / "images3").mkdir(parents=True)
    write_npz(data / "images3" / "cifar10_dog_automobile_ship.npz", n_per_class=20, size=32)
    out = tmp_path / "out"
    calls: list[str] = []

    def ctrl_c_on_second_run(cfg, run_dir, **kw):  # the user presses Ctrl-C in run two
        calls.append(Path(run_dir).name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_at(cfg, run_dir, **kw)

    monkeypatch.setattr(archlab.reproduce, "train_at", ctrl_c_on_second_run)
    monkeypatch.setattr(archlab.ablate, "train_at", ctrl_c_on_second_run)
    with pytest.raises(KeyboardInterrupt):
        reproduce(data, "smoke", 1, out, experiments=SMALL, log=lambda s: None)
    monkeypatch.undo()
    first = out / "images" / "resnet18" / "s0" / "metrics.json"
    done = first.stat().st_mtime_ns
    reproduce(data, "smoke", 1, out, experiments=SMALL, log=lambda s: None)
    assert first.stat().st_mtime_ns == done  # finished before the interruption: not redone
    runs = sorted(out.glob("images/*/*/metrics.json"))
    assert len(runs) == 3  # resnet18 + two smoke ablation techniques, all finished now

    # A metrics.json cut short (not written completely) means the run is not finished.
    cut = out / "images" / "resnet18-ablation" / "baseline-s0" / "metrics.json"
    cut.write_text(cut.read_text()[:20])
    before = {p: p.stat().st_mtime_ns for p in runs if p != cut}
    reproduce(data, "smoke", 1, out, experiments=SMALL, log=lambda s: None)
    assert json.loads(cut.read_text())["epochs_run"] >= 1
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_long_profile_trains_the_long_presets() -> None:
    from archlab.presets import LONG, PRESETS
    from archlab.reproduce import profile_config

    exps = {f"{e.part}/{e.key}": e for e in EXPERIMENTS}
    assert set(LONG) <= set(exps)
    for key, sets in LONG.items():
        cfg = profile_config(exps[key].preset, "long", "x.npz", sets)
        want = PRESETS[f"{exps[key].preset}-long"]
        assert cfg.data == replace(want.data, path="x.npz")
        assert (cfg.optim, cfg.reg, cfg.model) == (want.optim, want.reg, want.model)
        assert cfg.train.epochs == want.train.epochs >= 50 and cfg.data.size == 64


def test_seeds_sharing_a_split_are_averaged_in_the_report(tmp_path: Path) -> None:
    from archlab.report.tables import fmt
    from archlab.reproduce import run_study
    from tests.helpers import write_panel

    panel = write_panel(tmp_path / "walmart")
    gru = tuple(e for e in EXPERIMENTS if e.key == "gru")
    sets = {"sales": ("data.test_steps=8", "data.val_steps=4")}
    report = run_study({"sales": str(panel)}, "smoke", 2, tmp_path / "out", experiments=gru,
                       overrides=sets, log=lambda s: None)  # fmt: skip
    ens = json.loads((tmp_path / "out" / "sales" / "gru" / "ensemble.json").read_text())
    wmae = [m["test_wmae"] for m in ens["members"]]
    assert len(wmae) == 2 and ens["ensemble"]["test_wmae"] <= max(wmae)  # convexity of |.|
    md = (report / "report.md").read_text()
    assert fmt(ens["ensemble"]["test_wmae"]) in md and "2 seeds averaged" in md


def test_seeds_with_their_own_splits_are_not_averaged(tmp_path: Path) -> None:
    from archlab.presets import PRESETS
    from archlab.reproduce import seed_ensemble
    from archlab.runner import train_at

    data = write_npz(tmp_path / "digits.npz", n_per_class=20, size=32)
    smoke = PRESETS["images-resnet18-smoke"]
    cfg = replace(smoke, data=replace(smoke.data, path=str(data), subset=0))
    dirs = [train_at(replace(cfg, seed=s), tmp_path / f"s{s}") for s in (0, 1)]
    assert seed_ensemble(dirs, tmp_path) == "" and not (tmp_path / "ensemble.json").exists()


def test_text_rows_with_vectors_use_the_glove_folder(tmp_path: Path) -> None:
    from tests.helpers import write_tweets, write_vectors

    data = tmp_path / "data"
    (data / "twitter_airline").mkdir(parents=True)
    write_tweets(data / "twitter_airline" / "Tweets.csv")
    exps = tuple(e for e in EXPERIMENTS if e.key in ("bilstm", "bilstm-glove"))
    out, lines = tmp_path / "out", []
    reproduce(data, "smoke", 1, out, experiments=exps, parts=("text",), log=lines.append)
    skip = (
        f"skipping 2-layer BiLSTM + GloVe vectors: no word vectors found (looked for {data}/glove"
    )
    assert any(s.startswith(skip) for s in lines), lines
    assert skip in (out / "report" / "report.md").read_text()  # in the report too
    (data / "glove").mkdir()
    write_vectors(data / "glove" / "vecs.txt.gz")
    report = reproduce(data, "smoke", 1, out, experiments=exps, parts=("text",), log=lines.append)
    cfg = (out / "text" / "bilstm-glove" / "s0" / "config.yaml").read_text()
    assert f"embeddings: {data / 'glove' / 'vecs.txt.gz'}" in cfg
    md = (report / "report.md").read_text()
    plain, glove = (
        md.index("| 2-layer BiLSTM (study settings) |"),
        md.index("| 2-layer BiLSTM + GloVe"),
    )
    assert 0 < plain < glove  # the rows with and without vectors side by side


@pytest.mark.skipif(not DATA_DIR.exists(), reason=f"shared data not found at {DATA_DIR}")
@pytest.mark.parametrize("profile", ["full", "long"])
def test_full_profiles_read_every_committed_ablation_cell(profile: str) -> None:
    """The committed CPU ablation (bench/results/ablation_cpu) stands in for every cell of the
    study's ablations in the full and long profiles: same epochs, config and data."""
    from archlab.ablate import cells, committed_cell
    from archlab.reproduce import experiment_config

    committed = Path(__file__).resolve().parents[1] / "bench" / "results" / "ablation_cpu"
    data = DATA_DIR / "images3" / "cifar10_dog_automobile_ship.npz"
    ablations = [e for e in EXPERIMENTS if e.techniques and e.part == "images"]
    assert {e.key for e in ablations} == {"vgg13-ablation", "resnet18-ablation"}
    for exp in ablations:
        cfg = experiment_config(exp, profile, str(data))
        grid = cells(cfg, list(exp.techniques), 3)
        missing = [n for n, c in grid.items()
                   if committed_cell(committed / cfg.model.name / n, c) is None]  # fmt: skip
        assert not missing, f"{exp.key}: not read from {committed}: {missing}"


def test_an_images3_folder_with_one_npz_of_another_name_is_that_file(tmp_path: Path) -> None:
    from archlab.reproduce import find_data

    (tmp_path / "images3").mkdir()
    (tmp_path / "images3" / "slice_300.npz").write_bytes(b"")
    assert find_data(tmp_path, "images") == tmp_path / "images3" / "slice_300.npz"
    (tmp_path / "images3" / "cifar10_dog_automobile_ship.npz").write_bytes(b"")
    assert find_data(tmp_path, "images").name == "cifar10_dog_automobile_ship.npz"  # the study's
