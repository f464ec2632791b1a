"""Image classification (study parts I-II): data and its fitted classes, loss, metrics, plots."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import RunConfig
from archlab.data.augment import AUGMENTATIONS, Augmentation
from archlab.data.folders import files_under
from archlab.data.image_set import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    ImageSet,
    decode_image,
    decode_reason,
)
from archlab.data.images import Manifest, load_image_set
from archlab.data.splits import (
    Named,
    check_run_classes,
    class_weights,
    cross_split_copies,
    duplicate_groups,
    held_out_split,
    stratified_split,
    stratified_subset,
    to_run_classes,
)
from archlab.errors import ArchlabError
from archlab.metrics import classification_metrics
from archlab.models import MODELS
from archlab.rundir import FITTED, require_fitted
from archlab.task_configs import MAX_IMAGE_SIZE, ImageDataConfig, ImageModelConfig
from archlab.tasks.base import Batches, DataBundle, held_out_info, predict_row, unscored_notes
from archlab.tasks.base import split_source as base_split_source  # a local names the result
from archlab.tasks.init_weights import InitWeights, match, read_source, skipped
from archlab.tasks.pixels import pixels_baseline
from archlab.utils import count, sha256_array

# Smallest input side each model accepts: VGG's five 2x2 max-pools leave nothing below 32.
MIN_SIZE = {"vgg13": 32, "vgg13_bn": 32}


@dataclass(frozen=True)
class ImageFitted:
    """What image classification learns from its training images."""

    kind: ClassVar[str] = "images"
    class_names: tuple[str, ...]
    channels: int
    size: int
    # Per-image pixel mean/std over the training images: predict flags inputs unlike them.
    pixel_stats: dict[str, float] = field(default_factory=dict)
    class_weights: tuple[float, ...] | None = None  # cross-entropy weights (data.class_weights)
    # Starting weights (model.init; training only: a restored run has its own weights).
    init: InitWeights | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "channels": self.channels,
            "size": self.size,
            "pixel_stats": dict(self.pixel_stats),
            "class_weights": None if self.class_weights is None else list(self.class_weights),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageFitted:
        w = d.get("class_weights")
        channels, size = int(d["channels"]), int(d["size"])
        # An edited file must not make predict allocate a 100,000 x 100,000 image.
        if channels not in (1, 3) or not 2 <= size <= MAX_IMAGE_SIZE:
            raise ArchlabError(
                f"{FITTED}: channels {channels} / size {size} out of range (channels 1 or 3, "
                f"size 2..{MAX_IMAGE_SIZE}); the run's fitted state is damaged"
            )
        return cls(
            class_names=tuple(d["class_names"]),
            channels=channels,
            size=size,
            pixel_stats=dict(d.get("pixel_stats") or {}),  # absent in the oldest runs
            class_weights=None if w is None else tuple(float(v) for v in w),
        )


@dataclass(frozen=True)
class ImageOrigin:
    """Where the images of a bundle came from, to name test rows by (``test_sources``)."""

    index: np.ndarray  # each image's index in the data as read (an .npz's arrays, digits)
    files: list[str] | None = None  # each image's file (folders, manifests); None for arrays
    # The folder files are named relative to; for an .npz, the file (its source_path array)
    base: str | None = None


@dataclass(frozen=True)
class ImageContext:
    """The images as read (uint8, on the device), their labels and split: the test split's
    for the sample grid, all three for the pixel baseline."""

    images: torch.Tensor
    labels: np.ndarray
    split: dict[str, np.ndarray]
    origin: ImageOrigin

    @property
    def test_images(self) -> torch.Tensor:
        return self.images[torch.from_numpy(self.split["test"]).to(self.images.device)]


ImageBundle = DataBundle[ImageFitted, ImageContext]


class ImageData:
    """Reads an image set (folder, split folders, manifest, npz, digits) and splits it."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.data_cfg: ImageDataConfig = cfg.data
        self.split_seed = cfg.data_seed

    def build(
        self, device: torch.device, fitted: ImageFitted | None = None, score_all: bool = False
    ) -> ImageBundle:
        """The bundle (see TaskData.build); ``score_all``: every image in the test split,
        labelled by the run's classes."""
        c = self.data_cfg
        if score_all and fitted is None:
            raise ValueError("score_all scores data with a saved run's fitted state: give it")
        init = self.cfg.model.init
        # The file is read first (a bad one fails before the images are), matched once the
        # classes and channels are known; not at all by a resumed run (its checkpoint holds
        # every weight, and its data.json the init record).
        resumed = bool(init) and fitted is None and skipped()
        source = None
        if init and fitted is None and not resumed:
            source = read_source(init, model=self.cfg.model.name)
        s = load_image_set(
            c.path,
            fmt=c.format,
            size=fitted.size if fitted is not None else c.size,  # a saved run's, as channels
            # A saved run's channels, whatever auto would choose for these images.
            channels=fitted.channels if fitted is not None else c.channels,
            skip_corrupt=c.skip_corrupt,
            layout=c.layout,
            manifest=Manifest(c.path_column, c.label_column, c.split_column, c.image_root),
            held_out=score_all,
        )
        if score_all:
            assert fitted is not None
            return self._held_out(s, fitted, device)
        model = self.cfg.model.name
        _check_images(s, c, model, fitted)
        keep = stratified_subset(s.labels, c.subset, self.split_seed)
        images, labels = s.images[keep], s.labels[keep]
        # The data's own split: always for split folders and a manifest's split column (the
        # layout says it), on request for an npz 'split' array (the study ignored it).
        honour = s.layout in ("split_folders", "manifest", "table") or c.use_provided_split
        provided = s.provided_split[keep] if honour and s.provided_split is not None else None
        # Byte-identical images form a group: a carved split takes whole groups, and copies
        # left across the data's own splits are counted (below) rather than hidden.
        groups = None if s.digests is None else duplicate_groups([s.digests[i] for i in keep])
        split_notes: list[str] = []  # a carved split raised to one image per class
        named = Named(s.source, "images", tuple(s.class_names))
        split = stratified_split(
            labels, c.val_fraction, c.test_fraction, self.split_seed, provided, groups, named,
            split_notes,
        )  # fmt: skip
        split_source = base_split_source(
            s.split_origin if provided is not None else {},
            c.val_fraction,
            c.test_fraction,
            f"all images, stratified, split seed {self.split_seed}",
            len(labels),
            len(s.class_names),
        )
        x = torch.from_numpy(images).to(device)  # uint8 stays uint8 until a batch is sliced
        y = torch.from_numpy(labels).to(device)
        info, notes = _describe(s, images, labels, split, split_source, groups)
        notes[2:2] = split_notes  # beside the line giving the split's sizes
        weights = None
        if c.class_weights:
            weights = class_weights(info["class_counts"]["train"], c.class_weight_power)
            info["class_weights"] = np.round(weights, 6).tolist()
        start = None
        if source is not None:
            start = _start(source, model, info["channels"], s.class_names, init)
            info["init"] = start.info
        if fitted is None:
            fitted = ImageFitted(
                class_names=tuple(s.class_names),
                channels=info["channels"],
                size=info["size"],
                pixel_stats=info["pixel_stats"],
                class_weights=weights,
                init=start,
            )
        if start is not None:
            notes.append(start.note())
        elif resumed:
            notes.append(f"init: {init} not read again: the checkpoint holds the run's weights")
        augment = AUGMENTATIONS[self.cfg.reg.augment]

        def make(idx: np.ndarray, train: bool) -> Batches:
            return _batches(idx, x, y, c, self.cfg.train.channels_last, augment if train else None)

        return DataBundle(
            train=make(split["train"], True),
            val=make(split["val"], False),
            test=make(split["test"], False),
            fitted=fitted,
            info=info,
            splits={k: v.tolist() for k, v in split.items()},
            notes=notes,
            context=ImageContext(x, labels, split, _origin(s, keep, c)),
        )

    def _held_out(self, s: ImageSet, fitted: ImageFitted, device: torch.device) -> ImageBundle:
        """Every image of ``s`` in the test split, none in train or val, labelled by the run's
        classes (eval --all): no subset, no stratification, the data's own split ignored."""
        if not len(s.labels):
            raise ArchlabError(f"{s.source}: no images to score")
        labels = to_run_classes(s.source, s.class_names, s.labels, fitted.class_names)
        s = replace(s, labels=labels, class_names=list(fitted.class_names))
        split = held_out_split(len(labels))
        x, y = torch.from_numpy(s.images).to(device), torch.from_numpy(labels).to(device)
        split_source = {"train": "none (eval --all)", "val": "none (eval --all)",
                        "test": "every image (eval --all)"}  # fmt: skip
        info, notes = _describe(s, s.images, labels, split, split_source, None)
        skipped = len(s.skipped)
        info["scored_all"] = held_out_info(
            labels, len(fitted.class_names), "images",
            f"{count(skipped, 'unreadable file')} skipped (data.skip_corrupt=true)"
            if skipped else "",
        )  # fmt: skip
        test = _batches(split["test"], x, y, self.data_cfg, self.cfg.train.channels_last, None)
        none = _batches(split["train"], x, y, self.data_cfg, False, None)
        return DataBundle(
            train=none,
            val=none,
            test=test,
            fitted=fitted,
            info=info,
            splits={k: v.tolist() for k, v in split.items()},
            notes=notes,
            context=ImageContext(
                x, labels, split, _origin(s, np.arange(len(labels)), self.data_cfg)
            ),
        )

    def restore(self, run_dir: Path) -> ImageFitted:
        """The run's classes, image size and pixel statistics, without the data."""
        return ImageFitted.from_dict(require_fitted(run_dir, ImageFitted.kind))


def _origin(s: ImageSet, keep: np.ndarray, c: ImageDataConfig) -> ImageOrigin:
    """Where the kept images (``keep``: indices into ``s``) came from: array indices for an
    .npz or the digits; for files, each one's file and the folder they are named from (a
    folder's root; a manifest's data.image_root, else the CSV's folder)."""
    if s.layout == "npz":
        return ImageOrigin(keep, base=os.path.abspath(c.path))
    if s.files is None:
        return ImageOrigin(keep)
    base = (c.image_root or str(Path(c.path).parent)) if s.layout == "manifest" else c.path
    return ImageOrigin(keep, [s.files[i] for i in keep], os.path.abspath(base))


def _describe(
    s: ImageSet,
    images: np.ndarray,
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    split_source: dict[str, str],
    groups: np.ndarray | None,
) -> tuple[dict[str, Any], list[str]]:
    """data.json's account of the images and their split, and the run's first lines."""
    counts = {
        k: np.bincount(labels[v], minlength=len(s.class_names)).tolist() for k, v in split.items()
    }
    info = {
        "source": s.source,
        "layout": s.layout,
        "split_source": split_source,
        "class_names": s.class_names,
        "channels": int(images.shape[1]),
        "size": int(images.shape[-1]),
        "n_images": len(labels),
        "split_sizes": {k: len(v) for k, v in split.items()},
        "class_counts": counts,
        "skipped_corrupt": s.skipped,
        "ignored_non_images": s.ignored,
        "split_sha256": {k: sha256_array(v) for k, v in split.items()},
    }
    if s.colour_images is not None:  # data.channels=auto chose the channels from these
        info["colour_images"] = s.colour_images
    if s.native_side is not None:  # data.size=auto chose the size from it
        info["native_side"] = s.native_side
    if s.encoding:
        info["encoding"] = s.encoding  # a manifest's, as text and sales runs record theirs
    notes = [
        f"data: {s.source} ({s.layout.replace('_', ' ')}), {len(labels)} images, "
        f"{len(s.class_names)} classes",
        "data: splits " + ", ".join(f"{k} {len(v)} ({split_source[k]})" for k, v in split.items()),
        *s.notes,
        *unscored_notes(s.class_names, counts, "images"),
    ]
    if groups is not None:
        info["duplicates"] = dup = _duplicates(groups, split)
        notes += _duplicate_notes(dup, split_source)
    # What training images look like, so predict can flag inputs that look nothing alike.
    # ({} without training images: a set scored whole by eval --all.)
    info["pixel_stats"] = pixel_stats(images[split["train"]]) if len(split["train"]) else {}
    return info, notes


def _check_images(s: ImageSet, c: ImageDataConfig, model: str, fitted: ImageFitted | None) -> None:
    """Refuse images a run cannot use: other classes than a saved run's, smaller than the
    network needs, or data.use_provided_split without a split in the data."""
    check_run_classes(c.path, s.class_names, None if fitted is None else fitted.class_names)
    need = MIN_SIZE.get(model, 1)
    if min(s.images.shape[-2:]) < need:
        raise ArchlabError(
            f"{s.source}: images are {s.images.shape[-2]}x{s.images.shape[-1]} but "
            f"{model} needs at least {need}x{need}; set data.size={need} or more"
        )
    if c.use_provided_split and s.provided_split is None:
        raise ArchlabError(f"{s.source}: data.use_provided_split=true but the data has no 'split'")


def _start(
    source: Any, model: str, channels: int, class_names: list[str], init: str
) -> InitWeights:
    """The user's weights (``source``: read_source's) matched to the network this run builds;
    the head is kept only when the classes are the same."""
    tensors, fmt, source_classes = source
    with torch.device("meta"):  # shapes only: nothing is allocated
        net = MODELS[model].build(in_channels=channels, num_classes=len(class_names))
    same = source_classes is not None and list(source_classes) == list(class_names)
    return match(net, tensors, keep_head=same, where=init, fmt=fmt)


def _batches(
    idx: np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    c: ImageDataConfig,
    channels_last: bool,
    augment: Augmentation | None,
) -> Batches:
    """Batches of the images ``idx``, normalized on the device; ``augment``: training's."""
    sel = torch.from_numpy(idx).to(x.device)

    def fetch(i: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        j = sel[i.to(x.device)]
        xb = normalize(x[j], c, channels_last)
        if gen is not None and augment is not None:
            xb = augment(xb, gen)
        return xb, y[j]

    return Batches(len(idx), fetch)


def _duplicates(groups: np.ndarray, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """Byte-identical images: how many, in how many groups, and how many val/test images
    copy an image of an earlier split (train; train or val)."""
    _, counts = np.unique(groups, return_counts=True)
    return {
        "images": int(counts[counts > 1].sum()),
        "groups": int((counts > 1).sum()),
        "across_splits": cross_split_copies(groups, split),
    }


def _duplicate_notes(dup: dict[str, Any], split_source: dict[str, str]) -> list[str]:
    if not dup["images"]:
        return []
    notes = [
        f"data: {dup['images']} images are byte-identical copies of another "
        f"({count(dup['groups'], 'group')}); a carved split takes whole groups"
    ]
    across = {k: n for k, n in dup["across_splits"].items() if n}
    if across:
        notes.append(
            "data: warning: "
            + " and ".join(f"{n} {k} images ({split_source[k]})" for k, n in across.items())
            + " copy an image of an earlier split: their scores are not held out"
        )
    return notes


def normalize(x: torch.Tensor, c: ImageDataConfig, channels_last: bool) -> torch.Tensor:
    """uint8 images -> float, scaled to [0, 1] and standardized by data.mean/std."""
    x = (x.float() / 255.0 - c.mean) / c.std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class ImageClassification:
    """Cross-entropy classification of an in-memory uint8 image tensor."""

    name = "images"
    outputs = "logits"  # how `archlab ensemble` averages members: see archlab/ensemble.py
    cpu_amp = True  # bf16 may pay: auto times it (bench/cpu_precision.py)

    def __init__(self, cfg: RunConfig, fitted: ImageFitted) -> None:
        self.cfg = cfg
        self.fitted = fitted
        self.data_cfg: ImageDataConfig = cfg.data
        self.model_cfg: ImageModelConfig = cfg.model
        self.reg = cfg.reg
        w = fitted.class_weights
        self.weight = None if w is None else torch.tensor(w, dtype=torch.float32)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.data_cfg, self.cfg.train.channels_last)

    @functools.cached_property
    def _linear_prefixes(self) -> tuple[str, ...]:
        """The linear layers (the head, and VGG's fully connected stack, which a torchvision
        file cannot fill), named from the architecture, not from what was loaded, so a resumed
        run treats them alike."""
        with torch.device("meta"):
            net = self.build_model_bare()
        return tuple(f"{n}." for n, m in net.named_modules() if isinstance(m, nn.Linear))

    def callbacks(self) -> list[Any]:
        epochs = self.model_cfg.freeze_epochs
        if not epochs:
            return []
        from archlab.train.callbacks import FreezeParameters  # the trainer's layer, used lazily

        # The convolutional body waits out freeze_epochs while the linear layers learn.
        return [FreezeParameters(self._linear_prefixes, epochs, others=True)]

    def lr_scale(self, name: str) -> float:
        """model.body_lr_scale for the loaded convolutional body, 1 for the linear layers."""
        scale = self.model_cfg.body_lr_scale
        if scale == 1.0:
            return 1.0
        return 1.0 if name.startswith(self._linear_prefixes) else scale

    # --- model, loss, metrics ---
    def build_model_bare(self) -> nn.Module:
        """The network as built, before any starting weights."""
        return MODELS[self.model_cfg.name].build(
            in_channels=self.fitted.channels,
            num_classes=len(self.fitted.class_names),
            dropout=self.reg.dropout,
        )

    def build_model(self) -> nn.Module:
        model = self.build_model_bare()
        if self.fitted.init is not None:  # model.init: the layers left out start as built
            model.load_state_dict(self.fitted.init.tensors, strict=False)
        return model

    def step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = model(x)
        if self.model_cfg.tta == "flip" and not model.training:
            out = (out + model(x.flip(-1))) / 2
        return out, y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(outputs.device)
        return F.cross_entropy(
            outputs, targets, weight=weight, label_smoothing=self.reg.label_smoothing
        )

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        pred = outputs.argmax(1).numpy()
        return classification_metrics(targets.numpy(), pred, list(self.fitted.class_names))

    # --- artefacts and prediction ---
    def artifacts(
        self,
        run_dir: Path,
        model: nn.Module,
        data: ImageBundle,
        outputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> None:
        from archlab import plots

        names = list(self.fitted.class_names)
        cm = np.asarray(self.metrics(outputs, targets)["confusion_matrix"])
        plots.confusion_matrix(cm, names, run_dir / "plots" / "confusion_matrix.png",
                               "Test predictions")  # fmt: skip
        k = min(32, len(targets))
        imgs = data.context.test_images[:k].cpu().numpy()
        probs = outputs[:k].softmax(1)
        plots.image_grid(
            imgs,
            targets[:k].numpy(),
            probs.argmax(1).numpy(),
            probs.max(1).values.numpy(),
            names,
            run_dir / "plots" / "samples.png",
        )

    def baselines(self, data: ImageBundle) -> dict[str, Any]:
        """Logistic regression on downsampled pixels, on the same split (tasks/pixels.py)."""
        ctx = data.context
        return pixels_baseline(ctx.images, ctx.labels, ctx.split, list(self.fitted.class_names))

    def test_sources(self, data: ImageBundle, n: int) -> list[dict[str, Any]]:
        """The first ``n`` test images' sources and labels, in test-split order (tasks/base.py's
        Sourced): ``index`` in an .npz's arrays (or the digits'), with the .npz's
        ``source_path`` where it has one; else ``file`` relative to the data's folder."""
        ctx, names = data.context, self.fitted.class_names
        o, rows = ctx.origin, ctx.split["test"][:n]
        labels = [names[int(ctx.labels[i])] for i in rows]
        out: list[dict[str, Any]] = []
        if o.files is None:
            paths = _npz_paths(o.base) if o.base else None
            for i, lab in zip(rows, labels, strict=True):
                out.append({"index": int(o.index[i]), "label": lab})
                if paths is not None:
                    out[-1]["source_path"] = str(paths[o.index[i]])
            return out
        return [{"file": _relative(o.files[i], o.base), "label": lab}
                for i, lab in zip(rows, labels, strict=True)]  # fmt: skip

    def read_images(self, paths: Sequence[str | BinaryIO]) -> torch.Tensor:
        """Image files (paths, or uploads as binary files) as an (N, C, H, W) uint8 tensor,
        decoded as the training files were."""
        return self._stack([self._decode(p) for p in paths])

    def read_inputs(self, inputs: Sequence[str]) -> tuple[list[str], torch.Tensor]:
        """The image files of ``inputs`` and their tensor (``read_images``): a file as given,
        a folder's image files that decode, each once (the others named in a note: one broken
        photo does not stop a folder's labels)."""
        names, arrs = [], []
        for item in inputs:
            files = _image_files(item)
            if files == [item]:
                names.append(item)
                arrs.append(self._decode(item))
                continue
            bad = []
            for f in files:
                try:
                    arrs.append(decode_image(Path(f), self.fitted.channels, self.fitted.size))
                    names.append(f)
                except (*DECODE_ERRORS, ArchlabError):  # a refused mode (float pixels) too
                    bad.append(Path(f).name)
            if bad:
                shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
                print(f"archlab: note: {item}: {count(len(bad), 'image')} that cannot be read "
                      f"left out ({shown})", file=sys.stderr)  # fmt: skip
        return names, self._stack(arrs)

    def _decode(self, p: str | BinaryIO) -> np.ndarray:
        src = Path(p) if isinstance(p, str) else p
        try:
            return decode_image(src, self.fitted.channels, self.fitted.size)
        except DECODE_ERRORS as e:
            raise ArchlabError(f"{p}: cannot read image ({decode_reason(e)})") from None

    @staticmethod
    def _stack(arrs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrs).transpose(0, 3, 1, 2).copy())

    def predict(self, model: nn.Module, inputs: list[str]) -> list[dict[str, Any]]:
        """Class and probabilities for image files (a folder: every image under it), prepared
        exactly as in training."""
        inputs, x = self.read_inputs(inputs)
        stats = self.fitted.pixel_stats
        for p, note in zip(inputs, unlike_training(x.numpy(), stats), strict=True):
            if note:
                print(f"archlab: warning: {p}: {note}", file=sys.stderr)
        model.eval()
        # Batches of train.eval_batch_size: one forward of every input held each one's
        # activations at once (10,000 small photos: 6.4 GB).
        n = max(1, self.cfg.train.eval_batch_size)
        with torch.no_grad():
            probs = torch.cat([
                self.step(model, (self.normalize(x[i : i + n]), None))[0].float().softmax(1)
                for i in range(0, len(x), n)
            ]) if len(x) else torch.empty(0, len(self.fitted.class_names))  # fmt: skip
        names = list(self.fitted.class_names)
        return [
            predict_row({"input": p, "label": names[int(pr.argmax())]}, names, pr.tolist())
            for p, pr in zip(inputs, probs, strict=True)
        ]


def _npz_paths(path: str) -> np.ndarray | None:
    """An .npz's ``source_path`` array (each image's file where the arrays were made from
    files, as images3's), or None where it has none, or none of text per image."""
    with np.load(path, allow_pickle=False) as z:
        if "source_path" not in z.files:
            return None
        paths, n = z["source_path"], len(z["labels"])
    return paths if paths.ndim == 1 and paths.dtype.kind == "U" and len(paths) == n else None


def _relative(path: str, base: str | None) -> str:
    """``path`` relative to ``base`` where it lies under it (a manifest may name files
    elsewhere), else as it is."""
    p = Path(os.path.abspath(path))
    return str(p.relative_to(base)) if base and p.is_relative_to(base) else str(path)


# An input whose mean pixel or pixel std is this many standard deviations from the training
# images' is flagged by predict. On scikit-learn's digits (1,200 to train), the 597 held-out
# digits stay within 3.8 SD and every one of them inverted (dark on light) is 8.3 SD or more away.
UNLIKE_SD = 5.0


def pixel_stats(images: np.ndarray) -> dict[str, float]:
    """Mean and spread of the per-image pixel mean and std (0-255) over uint8 N x C x H x W."""
    flat = images.reshape(len(images), -1)
    means = flat.mean(axis=1)
    stds = flat.std(axis=1)
    return {
        "mean_mean": float(means.mean()),
        "mean_sd": float(means.std()),
        "std_mean": float(stds.mean()),
        "std_sd": float(stds.std()),
    }


def unlike_training(images: np.ndarray, stats: dict[str, float] | None) -> list[str]:
    """For each uint8 image, "" or why its statistics are far from the training images'."""
    if not stats:
        return ["" for _ in images]
    notes = []
    for img in images.reshape(len(images), -1).astype(np.float64):
        parts = []
        for what, value, key in (
            ("mean pixel", img.mean(), "mean"),
            ("pixel std", img.std(), "std"),
        ):
            centre, sd = stats[f"{key}_mean"], max(stats[f"{key}_sd"], 1.0)  # floor: 1 of 255
            z = (value - centre) / sd
            if abs(z) > UNLIKE_SD:
                parts.append(
                    f"{what} {value:.0f} is {abs(z):.0f} SD from the training images' "
                    f"({centre:.0f} +- {sd:.0f})"
                )
        if parts:
            parts.append("unlike the training data (inverted? another kind of image?): do not "
                         "trust this prediction")  # fmt: skip
        notes.append("; ".join(parts))
    return notes


def _image_files(item: str) -> list[str]:
    """``item``, or where it is a folder, every image file under it (sorted; hidden ones and
    other files aside, counted in a note), as predict labels a folder of new photos."""
    if not Path(item).is_dir():
        return [item]
    found = files_under(Path(item))
    images = [str(p) for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise ArchlabError(f"{item}: a folder with no image files ({len(found)} other file(s))")
    if other := len(found) - len(images):
        print(f"archlab: note: {item}: {count(other, 'other file')} left out (not images)",
              file=sys.stderr)  # fmt: skip
    return images
