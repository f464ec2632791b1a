"""The sales featurizer's core: per-series scalers, covariate standardization, series-key
vocabularies and the year position of each step.

``fit_*`` return the fitted fields (plain values, saved in fitted.json); ``PanelFit`` gives a
featurizer holding those fields the methods that apply them to any panel of the same data;
``PlainJSON`` is the fitted.json round trip of every sales framing's fitted state.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self

import numpy as np
import pandas as pd

from archlab.data.sales import ffill_time, series_scalers

COV_CLIP = 5.0  # standardized covariates are clipped to +-5 training standard deviations


def plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def fit_series(keys: np.ndarray, y: np.ndarray, n_train: int, min_scale: float) -> dict[str, Any]:
    """``series``, ``offset``, ``scale``: the key values and the mean and std over the first
    ``n_train`` steps of each series with training steps (the others have no scaler)."""
    offset, scale, n_obs = series_scalers(y, n_train, min_scale)
    keep = n_obs > 0
    return {
        "series": tuple(tuple(plain(v) for v in k) for k in keys[keep].tolist()),
        "offset": tuple(np.nan_to_num(offset[keep]).tolist()),
        "scale": tuple(scale[keep].tolist()),
    }


def fit_covariates(cov: np.ndarray, n_train: int) -> dict[str, Any]:
    """``cov_mean``, ``cov_std`` of each covariate over the first ``n_train`` steps; std None
    for a covariate constant over them (the markdowns: NA before Nov 2011), or without any
    training value, which teaches the network nothing and would be far out of range later: it
    enters as 0."""
    S, _, C = cov.shape
    train = cov[:, :n_train].reshape(S * n_train, C)
    with np.errstate(invalid="ignore"):
        mean = np.nan_to_num(np.nanmean(train, 0))
        std = np.nan_to_num(np.nanstd(train, 0), nan=0.0)
    return {
        "cov_mean": tuple(mean.tolist()),
        "cov_std": tuple(v if v > 0 else None for v in std.tolist()),
    }


def fit_vocab(keys: np.ndarray) -> tuple[tuple[Any, ...], ...]:
    """The sorted values of each series key: the embedding ids."""
    cols = [keys[:, i] for i in range(keys.shape[1])]
    return tuple(tuple(sorted(plain(x) for x in pd.unique(pd.Series(k)).tolist())) for k in cols)


def year_position(dates: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of each step's position in its year, broadcast to ``shape`` (S, T)."""
    day = (dates - dates.astype("datetime64[Y]")) / np.timedelta64(1, "D")
    angle = np.broadcast_to(2 * np.pi * day / 365.25, shape)
    return np.sin(angle), np.cos(angle)


class PlainJSON:
    """A frozen dataclass as plain JSON (tuples as lists) and back (lists as tuples; a field an
    older file lacks takes its default, a key it does not know is left out)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: _listify(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: _tuplify(v) for k, v in d.items() if k in names})


class PanelFit(PlainJSON):
    """The methods over the featurizer's fitted core (a frozen dataclass that inherits this)."""

    series: tuple[tuple[Any, ...], ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    key_vocab: tuple[tuple[Any, ...], ...]
    covariates: tuple[str, ...]
    cov_mean: tuple[float, ...]
    cov_std: tuple[float | None, ...]

    @property
    def n_categories(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.key_vocab)

    @property
    def constant_covariates(self) -> list[str]:
        return [k for k, v in zip(self.covariates, self.cov_std, strict=True) if v is None]

    def series_index(self, keys: np.ndarray) -> np.ndarray:
        """Index of each panel series among the training series (-1: never seen in training)."""
        known = {k: i for i, k in enumerate(self.series)}
        return np.array(
            [known.get(tuple(plain(v) for v in k), -1) for k in keys.tolist()], dtype=np.int64
        )

    def key_ids(self, keys: np.ndarray) -> np.ndarray:
        """(S, k) index of each series key value in the vocabulary (0 for one never seen)."""
        vocab = [{v: j for j, v in enumerate(vs)} for vs in self.key_vocab]
        ids = [[vocab[i].get(plain(v), 0) for i, v in enumerate(k)] for k in keys.tolist()]
        return np.array(ids, dtype=np.int64).reshape(len(keys), len(vocab))

    def scalers(
        self, idx: np.ndarray, unknown: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offset and scale of each series index; a series never seen (-1) gets ``unknown``
        (offset, scale)."""
        seen = idx >= 0
        offset = np.where(seen, np.array((*self.offset, unknown[0]))[idx], unknown[0])
        return offset, np.where(seen, np.array((*self.scale, unknown[1]))[idx], unknown[1])

    def standardized(self, cov: np.ndarray) -> np.ndarray:
        """(S, T, C) covariates forward-filled over gaps, standardized and clipped (later
        steps can drift beyond the training range: CPI, fuel price); NaN before a series'
        first value."""
        mean = np.array(self.cov_mean, np.float64)
        std = np.array([np.inf if v is None else v for v in self.cov_std], np.float64)
        return np.clip((ffill_time(cov) - mean) / std, -COV_CLIP, COV_CLIP)


def _listify(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _listify(x) for k, x in v.items()}
    return [_listify(x) for x in v] if isinstance(v, tuple | list) else v


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v
