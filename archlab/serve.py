"""`archlab serve`: finished runs behind an HTTP API and one page (FastAPI + uvicorn).

Each run is loaded once (``runner.restore_task``, as ``archlab predict``) and served under its
own path prefix; predictions reuse the tasks' own preparation (image reading, the tokenizer,
the sales featurizer) and explanations the code of ``archlab explain`` (Grad-CAM, integrated
gradients). Limits: an upload size cap, a decoded-pixel cap, a per-request timeout; bad input
is a 4xx with a one-line JSON error, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import io
import json
import math
import queue
import signal
import socket
import sys
import tempfile
import threading
import traceback
import unicodedata
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import Request
from torch import nn

from archlab.errors import ArchlabError

PAGE = Path(__file__).with_name("serve.html")
# /docs: the OpenAPI spec rendered by a page of ours; FastAPI's Swagger UI loads its script
# from a CDN, which a machine without internet access cannot reach.
API_PAGE = Path(__file__).with_name("serve_api.html")


LIMITS_ERROR = "serve limits must be finite and > 0 (--max-upload-mb, --timeout, --max-batch)"


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_upload_bytes: int = 8 * 2**20  # request body, before any decoding
    # Decoded pixels (width x height) of one image, checked from its header before decoding:
    # a 50 KB PNG can decode to gigabytes.
    max_pixels: int = 25_000_000
    timeout_s: float = 30.0  # per request, waiting for the model included
    max_items: int = 32  # images or texts per request
    max_explain: int = 8  # texts explained per request (integrated gradients: ~50 passes each)
    max_text_chars: int = 10_000
    # Rows (images or texts) of concurrent predict requests run as one forward pass; 1 = none.
    max_batch: int = 32

    def __post_init__(self) -> None:
        counts = min(self.max_upload_bytes, self.max_pixels, self.max_batch)
        # 0 < t < inf: a nan timeout fails it too (nan compares false); inf is no limit.
        if counts < 1 or not 0 < self.timeout_s < math.inf:
            raise ArchlabError(LIMITS_ERROR)


class BadRequest(Exception):
    """A request the server refuses: HTTP status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.splitlines())


@dataclass
class Served:
    """One run: its task and model, loaded once. The lock lets one computation at a time use
    the model: Captum's hooks change it, and torch's thread team is not shared well."""

    name: str
    run_dir: Path
    cfg: Any
    task: Any
    model: nn.Module
    # The arithmetic the run was tested in (runner.inference): bf16 autocast or nothing.
    inference: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    lock: threading.Lock = field(default_factory=threading.Lock)
    batcher: Batcher | None = None

    def classify(self, item: Any, rows: int, limits: Limits) -> torch.Tensor:
        """Class probabilities of ``item`` (an image tensor or a list of texts), batched with
        the concurrent requests' when ``limits.max_batch`` > 1."""
        fn = _classify_images if self.kind == "images" else _classify_texts
        if limits.max_batch == 1:
            with self.lock:
                return fn(self, [item])[0]
        with self.lock:
            if self.batcher is None:
                self.batcher = Batcher(lambda items: fn(self, items), self.lock, limits.max_batch)
        return self.batcher.submit(item, rows)

    @property
    def kind(self) -> str:
        return self.cfg.task

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "task": self.kind,
            "model": self.cfg.model.name,
            "predict": f"/{self.name}/predict",
            "explain": f"/{self.name}/explain" if self.kind != "sales" else None,
        }
        if self.kind != "sales":
            d["classes"] = list(self.task.fitted.class_names)
        else:
            d["horizon"] = int(getattr(self.cfg.data, "horizon", 1))
            d["series_keys"] = list(self.task.data_cfg.series_keys)  # as read (a wide table's)
            # A forecaster (not the parity framing) forecasts after its own data with no history.
            d["needs_history"] = self.cfg.data.framing != "forecast"
        return d


class Batcher:
    """Concurrent requests of one model in one forward pass. A worker thread takes every
    request waiting (up to ``max_rows`` rows) as one batch, so a lone request never waits and
    under load the batches grow by themselves; ``bench/serve.py`` measures what it buys."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], lock: threading.Lock,
                 max_rows: int) -> None:  # fmt: skip
        self._run, self._lock, self._max = run, lock, max_rows
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="archlab-serve-batcher", daemon=True).start()

    def submit(self, item: Any, rows: int) -> Any:
        done: Future = Future()
        self._queue.put((item, rows, done))
        return done.result()

    def _loop(self) -> None:
        held = None  # a request that did not fit the last batch: first in the next one
        while True:
            first = held or self._queue.get()
            held, batch, rows = None, [first], first[1]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if rows + nxt[1] > self._max:
                    held = nxt
                    break
                batch.append(nxt)
                rows += nxt[1]
            try:
                with self._lock:
                    results = self._run([b[0] for b in batch])
            except Exception as e:
                if len(batch) == 1:
                    batch[0][2].set_exception(e)
                    continue
                # One request's input failed the shared pass: each alone, so that only the
                # request at fault gets its error, never the others batched with it.
                for b in batch:
                    self._alone(b)
                continue
            for b, r in zip(batch, results, strict=True):
                b[2].set_result(r)

    def _alone(self, request: tuple[Any, int, Future]) -> None:
        item, _, done = request
        try:
            with self._lock:
                result = self._run([item])[0]
        except Exception as e:
            done.set_exception(e)
        else:
            done.set_result(result)


def _classify_images(run: Served, items: list[torch.Tensor]) -> list[torch.Tensor]:
    x = torch.cat(items)
    with torch.no_grad(), run.inference():
        logits = run.task.step(run.model, (run.task.normalize(x), None))[0]
    probs = logits.float().softmax(1)
    return list(probs.split([len(t) for t in items]))


def _classify_texts(run: Served, items: list[list[str]]) -> list[torch.Tensor]:
    texts = [t for item in items for t in item]
    with run.inference():  # predict's answer: the network, blended with TF-IDF where chosen
        probs = run.task.probabilities(run.model, texts)  # packed: padding never changes a row
    return list(probs.split([len(item) for item in items]))


def load_runs(run_dirs: Sequence[Path]) -> dict[str, Served]:
    """Each run under its directory's name (``-2``, ``-3``... when two share one). A sales run
    of the parity framing, which has no predict, is left out with a note; refused when no
    other run is left."""
    from archlab import rundir
    from archlab.runner import inference, load_config, restore_task

    runs: dict[str, Served] = {}
    seen: set[Path] = set()
    for d in map(Path, run_dirs):
        if d.resolve() in seen:  # named twice (a shell glob and a path): served once
            print(f"archlab: note: {d} is given twice: served once", file=sys.stderr)
            continue
        seen.add(d.resolve())
        rundir.require_finished(d)  # no such folder, no run, unfinished: as every command says
        cfg = load_config(d)
        if cfg.task == "sales" and cfg.data.framing != "forecast":
            why = (f"{d} is a sales run of the parity framing, which has no predict (serve and "
                   "export need data.framing=forecast)")  # fmt: skip
            if len(run_dirs) == 1:
                raise ArchlabError(f"serve: {why}")
            print(f"archlab: note: {why}: not served", file=sys.stderr)
            continue
        cfg, task, model = restore_task(d)
        # an ASCII route, accents folded (ünï: uni), so that it needs no escaping in a URL
        folded = unicodedata.normalize("NFKD", d.resolve().name).encode("ascii", "ignore")
        base = rundir.safe_name(folded.decode()) or "run"
        name, k = base, 2
        while name in runs or name in RESERVED:
            name, k = f"{base}-{k}", k + 1
        model = model.cpu().eval()
        runs[name] = Served(name, d, cfg, task, model, partial(inference, d, cfg, model))
    if not runs:
        raise ArchlabError("serve: none of the runs can be served (all are of the sales parity "
                           "framing, which has no predict)")  # fmt: skip
    return runs


RESERVED = {"health", "docs", "redoc", "openapi.json", "predict", "explain"}


# --- request bodies ---
async def read_body(request: Any, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"request body of {int(declared)} bytes is over the limit of {limit}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise BadRequest(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Inputs:
    """What a request carries: uploaded files (name, bytes), texts, or JSON rows."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] | None = None
    # A sales run's rows to forecast (series keys, dates, known covariates such as a planned
    # price): JSON "rows" or a multipart file field "rows".
    forecast: list[dict[str, Any]] | None = None
    forecast_csv: bytes | None = None


# The keys of a JSON body, per run kind (an image run takes multipart uploads only).
JSON_KEYS = {"images": (), "text": ("texts", "text"), "sales": ("history", "rows")}
RUN_KIND = {"images": "an image run", "text": "a text run", "sales": "a sales run"}


async def parse(request: Any, limits: Limits, kind: str) -> Inputs:
    """A request's inputs for a run of task ``kind``."""
    body = await read_body(request, limits.max_upload_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    out = Inputs()
    if ctype == "multipart/form-data":
        return await _parse_form(request, body, limits)
    if ctype == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        try:
            fields = parse_qsl(body.decode("utf-8"), max_num_fields=limits.max_items)
        except (UnicodeDecodeError, ValueError) as e:
            raise BadRequest(400, f"unreadable form ({e.__class__.__name__})") from None
        for k, _ in fields:
            _not_a_file(k)
        out.texts = [v for k, v in fields if k in ("text", "texts")]
        return out
    if ctype in ("application/json", ""):
        try:
            doc = json.loads(body or b"{}")  # no body: a forecaster's default forecast
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(400, f"the body is not valid JSON ({e.__class__.__name__})") from None
        except RecursionError:  # [[[[...: deeper than Python's parser goes
            raise BadRequest(400, "the JSON body is nested too deeply") from None
        if not isinstance(doc, dict):
            raise BadRequest(
                400,
                'expected a JSON object: {"texts": ["..."]} for a text run, '
                '{"history": [{...}, ...]} for a sales run',
            )
        unknown = next((k for k in doc if k not in JSON_KEYS[kind]), None)
        if unknown is not None:
            takes = (f"takes {', '.join(repr(k) for k in JSON_KEYS[kind])}" if JSON_KEYS[kind]
                     else "takes no JSON: send the image as a multipart/form-data file field "
                     "('file')")  # fmt: skip
            raise BadRequest(
                400, f"unknown key {unknown!r} in the JSON body; {RUN_KIND[kind]} {takes}"
            )
        texts = doc.get("texts", [doc["text"]] if "text" in doc else [])
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BadRequest(400, '"texts" must be a list of strings')
        out.texts = texts
        for key in ("history", "rows"):
            if key in doc:
                rows = doc[key]
                if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                    raise BadRequest(400, f'"{key}" must be a list of row objects')
                if key == "history":
                    out.rows = rows
                else:
                    out.forecast = rows
        return out
    if ctype in ("text/csv", "application/csv"):
        out.files.append(("history.csv", body))
        return out
    raise BadRequest(415, f"unsupported content type {ctype!r}: use multipart/form-data or JSON")


async def _parse_form(request: Any, body: bytes, limits: Limits) -> Inputs:
    """The inputs of a multipart/form-data body."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=limits.max_items,
                                     max_fields=limits.max_items,
                                     max_part_size=limits.max_upload_bytes).parse()  # fmt: skip
    except MultiPartException as e:
        raise BadRequest(400, f"unreadable multipart form: {e.message}") from None
    out = Inputs()
    for key, value in form.multi_items():
        if not hasattr(value, "read"):  # a text field
            _not_a_file(key)
            if key in ("text", "texts"):
                out.texts.append(str(value))
            continue
        data = await value.read()
        if not value.filename and not data:
            # A browser form with no file chosen sends an empty part with an empty filename:
            # nothing was sent. A named empty file is an upload, refused later as predict
            # refuses an empty file.
            continue
        if key == "rows":
            out.forecast_csv = data
        else:
            out.files.append((value.filename or key, data))
    return out


FILE_FIELDS = ("file", "history", "rows")


def _not_a_file(key: str) -> None:
    """Refuse a form field that must be a file upload but came as text (``-F rows=...``
    instead of ``-F rows=@rows.csv``): ignored, it would answer for input never read."""
    if key in FILE_FIELDS:
        raise BadRequest(400, f"form field {key!r} is text, not a file: upload it as a file "
                         f"(curl -F '{key}=@PATH'), or send JSON")  # fmt: skip


# --- predictions and explanations per task ---
def _check_image(name: str, data: bytes, limits: Limits) -> io.BytesIO:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest(400, f"{name}: the file is empty")
    buf = io.BytesIO(data)
    try:
        with Image.open(buf) as im:  # reads the header only
            w, h = im.size
    except Image.DecompressionBombError:  # over PIL's own limit, raised by the header read
        raise BadRequest(413, f"{name}: over the pixel limit of {limits.max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadRequest(400, f"{name}: not a readable image") from None
    if w * h > limits.max_pixels:
        raise BadRequest(413, f"{name}: {w}x{h} pixels is over the limit of {limits.max_pixels}")
    buf.seek(0)
    return buf


def _read_images(run: Served, inp: Inputs, limits: Limits, most: int) -> tuple[list[str], Any]:
    if not inp.files:
        raise BadRequest(400, "send the image as a multipart/form-data file field ('file')")
    if len(inp.files) > most:
        raise BadRequest(400, f"{len(inp.files)} images: at most {most} per request")
    names = [n for n, _ in inp.files]
    bufs = [_check_image(n, d, limits) for n, d in inp.files]
    try:
        x = run.task.read_images(bufs)
    except ArchlabError as e:  # past the header: a truncated file, float pixels
        # predict's own words, naming the upload where they name the buffer.
        said = str(e)
        for n, b in zip(names, bufs, strict=True):
            said = said.replace(str(b), n)
        raise BadRequest(400, said if said != str(e) else f"{', '.join(names)}: {said}") from None
    return names, x


def _class_rows(run: Served, probs: torch.Tensor) -> list[dict[str, Any]]:
    names = list(run.task.fitted.class_names)
    return [
        {
            "label": names[int(p.argmax())],
            "probabilities": {n: round(float(v), 6) for n, v in zip(names, p, strict=True)},
        }
        for p in probs
    ]


def _image_rows(
    run: Served, names: list[str], x: torch.Tensor, limits: Limits
) -> list[dict[str, Any]]:
    from archlab.tasks.image_cls import unlike_training

    probs = run.classify(x, len(x), limits)
    rows = _class_rows(run, probs)
    for r, n, note in zip(rows, names, unlike_training(x.numpy(), run.task.fitted.pixel_stats),
                          strict=True):  # fmt: skip
        r["input"] = n
        if note:  # as archlab predict warns: far from every training image's statistics
            r["warning"] = note
    return rows


def image_predict(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    names, x = _read_images(run, inp, limits, limits.max_items)
    return {"run": run.name, "predictions": _image_rows(run, names, x, limits)}


def image_explain(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    from archlab.explain.images import gradcam, target_layer

    names, x = _read_images(run, inp, limits, limits.max_explain)
    out = {"run": run.name, "predictions": _image_rows(run, names, x, limits)}
    xn = run.task.normalize(x)
    with run.lock:
        layer = target_layer(run.cfg.model.name, run.model, tuple(xn.shape[1:]))
    classes = list(run.task.fitted.class_names)
    pred = torch.tensor([classes.index(r["label"]) for r in out["predictions"]])
    with run.lock:
        maps = gradcam(run.model, layer, xn, pred).numpy()
    layer_name = next(n for n, m in run.model.named_modules() if m is layer)
    for r, img, cam in zip(out["predictions"], x.numpy(), maps, strict=True):
        r["explanation"] = {
            "method": f"Grad-CAM on {layer_name}, for the predicted class",
            "overlay_png": base64.b64encode(overlay_png(img, cam)).decode("ascii"),
        }
    return out


def overlay_png(image: np.ndarray, cam: np.ndarray, side: int = 256) -> bytes:
    """The image (uint8 C x H x W) with its map in the 'jet' colours laid over it, as PNG."""
    from matplotlib import colormaps
    from PIL import Image

    pic = image.transpose(1, 2, 0)
    pic = np.repeat(pic, 3, axis=2) if pic.shape[2] == 1 else pic
    top = float(cam.max())
    heat = colormaps["jet"](np.clip(cam / top, 0, 1) if top > 0 else cam)[..., :3] * 255
    blend = (0.55 * pic + 0.45 * heat).clip(0, 255).astype(np.uint8)
    both = np.concatenate([pic.astype(np.uint8), blend], axis=1)  # the image, then the overlay
    # Nearest: a 32-pixel image is shown as the model sees it, its pixels sharp.
    im = Image.fromarray(both).resize((2 * side, side), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _texts(inp: Inputs, limits: Limits, most: int) -> list[str]:
    from archlab.data.text import check_unicode

    texts = inp.texts
    if not texts:
        raise BadRequest(400, 'send texts as JSON {"texts": ["..."]} or form fields "text"')
    if len(texts) > most:
        raise BadRequest(400, f"{len(texts)} texts: at most {most} per request")
    empty = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if empty is not None:  # as predict: training drops empty texts, so none is classified
        raise BadRequest(400, f"text {empty + 1} is empty")
    try:  # here, not in the batch: a text the tokenizer refuses must fail its request only
        check_unicode(texts)
    except ArchlabError as e:
        raise BadRequest(400, str(e)) from None
    long = next((i for i, t in enumerate(texts) if len(t) > limits.max_text_chars), None)
    if long is not None:
        raise BadRequest(413, f"text {long + 1} has {len(texts[long])} characters; the limit is "
                         f"{limits.max_text_chars}")  # fmt: skip
    return texts


def text_predict(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    texts = _texts(inp, limits, limits.max_items)
    probs = run.classify(texts, len(texts), limits)
    rows = _class_rows(run, probs)
    for r, t in zip(rows, texts, strict=True):
        r["input"] = t
    return {"run": run.name, "predictions": rows}


def text_explain(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    from archlab.data.text import encode, tokenizer_words
    from archlab.explain.text import integrated_gradients

    texts = _texts(inp, limits, limits.max_explain)
    out = text_predict(run, inp, limits)
    out["notes"] = []
    if (w := run.task.fitted.blend_weight) < 1:  # the label is the blend's, as archlab explain
        from archlab.tasks.text_blend import explain_note

        out["notes"].append(explain_note(w))
    tok = run.task.fitted.tokenizer
    x, lengths = encode(tok, texts, run.task.data_cfg.max_length)
    names = list(run.task.fitted.class_names)
    with run.lock:
        # Toward the network's own top class, as archlab explain: attributions are the
        # network's, and the blend's label may be one the network does not pick.
        with torch.no_grad():
            dev = next(run.model.parameters()).device
            pred = run.model(x.to(dev), lengths).argmax(1).cpu()
        a = integrated_gradients(run.model, x, lengths, pred, steps=32)
    for i, (r, t) in enumerate(zip(out["predictions"], texts, strict=True)):
        n = int(lengths[i])
        toks = [tok.id_to_token(k) for k in x[i, :n].tolist()]
        words = tokenizer_words(tok, t)[:n]
        r["explanation"] = {
            "method": "integrated gradients toward the network's top class (per token)",
            "class": names[int(pred[i])],
            "tokens": toks,
            "words": words if len(words) == n else toks,
            "attributions": [round(v, 5) for v in a.attr[i, :n].tolist()],
        }
    return out


def _csv(rows: list[dict[str, Any]], name: str) -> bytes:
    import pandas as pd

    buf = io.StringIO()
    try:
        pd.DataFrame(rows).to_csv(buf, index=False)
        return buf.getvalue().encode()
    except UnicodeEncodeError as e:  # a lone surrogate ("\ud83d") in a JSON string
        raise BadRequest(400, f"{name} is not valid Unicode ({e.reason})") from None


def sales_predict(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    from archlab.tasks.sales_horizon import baseline_rows

    if inp.rows is not None:
        data = _csv(inp.rows, '"history"')
    elif len(inp.files) == 1:
        data = inp.files[0][1]
    elif run.cfg.data.framing == "forecast" and not inp.files:
        data = None  # the H steps after the run's own data
    else:
        raise BadRequest(400, 'send one history CSV (multipart field "file" or text/csv) or '
                         'JSON {"history": [{...}, ...]} in the training columns')  # fmt: skip
    # Rows to forecast (a known covariate's future values with them), as predict --file.
    wanted = _csv(inp.forecast, '"rows"') if inp.forecast is not None else inp.forecast_csv
    with tempfile.TemporaryDirectory(prefix="archlab-serve-") as tmp:
        items, names = [], {}
        for data_, file, name in ((data, "history.csv", "the history"),
                                  (wanted, "rows.csv", "the rows")):  # fmt: skip
            # An empty upload is written too: predict refuses it in its own words, where
            # skipping it would forecast from the run's own data instead.
            if data_ is not None:
                path = str(Path(tmp) / file)
                Path(path).write_bytes(data_)
                items.append(path)
                names[path] = name
        try:
            with run.lock, run.inference(), captured_stderr() as said:
                rows = run.task.predict(run.model, items)
        except ArchlabError as e:  # name the uploads, not the temporary files
            raise BadRequest(400, _named(str(e), names)) from None
    # What predict says on stderr changes the answer (series left out, no blend): the client
    # gets it too, naming the uploads as "the history" and "the rows".
    notes = [_named(line.removeprefix("archlab: ").removeprefix("note: "), names)
             for line in said.getvalue().splitlines() if line.startswith("archlab: ")]  # fmt: skip
    if took := baseline_rows(rows, run.task.data_cfg.series_keys):  # predict's note after rows
        notes.append(took)
    return {"run": run.name, "forecasts": rows, "notes": notes}


def _named(text: str, names: dict[str, str]) -> str:
    for path, name in names.items():
        text = text.replace(path, name)
    return text


_CAPTURE = threading.local()


class _ThreadStderr:
    """sys.stderr while serving: what a thread writes goes to the real stderr (the server's
    log) and, while that thread captures (``captured_stderr``), to its buffer too; anything
    else (encoding, isatty, fileno) is the real stream's."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, s: str) -> int:
        buf = getattr(_CAPTURE, "buf", None)
        if buf is not None:
            buf.write(s)
        return self.real.write(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """What this thread writes to stderr inside the block (still written there too); other
    threads' requests are not mixed in."""
    if not isinstance(sys.stderr, _ThreadStderr):
        sys.stderr = _ThreadStderr(sys.stderr)
    _CAPTURE.buf = buf = io.StringIO()
    try:
        yield buf
    finally:
        _CAPTURE.buf = None


def sales_explain(run: Served, inp: Inputs, limits: Limits) -> dict[str, Any]:
    raise BadRequest(400, f"{run.name} is a sales run: its explanations (integrated gradients, "
                     "permutation importance) come from `archlab explain RUN_DIR`")  # fmt: skip


HANDLERS: dict[str, dict[str, Callable[[Served, Inputs, Limits], dict[str, Any]]]] = {
    "images": {"predict": image_predict, "explain": image_explain},
    "text": {"predict": text_predict, "explain": text_explain},
    "sales": {"predict": sales_predict, "explain": sales_explain},
}


# --- the app ---
BODY_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "an image (image runs) or a history CSV "
                            "(sales runs); repeat the field for several images",
                        },
                        "text": {"type": "string", "description": "a text (text runs)"},
                        "rows": {
                            "type": "string",
                            "format": "binary",
                            "description": "a CSV of rows to forecast (sales runs: series "
                            "keys, dates and known covariates), as predict --file",
                        },
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "texts": {"type": "array", "items": {"type": "string"}},
                        "history": {
                            "type": "array",
                            "items": {"type": "object"},
                            "description": "sales rows in the training CSV's columns",
                        },
                        "rows": {
                            "type": "array",
                            "items": {"type": "object"},
                            "description": "sales rows to forecast: series keys, dates and "
                            "known covariates (e.g. a planned price)",
                        },
                    },
                }
            },
        }
    }
}


def _error_handlers(app: Any) -> None:
    """Every error as one JSON line ``{"error": ...}``: bad input 4xx, a crash 500 (its
    traceback goes to the server's log, not to the client)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def error(status: int, message: str) -> JSONResponse:
        # A lone surrogate a client sent (an unknown key) cannot be written as UTF-8: escaped.
        line = " ".join(str(message).splitlines()).encode("utf-8", "backslashreplace").decode()
        return JSONResponse({"error": line}, status_code=status)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, e: BadRequest) -> JSONResponse:
        return error(e.status, e.message)

    @app.exception_handler(ArchlabError)
    async def _archlab(request: Request, e: ArchlabError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _crash(request: Request, e: Exception) -> JSONResponse:
        traceback.print_exception(e, file=sys.stderr)  # the server's log, not the response
        return error(500, f"internal error ({e.__class__.__name__}); see the server's log")


def create_app(run_dirs: Sequence[Path], limits: Limits | None = None) -> Any:
    """The FastAPI app serving ``run_dirs`` (each under /NAME/; with one run also at /)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse
    from starlette.concurrency import run_in_threadpool

    limits = limits or Limits()
    runs = load_runs(run_dirs)
    app = FastAPI(title="archlab serve", version="1", docs_url=None, redoc_url=None,
                  description="Predictions and explanations of trained archlab runs.")  # fmt: skip
    app.state.runs, app.state.limits = runs, limits

    _error_handlers(app)

    # HEAD too: uptime checkers send it (405 read as down).
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse,
                   include_in_schema=False)  # fmt: skip
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(API_PAGE.read_text(encoding="utf-8"))

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The server is up; the runs it serves and their routes."""
        return {"status": "ok", "runs": [r.describe() for r in runs.values()]}

    async def handle(request: Request, name: str | None, action: str) -> dict[str, Any]:
        if name is None:
            if len(runs) != 1:
                raise BadRequest(404, f"several runs are served: use /NAME/{action} with NAME "
                                 f"one of {', '.join(runs)}")  # fmt: skip
            name = next(iter(runs))
        if name not in runs:
            raise BadRequest(404, f"no run {name!r}; served: {', '.join(runs)}")
        run = runs[name]
        inp = await parse(request, limits, run.kind)
        fn = HANDLERS[run.kind][action]

        try:
            return await asyncio.wait_for(run_in_threadpool(fn, run, inp, limits),
                                          limits.timeout_s)  # fmt: skip
        except TimeoutError:
            raise BadRequest(503, f"the request took over {limits.timeout_s:g} s") from None

    # A trailing slash answers too: a 307 redirect of a POST is not followed by curl -F.
    @app.post("/{name}/predict/", include_in_schema=False)
    @app.post("/{name}/predict", openapi_extra=BODY_DOC)
    async def predict_run(name: str, request: Request) -> dict[str, Any]:
        """Predict with run NAME: images (multipart 'file'), texts (JSON or form 'text'), or a
        sales history (CSV upload or JSON rows)."""
        return await handle(request, name, "predict")

    @app.post("/{name}/explain/", include_in_schema=False)
    @app.post("/{name}/explain", openapi_extra=BODY_DOC)
    async def explain_run(name: str, request: Request) -> dict[str, Any]:
        """The prediction with its explanation: Grad-CAM overlay PNG (base64) for images,
        integrated-gradients token attributions for texts."""
        return await handle(request, name, "explain")

    @app.post("/predict", openapi_extra=BODY_DOC)
    async def predict_one(request: Request) -> dict[str, Any]:
        """/NAME/predict of the only run served."""
        return await handle(request, None, "predict")

    @app.post("/explain", openapi_extra=BODY_DOC)
    async def explain_one(request: Request) -> dict[str, Any]:
        """/NAME/explain of the only run served."""
        return await handle(request, None, "explain")

    return app


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(run_dirs: Sequence[Path], host: str, port: int, limits: Limits) -> None:
    """Run the server until Ctrl-C (uvicorn re-raises it: the CLI exits 130)."""
    import uvicorn

    app = create_app(run_dirs, limits)
    if host not in LOOPBACK:
        print(f"archlab: warning: --host {host} serves beyond this machine; there is no "
              "authentication", file=sys.stderr)  # fmt: skip
    sock = _bind(host, port)  # before saying "serving": a port in use is one line, exit 2
    port = sock.getsockname()[1]  # --port 0: the one the system chose
    # /NAME/ is no page (a 404): the routes under it are what to call
    names = ", ".join(f"{r.run_dir} as /{n}/predict and /{n}/explain"
                      for n, r in app.state.runs.items())  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    print(f"archlab: serving {names}; the page at http://{shown}:{port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)  # fmt: skip
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=3)  # fmt: skip
    server = _server_class()(config)
    with sock:
        server.run(sockets=[sock])
    if server.interrupted:  # uvicorn shut down cleanly; the CLI reports it and exits 130
        raise KeyboardInterrupt


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (uvicorn serves on it), or one line saying why
    not: the port is taken, or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        why = (
            "is in use (another server?): stop it or choose another --port"
            if e.errno == errno.EADDRINUSE
            else f"cannot be served ({e.strerror or e})"
        )
        raise ArchlabError(f"--host {host} --port {port}: the address {why}") from None


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, remembering whether Ctrl-C (SIGINT) stopped it."""

        interrupted = False

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.interrupted = self.interrupted or sig == signal.SIGINT
            super().handle_exit(sig, frame)

    return Server
