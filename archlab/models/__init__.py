"""MODELS registry: name -> ModelSpec (constructor, and the task whose data it consumes as
task_configs.MODEL_TASKS declares it)."""

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
from archlab.task_configs import MODEL_TASKS


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]
    task: str
    help: str
    # For non-image models: (dims, classes) -> (model, torchinfo input_size, dtypes) for summary.
    example: Callable[..., tuple] | None = None


# Name -> (constructor, help, example). Each name's task is declared once, in the torch-free
# archlab.task_configs.MODEL_TASKS that configs validate against; MODELS takes it from there.
_NETWORKS: dict[str, tuple[Callable[..., nn.Module], str, Callable[..., tuple] | None]] = {
    "vgg13": (vgg13, "the study's VGG-13 (no batch norm)", None),
    "vgg13_bn": (vgg13_bn, "VGG-13 with batch norm (not in the study)", None),
    "resnet18": (resnet18, "the study's ResNet-18", None),
    "rnn": (rnn, "the study's 3-layer RNN, hidden 50", rnn_example("rnn")),
    "lstm": (lstm, "the study's RNN with LSTM cells", rnn_example("lstm")),
    "gru": (gru, "the study's RNN with GRU cells", rnn_example("gru")),
    "lstm-basic": (
        lstm_basic,
        "embedding -> 3 stacked LSTM layers -> dropout -> linear (study part IV)",
        partial(text_example, lstm_basic),
    ),
    "bilstm": (
        bilstm,
        "embedding 128 -> 2-layer bidirectional LSTM 64 -> dropout -> linear (study part IV)",
        partial(text_example, bilstm),
    ),
}
if _NETWORKS.keys() != MODEL_TASKS.keys():  # a name with no network, or a network no config takes
    raise ImportError(
        "archlab.models and task_configs.MODEL_TASKS name different models: "
        f"{sorted(_NETWORKS.keys() ^ MODEL_TASKS.keys())}"
    )
MODELS: dict[str, ModelSpec] = {
    name: ModelSpec(build, MODEL_TASKS[name], help_, example)
    for name, (build, help_, example) in _NETWORKS.items()
}
