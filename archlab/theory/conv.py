"""Convolution arithmetic: output sizes and parameter counts of conv/pool layers; a layer walk."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from archlab.errors import ArchlabError

if TYPE_CHECKING:  # torch is imported by the layer walk only: `theory conv` on a layer is instant
    from torch import nn

# An int applies to both axes; a tuple is (height, width), the order PyTorch uses.
Pair = int | tuple[int, int]


def conv_output_size(
    in_size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    *,
    axis: str = "input",
) -> int:
    """Output length along one axis: floor((in + 2P − dilation·(F − 1) − 1) / S) + 1.

    The same formula holds for convolution and pooling windows. ``axis`` only names the axis in
    error messages ("height", "width").
    """
    for label, value in (("size", in_size), ("kernel", kernel), ("stride", stride)):
        if value < 1:
            raise ArchlabError(f"{axis} {label} must be >= 1, got {value}")
    if dilation < 1:
        raise ArchlabError(f"{axis} dilation must be >= 1, got {dilation}")
    if padding < 0:
        raise ArchlabError(f"{axis} padding must be >= 0, got {padding}")
    # A dilated kernel spans dilation·(F − 1) + 1 input cells.
    span = dilation * (kernel - 1) + 1
    out = (in_size + 2 * padding - span) // stride + 1
    if out < 1:
        raise ArchlabError(
            f"{axis}: kernel {kernel} (spanning {span} with dilation {dilation}) does not fit "
            f"size {in_size} padded by {padding} on each side"
        )
    return out


@dataclass(frozen=True)
class LayerShape:
    """Output volume of a layer (height × width × depth) and its number of learned parameters."""

    height: int
    width: int
    depth: int
    params: int


def as_pair(value: Pair, name: str = "value") -> tuple[int, int]:
    """Expand an int to (v, v); check a tuple has exactly two entries (height, width)."""
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ArchlabError(f"{name} needs one value or two (height, width), got {value!r}")
    return int(value[0]), int(value[1])


def _window_output(
    height: int, width: int, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[int, int]:
    """Apply the output-size formula to both axes of a sliding window."""
    (kh, kw), (sh, sw) = as_pair(kernel, "kernel"), as_pair(stride, "stride")
    (ph, pw), (dh, dw) = as_pair(padding, "padding"), as_pair(dilation, "dilation")
    out_h = conv_output_size(height, kh, sh, ph, dh, axis="height")
    out_w = conv_output_size(width, kw, sw, pw, dw, axis="width")
    return out_h, out_w


def conv_layer(
    height: int,
    width: int,
    channels: int,
    filters: int,
    kernel: Pair,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    *,
    bias: bool = True,
) -> LayerShape:
    """A conv layer with ``filters`` kernels Fh×Fw on an H×W×C input.

    Each filter holds Fh·Fw·C weights plus one bias, so params = (Fh·Fw·C + 1)·D.
    """
    if channels < 1 or filters < 1:
        raise ArchlabError(f"channels and filters must be >= 1, got {channels} and {filters}")
    out_h, out_w = _window_output(height, width, kernel, stride, padding, dilation)
    kh, kw = as_pair(kernel, "kernel")
    params = (kh * kw * channels + int(bias)) * filters
    return LayerShape(out_h, out_w, filters, params)


def pool_layer(
    height: int,
    width: int,
    channels: int,
    kernel: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    dilation: Pair = 1,
) -> LayerShape:
    """A max/average pooling layer: depth is kept, nothing is learned (0 params).

    ``stride`` defaults to the kernel size, as in PyTorch, so windows do not overlap.
    """
    if channels < 1:
        raise ArchlabError(f"channels must be >= 1, got {channels}")
    kh, kw = as_pair(kernel, "kernel")
    ph, pw = as_pair(padding, "padding")
    # A window that sees more padding than input would pool only padding (-inf for max pool);
    # PyTorch refuses such configs, so the formula refuses them too.
    if ph > kh // 2 or pw > kw // 2:
        raise ArchlabError(f"pool padding {padding} must be at most half the kernel {kernel}")
    out_h, out_w = _window_output(
        height, width, kernel, kernel if stride is None else stride, padding, dilation
    )
    return LayerShape(out_h, out_w, channels, 0)


@dataclass(frozen=True)
class WalkRow:
    """One call of a leaf module during a forward pass.

    ``output_shape`` is what PyTorch produced (C, H, W for image layers, batch dim dropped);
    ``formula_shape`` / ``formula_params`` are this module's predictions for conv and pooling
    layers (None where no formula applies), so a mismatch shows up row by row.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    formula_shape: tuple[int, int, int] | None
    formula_params: int | None


def _predict(module: nn.Module, in_shape: tuple[int, ...]) -> LayerShape | None:
    """The formula's output for a Conv2d/MaxPool2d/AvgPool2d on a (C, H, W) input, else None."""
    from torch import nn

    if len(in_shape) != 3:
        return None
    c, h, w = in_shape
    if isinstance(module, nn.Conv2d):
        # String padding ("same") and grouped convs are outside the formula taught here.
        if isinstance(module.padding, str) or module.groups != 1:
            return None
        return conv_layer(
            h,
            w,
            c,
            module.out_channels,
            as_pair(module.kernel_size),
            as_pair(module.stride),
            as_pair(module.padding),
            as_pair(module.dilation),
            bias=module.bias is not None,
        )
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d) and not module.ceil_mode:
        dilation = module.dilation if isinstance(module, nn.MaxPool2d) else 1
        return pool_layer(
            h,
            w,
            c,
            as_pair(module.kernel_size),
            as_pair(module.stride),
            as_pair(module.padding),
            as_pair(dilation),
        )
    return None


def walk_model(model: nn.Module, input_shape: tuple[int, int, int]) -> list[WalkRow]:
    """Run one zero image of shape (C, H, W) through ``model`` and record every leaf-module call.

    A leaf reused several times (e.g. one ReLU called twice in a block) gives one row per call;
    its parameters are counted on the first call only, so ``sum(row.params)`` equals the number
    of parameters held by leaf modules.
    """
    import torch
    from torch import Tensor

    if len(input_shape) != 3 or any(s < 1 for s in input_shape):
        raise ArchlabError(f"input shape must be three positive sizes (C, H, W), got {input_shape}")
    rows: list[WalkRow] = []
    seen: set[int] = set()

    def record(name: str, module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        first = id(module) not in seen
        seen.add(id(module))
        params = sum(p.numel() for p in module.parameters()) if first else 0
        shape = tuple(output.shape[1:]) if isinstance(output, Tensor) else ()
        x = inputs[0] if inputs else None
        predicted = _predict(module, tuple(x.shape[1:])) if isinstance(x, Tensor) else None
        rows.append(
            WalkRow(
                name=name or type(module).__name__,
                kind=type(module).__name__,
                output_shape=shape,
                params=params,
                formula_shape=(
                    None
                    if predicted is None
                    else (predicted.depth, predicted.height, predicted.width)
                ),
                formula_params=None if predicted is None else predicted.params,
            )
        )

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(partial(record, n)) for n, m in leaves]
    first_param = next(model.parameters(), None)
    dtype = first_param.dtype if first_param is not None else torch.float32
    device = first_param.device if first_param is not None else torch.device("cpu")
    was_training = model.training
    try:
        # eval(): batch norm with a batch of one would fail in training mode, and dropout
        # is irrelevant to shapes.
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=dtype, device=device))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "allocate" in first_line or isinstance(exc, torch.OutOfMemoryError):
            # Its shapes fit; the machine's memory does not (a 20000 x 20000 image: 25.6 GB).
            raise ArchlabError(f"input {input_shape} needs more memory than is free to run "
                               f"through the model ({first_line[-80:]})") from exc  # fmt: skip
        raise ArchlabError(f"input {input_shape} does not fit the model: {first_line}") from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return rows
