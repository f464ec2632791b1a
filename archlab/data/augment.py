"""Batched, on-device image augmentation (no per-sample Python): AUGMENTATIONS registry.

Each augmentation maps a float batch (B, C, H, W) and a CPU ``torch.Generator`` to a batch of
the same shape. Random parameters are drawn on the CPU generator (so runs are reproducible and
resumable on any device) and moved to the batch's device; the pixel work runs there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from archlab.task_configs import IMAGE_AUGMENTS

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    mask = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def translate(x: torch.Tensor, gen: torch.Generator, pixels: int = 4) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y (integer shifts, zero padding)."""
    b, _, h, w = x.shape
    pad = F.pad(x, (pixels, pixels, pixels, pixels))
    dx = torch.randint(0, 2 * pixels + 1, (b,), generator=gen).to(x.device)
    dy = torch.randint(0, 2 * pixels + 1, (b,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bidx = torch.arange(b, device=x.device)[:, None, None, None]
    cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return pad[bidx, cidx, rows, cols]


def random_resized_crop(
    x: torch.Tensor,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio``; resize back.

    Same distribution as torchvision's RandomResizedCrop (area and log-uniform aspect), except that
    crops are clamped into the image instead of re-sampled, so it is one batched grid_sample.
    """
    b = x.shape[0]
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=gen)
    log_r = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    r = torch.exp(log_r)
    cw = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of the image width
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - cw)  # centre in [-1, 1] coords, in bounds
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - ch)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = cw, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# One op per image, drawn uniformly, at a uniform random strength (TrivialAugment, Müller &
# Hutter 2021), with the ranges of torchvision's RandAugment/TrivialAugment "standard" space
# (rotate 30 degrees, shear 0.3, translate 0.45 of the image, colour factors 0.1-1.9). Only ops
# that stay correct after standardization (an affine map of the pixels with one mean and std
# for every channel): geometry, and brightness, contrast and saturation as shifts and blends;
# posterize, solarize and equalize need raw pixel values and are left out.
_TRIVIAL_OPS = ("identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y",
                "brightness", "contrast", "saturation")  # fmt: skip
_MAX_ROTATE = math.radians(30.0)
_MAX_SHEAR = 0.3
_MAX_TRANSLATE = 0.45  # a fraction of the image's width or height
_MAX_COLOUR = 0.9


def trivial_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """TrivialAugment over the ops in ``_TRIVIAL_OPS``, batched (one grid_sample)."""
    b, c = x.shape[:2]
    op = torch.randint(0, len(_TRIVIAL_OPS), (b,), generator=gen)
    mag = torch.rand(b, generator=gen) * torch.where(torch.rand(b, generator=gen) < 0.5, -1, 1)

    def on(name: str) -> torch.Tensor:
        return op == _TRIVIAL_OPS.index(name)

    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    angle = torch.where(on("rotate"), mag * _MAX_ROTATE, torch.zeros(b))
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    theta[:, 0, 1] += torch.where(on("shear_x"), mag * _MAX_SHEAR, torch.zeros(b))
    theta[:, 1, 0] += torch.where(on("shear_y"), mag * _MAX_SHEAR, torch.zeros(b))
    theta[:, 0, 2] = torch.where(on("translate_x"), mag * 2 * _MAX_TRANSLATE, torch.zeros(b))
    theta[:, 1, 2] = torch.where(on("translate_y"), mag * 2 * _MAX_TRANSLATE, torch.zeros(b))
    geometric = (on("rotate") | on("shear_x") | on("shear_y") | on("translate_x")
                 | on("translate_y"))  # fmt: skip
    if bool(geometric.any()):
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = torch.where(geometric.to(x.device)[:, None, None, None], moved, x)
    factor = (1 + mag * _MAX_COLOUR).to(x.device, x.dtype)[:, None, None, None]
    shift = (mag * _MAX_COLOUR).to(x.device, x.dtype)[:, None, None, None]

    def where(name: str, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.where(on(name).to(x.device)[:, None, None, None], y, x)

    x = where("brightness", x + shift, x)
    x = where("contrast", x.mean(dim=(1, 2, 3), keepdim=True) * (1 - factor) + x * factor, x)
    if c == 3:  # a grey image has no saturation to change
        grey = x.mean(dim=1, keepdim=True)
        x = where("saturation", grey + factor * (x - grey), x)
    return x


def _compose(*fs: Augmentation) -> Augmentation:
    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for f in fs:
            x = f(x, gen)
        return x

    return run


_FUNCTIONS: dict[str, Augmentation | None] = {
    "none": None,
    "flip": hflip,
    # The better-tuned default for small images: flip + 4-pixel translation (CIFAR standard).
    "translate": _compose(translate, hflip),
    # The study's augmentation: torchvision's RandomResizedCrop defaults + horizontal flip.
    "study": _compose(random_resized_crop, hflip),
    # A milder random-resized crop, which suits 32x32 images better than scale down to 8%.
    "crop": _compose(lambda x, g: random_resized_crop(x, g, scale=(0.35, 1.0)), hflip),
    # For small photo sets: the milder crop, flip, then one TrivialAugment op per image.
    "photo": _compose(
        lambda x, g: random_resized_crop(x, g, scale=(0.35, 1.0)), hflip, trivial_augment
    ),
}

# Keyed by the torch-free names configs validate (task_configs.IMAGE_AUGMENTS), in their order.
if _FUNCTIONS.keys() != set(IMAGE_AUGMENTS):
    raise ImportError(
        "archlab.data.augment and task_configs.IMAGE_AUGMENTS name different augmentations: "
        f"{sorted(_FUNCTIONS.keys() ^ set(IMAGE_AUGMENTS))}"
    )
AUGMENTATIONS: dict[str, Augmentation | None] = {name: _FUNCTIONS[name] for name in IMAGE_AUGMENTS}
