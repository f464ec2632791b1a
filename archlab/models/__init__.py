"""MODELS registry: name -> ModelSpec (constructor and the task whose data it consumes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from archlab.models.lstm import bilstm, lstm_basic, text_example
from archlab.models.resnet import resnet18
from archlab.models.rnn import example as rnn_example
from archlab.models.rnn import gru, lstm, rnn
from archlab.models.vgg import vgg13, vgg13_bn


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]
    task: str
    help: str
    # For non-image models: (dims, classes) -> (model, torchinfo input_size, dtypes) for summary.
    example: Callable[..., tuple] | None = None


MODELS: dict[str, ModelSpec] = {
    "vgg13": ModelSpec(vgg13, "images", "the study's VGG-13 (no batch norm)"),
    "vgg13_bn": ModelSpec(vgg13_bn, "images", "VGG-13 with batch norm (not in the study)"),
    "resnet18": ModelSpec(resnet18, "images", "the study's ResNet-18"),
    "rnn": ModelSpec(rnn, "sales", "the study's 3-layer RNN, hidden 50", rnn_example("rnn")),
    "lstm": ModelSpec(lstm, "sales", "the study's RNN with LSTM cells", rnn_example("lstm")),
    "gru": ModelSpec(gru, "sales", "the study's RNN with GRU cells", rnn_example("gru")),
    "lstm-basic": ModelSpec(
        lstm_basic,
        "text",
        "embedding -> 3 stacked LSTM layers -> dropout -> linear (study part IV)",
        partial(text_example, lstm_basic),
    ),
    "bilstm": ModelSpec(
        bilstm,
        "text",
        "embedding 128 -> 2-layer bidirectional LSTM 64 -> dropout -> linear (study part IV)",
        partial(text_example, bilstm),
    ),
}


def models_for(task: str) -> list[str]:
    return [name for name, spec in MODELS.items() if spec.task == task]
