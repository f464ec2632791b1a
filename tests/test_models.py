"""Every model in MODELS (image, sales and text): small build, forward shape, finite outputs and
gradients reaching every parameter; plus the study's exact parameter counts for the image models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from archlab.models import MODELS

EXACT_PARAMS = {("vgg13", 1, 3): 38_677_859, ("resnet18", 1, 3): 11_171_779}


@pytest.mark.parametrize(("name", "channels", "classes"), list(EXACT_PARAMS))
def test_parameter_counts_match_the_study(name: str, channels: int, classes: int) -> None:
    model = MODELS[name].build(in_channels=channels, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == EXACT_PARAMS[(name, channels, classes)]


@dataclass(frozen=True)
class Case:
    """Small constructor arguments for one kind of model, and a tiny input of the right kind."""

    id: str
    kwargs: dict[str, Any]
    inputs: Callable[[], tuple[torch.Tensor, ...]]
    shape: tuple[int, ...]


def _tokens(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four right-padded sequences of 7, 5, 3 and 1 token ids (0 is padding)."""
    lengths = torch.tensor([7, 5, 3, 1])
    tokens = torch.randint(1, vocab, (4, 7))
    tokens[torch.arange(7)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


# One entry per task a model can serve; a model registered for a new task fails here (KeyError)
# until its small case is added, so the test keeps covering every entry of MODELS.
CASES: dict[str, list[Case]] = {
    "images": [
        Case("1x32x32-3cls", {"in_channels": 1, "num_classes": 3, "dropout": 0.5},
             lambda: (torch.randn(2, 1, 32, 32),), (2, 3)),
        Case("3x40x40-5cls", {"in_channels": 3, "num_classes": 5, "dropout": 0.5},
             lambda: (torch.randn(2, 3, 40, 40),), (2, 5)),
    ],
    "sales": [
        Case("6feat", {"input_size": 6, "hidden_size": 8, "num_layers": 2, "dropout": 0.1},
             lambda: (torch.randn(3, 5, 6),), (3,)),
        Case("6feat-embed", {"input_size": 6, "hidden_size": 8, "num_layers": 1,
                             "embeddings": (4, 7), "embed_dim": 2},
             lambda: (torch.randn(3, 5, 6), torch.tensor([[0, 6], [3, 1], [2, 2]])), (3,)),
        # Multi-horizon: the head reads each of the last 4 steps (data.horizon=4).
        Case("6feat-h4", {"input_size": 6, "hidden_size": 8, "num_layers": 2, "horizon": 4},
             lambda: (torch.randn(3, 9, 6),), (3, 4)),
    ],
    "text": [
        Case("last-3cls", {"vocab_size": 40, "num_classes": 3, "embed_dim": 8, "hidden_size": 6,
                           "num_layers": 2},
             lambda: _tokens(40), (4, 3)),
        Case("max-1layer-2cls", {"vocab_size": 40, "num_classes": 2, "embed_dim": 8,
                                 "hidden_size": 6, "num_layers": 1, "pooling": "max"},
             lambda: _tokens(40), (4, 2)),
        # Mean and max concatenated: the head reads twice the BiLSTM's width.
        Case("meanmax-3cls", {"vocab_size": 40, "num_classes": 3, "embed_dim": 8,
                              "hidden_size": 6, "num_layers": 2, "pooling": "meanmax"},
             lambda: _tokens(40), (4, 3)),
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "case"),
    [
        pytest.param(name, case, id=f"{name}-{case.id}")
        for name, spec in MODELS.items()
        for case in CASES[spec.task]
    ],
)
def test_every_registered_model_builds_runs_forward_and_backward(name: str, case: Case) -> None:
    torch.manual_seed(0)
    model = MODELS[name].build(**case.kwargs)
    model.train()  # dropout on: the path training takes
    inputs = case.inputs()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    # Two steps: ResNet zero-inits each block's last BN scale (blocks start as the identity),
    # so the layers inside a block get a zero gradient until one update has moved that scale.
    for _ in range(2):
        opt.zero_grad()
        out = model(*inputs)
        assert out.shape == case.shape
        assert torch.isfinite(out).all()
        out.sum().backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
        assert not [k for k, g in grads.items() if g is None], f"{name}: no gradient reaches them"
        assert all(torch.isfinite(g).all() for g in grads.values())
        opt.step()
    dead = [k for k, g in grads.items() if not g.any()]  # e.g. an LSTM direction left unused
    assert not dead, f"{name}: zero gradient for {dead}"


def test_vgg_dropout_is_a_constructor_argument() -> None:
    off = MODELS["vgg13"].build(in_channels=1, num_classes=3, dropout=0.0)
    on = MODELS["vgg13"].build(in_channels=1, num_classes=3, dropout=0.3)
    ps = [m.p for m in on.modules() if isinstance(m, torch.nn.Dropout)]
    assert ps == [0.3, 0.3, 0.3]
    assert all(m.p == 0.0 for m in off.modules() if isinstance(m, torch.nn.Dropout))


def test_every_model_configs_accept_is_registered_with_its_task() -> None:
    # Configs validate model names from the torch-free table; MODELS derives its tasks from it.
    from archlab.task_configs import MODEL_TASKS, models_for

    assert list(MODELS) == list(MODEL_TASKS)
    for task in set(MODEL_TASKS.values()):
        assert models_for(task) == [n for n, s in MODELS.items() if s.task == task]
