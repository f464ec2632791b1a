"""Where an image run's Grad-CAM maps are hot, and whether that follows the picture or the frame.

For the first ``--n`` test images (the predicted class's map, at the layer `archlab explain`
uses): per class the mean raw layer map, where its hottest cell is (column histogram), and, per
image, the correlation of the map of the mirrored image with the mirrored map (the evidence
moved with the picture) and with the unmirrored map (it stayed where it was in the frame: the
network's position, not the content). Then how often the upsampled map's hottest pixel lies in
the 8 leftmost / rightmost columns, with plain bilinear upsampling (captum's
``LayerAttribution.interpolate``) and with the cells at their receptive fields' centres; and,
for the first ``--occlusion`` images, the same for occlusion maps with archlab's blurred patch
and with a mid-gray one (the normalized 0).

Usage: python bench/gradcam_position.py RUN_DIR [--n 450] [--occlusion 24]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam, Occlusion

from archlab.explain import images as E
from archlab.runner import load_run


def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=450)
    ap.add_argument("--occlusion", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, task, model, data = load_run(args.run_dir)
    model.eval()
    xs, ys = zip(*data.test.iterate(256), strict=True)
    x, y = torch.cat(xs)[: args.n], torch.cat(ys)[: args.n]
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 100]) for i in range(0, len(x), 100)]).argmax(1)
    layer = E.target_layer(cfg.model.name, model, tuple(x.shape[1:]))
    side = x.shape[-1]
    acc = float((pred == y).float().mean())
    print(f"{args.run_dir}: {len(x)} test images, accuracy {acc:.3f}, "
          f"layer {E._layer_name(model, layer)}")  # fmt: skip

    def raw(v: torch.Tensor) -> torch.Tensor:
        maps = [LayerGradCam(model, layer).attribute(v[i : i + 64], target=pred[i : i + 64],
                                                     relu_attributions=True).detach()
                for i in range(0, len(v), 64)]  # fmt: skip
        m = torch.cat(maps)
        return m / m.flatten(1).max(1).values.clamp(min=1e-12)[:, None, None, None]

    maps, mirrored = raw(x), raw(x.flip(-1))
    np.set_printoptions(precision=2, suppress=True)
    for c, name in enumerate(task.fitted.class_names):
        sel = pred == c
        if not sel.any():
            continue
        m, f = maps[sel], mirrored[sel]
        cols = np.bincount((m.flatten(1).argmax(1) % m.shape[-1]).numpy(), minlength=m.shape[-1])
        print(f"\n{name} (n={int(sel.sum())}): mean raw map\n{m[:, 0].mean(0).numpy()}")
        print(f"  hottest cell by column (left to right): {cols.tolist()}")
        print(f"  mirrored image's map vs mirrored map {float(corr(f, m.flip(-1)).mean()):.2f}, "
              f"vs unmirrored map {float(corr(f, m).mean()):.2f}")  # fmt: skip
    centre = E.CELL_CENTRE[cfg.model.name]
    for label, up in (
        ("plain bilinear", lambda a: LayerAttribution.interpolate(a, (side, side), "bilinear")),
        ("receptive-field centres", lambda a: E.upsample(a, (side, side), centre)),
    ):
        col = up(maps)[:, 0].flatten(1).argmax(1) % side
        left, right = float((col < 8).float().mean()), float((col >= side - 8).float().mean())
        print(f"{label}: hottest pixel in the 8 leftmost columns {left:.3f}, "
              f"in the 8 rightmost {right:.3f}")  # fmt: skip
    k = args.occlusion
    if not k:
        return
    win = max(2, side // 8)
    gray = Occlusion(model).attribute(
        x[:k], sliding_window_shapes=(x.shape[1], win, win),
        strides=(x.shape[1], win // 2, win // 2), baselines=0.0, target=pred[:k],
    ).sum(1)  # fmt: skip
    for label, m in (("blurred patch", E.occlusion(model, x[:k], pred[:k])), ("mid-gray", gray)):
        col = m.flatten(1).argmax(1) % side
        left, right = int((col < 8).sum()), int((col >= side - 8).sum())
        print(f"occlusion, {label}: hottest pixel in the 8 leftmost columns for {left} of {k}, "
              f"in the 8 rightmost for {right}")  # fmt: skip


if __name__ == "__main__":
    main()
