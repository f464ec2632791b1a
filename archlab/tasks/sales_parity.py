"""Sales, the ``parity`` framing: the study's setup, each merged row one sample.

Standardized numeric features plus one-hot store/department/type (sequence length 1) -> the
standardized target, random 70/15/15 split. No time steps, so no naive baselines or predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import RunConfig
from archlab.data import sales
from archlab.data.sales import PlainJSON
from archlab.errors import ArchlabError
from archlab.rundir import require_fitted
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Batches, DataBundle
from archlab.tasks.sales_common import (
    SalesContext,
    SalesTargets,
    SalesTask,
    plain_dict,
    refuse_score_all,
    resolved_config,
    source_info,
)


def _none_nan(v: float) -> float | None:
    return None if math.isnan(v) else v  # JSON has no NaN (an all-empty training column)


@dataclass(frozen=True)
class ParityFitted(PlainJSON):
    """Feature and target standardization and the one-hot vocabularies of the training rows."""

    kind: ClassVar[str] = "sales-parity"
    numeric_features: tuple[str, ...]
    feature_mean: tuple[float | None, ...]  # None: the column is empty in training (NaN)
    feature_std: tuple[float, ...]  # 1 for constant columns
    onehot_features: tuple[str, ...]
    onehot_vocab: tuple[tuple[Any, ...], ...]  # sorted values of each one-hot column
    global_mean: float  # training target mean and std: the scaled target, RMSE/R² std metrics
    global_std: float
    resolved: dict[str, Any] = field(default_factory=dict)  # config values the data decided

    @property
    def input_size(self) -> int:
        return len(self.numeric_features) + sum(len(v) for v in self.onehot_vocab)


ParityBundle = DataBundle[ParityFitted, SalesContext]


class ParityData:
    """Reads the merged table and builds one sample per row; keeps only ``cfg``.

    Given a run's ``fitted`` it is reused: the run's standardization and vocabularies (a value
    the run never saw one-hot encodes as zeros), so the input width matches the network.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def _read(self) -> tuple[pd.DataFrame, SalesDataConfig, dict[str, Any], dict[str, np.ndarray]]:
        """The merged table, its resolved config and resolved values, and the random split."""
        df = sales.load_sales(self.cfg.data)
        resolved = dict(df.attrs.get("resolved", {}))
        c = resolved_config(self.cfg.data, resolved)
        missing = [k for k in c.parity_onehot if k not in df.columns]
        if missing:
            raise ArchlabError(
                f"{c.path}: data.parity_onehot column(s) {missing} not found; found "
                f"{list(df.columns)}"
            )
        if df[c.target].isna().any():  # forecast framing treats them as missing weeks instead
            raise ArchlabError(
                f"{c.path}: data.framing=parity needs {c.target!r} on every row of "
                f"{c.train_file}; {int(df[c.target].isna().sum())} row(s) have an empty cell"
            )
        n = len(df)
        perm = np.random.default_rng(self.cfg.data_seed).permutation(n)
        n_test, n_val = round(c.test_fraction * n), round(c.val_fraction * n)
        split = {
            "train": np.sort(perm[n_test + n_val :]),
            "val": np.sort(perm[n_test : n_test + n_val]),
            "test": np.sort(perm[:n_test]),
        }
        return df, c, resolved, split

    @staticmethod
    def _numeric(c: SalesDataConfig) -> list[str]:
        calendar = [k for k in ("Year", "Month", "Week") if k != c.date_column]
        return [*c.covariates, *([c.holiday_column] if c.holiday_column else []), *calendar]

    def _fit(
        self, df: pd.DataFrame, c: SalesDataConfig, resolved: dict[str, Any], train: np.ndarray
    ) -> ParityFitted:
        num_cols = self._numeric(c)
        tr = df[num_cols].to_numpy(np.float64)[train]
        mu, sd = np.nanmean(tr, 0), np.nanstd(tr, 0)
        sd[~(sd > 0)] = 1.0
        y = df[c.target].to_numpy(np.float64)[train]
        ymu, ysd = float(y.mean()), float(y.std())
        return ParityFitted(
            numeric_features=tuple(num_cols),
            feature_mean=tuple(_none_nan(v) for v in mu.tolist()),
            feature_std=tuple(sd.tolist()),
            onehot_features=tuple(c.parity_onehot),
            onehot_vocab=tuple(
                tuple(pd.factorize(df[k], sort=True)[1].tolist()) for k in c.parity_onehot
            ),
            global_mean=ymu,
            global_std=ysd if ysd > 0 else 1.0,  # a constant target: scaled by 1, like features
            resolved=plain_dict(resolved),
        )

    def build(
        self, device: torch.device, fitted: ParityFitted | None = None, score_all: bool = False
    ) -> ParityBundle:
        if score_all:
            refuse_score_all(self.cfg.data.path)
        df, c, resolved, split = self._read()
        fit = fitted if fitted is not None else self._fit(df, c, resolved, split["train"])
        n = len(df)
        missing = [k for k in fit.numeric_features if k not in df.columns]
        if missing:
            raise ArchlabError(
                f"{c.path}: column(s) {missing} the run was trained on are not in the merged "
                f"tables; found {list(df.columns)}"
            )
        mu = np.array([np.nan if v is None else v for v in fit.feature_mean])
        sd = np.array(fit.feature_std)
        x = df[list(fit.numeric_features)].to_numpy(np.float64)
        x = np.nan_to_num((x - mu) / sd).astype(np.float32)
        # Codes in the run's vocabularies; -1 (a value it never saw) one-hot encodes as zeros.
        codes = np.stack(
            [pd.Index(v).get_indexer(df[k]) for k, v in
             zip(fit.onehot_features, fit.onehot_vocab, strict=True)], 1
        ) if fit.onehot_features else np.zeros((n, 0), np.int64)  # fmt: skip
        sizes = [len(v) for v in fit.onehot_vocab]
        y = df[c.target].to_numpy(np.float64)
        ymu, ysd = fit.global_mean, fit.global_std
        hol = df[c.holiday_column].to_numpy(np.float32) if c.holiday_column else np.zeros(n)
        targets = SalesTargets((y - ymu) / ysd, np.full(n, ysd), np.full(n, ymu), hol).pack()
        x_t = torch.from_numpy(x).to(device)
        codes_t = torch.from_numpy(codes.astype(np.int64)).to(device)
        targ_t = torch.from_numpy(targets.astype(np.float32)).to(device)
        zero = torch.zeros(n, device=device)

        def make(idx: np.ndarray) -> Batches:
            sel = torch.from_numpy(idx).to(device)

            def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
                j = sel[i.to(device)]
                onehot = [F.one_hot(codes_t[j, k] + 1, n + 1)[:, 1:].float()
                          for k, n in enumerate(sizes)]  # fmt: skip
                xb = torch.cat([x_t[j], *onehot], 1)[:, None, :]  # sequence length 1
                return xb, codes_t[j], zero[j], targ_t[j]

            return Batches(len(idx), fetch)

        te = split["test"]
        test_rows = pd.DataFrame(
            {
                **{k: df[k].to_numpy()[te] for k in c.series_keys},
                c.date_column: df[c.date_column].to_numpy()[te],
                "actual": y[te],
                "holiday": hol[te] > 0.5,
            }
        )
        info = {
            **source_info(c, resolved),
            "framing": "parity",
            "n_rows": n,
            "input_size": fit.input_size,
            "numeric_features": list(fit.numeric_features),
            "onehot_features": dict(zip(fit.onehot_features, sizes, strict=True)),
            "split_sizes": {k: len(v) for k, v in split.items()},
        }
        return DataBundle(
            train=make(split["train"]),
            val=make(split["val"]),
            test=make(split["test"]),
            fitted=fit,
            info=info,
            splits={k: v.tolist() for k, v in split.items()},
            notes=sales.reading_notes(df),
            context=SalesContext(test_rows),
        )

    def restore(self, run_dir: Path) -> ParityFitted:
        """The run's fitted.json."""
        return ParityFitted.from_dict(require_fitted(run_dir, ParityFitted.kind))


class SalesParity(SalesTask):
    """The study's row-per-sample regression; scored on the sales scale, no naive baselines."""

    fitted: ParityFitted

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        raise ArchlabError("predict needs a forecast-framing run (data.framing=forecast)")
