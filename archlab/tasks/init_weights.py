"""Starting weights for an image network (model.init): read, matched by key and shape, reported.

The source is an archlab image run directory (its model.safetensors) or a state dict file in
torchvision's format (``.safetensors``, or a pickle read with ``torch.load(weights_only=True)``).
archlab's ResNet-18 and VGG-13 name their tensors as torchvision's do, so keys match one to one.
Every convolution and normalization tensor of the network must be found with its shape, except
that a 3-channel stem feeds a 1-channel network summed over its colours (a grey image is
equally R, G and B). Fully connected layers whose shape differs (VGG's first one: archlab pools
to 2 x 2, torchvision to 7 x 7) start afresh, as does the head, the last linear layer, unless
the source is an archlab run with the same classes. BatchNorm's ``num_batches_tracked``
counters may be missing (torchvision's ImageNet files predate them): the network keeps its own,
as ``load_state_dict`` does. Every key carrying a wrapper's prefix (``module.``: DDP or
DataParallel; ``_orig_mod.``: torch.compile) is read without it. A resumed run reads no file:
its checkpoint holds every weight (``from_checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Iterator
from contextvars import ContextVar
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

# Prefixes a wrapper puts before every key: DistributedDataParallel / DataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
COUNTER = "num_batches_tracked"  # BatchNorm's step counter: absent from older files

# True while runner.prepare reads the data of a resumed run that has a checkpoint: the
# checkpoint holds every weight, so model.init is not read again (it may have moved since).
_from_checkpoint: ContextVar[bool] = ContextVar("archlab_init_from_checkpoint", default=False)


@contextlib.contextmanager
def from_checkpoint(on: bool = True) -> Iterator[None]:
    """Inside the block (``on``), an image run's data build skips model.init (``skipped``)."""
    token = _from_checkpoint.set(on)
    try:
        yield
    finally:
        _from_checkpoint.reset(token)


def skipped() -> bool:
    """Whether model.init is to be left unread: a resumed run's checkpoint holds the weights."""
    return _from_checkpoint.get()


@dataclass(frozen=True)
class InitWeights:
    """The tensors to load into a freshly built network, and what was done to get them."""

    tensors: dict[str, torch.Tensor] = field(repr=False)
    info: dict[str, Any]  # data.json's "init": source, counts, adapted and fresh layers

    def note(self) -> str:
        i = self.info
        parts = [f"{i['loaded']} of {i['model_tensors']} tensors loaded"]
        if i.get("counters_kept"):
            parts.append(
                f"{i['counters_kept']} BatchNorm {COUNTER} counters not in the file, kept as built"
            )
        if i["adapted"]:
            parts.append(f"{', '.join(i['adapted'])} summed over 3 colours")
        if i["fresh"]:
            parts.append(f"{', '.join(i['fresh'])} initialized afresh")
        if i["ignored"]:
            parts.append(f"{i['ignored']} of the file's tensors unused")
        return f"init: {i['source']} ({i['format']}): " + "; ".join(parts)


def read_source(
    path: str, task: str = "images", model: str = ""
) -> tuple[dict[str, torch.Tensor], str, Any]:
    """(state dict, format in words, the source run's class names or None); ``model``: the
    network this run builds, which a source run must have built too."""
    p = Path(path)
    if not p.exists():
        raise ArchlabError(f"model.init={path}: no such file or run directory")
    if p.is_dir():
        cfg_path = p / rundir.CONFIG
        if not cfg_path.exists() or not (p / rundir.WEIGHTS).exists():
            raise ArchlabError(f"model.init={path}: {_no_run(p, cfg_path.exists())}")
        cfg = RunConfig.from_yaml(cfg_path.read_text(), where=str(cfg_path))
        if cfg.task != task:
            raise ArchlabError(
                f"model.init={path}: a run of task {cfg.task}, not {task}; give an {task} run"
            )
        if model and cfg.model.name != model:  # no two image networks share their tensors
            raise ArchlabError(
                f"model.init={path}: a {cfg.model.name} run, and this run builds {model}; use "
                f"--model {cfg.model.name} (or give a {model} run)"
            )
        fitted = rundir.read_fitted(p, "images") or {}
        return _safetensors(p / rundir.WEIGHTS), "archlab run", fitted.get("class_names")
    if p.suffix == ".safetensors":
        return _unwrapped(_safetensors(p), "safetensors state dict")
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
    return _unwrapped(obj, "state dict")


def _unwrapped(
    tensors: dict[str, torch.Tensor], fmt: str
) -> tuple[dict[str, torch.Tensor], str, None]:
    """The state dict without a prefix that every key carries (WRAPPER_PREFIXES), the format
    saying so."""
    removed = []
    while tensors:  # DDP around torch.compile: 'module._orig_mod.'
        pre = next((w for w in WRAPPER_PREFIXES if all(k.startswith(w) for k in tensors)), "")
        if not pre:
            break
        tensors = {k[len(pre) :]: v for k, v in tensors.items()}
        removed.append(f"'{pre}'")
    if removed:
        fmt += f"; {' and '.join(removed)} prefix removed from every key"
    return tensors, fmt, None


def _no_run(p: Path, has_config: bool) -> str:
    """Why the folder ``p`` is no finished run, and the run to give instead where one is known:
    a --budget search's chosen trial (its search.json), or a sweep's trial run directories."""
    chosen = _chosen_trial(p if not has_config else p.parent)
    if not has_config and chosen:
        return f"a --budget search folder, not a run; give its chosen run: model.init={chosen}"
    if not has_config and (p / "trials.csv").exists():
        return "a sweep folder, not a run; give one of its trial-N run directories"
    if has_config and chosen and Path(chosen).resolve() != p.resolve():
        return (
            f"a trial the --budget search did not choose (only the chosen run keeps its "
            f"{rundir.WEIGHTS}); give model.init={chosen}"
        )
    missing = rundir.WEIGHTS if has_config else rundir.CONFIG
    return f"not a finished run directory (no {missing})"


def _chosen_trial(folder: Path) -> str:
    """The run a --budget search in ``folder`` chose (its search.json, archlab/budget.py), as
    a path under ``folder`` when it is there (the search may have moved); "" if none."""
    try:
        run_dir = Path(json.loads((folder / "search.json").read_text())["chosen"]["run_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    here = folder / run_dir.name
    return str(here) if (here / rundir.WEIGHTS).exists() else str(run_dir)


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
    adapted, bad, kept, hints = [], [], 0, []
    for key, shape in shapes.items():
        src = source.get(key)
        if key.rsplit(".", 1)[0] in fresh:
            continue
        if src is not None and tuple(src.shape) == shape:
            tensors[key] = src
        elif key == stem and src is not None and src.shape[1] == 3 and shape[1] == 1:
            tensors[key] = src.sum(dim=1, keepdim=True)
            adapted.append(key)
        elif src is None and key.endswith("." + COUNTER):
            kept += 1  # the network's own counter, as load_state_dict leaves it
        else:
            got = "missing" if src is None else f"file {list(src.shape)}"
            bad.append(f"{key} ({got}, model {list(shape)})")
            if key == stem and src is not None and src.ndim == 4 and src.shape[1] == 1:
                hints.append("the file's network reads grey images: set data.channels=1")
    if bad or not tensors:
        first = bad[0] if bad else "no tensor name in common"
        if not tensors and (kind := _network_of(source)):
            hints.append(f"the file's keys are a {kind}'s: use --model {kind}")
        raise ArchlabError(
            f"model.init={where}: does not fit this network: first bad key {first}; "
            f"{len(tensors)} of {len(shapes)} tensors match, {len(bad)} do not"
            + "".join(f"; {h}" for h in hints)
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
    if kept:
        info["counters_kept"] = kept
    return InitWeights({k: v.detach().clone() for k, v in tensors.items()}, info)


def _network_of(source: dict[str, torch.Tensor]) -> str:
    """The archlab network whose tensor names ``source`` has ("" if none): told from the
    first keys of torchvision's ResNet and VGG."""
    if "layer1.0.conv1.weight" in source:
        return "resnet18"
    if "features.0.weight" in source:
        return "vgg13_bn" if "features.1.running_mean" in source else "vgg13"
    return ""
