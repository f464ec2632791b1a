"""Starting weights for an image network (model.init): read, matched by key and shape, reported.

The source is an archlab image run directory (its model.safetensors) or a state dict file in
torchvision's format (``.safetensors``, or a pickle read with ``torch.load(weights_only=True)``).
archlab's ResNet-18 and VGG-13 name their tensors as torchvision's do, so keys match one to one.
Every convolution and normalization tensor of the network must be found with its shape, except
that a 3-channel stem feeds a 1-channel network summed over its colours (a grey image is
equally R, G and B). Fully connected layers whose shape differs (VGG's first one: archlab pools
to 2 x 2, torchvision to 7 x 7) start afresh, as does the head, the last linear layer, unless
the source is an archlab run with the same classes.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from archlab import rundir
from archlab.config import RunConfig
from archlab.errors import ArchlabError


@dataclass(frozen=True)
class InitWeights:
    """The tensors to load into a freshly built network, and what was done to get them."""

    tensors: dict[str, torch.Tensor] = field(repr=False)
    info: dict[str, Any]  # data.json's "init": source, counts, adapted and fresh layers

    def note(self) -> str:
        i = self.info
        parts = [f"{i['loaded']} of {i['model_tensors']} tensors loaded"]
        if i["adapted"]:
            parts.append(f"{', '.join(i['adapted'])} summed over 3 colours")
        if i["fresh"]:
            parts.append(f"{', '.join(i['fresh'])} initialized afresh")
        if i["ignored"]:
            parts.append(f"{i['ignored']} of the file's tensors unused")
        return f"init: {i['source']} ({i['format']}): " + "; ".join(parts)


def read_source(path: str, task: str = "images") -> tuple[dict[str, torch.Tensor], str, Any]:
    """(state dict, format in words, the source run's class names or None)."""
    p = Path(path)
    if not p.exists():
        raise ArchlabError(f"model.init={path}: no such file or run directory")
    if p.is_dir():
        cfg_path = p / rundir.CONFIG
        if not cfg_path.exists() or not (p / rundir.WEIGHTS).exists():
            raise ArchlabError(
                f"model.init={path}: not a finished run directory (no {rundir.CONFIG} or "
                f"{rundir.WEIGHTS})"
            )
        cfg = RunConfig.from_yaml(cfg_path.read_text(), where=str(cfg_path))
        if cfg.task != task:
            raise ArchlabError(
                f"model.init={path}: a run of task {cfg.task}, not {task}; give an {task} run"
            )
        fitted = rundir.read_fitted(p, "images") or {}
        return _safetensors(p / rundir.WEIGHTS), "archlab run", fitted.get("class_names")
    if p.suffix == ".safetensors":
        return _safetensors(p), "safetensors state dict", None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only loader names an "Unsupported global" for a pickle of other
        # objects; any other error (an unknown opcode, a bad load key) is bytes of no pickle.
        if "Unsupported global" not in str(e):
            why = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
            raise ArchlabError(
                f"model.init={path}: not a PyTorch file (UnpicklingError: {why[:120]})"
            ) from None
        raise ArchlabError(
            f"model.init={path}: refused to load: it holds objects other than tensors and plain "
            "values (torch.load(weights_only=True) refused it; save a state dict)"
        ) from None
    except Exception as e:  # other bytes drive the unpickler into errors of any type
        raise ArchlabError(
            f"model.init={path}: not a PyTorch file ({type(e).__name__}: {str(e)[:120]})"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):  # a training checkpoint that holds the weights
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not (
        isinstance(obj, dict)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise ArchlabError(f"model.init={path}: not a state dict (a mapping of names to tensors)")
    return obj, "state dict", None


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ArchlabError(f"model.init={path}: not a readable safetensors file ({e})") from None


def match(
    model: nn.Module,
    source: dict[str, torch.Tensor],
    *,
    keep_head: bool,
    where: str,
    fmt: str = "state dict",
) -> InitWeights:
    """The tensors of ``source`` that fit ``model`` (any device, e.g. meta), or a one-line error."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    stem = f"{convs[0]}.weight" if convs else ""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else ""

    def fits(key: str) -> bool:
        src = source.get(key)
        return src is not None and tuple(src.shape) == shapes[key]

    # A linear layer loads whole or starts afresh whole (never a new weight with an old bias).
    fresh = {
        n
        for n in linears
        if (n == head and not keep_head)
        or not all(fits(k) for k in shapes if k.startswith(n + "."))
    }
    tensors: dict[str, torch.Tensor] = {}
    adapted, bad = [], []
    for key, shape in shapes.items():
        src = source.get(key)
        if key.rsplit(".", 1)[0] in fresh:
            continue
        if src is not None and tuple(src.shape) == shape:
            tensors[key] = src
        elif key == stem and src is not None and src.shape[1] == 3 and shape[1] == 1:
            tensors[key] = src.sum(dim=1, keepdim=True)
            adapted.append(key)
        else:
            got = "missing" if src is None else f"file {list(src.shape)}"
            bad.append(f"{key} ({got}, model {list(shape)})")
    if bad or not tensors:
        first = bad[0] if bad else "no tensor name in common"
        raise ArchlabError(
            f"model.init={where}: does not fit this network: first bad key {first}; "
            f"{len(tensors)} of {len(shapes)} tensors match, {len(bad)} do not"
        )
    info = {
        "source": where,
        "format": fmt,
        "model_tensors": len(shapes),
        "loaded": len(tensors),
        "adapted": adapted,
        "fresh": sorted(fresh),
        "ignored": len(set(source) - set(shapes)),
    }
    return InitWeights({k: v.detach().clone() for k, v in tensors.items()}, info)
