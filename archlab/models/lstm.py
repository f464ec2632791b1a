"""LSTM text classifiers (study part IV): the stacked LSTM and the bidirectional LSTM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Pooling = Literal["last", "max", "meanmax"]


class LSTMClassifier(nn.Module):
    """Embedding -> (Bi)LSTM over packed sequences -> dropout -> linear head.

    Sequences are packed by their true lengths, so the amount of right padding never changes
    the result. ``pooling='last'`` uses the final hidden state of the top layer (both
    directions when bidirectional); ``'max'`` takes the element-wise max over time steps;
    ``'meanmax'`` concatenates the mean and the max over the true time steps (twice as wide).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 128,
        hidden_size: int = 64,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.5,
        padding_idx: int = 0,
        pooling: Pooling = "last",
        pretrained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        if pretrained is not None:  # initial rows, e.g. word vectors (vocab_size x embed_dim)
            if tuple(pretrained.shape) != (vocab_size, embed_dim):
                raise ValueError(
                    f"pretrained embedding {tuple(pretrained.shape)} != ({vocab_size}, {embed_dim})"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(pretrained)
        # Dropout between stacked layers as well as before the head (PyTorch needs >= 2 layers).
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        width = hidden_size * (2 if bidirectional else 1) * (2 if pooling == "meanmax" else 1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens``: (batch, time) ids, right-padded; ``lengths``: (batch,) true lengths."""
        if lengths is None:  # no padding: every sequence fills the whole row
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], dtype=torch.long)
        # pack_padded_sequence wants lengths on the CPU.
        packed = pack_padded_sequence(
            self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, _) = self.lstm(packed)
        if self.pooling in ("max", "meanmax"):
            # Padded steps are -inf so they never win the max.
            steps, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            feat = steps.max(dim=1).values
            if self.pooling == "meanmax":  # padded steps are 0 in the sum over the true length
                steps, n = pad_packed_sequence(out, batch_first=True, padding_value=0.0)
                mean = steps.sum(dim=1) / n.to(steps.device, steps.dtype).unsqueeze(1)
                feat = torch.cat([mean, feat], dim=1)
        elif self.bidirectional:
            feat = torch.cat([h[-2], h[-1]], dim=1)  # top layer: forward and backward final states
        else:
            feat = h[-1]
        return self.head(self.dropout(feat))


def _constructor(
    name: str, hidden_size: int, num_layers: int, bidirectional: bool, doc: str
) -> Callable[..., LSTMClassifier]:
    """One registered constructor: LSTMClassifier with this model's defaults (as models/rnn.py)."""

    def build(
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 128,
        hidden_size: int = hidden_size,
        num_layers: int = num_layers,
        bidirectional: bool = bidirectional,
        dropout: float = 0.5,
        padding_idx: int = 0,
        pooling: Pooling = "last",
        pretrained: torch.Tensor | None = None,
    ) -> LSTMClassifier:
        return LSTMClassifier(vocab_size, num_classes, embed_dim, hidden_size, num_layers,
                              bidirectional, dropout, padding_idx, pooling, pretrained)  # fmt: skip

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


lstm_basic = _constructor(
    "lstm_basic",
    hidden_size=128,
    num_layers=3,
    bidirectional=False,
    doc="The study's first model: embedding -> 3 stacked LSTM layers -> dropout 0.5 -> linear.",
)
bilstm = _constructor(
    "bilstm",
    hidden_size=64,
    num_layers=2,
    bidirectional=True,
    doc="The study's improved model: embedding 128, 2 bidirectional layers of 64, dropout 0.5.",
)


def text_example(
    build: Callable[..., nn.Module], dims: tuple[int, ...], classes: int
) -> tuple[nn.Module, list[tuple[int, ...]], list[torch.dtype]]:
    """(model, torchinfo input size, dtypes) for ``archlab summary``: one sequence of dims[-1]
    tokens over a 20,000-word vocabulary."""
    return build(vocab_size=20_000, num_classes=classes), [(1, dims[-1])], [torch.long]
