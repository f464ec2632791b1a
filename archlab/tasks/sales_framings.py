"""Sales framings: the FRAMINGS registry and the two factories behind TASKS["sales"].

A framing is one way of turning the merged sales panel into samples; each is a TaskData, a
frozen Fitted and a Task of its own. ``forecast`` is the one forecaster: H steps from each
origin (data.horizon; H = 1, next-step forecasting, with an origin per test step);
``parity`` the study's row-per-sample setup. ``sales_data(cfg)`` picks the framing's data from
the config (``framing_of``), ``sales_task(cfg, fitted)`` the task from the type of its fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archlab.config import RunConfig
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Task, TaskData
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
    "forecast": Framing(HorizonData, HorizonFitted, HorizonForecast),
    "parity": Framing(ParityData, ParityFitted, SalesParity),
}


def framing_of(c: SalesDataConfig) -> str:
    """The FRAMINGS key a data config asks for (``data.framing``)."""
    return c.framing


def sales_data(cfg: RunConfig) -> TaskData:
    return FRAMINGS[framing_of(cfg.data)].data(cfg)


def sales_task(cfg: RunConfig, fitted: Any) -> Task:
    for f in FRAMINGS.values():
        if type(fitted) is f.fitted:
            return f.task(cfg, fitted)
    raise TypeError(f"no sales framing fits a {type(fitted).__name__}")
