"""Run directories: the one place that knows their file names and formats, and creates them.

Layout: config.yaml, command.txt, data.json (a description of the data, for people and reports),
fitted.json (what the task learned from the training data: classes, tokenizer, scalers; read
back by eval and predict), split.json, history.csv, metrics.json (written last: marks a finished
run), model.safetensors (weights used for test), best.safetensors (the best epoch's) and state.pt
(both for resume, while training), inputs.json (the data's fingerprint: each input file's size
and sha256), checkpoint.json (sizes and hashes of the files above), plots/*.png.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import itertools
import json
import os
import pickle
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from archlab.errors import ArchlabError
from archlab.utils import (
    atomic_path,
    json_text,
    sha256_file,
    shell_quote,
    write_json_atomic,
    write_text_atomic,
)

CONFIG = "config.yaml"
COMMAND = "command.txt"
DATA = "data.json"  # description only: nothing reads it back to build a model or predict
FITTED = "fitted.json"
SPLIT = "split.json"  # sample indices of each split
HISTORY = "history.csv"
METRICS = "metrics.json"
WEIGHTS = "model.safetensors"
BEST = "best.safetensors"
STATE = "state.pt"
INPUTS = "inputs.json"  # the data's fingerprint (archlab/fingerprint.py)
_MANIFEST_LOCK = threading.Lock()
MANIFEST = "checkpoint.json"
LOCK = ".training.lock"  # held (flock) by the process training the run; holds its pid
_HELD: dict[Path, int] = {}  # run dir -> the lock's descriptor, in this process


def _write_failed(path: Path, e: Exception) -> OSError:
    """torch and safetensors report a failed write (a full disk) as their own errors: an
    OSError naming the file lets the CLI say it in one line."""
    full = shutil.disk_usage(path.parent).free < (64 << 20)
    code = errno.ENOSPC if full else errno.EIO
    why = os.strerror(code) if full else f"could not write ({str(e).splitlines()[0][:160]})"
    return OSError(code, why, str(path))


def save_weights(model: nn.Module, path: Path) -> None:
    """Save a state dict as safetensors atomically (tensors made contiguous, shared ones cloned)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp))
        except (SafetensorError, RuntimeError) as e:
            raise _write_failed(path, e) from None
    _record(path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model``; errors name the file and what is wrong."""
    _verify(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ArchlabError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ArchlabError(
            f"{path}: weights do not fit this model architecture ({first[:200]})"
        ) from None


def save_state(state: dict[str, Any], path: Path) -> None:
    """Save resume state atomically; it holds tensors and plain Python values only."""
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # "[enforce fail at inline_container.cc] ... write failed"
            raise _write_failed(path, e) from None
    _record(path)


def drop_state(run_dir: Path) -> None:
    """Remove a finished run's resume files (state.pt, and best.safetensors: the best epoch's
    weights are model.safetensors or, with reg.select=last, not used) and their checkpoint.json
    entries."""
    paths = [p for p in (Path(run_dir) / STATE, Path(run_dir) / BEST) if p.exists()]
    for path in paths:
        path.unlink()
    with _MANIFEST_LOCK:
        manifest = _read_manifest(Path(run_dir) / MANIFEST)
        if [manifest.pop(p.name) for p in paths if p.name in manifest]:
            write_json_atomic(Path(run_dir) / MANIFEST, manifest)


def load_state(path: Path) -> dict[str, Any]:
    """Load resume state without unpickling arbitrary objects (``weights_only=True``)."""
    if not path.exists():
        raise ArchlabError(f"{path}: no resume state in this run directory")
    _verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ArchlabError(
            f"{path}: refused to load: it contains objects other than tensors and plain values "
            f"({str(e).splitlines()[0][:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise ArchlabError(
            f"{path}: corrupt or truncated resume state ({e.__class__.__name__})"
        ) from None


def write_recorded(path: Path, text: str) -> None:
    """Write a text file that restore reads back (config, fitted state), atomically, and
    record its size and hash so a truncated or edited copy is refused before it is used."""
    write_text_atomic(path, text)
    _record(path)


def read_recorded(path: Path) -> str:
    """The text of a file written by ``write_recorded``, verified against checkpoint.json."""
    _verify(path)
    return path.read_text(encoding="utf-8")


def _record(path: Path) -> None:
    """Remember size and hash of a checkpoint file so truncation is detected before loading."""
    entry = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest_path = path.parent / MANIFEST
    with _MANIFEST_LOCK:  # the checkpoint writer thread and the main thread share the file
        manifest = _read_manifest(manifest_path)
        manifest[path.name] = entry
        write_json_atomic(manifest_path, manifest)


def _checked_manifest(run_dir: Path) -> dict[str, Any]:
    """checkpoint.json's entries, to check a file against: refused where it is damaged, or
    missing beside weights it would check (every run with inputs.json writes one), which would
    otherwise turn every check off without a word. A run's statistics alone (a search's or an
    ablation's cell, kept without weights) need none."""
    path = run_dir / MANIFEST
    if not path.exists():
        weights = any((run_dir / f).exists() for f in (WEIGHTS, BEST, STATE))
        if weights and (run_dir / INPUTS).exists():
            raise ArchlabError(f"{path}: missing: the run's files cannot be checked without it "
                               "(restore it with the rest of the run, or train again)")  # fmt: skip
        return {}  # a run from before checksums were kept
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        entries = None
    if not isinstance(entries, dict):
        raise ArchlabError(f"{path}: damaged (not the JSON the run wrote): the run's files "
                           "cannot be checked (restore it with the rest of the run, or train "
                           "again)")  # fmt: skip
    return entries


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def _verify(path: Path) -> None:
    if not path.exists():
        raise ArchlabError(f"{path}: file not found")
    entry = _checked_manifest(path.parent).get(path.name)
    if entry is None:
        return
    size = path.stat().st_size
    if size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
        way_out = ("; delete it, and train --resume trains the run again from epoch 1"
                   if path.name == STATE else "")  # fmt: skip
        how = (f"{size} bytes, expected {entry['bytes']}" if size != entry["bytes"] else
               f"the same {size} bytes, another sha256 than {MANIFEST} holds")  # fmt: skip
        raise ArchlabError(
            f"{path}: truncated or modified since the run wrote it ({how}); it will not be "
            f"loaded{way_out}"
        )


def write_history(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def write_metrics(metrics: dict[str, Any], run_dir: Path) -> None:
    write_json_atomic(run_dir / METRICS, metrics)


def is_finished(run_dir: Path) -> bool:
    """A run is finished only when its metrics.json (written last, atomically) is complete."""
    try:
        return isinstance(json.loads((Path(run_dir) / METRICS).read_text()), dict)
    except (OSError, ValueError):
        return False


def require_finished(run_dir: Path) -> None:
    """Refuse, in one line, what is not a finished run: no such folder, no config.yaml, or a
    run still to be resumed (no complete metrics.json, which is written last)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ArchlabError(f"{d}: no such run directory")
    if not (d / CONFIG).exists():
        try:  # the folder of many runs (runs/), given for one of them
            inside = sorted(p.name for p in d.iterdir() if (p / CONFIG).is_file())
        except OSError:
            inside = []
        held = (f"; it holds {len(inside)} run director{'y' if len(inside) == 1 else 'ies'} "
                f"(e.g. {d / inside[-1]}): name one" if inside else "")  # fmt: skip
        raise ArchlabError(f"{d}: not a run directory (no {CONFIG}){held}")
    if not is_finished(d):
        if pid := training_pid(d):
            raise ArchlabError(f"{d}: the run has not finished: process {pid} is training it; "
                               "wait for it to end")  # fmt: skip
        raise ArchlabError(
            f"{d}: the run has not finished (no complete {METRICS}); finish it with archlab "
            f"train --resume {shell_quote(str(d))}"
        )


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise ArchlabError(f"{path}: not found; the run has not finished (resume it with --resume)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ArchlabError(f"{path}: not valid JSON (incomplete write?)") from None


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (no path separators, no leading dots)."""
    return _SAFE.sub("-", name).strip(".-") or "run"


def check_out_file(out: Path, inputs: list[str], flag: str = "--out") -> None:
    """Refuse an output file that is a directory, one of the command's own inputs (a run
    directory among them stands for the data files it recorded, too), or a file of a run
    directory: writing over it would damage that run."""
    if out.is_dir():
        raise ArchlabError(f"{flag} {out}: is a directory; give a file name")
    if out.exists():
        for run in out.resolve().parents:
            if (run / CONFIG).exists() and (run / FITTED).exists():
                raise ArchlabError(f"{flag} {out}: is a file of the run directory {run}; "
                                   "write the output to another file")  # fmt: skip
        for item in [*inputs, *(f for i in inputs for f in _recorded_inputs(Path(i)))]:
            p = Path(item)
            if p.exists() and os.path.samefile(p, out):
                raise ArchlabError(f"{flag} {out}: is an input of this command ({item}); write "
                                   "the output to another file")  # fmt: skip
    check_out_dir(out.parent, flag)


def _recorded_inputs(run_dir: Path) -> list[str]:
    """The data files a run directory's inputs.json names ([] for anything else)."""
    path = run_dir / INPUTS
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text())
        return [str(Path(saved.get("root") or "/") / f) for f in saved.get("files", {})]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        return []


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Refuse an output directory that is (or lies under) an existing file, or a symlink to
    nothing (a scratch disk not mounted), in one line."""
    for p in (out, *out.parents):
        if p.is_symlink() and not p.exists():
            where = "is" if p == out else f"lies under {p}, which is"
            raise ArchlabError(f"{flag} {out}: {where} a symlink to {os.readlink(p)}, which does "
                               "not exist")  # fmt: skip
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == out else f"lies under {p}, which is a file"
                raise ArchlabError(f"{flag} {out}: {where}, not a directory")
            return


def make_out_dir(out: Path, given: bool) -> None:
    """Create a command's output folder, or say in one line why it cannot be written: for the
    default one inside a run (``given`` False), that --out can put it elsewhere (a read-only
    run directory, a shared results folder)."""
    check_out_dir(out)
    where = f"--out {out}" if given else f"{out} (the default output folder)"
    fix = "" if given else "; give --out DIR to write elsewhere"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # no permission, a read-only or missing mount
        raise ArchlabError(f"{where}: cannot create the folder ({e.strerror or e}){fix}") from None
    if not os.access(out, os.W_OK):
        raise ArchlabError(f"{where}: not writable (read-only or no permission){fix}")


def new_run_dir(out: Path, name: str) -> Path:
    """A fresh ``out/<name>-<timestamp>[-i]`` directory, created."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(out) / f"{safe_name(name)}-{stamp}"
    check_out_dir(Path(out))
    Path(out).mkdir(parents=True, exist_ok=True)
    for i in itertools.count(1):
        run_dir = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:  # created, not tested first: two runs started in one second take two names
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


class RunLocked(ArchlabError):
    """The run directory is being trained by another process (``lock_training``)."""


def lock_training(run_dir: Path) -> None:
    """Take the run's training lock, held until ``unlock_training`` (or the process ends):
    a second process training the same run (a --resume of a run still training, two resumes
    at once) would write its files over this one's. A directory where no lock file can be made
    (read-only) is not locked: its training fails on its first write anyway."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        return
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held by another process
        pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunLocked(
            f"{run_dir}: another process (pid {pid}) is training this run; wait for it to end "
            "(or stop it), then --resume it if it did not finish"
        ) from None
    except OSError:  # a filesystem without locks (some network mounts): train unlocked
        os.close(fd)
        return
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[run_dir] = fd


def training_pid(run_dir: Path) -> str:
    """The pid of the process training the run now ("" where none holds its lock, or this
    process does)."""
    if Path(run_dir).resolve() in _HELD:
        return ""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # taken: nobody trains it
        fcntl.flock(fd, fcntl.LOCK_UN)
        return ""
    except BlockingIOError:
        return os.read(fd, 32).decode(errors="replace").strip() or "?"
    except OSError:  # no locks on this filesystem: nothing known
        return ""
    finally:
        os.close(fd)


def unlock_training(run_dir: Path) -> None:
    """Release the lock ``lock_training`` took (the file stays: removing it would let a
    process that opened it just before lock a file no longer in the directory)."""
    fd = _HELD.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_fitted(run_dir: Path, fitted: Any) -> None:
    """Save a task's Fitted object (its ``kind`` and ``to_dict()``) as fitted.json, atomically."""
    write_recorded(Path(run_dir) / FITTED, json_text({"kind": fitted.kind, **fitted.to_dict()}))


def require_fitted(run_dir: Path, kind: str | tuple[str, ...]) -> dict[str, Any]:
    """fitted.json's fields; a run directory without it is refused in one line. Run
    directories written before fitted.json existed (before 0.1.0) are no longer read:
    CHANGELOG.md."""
    d = read_fitted(run_dir, kind)
    if d is None:
        raise ArchlabError(
            f"{run_dir}: no {FITTED}: a run that never started, or one written before archlab "
            "0.1.0 (no longer read; train it again)"
        )
    return d


def read_fitted(run_dir: Path, kind: str | tuple[str, ...]) -> dict[str, Any] | None:
    """fitted.json's fields (without ``kind``), or None for a run written before it existed.

    A file of another kind (a text run's, read as a sales run) is refused in one line.
    """
    path = Path(run_dir) / FITTED
    if not path.exists():
        return None
    try:
        d = json.loads(read_recorded(path))
    except json.JSONDecodeError:
        raise ArchlabError(f"{path}: not valid JSON (incomplete write?)") from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if d.get("kind") not in kinds:
        raise ArchlabError(f"{path}: holds a {d.get('kind')!r} fit, expected {' or '.join(kinds)}")
    return {k: v for k, v in d.items() if k != "kind"}
