"""Config: overrides are type-checked, unknown keys list valid ones, YAML round-trips."""

from __future__ import annotations

import pytest

from archlab.config import RunConfig, apply_overrides
from archlab.errors import ArchlabError
from archlab.presets import PRESETS


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
