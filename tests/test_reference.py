"""The generated configuration and presets reference: every field described, every preset exact."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import replace
from typing import Literal

import pytest

import archlab.config
import archlab.task_configs
from archlab import reference
from archlab.config import OptimConfig, TrainConfig, apply_overrides, task_defaults
from archlab.presets import PRESETS, TECHNIQUES
from archlab.task_configs import TASK_CONFIGS

CLASSES = reference.config_classes()


@pytest.mark.parametrize("cls", [c for _, c in CLASSES], ids=[h for h, _ in CLASSES])
def test_every_settable_field_has_a_meaning(cls: type) -> None:
    meanings = reference.field_comments(cls)
    missing = [f for f in reference.settable_fields(cls) if not meanings.get(f, "").strip()]
    assert not missing, (
        f"{cls.__name__}: no comment for {missing}; give each field a comment on its line "
        "(or comment lines just above it): the docs' configuration page shows it"
    )


def test_every_config_dataclass_is_in_the_reference() -> None:
    """A new config section cannot stay out of the docs."""
    found = {
        obj
        for module in (archlab.config, archlab.task_configs)
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and dataclasses.is_dataclass(obj)
        and name.endswith("Config")
        and obj.__module__ == module.__name__
    }
    assert found - {c for _, c in CLASSES} == set()


def test_the_page_has_a_row_per_key_with_its_default() -> None:
    page = reference.config_reference()
    for _, cls in CLASSES:
        prefix = {"OptimConfig": "optim.", "RegConfig": "reg.", "TrainConfig": "train."}.get(
            cls.__name__, ""
        )
        if cls in {s.data_config for s in TASK_CONFIGS.values()}:
            prefix = "data."
        if cls in {s.model_config for s in TASK_CONFIGS.values()}:
            prefix = "model."
        for name in reference.settable_fields(cls):
            assert f"| `{prefix}{name}` |" in page, f"{prefix}{name}"
    assert "| `train.threads` | int | `0` |" in page
    assert "| `data.series_keys` | list of str (comma-separated) | `Store,Dept` |" in page
    assert "`task`" not in page  # set by --task, not --set


def test_comments_are_read_from_the_line_and_the_lines_above() -> None:
    @dataclasses.dataclass(frozen=True)
    class Example:
        # Two lines
        # above.
        a: int = 1  # and one beside
        b: str = ""

        c: bool = False  # only beside

    meanings = reference.field_comments(Example)
    assert meanings == {"a": "Two lines above. and one beside", "c": "only beside"}


def test_types_and_defaults_read_as_they_are_typed() -> None:
    assert reference.type_name(Literal["a", "b"]) == "one of `a`, `b`"
    assert reference.type_name(int | None) == "int or `none`"
    assert reference.type_name(tuple[float, float]) == "2 × float (comma-separated)"
    assert reference.value_text(None) == "none"
    assert reference.value_text(True) == "true"
    assert reference.value_text(("Store", "Dept")) == "Store,Dept"
    assert reference.value_text(()) == "(empty)"


def test_each_presets_settings_rebuild_it_from_the_task_defaults() -> None:
    """The presets page's settings column is exact: applied with --set, it gives the preset."""
    page = reference.presets_reference()
    for name, cfg in PRESETS.items():
        base = task_defaults(cfg.task)  # what `archlab train --task TASK` starts from
        assert apply_overrides(base, reference.preset_settings(cfg)) == cfg, name
        assert (f"**`{name}`**" in page) != name.endswith("-smoke"), name
    # Every ablation technique, by task, with what it sets (they were named nowhere).
    for task, techniques in TECHNIQUES.items():
        line = next(x for x in page.splitlines() if x.startswith(f"- **{task}**: "))
        for t, sets in techniques.items():
            assert f"`{t}`" in line and all(f"`{x}`" in line for x in sets), (task, t)


def test_a_task_with_its_own_training_recipe_starts_from_it_and_says_so() -> None:
    from archlab.cli import build_config

    sales = task_defaults("sales")
    assert (sales.optim.schedule, sales.optim.grad_clip) == ("cosine", 1.0)
    assert (sales.train.batch_size, sales.train.eval_batch_size) == (256, 4096)
    assert PRESETS["sales-rnn"].optim == sales.optim  # the presets' recipe, one definition
    images = task_defaults("images")
    assert images.optim == OptimConfig() and images.train == TrainConfig()
    page = reference.config_reference()
    assert "`--task sales` with no preset starts from `optim.schedule=cosine`" in page
    # `archlab train --task sales` starts there; a flag still sets them.
    cfg = build_config("sales", None, None, None, None, None, ["optim.grad_clip=0"])
    assert cfg.optim == replace(sales.optim, grad_clip=0.0) and cfg.train == sales.train
