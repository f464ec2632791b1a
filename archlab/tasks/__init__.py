"""TASKS registry: task name -> TaskSpec (task class and its data/model config types)."""

from __future__ import annotations

from archlab.tasks.base import Batches, DataBundle, Task, TaskSpec
from archlab.tasks.image_cls import ImageClassification, ImageDataConfig, ImageModelConfig

TASKS: dict[str, TaskSpec] = {
    "images": TaskSpec(
        ImageClassification,
        ImageDataConfig,
        ImageModelConfig,
        "image classification (folder of class sub-folders, .npz, or built-in digits)",
    ),
}

__all__ = ["TASKS", "Batches", "DataBundle", "Task", "TaskSpec"]
