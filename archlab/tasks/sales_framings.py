"""Sales framings: the FRAMINGS registry and the two factories behind TASKS["sales"].

A framing is one way of turning the merged sales panel into samples; each is a TaskData, a
frozen Fitted and a Task of its own. ``sales_data(cfg)`` picks the framing's data from the
config (``framing_of``), ``sales_task(cfg, fitted)`` the task from the type of its fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archlab.config import RunConfig
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Task, TaskData
from archlab.tasks.forecast import ForecastData, ForecastFitted, SalesForecast
from archlab.tasks.sales_horizon import HorizonForecast
from archlab.tasks.sales_horizon_data import HorizonData, HorizonFitted
from archlab.tasks.sales_parity import ParityData, ParityFitted, SalesParity


@dataclass(frozen=True)
class Framing:
    """One registry entry: its data (from the config), its Fitted type and its task."""

    data: Callable[[RunConfig], TaskData]
    fitted: type
    task: Callable[[RunConfig, Any], Task]


FRAMINGS: dict[str, Framing] = {
    "forecast": Framing(ForecastData, ForecastFitted, SalesForecast),
    "parity": Framing(ParityData, ParityFitted, SalesParity),
    "horizon": Framing(HorizonData, HorizonFitted, HorizonForecast),  # data.horizon > 1
}


def framing_of(c: SalesDataConfig) -> str:
    """The FRAMINGS key a data config asks for (a framing chosen by more than
    ``data.framing``, such as a multi-step horizon, is decided here)."""
    return "horizon" if c.horizon > 1 else c.framing


def sales_data(cfg: RunConfig) -> TaskData:
    return FRAMINGS[framing_of(cfg.data)].data(cfg)


def sales_task(cfg: RunConfig, fitted: Any) -> Task:
    for f in FRAMINGS.values():
        if type(fitted) is f.fitted:
            return f.task(cfg, fitted)
    raise TypeError(f"no sales framing fits a {type(fitted).__name__}")
