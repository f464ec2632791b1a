"""The distillation teacher's cost per run, cold and reused (a budget search's later trials).

Fits the cross-fitted TF-IDF teacher on a text CSV's training texts once (cold), then asks for
it again with the same inputs (what a later trial of ``train --budget`` does) and prints both
times and their ratio, in one process.

    python bench/distill_teacher.py ../shared/data/twitter_airline/Tweets.csv negativereason
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from archlab.tasks.tfidf import cross_fitted_probs


def main(path: str, column: str) -> None:
    df = pd.read_csv(path).dropna(subset=[column])
    names = sorted(df[column].unique())
    labels = df[column].map({n: i for i, n in enumerate(names)}).to_numpy()
    texts = df["text"].astype(str).tolist()
    rng = np.random.default_rng(0)
    train = rng.permutation(len(texts))[: int(0.7 * len(texts))]
    t_texts, t_labels = [texts[i] for i in train], labels[train]
    t0 = time.perf_counter()
    cold = cross_fitted_probs(t_texts, t_labels, len(names), folds=5, seed=0)
    t1 = time.perf_counter()
    warm = cross_fitted_probs(t_texts, t_labels, len(names), folds=5, seed=0)
    t2 = time.perf_counter()
    assert np.array_equal(cold, warm)
    print(f"{len(t_texts)} texts, {len(names)} classes, 5 folds: cold {t1 - t0:.2f} s, "
          f"reused {t2 - t1:.3f} s ({(t1 - t0) / (t2 - t1):.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:3])
