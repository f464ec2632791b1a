"""ONNX export of a finished run: the network as the task applies it, one JSON file with the
whole preprocessing contract, and a check of onnxruntime against torch on the run's test split.

Each run kind has a graph module here that wraps the trained network with exactly what the
task's ``step`` adds around it (image normalization and flip TTA; the text LSTM without packed
sequences; the sales baseline the network corrects), so the exported graph computes what
``archlab predict`` computes from the same prepared inputs.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archlab import rundir
from archlab.errors import ArchlabError
from archlab.tasks.base import Sourced
from archlab.utils import write_json_atomic

OPSET = 18  # ONNX opset of the exported graphs; onnxruntime >= 1.14 runs it
MODEL_FILE = "model.onnx"
CONTRACT_FILE = "contract.json"
# The first test rows as prepared inputs with the outputs they must give, and where each came
# from (its file, text, or series and dates): a check for a user's own preprocessing and
# runtime (written when the test split is available).
EXAMPLES_FILE = "examples.json"
N_EXAMPLES = 10
TOLERANCE = 1e-4  # max |onnxruntime - torch| accepted on the test split (float32 outputs)
BATCH = 256  # test rows per onnxruntime call in the check


# --- the graphs: the trained network plus what the task's step adds around it ---
class ImageGraph(nn.Module):
    """uint8 (N, C, size, size) pixels -> class logits: scaling and normalization inside."""

    def __init__(self, model: nn.Module, mean: float, std: float, flip: bool) -> None:
        super().__init__()
        self.model, self.mean, self.std, self.flip = model, mean, std, flip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.float() / 255.0 - self.mean) / self.std
        out = self.model(x)
        if self.flip:  # model.tta=flip: the mean of the image's and its mirror's logits
            out = (out + self.model(x.flip(-1))) / 2
        return out


class TextGraph(nn.Module):
    """LSTMClassifier's forward without packed sequences (which ONNX cannot hold), for
    right-padded ids and their true lengths; equal to the packed one on every valid row.

    Each direction of each layer is a one-layer LSTM with the trained weights. The forward
    direction runs over the padded row: padding comes after the true steps, so it never reaches
    them. The backward direction runs over each row reversed within its length (a gather), so
    it starts at the last true token, as the packed LSTM does.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        src = model.lstm
        self.embedding, self.head = model.embedding, model.head
        self.pooling, self.hidden = model.pooling, src.hidden_size
        self.dirs = 2 if src.bidirectional else 1
        self.layers = nn.ModuleList()
        for k in range(src.num_layers):
            cells = nn.ModuleList()
            for d in range(self.dirs):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                cell = nn.LSTM(getattr(src, f"weight_ih{suffix}").shape[1], src.hidden_size,
                               batch_first=True)  # fmt: skip
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, f"{name}_l0").data.copy_(getattr(src, f"{name}{suffix}").data)
                cells.append(cell)
            self.layers.append(cells)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
        n = lengths[:, None]
        valid = steps < n  # (N, T)
        rev = torch.where(valid, n - 1 - steps, steps)[..., None]  # reversal within the length
        x = self.embedding(tokens)
        for cells in self.layers:
            out = [cells[0](x)[0]]
            if self.dirs == 2:
                back = cells[1](x.gather(1, rev.expand(-1, -1, x.shape[-1])))[0]
                out.append(back.gather(1, rev.expand(-1, -1, back.shape[-1])))
            x = torch.cat(out, -1)
        if self.pooling == "last":
            last = x.gather(1, (n - 1)[..., None].expand(-1, 1, x.shape[-1]))[:, 0]
            # The backward direction's final state is its output at step 0.
            feat = last if self.dirs == 1 else torch.cat([last[:, : self.hidden],
                                                          x[:, 0, self.hidden :]], 1)  # fmt: skip
        else:
            feat = x.masked_fill(~valid[..., None], float("-inf")).max(1).values
            if self.pooling == "meanmax":
                mean = x.masked_fill(~valid[..., None], 0.0).sum(1) / n.to(x.dtype)
                feat = torch.cat([mean, feat], 1)
        return self.head(feat)


class SalesGraph(nn.Module):
    """Windows, series ids and the baseline -> the forecast in the series' scaled units
    (base + correction_scale * the network's correction), as the sales tasks' step."""

    def __init__(self, model: nn.Module, correction_scale: float) -> None:
        super().__init__()
        self.model, self.correction_scale = model, correction_scale

    def forward(self, x: torch.Tensor, cats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return base + self.correction_scale * self.model(x, cats)


# --- per kind: graph, example inputs, test-split inputs, contract ---
@dataclass(frozen=True)
class Kind:
    """One run kind's export: how it is named, fed and described."""

    name: str  # image-classifier, text-classifier, sales-forecast
    inputs: tuple[str, ...]
    output: str


def _logits(class_names: Any) -> dict[str, Any]:
    """The contract entry of a classifier's output."""
    return {
        "name": "logits",
        "dtype": "float32",
        "shape": ["N", len(class_names)],
        "meaning": "class scores in class_names order; softmax gives the probabilities, "
        "argmax the predicted class",
    }


def kind_of(cfg: Any) -> Kind:
    if cfg.task == "images":
        return Kind("image-classifier", ("pixels",), "logits")
    if cfg.task == "text":
        return Kind("text-classifier", ("tokens", "lengths"), "logits")
    if getattr(cfg.data, "framing", "forecast") == "parity":
        raise ArchlabError("export: the sales 'parity' framing (the study's row-per-sample "
                           "setup) has no export; train with data.framing=forecast")  # fmt: skip
    return Kind("sales-forecast", ("x", "cats", "base"), "forecast_scaled")


def graph_of(cfg: Any, task: Any, model: nn.Module) -> nn.Module:
    model.eval()
    if cfg.task == "images":
        c = task.data_cfg
        g: nn.Module = ImageGraph(model, c.mean, c.std, task.model_cfg.tta == "flip")
    elif cfg.task == "text":
        g = TextGraph(model)
    else:
        g = SalesGraph(model, float(getattr(task, "correction_scale", 1.0)))
    return g.eval()


def example_inputs(cfg: Any, task: Any) -> tuple[torch.Tensor, ...]:
    """Small inputs of the right shapes and types (batch 2) to trace the graph with."""
    g = torch.Generator().manual_seed(0)
    if cfg.task == "images":
        f = task.fitted
        return (torch.randint(0, 256, (2, f.channels, f.size, f.size), generator=g,
                              dtype=torch.uint8),)  # fmt: skip
    if cfg.task == "text":
        width = task.data_cfg.max_length
        tokens = torch.randint(2, task.fitted.vocab_size, (2, width), generator=g)
        lengths = torch.tensor([width, max(1, width // 2)])
        return tokens * (torch.arange(width) < lengths[:, None]), lengths
    fz = task.fitted.featurizer
    n_cats = len(fz.n_categories)
    cats = torch.zeros((2, n_cats), dtype=torch.long)
    steps, width, base = fz.window + fz.horizon, fz.input_size, torch.zeros((2, fz.horizon))
    return torch.randn((2, steps, width), generator=g), cats, base


def dynamic_shapes(cfg: Any) -> tuple[Any, ...]:
    batch = torch.export.Dim("batch")
    if cfg.task == "images":
        return ({0: batch},)
    if cfg.task == "text":
        # Rows are padded to data.max_length, a fixed width: a dynamic time axis was traced
        # fixed to the example's width in some processes (the exporter's suggested fixes).
        return {0: batch}, {0: batch}
    return {0: batch}, {0: batch}, {0: batch}


def test_inputs(cfg: Any, task: Any, data: Any) -> Iterator[tuple[torch.Tensor, ...]]:
    """The test split as the graph's inputs, BATCH rows at a time."""
    if cfg.task == "images":
        x = data.context.test_images.cpu()
        for i in range(0, len(x), BATCH):
            yield (x[i : i + BATCH],)
        return
    for batch in data.test.iterate(BATCH):
        inputs = tuple(t.cpu() for t in batch[:-1])  # the last item is the targets
        if cfg.task == "text":  # padded to the graph's fixed width (data.max_length)
            tokens, lengths = inputs
            pad = task.data_cfg.max_length - tokens.shape[1]
            inputs = (torch.nn.functional.pad(tokens, (0, pad)), lengths)
        yield inputs


# --- the contract: everything a user outside Python needs ---
def contract(cfg: Any, task: Any, kind: Kind, opset: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": "archlab ONNX export 1",
        "archlab_version": version("archlab"),
        "task": cfg.task,
        "kind": kind.name,
        "model": cfg.model.name,
        "onnx": {
            "file": MODEL_FILE,
            "opset": opset,
            "dynamic_axes": "the batch axis N of every input and output",
        },
    }
    if cfg.task == "images":
        out.update(_image_contract(task))
    elif cfg.task == "text":
        out.update(_text_contract(task))
    else:
        out.update(_sales_contract(cfg, task, kind))
    return out


def _image_contract(task: Any) -> dict[str, Any]:
    f, c = task.fitted, task.data_cfg
    mode = "L" if f.channels == 1 else "RGB"
    return {
        "class_names": list(f.class_names),
        "preprocessing": {
            # As archlab/data/image_set.py's decode_image does, step for step: without the
            # EXIF turn a phone photo reaches the network sideways and the scores differ.
            "steps": [
                "decode the image file and apply its EXIF orientation (tag 0x0112, as "
                "Pillow's ImageOps.exif_transpose); an image without the tag is left as it is",
                "16-bit grayscale (Pillow mode I;16 or I, values 0..65535): scale to 8-bit as "
                f"round(value * 255 / 65535), then convert to {mode}; archlab refuses a mode I "
                "image with values outside 0..65535 and 32-bit float pixels (mode F): no scale "
                "fits every such file",
                "palette (P, PA) and gray+alpha (LA) images: convert to RGBA first (a "
                f"transparent palette entry keeps its colour), then to {mode}",
                f"any other image: convert it to {mode} "
                f"({'grayscale' if mode == 'L' else 'RGB'}, as Pillow's Image.convert); an "
                "alpha channel is dropped, never composited on a background",
                f"resize to {f.size} x {f.size} pixels, bilinear (Pillow's "
                "Image.Resampling.BILINEAR), ignoring the aspect ratio",
                f"lay it out as uint8 (N, {f.channels}, {f.size}, {f.size}): channel first",
            ],
            "color_mode": mode,
            "size": f.size,
            "channels": f.channels,
            "normalization": {
                "inside_graph": True,
                "formula": "(pixels / 255 - mean) / std",
                "mean": c.mean,
                "std": c.std,
            },
            "test_time_augmentation": task.model_cfg.tta,
            # The training images' per-image pixel mean/std spread: an input far outside it
            # (e.g. inverted colours) gets a warning from archlab predict.
            "pixel_stats": dict(f.pixel_stats),
        },
        "inputs": [
            {
                "name": "pixels",
                "dtype": "uint8",
                "shape": ["N", f.channels, f.size, f.size],
                "meaning": "images prepared as in preprocessing",
            }
        ],
        "outputs": [_logits(f.class_names)],
    }


def _text_contract(task: Any) -> dict[str, Any]:
    f, c = task.fitted, task.data_cfg
    tok = json.loads(f.tokenizer.to_str(pretty=False))
    return {
        **_blend_note(task),
        "class_names": list(f.class_names),
        "preprocessing": {
            "steps": [
                "normalize the text with tokenizer.normalizer (a sequence of Unicode NFKC, regex "
                "replacements and lowercasing, in order); lowercasing takes each character on "
                "its own, as tokenizers does (a final capital sigma becomes σ; Python's "
                "str.lower() gives ς there): in Python ''.join(ch.lower() for ch in text)",
                "split it with tokenizer.pre_tokenizer (a regex Split with invert=true: the "
                "tokens are the regex's matches, in order)",
                "the regexes are Oniguruma's, as Hugging Face tokenizers runs them: \\w also "
                "matches combining marks (Devanagari, Thai, Arabic vowel signs), which Python's "
                "re does not; python_regex gives each regex for Python's re (same splits "
                "but for about 850 rare code points, such as the number symbols ፩ and ①, which "
                "re counts as word characters: an Oniguruma engine splits those exactly)",
                "map each token to its id in tokenizer.model.vocab; a token not in it gets "
                f"unk_id ({tok['model']['unk_token']})",
                f"keep the first max_length ({c.max_length}) ids; a text with no token becomes "
                "[unk_id]",
                f"right-pad every row with pad_id to max_length ({c.max_length}); lengths = the "
                "number of ids before padding (>= 1)",
            ],
            "max_length": c.max_length,
            "pad_id": 0,
            "unk_id": f.tokenizer.token_to_id(tok["model"]["unk_token"]),
            "vocab_size": f.vocab_size,
            # The Hugging Face tokenizers JSON: loadable as it is by their Python, Rust and
            # Node.js libraries (Tokenizer.from_str), or read by hand as the steps say.
            "tokenizer": tok,
            "python_regex": {p: python_regex(p) for p in _regexes(tok)},
        },
        "inputs": [
            {
                "name": "tokens",
                "dtype": "int64",
                "shape": ["N", c.max_length],
                "meaning": "token ids, right-padded with pad_id",
            },
            {
                "name": "lengths",
                "dtype": "int64",
                "shape": ["N"],
                "meaning": "each row's true number of ids, 1..max_length",
            },
        ],
        "outputs": [_logits(f.class_names)],
    }


def _regexes(node: Any) -> list[str]:
    """Every regex pattern of a tokenizers JSON (its normalizers' and pre-tokenizer's)."""
    if isinstance(node, dict):
        own = [node["Regex"]] if isinstance(node.get("Regex"), str) else []
        return own + [p for v in node.values() for p in _regexes(v)]
    return [p for v in node for p in _regexes(v)] if isinstance(node, list) else []


@functools.cache
def _marks() -> str:
    """Combining marks (Unicode M*) and connectors (Pc: ‿) that Python's re \\w leaves out and
    Oniguruma's has, as a character-class body."""
    word = ("Mn", "Mc", "Me", "Pc")
    cps = [c for c in range(sys.maxunicode + 1)
           if unicodedata.category(chr(c)) in word and not re.match(r"\w", chr(c))]  # fmt: skip
    runs, start = [], cps[0]
    for a, b in zip(cps, [*cps[1:], -1], strict=True):
        if b != a + 1:
            runs.append(f"\\U{start:08x}" + (f"-\\U{a:08x}" if a > start else ""))
            start = b
    return "".join(runs)


def python_regex(pattern: str) -> str:
    """``pattern`` (Oniguruma's \\w: letters, marks, digits, connectors) for Python's re,
    whose \\w has no combining marks: each \\w becomes a class with them. (A \\b next to a
    mark may still differ.)"""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            out.append(("\\w" + _marks() if in_class else f"[\\w{_marks()}]") if pair == "\\w"
                       else pair)  # fmt: skip
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


def _sales_contract(cfg: Any, task: Any, kind: Kind) -> dict[str, Any]:
    fz = task.fitted.featurizer
    names = list(fz.feature_names)
    L, H = fz.window + fz.horizon, fz.horizon
    out_shape = ["N", H]
    return {
        **_blend_note(task),
        "series_keys": list(fz.series_keys),
        "preprocessing": {
            "summary": (
                "Per series: sales are scaled by the series' own training mean (offset) and "
                "std (scale): (sales - offset) / scale; covariates by the training mean and "
                "std (cov_mean, cov_std; a constant covariate, std null, enters as 0). "
                "A window holds the last `window` observed steps up to the forecast origin "
                "and the `horizon` future steps (future steps hold only what is known in "
                "advance: the calendar, holidays, events and known covariates)."
                " The network corrects a naive baseline (base) in the same scaled units; "
                "archlab builds x, cats and base with the featurizer below "
                "(archlab/data/sales_horizon.py)."
            ),
            "feature_names": names,
            "window": fz.window,
            "horizon": H,
            "featurizer": fz.to_dict(),
        },
        "inputs": [
            {
                "name": "x",
                "dtype": "float32",
                "shape": ["N", L, len(names)],
                "meaning": "window + horizon steps x the features in feature_names order",
            },
            {
                "name": "cats",
                "dtype": "int64",
                "shape": ["N", len(fz.series_keys)],
                "meaning": "each series key's index in featurizer.key_vocab (0 for a value never "
                "seen in training)",
            },
            {
                "name": "base",
                "dtype": "float32",
                "shape": out_shape,
                "meaning": "the naive baseline the network corrects, in scaled units "
                + (
                    "(last season's smoothing)"
                    if fz.residual == "smoothed"
                    else f"(data.residual={fz.residual})"
                ),
            },
        ],
        "outputs": [
            {
                "name": "forecast_scaled",
                "dtype": "float32",
                "shape": out_shape,
                "meaning": "the forecast in scaled units: sales = forecast_scaled * "
                "scale[series] + offset[series] (featurizer.scale/offset, in the order of "
                "featurizer.series)",
            }
        ],
    }


# Where a text run's TF-IDF model is, for an ONNX user who wants the blend.
TFIDF_NOTE = (
    "tfidf.npz in the run dir: each vectorizer's vocabulary and idf, and the logistic "
    "regression's weights"
)


def _blend_note(task: Any) -> dict[str, Any]:
    """``{"blend": ...}`` when the run blends the network with a peer (its statistical peer, or
    a text run's TF-IDF model; weight under 1), else nothing: predict and serve then answer
    with the blend, which the graph cannot compute, so an ONNX user must know the output is
    the network's part alone."""
    chosen = getattr(task.fitted, "chosen", None) or {}
    w = chosen.get("blend_weight")
    if w is None or w >= 1:
        return {}
    if getattr(task.data_cfg, "tfidf_blend", None) is not None:  # a text run
        return {
            "blend": {
                "weight": w,
                "peer": "tfidf",
                "note": (
                    f"the outputs are the network's logits alone. archlab predict and serve "
                    f"answer with a blend of class probabilities: {w:g} x the network's softmax "
                    f"+ {1 - w:g} x the TF-IDF model's ({TFIDF_NOTE}). The ONNX output alone is "
                    "not what predict/serve return for this run."
                ),
            }
        }
    peer = getattr(task.data_cfg, "peer", "the statistical peer")
    scale = chosen.get("blend_correction_scale")
    own = float(getattr(task, "correction_scale", 1.0))  # the one baked into the graph
    return {
        "blend": {
            "weight": w,
            "peer": peer,
            "correction_scale": scale,
            "note": (
                f"forecast_scaled is the network's forecast alone. archlab predict and serve "
                f"answer with a blend (source 'blend'): {w:g} x the network's forecast + "
                f"{1 - w:g} x the {peer} forecast fitted on the series' history, in sales "
                "units"
                + (
                    ""
                    if scale is None or scale == own
                    else f"; its network part uses "
                    f"correction scale {scale:g} (base + {scale:g} x correction), where the "
                    f"graph uses {own:g}"
                )
                + ". The ONNX output alone is not what predict/serve return for this run."
            ),
        }
    }


# --- export and check ---
def export(run_dir: Path, out: Path | None = None, verify: bool = True) -> dict[str, Any]:
    """Write OUT/model.onnx and OUT/contract.json for a finished run; returns the contract.

    ``verify``: run the test split through both torch and onnxruntime (needs the run's data);
    the example inputs are always checked.
    """
    from archlab.runner import load_config, load_run, restore_task

    run_dir = Path(run_dir)
    rundir.require_finished(run_dir)
    cfg = load_config(run_dir)
    kind = kind_of(cfg)
    given, out = out is not None, Path(out) if out is not None else run_dir / "export"
    rundir.make_out_dir(out, given)
    if verify:
        try:
            cfg, task, model, data = load_run(run_dir, action="export")
        except ArchlabError as e:  # the data moved or changed: the export itself needs none
            raise ArchlabError(f"export's verification (onnxruntime against torch on the test "
                               f"split) reads the run's data: {e}; --no-verify exports without "
                               "the data") from None  # fmt: skip
        model = model.cpu()
    else:
        cfg, task, model = restore_task(run_dir)
        data = None
    graph = graph_of(cfg, task, model)
    example = example_inputs(cfg, task)
    onnx_path = out / MODEL_FILE
    _onnx_export(graph, example, kind, dynamic_shapes(cfg), onnx_path)
    session = ort_session(onnx_path)
    fixed = [i.name for i in session.get_inputs() if not isinstance(i.shape[0], str)]
    if fixed:
        raise ArchlabError(f"{onnx_path}: the exporter fixed the batch size of {', '.join(fixed)}")
    # The example again with one more row: a batch size the graph was not traced with.
    wider = tuple(torch.cat([t, t[:1]]) for t in example)
    checks = {"example": compare(graph, session, kind, [example, wider])}
    if data is not None:
        checks["test_split"] = compare(graph, session, kind, test_inputs(cfg, task, data))
        ex = examples(graph, kind, test_inputs(cfg, task, data))
        if isinstance(task, Sourced):  # which file, text or series and dates each row is
            ex["sources"] = task.test_sources(data, len(ex["outputs"][kind.output]))
        if cfg.task == "text":  # the raw texts too: a tokenizer written from the contract is
            ex["texts"] = [s["text"] for s in ex["sources"]]  # checked from text to ids
        write_json_atomic(out / EXAMPLES_FILE, ex)
    else:
        (out / EXAMPLES_FILE).unlink(missing_ok=True)  # never one left from another export
    for where, c in checks.items():
        if not c["ok"]:
            raise ArchlabError(
                f"{run_dir}: onnxruntime's outputs differ from torch's on the {where} "
                f"(max |diff| {c['max_abs_diff']:.3g}, tolerance {TOLERANCE}; argmax equal: "
                f"{c.get('argmax_equal')}); {onnx_path} is not usable"
            )
    result = contract(cfg, task, kind, OPSET)
    used = {i.name for i in session.get_inputs()}  # the exporter drops an input never read
    result["inputs"] = [i for i in result["inputs"] if i["name"] in used]
    result["verification"] = {"tolerance": TOLERANCE, **checks}
    result["run"] = {"dir": str(run_dir), "metrics": {k: v for k, v in
                     rundir.read_metrics(run_dir).items() if isinstance(v, float)}}  # fmt: skip
    write_json_atomic(out / CONTRACT_FILE, result)
    return result


def examples(graph: nn.Module, kind: Kind, batches: Iterator[tuple[torch.Tensor, ...]]) -> dict:
    """The first N_EXAMPLES test rows' inputs and the outputs torch computes for them."""
    rows = tuple(t[:N_EXAMPLES] for t in next(batches))
    with torch.no_grad():
        out = graph(*rows)
    return {
        "inputs": {n: t.tolist() for n, t in zip(kind.inputs, rows, strict=True)},
        "outputs": {kind.output: out.tolist()},
    }


def _onnx_export(
    graph: nn.Module, example: tuple[torch.Tensor, ...], kind: Kind, dims: Any, path: Path
) -> None:
    import logging
    import warnings

    # The exporter reports each pass (and torchvision's absence) through logging and
    # warnings; the comparison with torch afterwards is what tells whether the graph is right.
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                example,
                dynamo=True,
                input_names=list(kind.inputs),
                output_names=[kind.output],
                dynamic_shapes=dims,
                opset_version=OPSET,
                verbose=False,
            )
    except Exception as e:  # the exporter's own errors span pages: one line, the cause first
        raise ArchlabError(f"ONNX export failed: {str(e).strip().splitlines()[0][:300]}") from e
    finally:
        log.setLevel(level)
    assert program is not None
    program.save(str(path))


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare(graph: nn.Module, session: Any, kind: Kind, batches: Any) -> dict[str, Any]:
    """Max |torch - onnxruntime| over ``batches`` of graph inputs; for classifiers also whether
    every row's argmax agrees."""
    names = [i.name for i in session.get_inputs()]  # an unused input is dropped by the exporter
    worst, rows, same = 0.0, 0, True
    for batch in batches:
        with torch.no_grad():
            want = graph(*batch).numpy()
        feed = {n: t.numpy() for n, t in zip(kind.inputs, batch, strict=True) if n in names}
        got = session.run(None, feed)[0]
        if got.shape != want.shape:
            return {"ok": False, "rows": rows, "max_abs_diff": math.inf,
                    "shape": [list(got.shape), list(want.shape)]}  # fmt: skip
        worst = max(worst, float(np.max(np.abs(got - want), initial=0.0)))
        if kind.output == "logits":
            same &= bool(np.array_equal(got.argmax(1), want.argmax(1)))
        rows += len(want)
    result: dict[str, Any] = {"rows": rows, "max_abs_diff": worst}
    if kind.output == "logits":
        result["argmax_equal"] = same
    result["ok"] = worst <= TOLERANCE and same
    return result
