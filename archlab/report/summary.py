"""Model summaries (torchinfo) for any registered model."""

from __future__ import annotations

import re

from torchinfo import summary as torchinfo_summary
from torchinfo.enums import Units

from archlab.errors import ArchlabError
from archlab.models import MODELS


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse 'CxHxW' (or 'LxF' for sequences) into positive ints."""
    try:
        dims = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ArchlabError(f"--input {text!r}: expected sizes like 1x64x64") from None
    if not dims or min(dims) < 1:
        raise ArchlabError(f"--input {text!r}: sizes must be positive integers")
    return dims


def model_summary(name: str, input_shape: str, classes: int) -> str:
    """torchinfo table (layer, output shape, params) for model ``name``; total params last."""
    spec = MODELS[name]
    dims = parse_shape(input_shape)
    if classes < 2 and spec.task != "sales":
        raise ArchlabError(f"--classes {classes}: a classifier needs at least 2")
    if spec.task == "images":
        if len(dims) != 3:
            raise ArchlabError(f"--input {input_shape!r}: image models need CxHxW")
        model = spec.build(in_channels=dims[0], num_classes=classes)
        input_size = (1, *dims)
        dtypes = None
    else:
        model, input_size, dtypes = spec.example(dims, classes)
    try:
        stats = torchinfo_summary(
            model,
            input_size=input_size,
            dtypes=dtypes,
            verbose=0,
            depth=3,
            col_names=("output_size", "num_params"),
            row_settings=("var_names",),
        )
    except RuntimeError as e:
        # torchinfo wraps the model's own error ("Failed to run torchinfo"): name that one.
        why = " ".join(str(e.__cause__ or e).split())
        raise ArchlabError(
            f"{name}: input {input_shape} does not fit the model ({why[:160]})"
        ) from None
    return _unit_names(str(stats))


def _unit_names(text: str) -> str:
    """'Total mult-adds (Units.MEGABYTES)' -> 'Total mult-adds (M)'.

    torchinfo 1.8 formats its ``Units`` str-enum with an f-string, which Python >= 3.11 renders
    as the member's name instead of its value.
    """
    return re.sub(r"\(Units\.([A-Z]+)\)", lambda m: f"({Units[m.group(1)].value})", text)
