"""What every sales framing shares: the network, the scaled loss, metrics on the sales scale,
the test rows behind a bundle, the residual plot and the exploratory plots.

A sample's targets are a ``SalesTargets``: the scaled target, its scale and offset and the
holiday flag (horizon runs add the observed mask and the origin), so metrics are exact on the
original sales scale while the loss works in scaled units.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import RunConfig
from archlab.data import sales
from archlab.data.sales import plain
from archlab.errors import ArchlabError
from archlab.metrics import regression_metrics, wmae
from archlab.models import MODELS
from archlab.task_configs import SalesDataConfig, SalesModelConfig
from archlab.tasks.base import DataBundle

A = TypeVar("A", np.ndarray, torch.Tensor)


def refuse_score_all(path: str) -> None:
    """eval --all scores every row of a classification set; a forecast's test is the last
    steps of each series, which the earlier steps feed, so there is no "every row" to score."""
    raise ArchlabError(
        f"{path}: eval --all scores every image or text of a classification run; sales eval "
        "--data scores OTHER's last test steps (data.test_steps), forecast from the steps "
        "before them: drop --all"
    )


class SalesTargets(NamedTuple):
    """A sales sample's targets by name. The Trainer carries them packed in one float array whose
    last axis holds these fields in this order: (N, 4) for one step, (N, H, 6) for a horizon
    (``pack``); ``unpack`` reads them back with the layout the framing declares."""

    scaled: Any  # the target in the network's units: sales = scaled * scale + offset
    scale: Any
    offset: Any
    holiday: Any  # 1 on holiday steps (they weigh 5 in WMAE)
    observed: Any = None  # horizon: 1 where the step has an actual, 0 for padding
    origin: Any = None  # horizon: which origin forecast it (0 the split's own, j > 0 backtest j)

    @classmethod
    def unpack(cls, packed: A, horizon: bool = False) -> SalesTargets:
        n = 6 if horizon else 4
        return cls(*(packed[..., i] for i in range(n)))

    def pack(self) -> Any:
        """One array (NumPy or torch, as the fields) with the fields on its last axis."""
        fields = [f for f in self if f is not None]
        stack = torch.stack if isinstance(fields[0], torch.Tensor) else np.stack
        return stack(fields, -1)

    def sales(self) -> A:
        """The actual sales."""
        return self.scaled * self.scale + self.offset

    def to_sales(self, scaled: A) -> A:
        """Forecasts in the network's units as sales."""
        return scaled * self.scale + self.offset

    def to_scaled(self, sales: A) -> A:
        """Forecasts in sales units in the network's units."""
        return (sales - self.offset) / self.scale


def holiday_weight(hol: torch.Tensor) -> torch.Tensor:
    return torch.where(hol > 0.5, 5.0, 1.0)  # Kaggle's WMAE: holiday weeks weigh 5


def resolved_config(c: SalesDataConfig, resolved: dict[str, Any]) -> SalesDataConfig:
    """``c`` with the values the data decided (date format, season, skipped tables)."""
    return replace(c, **{k: tuple(v) if isinstance(v, list) else v for k, v in resolved.items()})


def plain_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else plain(v) for k, v in d.items()}


def source_info(c: SalesDataConfig, resolved: dict[str, Any]) -> dict[str, Any]:
    """The first keys of data.json: where the data came from and what it decided."""
    return {
        "source": str(Path(c.path).resolve()),
        "input": "file" if Path(c.path).is_file() else "folder",
        "resolved_config": plain_dict(resolved),
    }


@dataclass(frozen=True)
class SalesContext:
    """The test rows behind a bundle: keys, dates, actuals and each naive forecast."""

    test_rows: pd.DataFrame


SalesBundle = DataBundle[Any, SalesContext]


class SalesTask:
    """Regression of sales with a recurrent network; a framing adds baselines and predict.

    ``fitted`` (the framing's Fitted object) holds the sizes and the training target's mean
    and std; nothing changes after construction.
    """

    name = "sales"
    outputs = "values"  # how `archlab ensemble` averages members: see archlab/ensemble.py
    # fp32 on a CPU: a forecast is a regression output (bf16 keeps 8 bits of it), and bf16
    # measured slower for the RNN and GRU forecasters (1.3x faster for the LSTM, whose runs
    # take minutes anyway; bench/cpu_precision.py). train.amp=bf16 still forces it.
    cpu_amp = False

    def __init__(self, cfg: RunConfig, fitted: Any) -> None:
        self.fitted = fitted
        self.data_cfg: SalesDataConfig = resolved_config(cfg.data, fitted.resolved)
        self.model_cfg: SalesModelConfig = cfg.model
        self.reg = cfg.reg

    def callbacks(self) -> list[Any]:
        return []

    def lr_scale(self, name: str) -> float:
        return 1.0

    def embeddings(self) -> tuple[int, ...]:
        """Vocabulary size of each series key the network embeds; () for none."""
        return ()

    # --- model, loss, metrics ---
    def build_model(self) -> nn.Module:
        m = self.model_cfg
        cats = self.embeddings()
        return MODELS[m.name].build(
            input_size=self.fitted.input_size,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=self.reg.dropout,
            embeddings=cats,
            embed_dim=m.embed_dim if cats else 0,
        )

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, cats, base, y = batch
        return base + model(x, cats), y  # the network predicts the residual over the baseline

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = SalesTargets.unpack(targets)
        if self.model_cfg.loss == "mse":
            return F.mse_loss(outputs, t.scaled)
        # |pred - y| on the sales scale is scale * |scaled error|, so weighting by scale makes
        # this the batch's WMAE up to a constant (it stays in scaled units).
        w = holiday_weight(t.holiday) * t.scale
        return (w * (outputs - t.scaled).abs()).sum() / w.sum()

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        t = SalesTargets.unpack(targets.double().numpy())
        pred, y = t.to_sales(outputs.double().numpy()), t.sales()
        m: dict[str, Any] = {"wmae": wmae(y, pred, t.holiday > 0.5), **regression_metrics(y, pred)}
        mu, sd = self.fitted.global_mean, self.fitted.global_std
        std = regression_metrics((y - mu) / sd, (pred - mu) / sd)
        m["rmse_std"], m["r2_std"] = std["rmse"], std["r2"]
        return m

    # --- artefacts ---
    def baselines(self, data: SalesBundle) -> dict[str, Any]:
        return {}

    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: SalesBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab.plots import eda_sales as sales_plots

        rows = data.context.test_rows.copy()
        t = SalesTargets.unpack(targets.double().numpy())
        rows["forecast"] = t.to_sales(outputs.double().numpy())
        self.plot_test_rows(rows, run_dir, data)
        c = self.data_cfg
        res = (rows.actual - rows.forecast).groupby(rows[c.date_column]).mean()
        sales_plots.residuals_by_step(
            res.index.to_numpy(), res.to_numpy(), Path(run_dir) / "plots" / "residuals.png"
        )

    def plot_test_rows(self, rows: pd.DataFrame, run_dir: Path, data: SalesBundle) -> None:
        """Framing-specific plots of the test rows with their ``forecast`` column; none here."""


def series_plot(
    rows: pd.DataFrame,
    keys: list[str],
    date: str,
    wanted: tuple[str, ...],
    run_dir: Path,
    baseline: str = "mean",
) -> None:
    """actual_vs_forecast.png: the chosen (or four largest) test series with ``baseline``."""
    from archlab.plots.eda_sales import actual_vs_forecast

    label = rows[keys].astype(str).agg("-".join, axis=1)
    chosen = list(wanted) or list(rows.groupby(label).actual.sum().nlargest(4).index)
    series = {}
    for name in chosen:
        g = rows[label == name]
        if len(g):
            series[name] = (g[date].to_numpy(), g.actual.to_numpy(), g.forecast.to_numpy(),
                            g[baseline].to_numpy())  # fmt: skip
    actual_vs_forecast(series, Path(run_dir) / "plots" / "actual_vs_forecast.png", baseline)


def eda(cfg: RunConfig, out_dir: Path) -> list[Path]:
    """The study's five exploratory plots of the merged panel; what reading noted and the plots
    the data has no column for go to stderr."""
    from archlab.plots.eda_sales import sales_eda

    df = sales.load_sales(cfg.data)
    c = replace(cfg.data, **df.attrs.get("resolved", {}))
    days = sales.infer_step_days(df[c.date_column].to_numpy())
    step = sales.step_adjective(days, sales.infer_weekdays(df[c.date_column].to_numpy(), days))
    # A wide table's values have no column name of the user's: not the run's Weekly_Sales.
    label = "value" if df.attrs["read"].get("wide") else c.target
    paths, left_out = sales_eda(df, c, Path(out_dir), step, label)
    for n in [*df.attrs["read"]["file_notes"], *(f"left out {p}" for p in left_out)]:
        print(f"archlab: eda: {n.removeprefix('data: ')}", file=sys.stderr)
    return paths
