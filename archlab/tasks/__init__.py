"""TASKS registry: task name -> TaskSpec (task class and its data/model config types)."""

from __future__ import annotations

from typing import Any

from archlab.report.eda_text import text_eda
from archlab.task_configs import (
    ImageDataConfig,
    ImageModelConfig,
    SalesDataConfig,
    SalesModelConfig,
    TextDataConfig,
    TextModelConfig,
)
from archlab.tasks.base import Batches, DataBundle, Fitted, Task, TaskData, TaskSpec
from archlab.tasks.forecast import SalesData, SalesForecast
from archlab.tasks.forecast import eda as sales_eda
from archlab.tasks.image_cls import ImageClassification, ImageData
from archlab.tasks.sales_horizon import HorizonData, HorizonFitted, HorizonForecast
from archlab.tasks.text_cls import TextClassification, TextData


def _sales_data(cfg: Any) -> TaskData:
    """Multi-horizon data for data.horizon > 1 (tasks/sales_horizon.py), else next-step."""
    return HorizonData(cfg) if cfg.data.horizon > 1 else SalesData(cfg)


def _sales_task(cfg: Any, fitted: Any) -> Task:
    """The task of a fitted object's kind: a horizon run's, or the next-step framings'."""
    if isinstance(fitted, HorizonFitted):
        return HorizonForecast(cfg, fitted)
    return SalesForecast(cfg, fitted)


TASKS: dict[str, TaskSpec] = {
    "images": TaskSpec(
        ImageData,
        ImageClassification,
        ImageDataConfig,
        ImageModelConfig,
        "image classification (folder of class sub-folders, .npz, or built-in digits)",
    ),
    "sales": TaskSpec(
        _sales_data,
        _sales_task,
        SalesDataConfig,
        SalesModelConfig,
        "next-week sales per (store, dept) series (folder with train/features/stores CSVs)",
        eda=sales_eda,
    ),
    "text": TaskSpec(
        TextData,
        TextClassification,
        TextDataConfig,
        TextModelConfig,
        "short-text classification from a CSV (text and label columns), e.g. tweet sentiment",
        eda=text_eda,
    ),
}

__all__ = ["TASKS", "Batches", "DataBundle", "Fitted", "Task", "TaskData", "TaskSpec"]
