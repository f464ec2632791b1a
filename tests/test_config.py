"""Config: overrides are type-checked, unknown keys list valid ones, YAML round-trips."""

from __future__ import annotations

import pytest

from archlab.config import (
    RunConfig,
    apply_overrides,
    config_sources,
    describe_sources,
    task_defaults,
)
from archlab.errors import ArchlabError
from archlab.presets import PRESETS
from archlab.task_configs import SalesDataConfig, SalesModelConfig


@pytest.fixture
def cfg() -> RunConfig:
    return PRESETS["images-resnet18"]


def test_overrides_parse_types(cfg: RunConfig) -> None:
    new = apply_overrides(
        cfg,
        ["optim.lr=3e-4", "reg.early_stop=yes", "train.epochs=7", "seed=5", "optim.betas=0.8,0.9",
         "data.path=/x/y.npz", "optim.schedule=cosine"],
    )  # fmt: skip
    assert new.optim.lr == 3e-4 and new.reg.early_stop is True and new.train.epochs == 7
    assert new.seed == 5 and new.optim.betas == (0.8, 0.9) and new.data.path == "/x/y.npz"
    assert cfg.optim.lr == 0.1  # frozen: the original is unchanged
    sales = apply_overrides(task_defaults("sales"), ["data.series_keys=none", "data.covariates="])
    assert sales.data.series_keys == () and sales.data.covariates == ()  # none / "": empty


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("optim.lrr=1", "valid keys: name, lr"),
        ("nosection.x=1", "unknown section"),
        ("optim.lr=fast", "expected a number"),
        ("optim.lr=0", "must be > 0"),
        ("optim.lr=-1", "must be > 0"),
        ("train.epochs=-2", "must be >= 1"),
        ("train.epochs=2.5", "expected an integer"),
        ("reg.patience=-1", "must be >= 0"),
        ("reg.dropout=1.5", "[0, 1)"),
        ("reg.early_stop=maybe", "true or false"),
        ("optim.schedule=linear", "choose one of"),
        ("model.name=alexnet", "unknown image model"),
        ("optim.lr", "expected section.key=value"),
        ("split_seed=-2", "split_seed=-2"),
        ("split_seed=x", "expected an integer"),
        ("seed=-1", "seed=-1: must be in 0..4294967295"),  # numpy's and sklearn's seeds: 32-bit
        ("seed=99999999999999999999", "must be in 0..4294967295"),
    ],
)
def test_bad_overrides_name_the_key(cfg: RunConfig, override: str, needle: str) -> None:
    with pytest.raises(ArchlabError, match=None) as e:
        apply_overrides(cfg, [override])
    assert needle in str(e.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_yaml(name: str) -> None:
    cfg = PRESETS[name]
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg


def test_every_preset_has_a_smoke_variant() -> None:
    full = [n for n in PRESETS if not n.endswith("-smoke")]
    assert full and all(f"{n}-smoke" in PRESETS for n in full)
    assert all(n.startswith(f"{PRESETS[n].task}-") for n in PRESETS)


def test_yaml_with_unknown_key_is_rejected(cfg: RunConfig) -> None:
    text = cfg.to_yaml().replace("  lr: 0.1", "  lr: 0.1\n  learning_rate: 2")
    with pytest.raises(ArchlabError, match=r"unknown key optim\.learning_rate"):
        RunConfig.from_yaml(text)


def test_split_seed_defaults_to_the_seed_and_round_trips(cfg: RunConfig) -> None:
    assert apply_overrides(cfg, ["seed=4"]).data_seed == 4
    fixed = apply_overrides(cfg, ["seed=4", "split_seed=9"])
    assert fixed.data_seed == 9 and fixed.seed == 4
    assert RunConfig.from_yaml(fixed.to_yaml()) == fixed


# --- what each task's reg section may set (archlab.task_configs.TASK_CONFIGS) ---
def test_task_configs_name_the_tasks_reg_fields_and_augmentations() -> None:
    from dataclasses import fields

    from archlab.config import RegConfig
    from archlab.data.augment import AUGMENTATIONS
    from archlab.task_configs import IMAGE_AUGMENTS, TASK_CONFIGS
    from archlab.tasks import TASKS

    assert set(TASK_CONFIGS) == set(TASKS)
    assert tuple(AUGMENTATIONS) == IMAGE_AUGMENTS  # derived, in the declared order
    reg_fields = [f.name for f in fields(RegConfig)]
    assert list(TASK_CONFIGS["images"].reg_knobs) == reg_fields  # images read every knob
    assert TASK_CONFIGS["images"].augments == IMAGE_AUGMENTS
    for spec in TASK_CONFIGS.values():
        # in RegConfig's order, so the error message lists them as `--set` users see them
        assert list(spec.reg_knobs) == [k for k in reg_fields if k in spec.reg_knobs]
        assert "none" in spec.augments and ("augment" in spec.reg_knobs) == (
            spec.augments != ("none",)
        )
    assert "label_smoothing" not in TASK_CONFIGS["sales"].reg_knobs  # its losses have no classes


@pytest.mark.parametrize(
    ("preset", "override", "needle"),
    [
        ("sales-rnn", "reg.augment=banana", "reg.augment='banana' for task sales; valid: none"),
        ("text-bilstm", "reg.augment=flip", "reg.augment='flip' for task text; valid: none"),
        ("images-vgg13", "reg.augment=warp", "valid: none, flip, translate, study, crop"),
        (
            "sales-gru",
            "reg.label_smoothing=0.1",
            "reg.label_smoothing=0.1 is not used by task sales",
        ),
    ],
)
def test_reg_knobs_a_task_ignores_are_refused(preset: str, override: str, needle: str) -> None:
    with pytest.raises(ArchlabError) as e:
        apply_overrides(PRESETS[preset], [override])
    assert needle in str(e.value)


def test_reg_knobs_are_checked_in_every_way_a_config_is_built() -> None:
    from dataclasses import replace

    from archlab.config import RegConfig
    from archlab.task_configs import SalesDataConfig, SalesModelConfig

    sales = PRESETS["sales-rnn"]
    bad_yaml = sales.to_yaml().replace("label_smoothing: 0.0", "label_smoothing: 0.2")
    with pytest.raises(ArchlabError, match=r"reg\.label_smoothing=0\.2 is not used by task sales"):
        RunConfig.from_yaml(bad_yaml)
    with pytest.raises(ArchlabError, match=r"reg\.augment='flip' for task sales"):
        replace(sales, reg=RegConfig(augment="flip"))
    with pytest.raises(ArchlabError, match=r"reg\.augment='crop' for task sales"):
        RunConfig("sales", SalesDataConfig(), SalesModelConfig(), reg=RegConfig(augment="crop"))
    with pytest.raises(ArchlabError, match="unknown task 'audio'; valid: images, sales, text"):
        RunConfig("audio", SalesDataConfig(), SalesModelConfig())
    # knobs the task reads stay free; a knob at its default is fine for every task
    assert apply_overrides(sales, ["reg.dropout=0.2", "reg.l2_mode=penalty"]).reg.dropout == 0.2
    assert apply_overrides(sales, ["reg.label_smoothing=0", "reg.augment=none"]) == sales


def test_no_preset_technique_or_sweep_space_sets_a_knob_its_task_ignores() -> None:
    from archlab.ablate import technique_configs
    from archlab.presets import TECHNIQUES
    from archlab.sweep import search_space

    for name, cfg in PRESETS.items():
        assert technique_configs(cfg, list(TECHNIQUES[cfg.task])), name  # each builds, checked
        assert search_space(None, cfg), name  # the default space's bounds, applied to it


def test_the_config_layer_imports_no_task_and_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from archlab.config import RunConfig\n"
        "from archlab.presets import PRESETS\n"
        "RunConfig.from_yaml(PRESETS['sales-rnn'].to_yaml())  # was: imported every task\n"
        "loaded = [m for m in ('torch', 'pandas', 'archlab.tasks') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_each_value_records_where_it_came_from(tmp_path) -> None:
    from archlab.ablate import technique_configs
    from archlab.cli import build_config

    sets = ["optim.lr=0.01", "train.threads=1"]
    cfg = build_config(None, "images-resnet18", str(tmp_path), None, 3, None, sets)
    src = config_sources(cfg)
    assert src["data.path"] == "--data" and src["train.epochs"] == "--epochs"
    assert src["optim.lr"] == "--set" and src["train.threads"] == "--set"
    assert src["optim.name"] == "preset images-resnet18"  # the preset's own values
    assert all(
        v == "preset images-resnet18"
        for k, v in src.items()
        if k not in {"data.path", "train.epochs", "optim.lr", "train.threads"}
    )
    line = describe_sources(src)
    assert (
        line.startswith("config: data.path from --data; ") and "from preset images-resnet18" in line
    )
    # a record, not a setting: config.yaml and equality leave it out
    assert "sources" not in cfg.to_yaml() and cfg == RunConfig.from_yaml(cfg.to_yaml())
    plain = build_config("images", None, str(tmp_path), None, None, None, None)
    assert config_sources(plain) == {"data.path": "--data"}
    saved = tmp_path / "config.yaml"
    saved.write_text(cfg.to_yaml())
    again = config_sources(build_config(None, None, None, None, None, None, None, saved))
    assert again["optim.lr"] == f"config {saved}" and set(again) == set(src)
    # code that changes values names itself; values put back to the default say so
    cells = technique_configs(cfg, ["baseline", "l2"])
    assert config_sources(cells["l2"])["reg.weight_decay"] == "ablation: l2"
    base = config_sources(cells["baseline"])
    assert base["reg.weight_decay"] == "ablation: every regularizer off"
    assert base["reg.select"] == "ablation: the study's protocol"


def test_a_config_file_with_a_bad_section_or_top_level_value_is_one_line() -> None:
    with pytest.raises(ArchlabError, match=r"c\.yaml: data: expected a section of settings"):
        RunConfig.from_yaml("task: text\ndata: 5\n", where="c.yaml")
    with pytest.raises(ArchlabError, match="seed='abc': expected an integer"):
        RunConfig.from_yaml("task: text\nseed: abc\n", where="c.yaml")


def test_a_next_step_run_takes_a_correction_scale_set_by_hand() -> None:
    # Next-step runs choose a correction scale on validation (a first line says so): a number
    # set by hand forces it, as with H > 1; it was refused as "for multi-horizon forecasting".
    base = RunConfig(task="sales", data=SalesDataConfig(), model=SalesModelConfig())
    assert base.data.horizon == 1
    assert apply_overrides(base, ["data.correction_scale=0.5"]).data.correction_scale == 0.5
    with pytest.raises(ArchlabError, match=r"data\.level_steps=4.*multi-horizon"):
        apply_overrides(base, ["data.level_steps=4"])
