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


def _compose(*fs: Augmentation) -> Augmentation:
    def run(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for f in fs:
            x = f(x, gen)
        return x

    return run


AUGMENTATIONS: dict[str, Augmentation | None] = {
    "none": None,
    "flip": hflip,
    # The better-tuned default for small images: flip + 4-pixel translation (CIFAR standard).
    "translate": _compose(translate, hflip),
    # The study's augmentation: torchvision's RandomResizedCrop defaults + horizontal flip.
    "study": _compose(random_resized_crop, hflip),
    # A milder random-resized crop, which suits 32x32 images better than scale down to 8%.
    "crop": _compose(lambda x, g: random_resized_crop(x, g, scale=(0.35, 1.0)), hflip),
}
