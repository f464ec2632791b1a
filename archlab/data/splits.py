"""Seeded, stratified train/val/test splits shared by every classification task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from archlab.data.csv_format import as_number
from archlab.errors import ArchlabError


@dataclass(frozen=True)
class Named:
    """What a split's messages name: the data (``--data``), its samples' noun and its classes
    (by label index; empty: 'class <index>')."""

    source: str = ""
    unit: str = "samples"
    classes: tuple[str, ...] = ()

    def cls(self, i: int) -> str:
        return repr(self.classes[i]) if i < len(self.classes) else f"class {i}"


def stratified_split(
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    provided: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    named: Named = Named(),
    notes: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Return sorted index arrays for 'train', 'val', 'test'.

    With ``provided`` (an array of 'train'/'val'/'test' tags) its tagged rows are kept as given;
    a missing val (or test) split is carved, stratified, from the provided train rows with
    ``val_fraction`` (``test_fraction``) of the whole set. With ``groups`` (a group id per
    sample, from ``duplicate_groups``) every carved split takes whole groups: copies of one
    image never straddle a carved boundary. A carved split takes at least one sample per class
    (stratifying needs it): where its fraction holds fewer, a first line saying so goes to
    ``notes``; errors and notes name ``named``'s data, unit and classes.
    """
    n = len(labels)
    idx = np.arange(n)
    g = np.arange(n) if groups is None else np.asarray(groups)
    raised: list[str] = []
    if provided is not None:
        test = idx[provided == "test"]
        val = idx[provided == "val"]
        train = idx[provided == "train"]
        k = len(np.unique(labels))
        if len(test) == 0 and test_fraction > 0:
            n_test = max(round(test_fraction * n), k)
            train, test = _split(train, labels[train], n_test, seed, "test", g[train], named)
        if len(val) == 0 and val_fraction > 0:
            n_val = max(round(val_fraction * n), k)
            train, val = _split(train, labels[train], n_val, seed, "val", g[train], named)
        return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ArchlabError(
            f"invalid split fractions val={val_fraction}, test={test_fraction}: each must be in "
            "(0, 1) and together < 1"
        )
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    rest, test = _split(idx, labels, n_test, seed, "test", g, named, raised)
    train, val = _split(rest, labels[rest], n_val, seed + 1, "val", g[rest], named, raised)
    if raised and notes is not None:
        k, unit = len(np.unique(labels)), named.unit
        asked = {"test": (test_fraction, n_test), "val": (val_fraction, n_val)}
        said = " and ".join(f"a {f:.0%} {sp} split ({m:,} {unit})"
                            for sp, (f, m) in asked.items() if sp in raised)  # fmt: skip
        distinct = ", copies counted once," if len(np.unique(g)) < n else ""
        notes.append(
            f"data: {named.source}: {n:,} {unit} in {k} classes: {said}{distinct} would hold "
            "fewer than one per class, which stratifying needs: carved one per class at least "
            f"instead (test {len(test):,}, val {len(val):,} {unit})"
        )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _split(
    idx: np.ndarray,
    labels: np.ndarray,
    n_take: int,
    seed: int,
    name: str,
    groups: np.ndarray | None = None,
    named: Named = Named(),
    raised: list[str] | None = None,
    copies: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` split into (kept, taken), ``n_take`` taken, stratified by ``labels``, at least
    one per class (where fewer were asked, ``name`` goes to ``raised``). ``copies``: how many
    samples the distinct ones of ``idx`` stand for (messages name both)."""
    if groups is not None:
        _, first = np.unique(groups, return_index=True)
        if len(first) < len(idx):  # copies: split one member per group, the rest follow it
            n_groups = round(n_take * len(first) / len(idx))
            _, took = _split(first, labels[first], n_groups, seed, name, None, named, raised,
                             copies=len(idx))  # fmt: skip
            take = np.isin(groups, groups[took])
            return idx[~take], idx[take]
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    k = len(present)
    if n_take < k:
        # Stratifying puts at least one of each class in each part: a split of fewer samples
        # than classes cannot be drawn, so it takes one per class (as a split carved from
        # the data's own train split does); a set that could be split before is split as before.
        if raised is not None:
            raised.append(name)
        n_take = k
    small = present[np.argmin(counts[present])]
    if counts[small] < 2 or len(idx) - n_take < k:
        raise ArchlabError(_too_few(idx, counts, small, n_take, name, named, copies))
    keep, take = train_test_split(idx, test_size=n_take, random_state=seed, stratify=labels)
    return keep, take


def _too_few(
    idx: np.ndarray,
    counts: np.ndarray,
    small: int,
    n_take: int,
    name: str,
    named: Named,
    copies: int,
) -> str:
    """The one line of a split that cannot be carved: what the data holds, and the fix."""
    unit, k = named.unit, int((counts > 0).sum())
    where = f"{named.source}: " if named.source else ""
    left = " left after the test split" if name == "val" else ""
    # The user counts files, the split counts pictures: say why the two counts differ.
    held = (f"the {copies:,} {unit} are {len(idx):,} distinct ones and byte-identical copies "
            "of them (a split keeps copies together): " if copies else "")  # fmt: skip
    some = "distinct " if copies else ""
    if counts[small] < 2:
        what = (f"{held}{len(idx):,} {some}{unit}{left}, {k} classes, and {named.cls(small)} "
                f"has {counts[small]} of them")  # fmt: skip
        fix = f"each class needs at least 3 {some}{unit} to carve train, val and test"
    else:
        what = (f"{held}taking {n_take:,} of {len(idx):,} {some}{unit}{left} leaves "
                f"{len(idx) - n_take:,} for training, fewer than the {k} classes")  # fmt: skip
        fix = "lower data.val_fraction / data.test_fraction, or add data"
    return f"{where}too few {some}{unit} for a stratified {name} split: {what}; {fix}"


def duplicate_groups(keys: Sequence[str]) -> np.ndarray:
    """A group id per sample: the index of the first sample with the same key (content hash)."""
    first: dict[str, int] = {}
    return np.array([first.setdefault(k, i) for i, k in enumerate(keys)], dtype=np.int64)


def cross_split_copies(groups: np.ndarray, split: dict[str, np.ndarray]) -> dict[str, int]:
    """For val and test: how many of their samples share a group with an earlier split's
    (train for val; train or val for test), i.e. are no held-out samples."""
    seen = groups[split["train"]]
    out = {}
    for k in ("val", "test"):
        mine = groups[split[k]]
        out[k] = int(np.isin(mine, seen).sum())
        seen = np.concatenate([seen, mine])
    return out


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced-as-the-data random subset of ``n`` samples (sorted)."""
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    idx = np.arange(len(labels))
    _, take = train_test_split(idx, test_size=n, random_state=seed, stratify=labels)
    return np.sort(take)


def class_weights(train_counts: np.ndarray | list[int], power: float = 1.0) -> tuple[float, ...]:
    """Cross-entropy class weights: inverse training frequency to ``power``, scaled so that a
    balanced data set gets weight 1 per class (a class absent from training counts as one
    sample)."""
    counts = np.maximum(np.asarray(train_counts), 1).astype(np.float64)
    return tuple(((counts.sum() / (len(counts) * counts)) ** power).tolist())


def check_run_classes(path: str, found: Sequence[str], run: Sequence[str] | None) -> None:
    """Refuse data whose classes are not a saved run's (``run``; None: a new run), in order:
    the network's outputs are the run's classes by position."""
    if run is not None and tuple(found) != tuple(run):
        # Some of the run's classes only: a held-out batch, which eval --all scores whole.
        hint = "; eval --data PATH --all scores every sample of it" if set(found) < set(run) else ""
        raise ArchlabError(f"{path}: classes {list(found)} differ from the run's {list(run)}{hint}")


def to_run_classes(
    path: str, found: Sequence[str], labels: np.ndarray, run: Sequence[str]
) -> np.ndarray:
    """``labels`` (indices into ``found``) as indices into a saved run's classes ``run``.

    For a held-out set scored whole (eval --all): it may hold any of the run's classes, one
    alone included, but a class the run never learnt is refused (the network has no output
    for it).
    """
    # A number spelt otherwise ('0.0' for the run's '0') is the run's class, as training reads
    # such spellings (csv_format.label_spellings).
    numbers = {n: name for name in run if (n := as_number(name)) is not None}

    def as_run(name: str) -> str:
        n = None if name in run else as_number(name)
        return name if n is None else numbers.get(n, name)

    found = [as_run(f) for f in found]
    present = [found[i] for i in np.unique(labels)]
    unknown = [n for n in present if n not in run]
    if unknown:
        raise ArchlabError(
            f"{path}: class(es) {', '.join(map(repr, unknown))} not among the run's classes "
            f"{list(run)}; remove their samples to score the rest"
        )
    # A class named but without samples (an npz's class_names) is never indexed: -1.
    index = np.array([list(run).index(n) if n in run else -1 for n in found], dtype=np.int64)
    return index[labels]


def held_out_split(n: int) -> dict[str, np.ndarray]:
    """Every one of ``n`` samples in 'test', none in 'train' or 'val' (eval --all)."""
    none = np.zeros(0, dtype=np.int64)
    return {"train": none, "val": none.copy(), "test": np.arange(n, dtype=np.int64)}
