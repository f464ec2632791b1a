"""The study's recurrent regressor (RNN, LSTM or GRU cells) for sales forecasting."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentRegressor(nn.Module):
    """Stacked recurrent layers over a (batch, steps, features) sequence; last step -> Linear.

    Optional embeddings of categorical ids (e.g. store, department) are appended to every
    step, so one model trained on all series can share what it learns across them. With
    ``horizon`` H the head reads each of the last H steps (direct multi-output: the sequence
    ends with the H future steps) and the output is (batch, H); without, (batch,) from the last.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 50,
        num_layers: int = 3,
        cell: str = "rnn",
        dropout: float = 0.0,
        embeddings: tuple[int, ...] = (),
        embed_dim: int = 0,
        horizon: int | None = None,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, embed_dim) for n in (embeddings if embed_dim else ())
        )
        rnn_in = input_size + embed_dim * len(self.embeddings)
        # Dropout between stacked layers (PyTorch applies none after the last one) and before
        # the head, so one knob regularizes the whole network.
        self.rnn = CELLS[cell](
            rnn_in,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor, cats: torch.Tensor | None = None) -> torch.Tensor:
        if len(self.embeddings):
            assert cats is not None, "this model embeds categorical ids: pass cats (batch, k)"
            e = torch.cat([emb(cats[:, i]) for i, emb in enumerate(self.embeddings)], -1)
            x = torch.cat([x, e[:, None, :].expand(-1, x.shape[1], -1)], -1)
        out, _ = self.rnn(x)
        last = out[:, -1] if self.horizon is None else out[:, -self.horizon :]
        return self.head(self.drop(last)).squeeze(-1)


def _constructor(cell: str, doc: str) -> Callable[..., RecurrentRegressor]:
    def build(
        input_size: int,
        hidden_size: int = 50,
        num_layers: int = 3,
        dropout: float = 0.0,
        embeddings: tuple[int, ...] = (),
        embed_dim: int = 0,
        horizon: int | None = None,
    ) -> RecurrentRegressor:
        return RecurrentRegressor(
            input_size, hidden_size, num_layers, cell, dropout, embeddings, embed_dim, horizon
        )

    build.__name__, build.__doc__ = cell, doc
    return build


rnn = _constructor("rnn", "The study's model: nn.RNN(input_size, 50, 3 layers) -> Linear(50, 1).")
lstm = _constructor("lstm", "The study's architecture with LSTM cells.")
gru = _constructor("gru", "The study's architecture with GRU cells.")


# With 156 inputs the study's RNN has 20,651 parameters (50*156 + 12,851).
STUDY_INPUT_SIZE = 156


def example(cell: str) -> Callable[[tuple[int, ...], int], tuple]:
    """``example(dims, classes)`` for ``archlab summary``: dims = (steps, features)."""

    def make(dims: tuple[int, ...], classes: int) -> tuple[nn.Module, tuple[int, ...], None]:
        steps, feats = (dims[-2], dims[-1]) if len(dims) == 2 else (1, STUDY_INPUT_SIZE)
        return RecurrentRegressor(feats, cell=cell), (1, steps, feats), None

    return make
