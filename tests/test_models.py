"""Every registered model: exact parameter counts, forward shape, finite outputs, backward."""

from __future__ import annotations

import pytest
import torch

from archlab.models import MODELS

EXACT_PARAMS = {("vgg13", 1, 3): 38_677_859, ("resnet18", 1, 3): 11_171_779}


@pytest.mark.parametrize(("name", "channels", "classes"), list(EXACT_PARAMS))
def test_parameter_counts_match_the_study(name: str, channels: int, classes: int) -> None:
    model = MODELS[name].build(in_channels=channels, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == EXACT_PARAMS[(name, channels, classes)]


IMAGE_MODELS = [n for n, s in MODELS.items() if s.task == "images"]


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize(("channels", "size", "classes"), [(1, 32, 3), (3, 40, 5)])
def test_image_model_forward_backward(name: str, channels: int, size: int, classes: int) -> None:
    torch.manual_seed(0)
    model = MODELS[name].build(in_channels=channels, num_classes=classes, dropout=0.5)
    x = torch.randn(2, channels, size, size)
    out = model(x)
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_vgg_dropout_is_a_constructor_argument() -> None:
    off = MODELS["vgg13"].build(in_channels=1, num_classes=3, dropout=0.0)
    on = MODELS["vgg13"].build(in_channels=1, num_classes=3, dropout=0.3)
    ps = [m.p for m in on.modules() if isinstance(m, torch.nn.Dropout)]
    assert ps == [0.3, 0.3, 0.3]
    assert all(m.p == 0.0 for m in off.modules() if isinstance(m, torch.nn.Dropout))


def test_config_model_table_names_every_registered_model() -> None:
    # Configs validate model names from a torch-free table; it must match the registry.
    from archlab.task_configs import MODEL_TASKS

    assert {name: spec.task for name, spec in MODELS.items()} == MODEL_TASKS
