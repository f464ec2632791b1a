"""Seeded, stratified train/val/test splits shared by every classification task."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from archlab.errors import ArchlabError


def stratified_split(
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    provided: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return sorted index arrays for 'train', 'val', 'test'.

    With ``provided`` (an array of 'train'/'val'/'test' tags) its tagged rows are kept as given;
    a missing val (or test) split is carved, stratified, from the provided train rows with
    ``val_fraction`` (``test_fraction``) of the whole set.
    """
    n = len(labels)
    idx = np.arange(n)
    if provided is not None:
        test = idx[provided == "test"]
        val = idx[provided == "val"]
        train = idx[provided == "train"]
        k = len(np.unique(labels))
        if len(test) == 0 and test_fraction > 0:
            n_test = max(round(test_fraction * n), k)
            train, test = _split(train, labels[train], n_test, seed, "test")
        if len(val) == 0 and val_fraction > 0:
            n_val = max(round(val_fraction * n), k)
            train, val = _split(train, labels[train], n_val, seed, "val")
        return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ArchlabError(
            f"invalid split fractions val={val_fraction}, test={test_fraction}: each must be in "
            "(0, 1) and together < 1"
        )
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    rest, test = _split(idx, labels, n_test, seed, "test")
    train, val = _split(rest, labels[rest], n_val, seed + 1, "val")
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _split(
    idx: np.ndarray, labels: np.ndarray, n_take: int, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if n_take < len(counts) or len(idx) - n_take < len(counts) or counts.min() < 2:
        raise ArchlabError(
            f"too few samples for a stratified {name} split: {len(idx)} samples, "
            f"{len(counts)} classes, smallest class has {counts.min()} (need >= 2 per class)"
        )
    keep, take = train_test_split(idx, test_size=n_take, random_state=seed, stratify=labels)
    return keep, take


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced-as-the-data random subset of ``n`` samples (sorted)."""
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    idx = np.arange(len(labels))
    _, take = train_test_split(idx, test_size=n, random_state=seed, stratify=labels)
    return np.sort(take)


def class_weights(train_counts: np.ndarray | list[int]) -> tuple[float, ...]:
    """Cross-entropy class weights: inverse training frequency, scaled so that a balanced data
    set gets weight 1 per class (a class absent from training counts as one sample)."""
    counts = np.maximum(np.asarray(train_counts), 1).astype(np.float64)
    return tuple((counts.sum() / (len(counts) * counts)).tolist())
