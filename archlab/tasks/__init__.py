"""TASKS registry: task name -> TaskSpec (its data and task classes; configs: task_configs)."""

from __future__ import annotations

from archlab.plots.eda_text import text_eda
from archlab.tasks.base import Batches, DataBundle, Fitted, Task, TaskData, TaskSpec
from archlab.tasks.image_cls import ImageClassification, ImageData
from archlab.tasks.sales_common import eda as sales_eda
from archlab.tasks.sales_framings import sales_data, sales_task
from archlab.tasks.text_cls import TextClassification, TextData

# Classifiers watch validation macro-F1: on the airline tweets (3 and 10 imbalanced labels) the
# epoch it picks scored better on held-out validation rows than the epoch validation loss
# picks, which stops while F1 still climbs (bench/selection_monitor.py, docs/training.md).
CLASSIFIER_MONITOR = ("val_f1_macro", "max")

TASKS: dict[str, TaskSpec] = {
    "images": TaskSpec(
        ImageData,
        ImageClassification,
        "image classification (folder of class sub-folders, .npz, or built-in digits)",
        monitor=CLASSIFIER_MONITOR,
    ),
    "sales": TaskSpec(
        sales_data,
        sales_task,
        "next-week sales per (store, dept) series (folder with train/features/stores CSVs)",
        eda=sales_eda,
    ),
    "text": TaskSpec(
        TextData,
        TextClassification,
        "short-text classification from a CSV (text and label columns), e.g. tweet sentiment",
        monitor=CLASSIFIER_MONITOR,
        eda=text_eda,
    ),
}

__all__ = ["TASKS", "Batches", "DataBundle", "Fitted", "Task", "TaskData", "TaskSpec"]
