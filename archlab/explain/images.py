"""Image explanations: Grad-CAM on each model's last convolutional block, occlusion as a
model-agnostic cross-check, and the top-losses grid (per class, the most confident right and
wrong test predictions) with the maps laid over the images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam, Occlusion
from torch import nn

from archlab.errors import ArchlabError
from archlab.explain import ExplainRequest, frozen, subset
from archlab.tasks.base import predict_row

# The layers Grad-CAM may read, per registered image model, deepest first: the outputs of the
# last convolutional blocks. VGG: the ReLU after each block's last convolution (just before its
# max-pool); ResNet: the stages. The deepest one whose map is at least MIN_SIDE pixels a side
# is used: at 32 px ResNet-18's layer4 is 1x1 (one number per channel, so a flat map) and
# VGG's last block 2x2, too coarse to point anywhere; at 64 px and up the last block is used.
TARGET_LAYERS: dict[str, Callable[[nn.Module], tuple[nn.Module, ...]]] = {
    "vgg13": lambda m: (m.features[23], m.features[18], m.features[13]),
    "vgg13_bn": lambda m: (m.features[33], m.features[26], m.features[19]),
    "resnet18": lambda m: (m.layer4, m.layer3, m.layer2),
}
MIN_SIDE = 4
# Where cell k of a target layer's map sits on the input, s pixels per cell: at pixel
# s*k + CELL_CENTRE*(s-1). VGG's 2x2 max-pools (no padding) give cell k pixels s*k..s*k+s-1,
# centred as plain bilinear upsampling assumes (0.5); ResNet's stride-2 convolutions with
# "same" padding centre cell k on pixel s*k (0.0), so plain upsampling drew its maps
# (s-1)/2 pixels right of and below the evidence (7.5 px with a 4x4 map of a 64 px image).
# tests/test_explain.py checks both against each cell's measured receptive-field centre.
CELL_CENTRE: dict[str, float] = {"vgg13": 0.5, "vgg13_bn": 0.5, "resnet18": 0.0}
BATCH = 64  # images per Grad-CAM forward/backward pass
# Figure layout: (image, map) pairs a row of the top-loss figure, panels a row of the class
# means, and characters of a class name in a title (one row of every class was 25,000 px
# tall or 20,000 px wide at 100 classes, and long names ran into the neighbouring titles).
PAIRS_PER_ROW = 4
MEANS_PER_ROW = 8
NAME_WIDTH = 16
OCCLUSION_EVALS = 256  # occluded copies per forward pass


def target_layer(name: str, model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """The deepest candidate layer whose map for a (C, H, W) input is >= MIN_SIDE a side."""
    if name not in TARGET_LAYERS:
        raise ArchlabError(
            f"no Grad-CAM layer is known for model {name!r}; known: {', '.join(TARGET_LAYERS)}"
        )
    candidates = TARGET_LAYERS[name](model)
    sides: dict[int, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o: sides.__setitem__(id(mod), min(o.shape[-2:])))
        for m in candidates
    ]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=next(model.parameters()).device))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return next((m for m in candidates if sides[id(m)] >= MIN_SIDE), candidates[-1])


def upsample(cams: torch.Tensor, size: tuple[int, int], centre: float = 0.5) -> torch.Tensor:
    """(N, 1, h, w) layer maps -> (N, 1, H, W): cell k drawn at pixel s*k + centre*(s-1)
    (s = H/h), linear in between, the edge cells held out to the border. ``centre=0.5`` is
    plain bilinear upsampling (``F.interpolate``, align_corners=False)."""

    def coords(n_out: int, n_in: int) -> torch.Tensor:
        s = n_out / n_in
        u = (torch.arange(n_out, dtype=cams.dtype, device=cams.device) - centre * (s - 1)) / s
        return 2 * u / max(n_in - 1, 1) - 1  # grid_sample's [-1, 1] (align_corners=True)

    gy, gx = coords(size[0], cams.shape[-2]), coords(size[1], cams.shape[-1])
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).expand(len(cams), -1, -1, -1)
    return F.grid_sample(cams, grid, mode="bilinear", padding_mode="border", align_corners=True)


def gradcam(
    model: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    centre: float = 0.5,
) -> torch.Tensor:
    """(N, H, W) Grad-CAM maps of class ``target`` (ReLU of the gradient-weighted channels),
    upsampled to the input size with each cell at its receptive field's centre (``upsample``)."""
    model.eval()
    gc = LayerGradCam(model, layer)
    maps = []
    with frozen(model):
        for i in range(0, len(x), BATCH):
            a = gc.attribute(x[i : i + BATCH], target=target[i : i + BATCH],
                             relu_attributions=True)  # fmt: skip
            maps.append(upsample(a.detach(), tuple(x.shape[-2:]), centre))
    return torch.cat(maps)[:, 0] if maps else x.new_zeros((0, *x.shape[-2:]))


def occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, H, W) drop in the target's logit when each place shows the image blurred instead:
    windows of 1/8 of the side, stride half of that, averaged where they overlap.

    The blur (a box 4 windows wide) hides what the window shows but keeps its surroundings'
    brightness. A constant patch (the normalized 0, mid-gray) is a shape the network never
    saw: on dark-background images it made the same corner the hottest place of every map.
    """
    model.eval()
    c, h, w = x.shape[1:]
    win = max(2, min(h, w) // 8)
    stride = max(1, win // 2)
    occ = Occlusion(model)
    maps = []
    with torch.no_grad():
        for i in range(0, len(x), BATCH):
            xb = x[i : i + BATCH]
            a = occ.attribute(
                xb,
                sliding_window_shapes=(c, win, win),
                strides=(c, stride, stride),
                baselines=box_blur(xb, 4 * win + 1),
                target=target[i : i + BATCH],
                perturbations_per_eval=max(1, OCCLUSION_EVALS // len(xb)),
            )
            maps.append(a.sum(1))
    return torch.cat(maps) if maps else x.new_zeros((0, h, w))


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over a k x k box (k odd) around each pixel, edges extended (same shape as x)."""
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)


METHODS: dict[str, Callable[[nn.Module, str, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": lambda m, name, x, t: gradcam(
        m, target_layer(name, m, x.shape[1:]), x, t, CELL_CENTRE[name]
    ),
    "occlusion": lambda m, name, x, t: occlusion(m, x, t),
}


def top_losses(probs: torch.Tensor, y: torch.Tensor, k: int = 1) -> list[dict[str, Any]]:
    """Per true class: the ``k`` most confident right and the ``k`` most confident wrong
    predictions, as {class, kind, index, pred, p_pred, p_true}, in class order."""
    conf, pred = probs.max(1)
    rows = []
    for c in range(probs.shape[1]):
        for kind, mask in (("right", (y == c) & (pred == c)), ("wrong", (y == c) & (pred != c))):
            idx = torch.nonzero(mask).flatten()
            for i in idx[conf[idx].argsort(descending=True)[:k]].tolist():
                rows.append(
                    {
                        "class": c,
                        "kind": kind,
                        "index": i,
                        "pred": int(pred[i]),
                        "p_pred": float(conf[i]),
                        "p_true": float(probs[i, c]),
                    }
                )
    return rows


def spearman(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (N, H, W) -> (N,); 0 where a map is flat
    (it ranks no place above another, so it shares no ranking)."""
    from scipy.stats import spearmanr

    a2, b2 = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    return np.array(
        [
            spearmanr(u, v).statistic if np.ptp(u) > 0 and np.ptp(v) > 0 else 0.0
            for u, v in zip(a2, b2, strict=True)
        ]
    )


# --- run level ---
def explain_run(req: ExplainRequest) -> dict[str, Any]:
    from archlab.runner import load_run, restore_task

    inputs: list[str] = []
    if req.inputs:
        cfg, task, model = restore_task(req.run_dir)
        inputs, raw = task.read_inputs(list(req.inputs))  # a folder: its images
        x = task.normalize(raw)
        y = None
    else:
        cfg, task, model, data = load_run(req.run_dir, action="explain")
        model.eval()
        xs, ys = zip(*data.test.iterate(256), strict=True)
        x, y = torch.cat(xs), torch.cat(ys)
    device = next(model.parameters()).device
    model.eval()
    x = x.to(device)
    with torch.no_grad():
        probs = torch.cat(
            [task.step(model, (x[i : i + 256], None))[0].softmax(1) for i in range(0, len(x), 256)]
        ).cpu()
    names = list(task.fitted.class_names)
    name = cfg.model.name
    out: dict[str, Any] = {"model": name, "files": []}
    if "gradcam" in req.methods:
        out["layer"] = _layer_name(model, target_layer(name, model, x.shape[1:]))
    pictures = ((x.cpu() * task.data_cfg.std + task.data_cfg.mean).clamp(0, 1)).numpy()
    if y is None:  # the user's images: the predicted class's map for each
        pred = probs.argmax(1)
        out["inputs"] = []
        for method in req.methods:
            maps = METHODS[method](model, name, x, pred.to(device)).cpu()
            path = req.out / f"{method}_inputs.png"
            titles = [
                f"{Path(p).name}\n{names[int(k)]} {float(probs[i, k]):.2f}"
                for i, (p, k) in enumerate(zip(inputs, pred, strict=True))
            ]
            overlay_grid(pictures, maps.numpy(), titles, path, cols=min(6, len(x)))
            out["files"].append(path.name)
        for p, pr in zip(inputs, probs, strict=True):
            out["inputs"].append(
                predict_row({"input": p, "label": names[int(pr.argmax())]}, names, pr.tolist())
            )
        return out
    rows = top_losses(probs, y.cpu(), req.top)
    idx = torch.tensor([r["index"] for r in rows], dtype=torch.long)
    tgt = torch.tensor([r["pred"] for r in rows], dtype=torch.long)
    chosen: dict[str, torch.Tensor] = {}
    for method in req.methods:
        maps = METHODS[method](model, name, x[idx.to(device)], tgt.to(device)).cpu()
        chosen[method] = maps
        path = req.out / f"{method}_top_losses.png"
        label = f"Grad-CAM on {out['layer']}" if method == "gradcam" else "occlusion (logit drop)"
        top_losses_grid(pictures[idx.numpy()], maps.numpy(), rows, names, path, label)
        out["files"].append(path.name)
    if "gradcam" in req.methods:  # aggregate view: each class's mean map over its test images
        sel = subset(len(x), req.limit)
        maps = METHODS["gradcam"](
            model, name, x[sel.to(device)], probs.argmax(1)[sel].to(device)
        ).cpu()
        path = req.out / "gradcam_class_means.png"
        class_means(pictures[sel.numpy()], maps.numpy(), y.cpu()[sel].numpy(), names, path)
        out["files"].append(path.name)
    if len(chosen) == 2 and len(rows):  # the cross-check: do both methods point at one place?
        rho = spearman(chosen["gradcam"], chosen["occlusion"])
        out["gradcam_occlusion_spearman_mean"] = float(np.nanmean(rho))
    out["top_losses"] = [
        {**r, "true_name": names[r["class"]], "pred_name": names[r["pred"]]} for r in rows
    ]
    out["n_test"] = len(y)
    return out


def _layer_name(model: nn.Module, layer: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is layer)


# --- drawing ---
def _show(ax: Any, picture: np.ndarray, cam: np.ndarray | None) -> None:
    img = picture.transpose(1, 2, 0)
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    if cam is not None:
        top = float(np.abs(cam).max())
        ax.imshow(cam / top if top > 0 else cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_grid(
    pictures: np.ndarray, maps: np.ndarray, titles: list[str], path: Path, cols: int = 6
) -> None:
    from archlab.plots import _save, plt

    rows = -(-len(pictures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pic, cam, title in zip(axes.flat, pictures, maps, titles, strict=False):
        ax.axis("on")
        _show(ax, pic, np.maximum(cam, 0))
        ax.set_title(title, fontsize=8)
    _save(fig, path)


def top_losses_grid(
    pictures: np.ndarray,
    maps: np.ndarray,
    rows: list[dict[str, Any]],
    names: list[str],
    path: Path,
    label: str,
) -> None:
    """The (image, map) pair of each row of ``top_losses``, PAIRS_PER_ROW pairs a row in its
    order (per class: right ones, green, then wrong ones, red). A class with no test image has
    nothing to show and is left out, with a note; names are cut to fit (explain.json keeps
    them whole)."""
    from archlab.plots import _save, grid_shape, plt, short_label

    # One row per class drew a blank "no right prediction" pair for most classes (25,000 px
    # tall at 100 classes); the pairs now flow on, each titled with its class.
    nrows, cols = grid_shape(len(rows), PAIRS_PER_ROW)
    fig, axes = plt.subplots(
        nrows,
        2 * cols,
        figsize=(2.0 * 2 * cols, 0.6 + 2.3 * nrows),
        squeeze=False,
        layout="constrained",  # keeps the title next to the first row of a tall grid
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, r in enumerate(rows):
        a_img, a_map = axes.flat[2 * i], axes.flat[2 * i + 1]
        a_img.axis("on")
        a_map.axis("on")
        _show(a_img, pictures[i], None)
        _show(a_map, pictures[i], np.maximum(maps[i], 0))
        a_img.set_title(
            f"true {short_label(names[r['class']], NAME_WIDTH)}\n"
            f"pred {short_label(names[r['pred']], NAME_WIDTH)} {r['p_pred']:.2f}",
            fontsize=8,
            color="green" if r["kind"] == "right" else "red",
        )
        a_map.set_title(f"p(true)={r['p_true']:.2f}", fontsize=8)
    fig.suptitle(
        "Most confident right (green) and wrong (red) test predictions per class, with "
        f"{label}; a class with no right or no wrong one shows none",
        fontsize=10,
    )
    if left := len(names) - len({r["class"] for r in rows}):
        fig.supxlabel(
            f"{left} of {len(names)} classes have no test image and are not drawn", fontsize=9
        )
    _save(fig, path)


def class_means(
    pictures: np.ndarray, maps: np.ndarray, y: np.ndarray, names: list[str], path: Path
) -> None:
    """Per true class: the mean test image and the mean Grad-CAM map (each normalized to 1),
    MEANS_PER_ROW panels a row; classes with no explained test image are left out, with a note.
    """
    from archlab.plots import _save, grid_shape, plt, short_label

    shown = [c for c in range(len(names)) if (y == c).any()]
    nrows, cols = grid_shape(len(shown), MEANS_PER_ROW)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.0 * cols, 0.6 + 2.3 * nrows),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, shown, strict=False):
        sel = y == c
        m = maps[sel] / np.maximum(maps[sel].reshape(sel.sum(), -1).max(1), 1e-12)[:, None, None]
        ax.axis("on")
        _show(ax, pictures[sel].mean(0), m.mean(0))
        ax.set_title(f"{short_label(names[c], NAME_WIDTH)} (n={int(sel.sum())})", fontsize=8)
    fig.suptitle("Mean Grad-CAM per true class (for the predicted class)", fontsize=10)
    if left := len(names) - len(shown):
        fig.supxlabel(f"{left} of {len(names)} classes have no explained test image and are "
                      "not drawn", fontsize=9)  # fmt: skip
    _save(fig, path)
