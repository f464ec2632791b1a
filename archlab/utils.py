"""Device, bf16, seeding, threads and atomic writes (the only place that touches global
state), and the shell quoting of the commands archlab prints."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shlex
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """Map 'auto' to cuda > mps > cpu; otherwise validate the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    from archlab.errors import ArchlabError

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ArchlabError(f"train.device={name!r} but no CUDA device is available; use 'cpu'")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps and mps.is_available()):
        raise ArchlabError("train.device='mps' but no Apple MPS device is available; use 'cpu'")
    return torch.device(name)


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16 units).

    Without them oneDNN emulates bf16 with fp32 arithmetic plus conversions, which is slower
    than fp32. ``ARCHLAB_CPU_BF16=0`` (or ``1``) overrides the detection, e.g. to see what a
    run does on a CPU without these units.
    """
    forced = os.environ.get("ARCHLAB_CPU_BF16")
    if forced is not None:
        if forced not in ("0", "1"):
            from archlab.errors import ArchlabError

            raise ArchlabError(f"ARCHLAB_CPU_BF16={forced!r}: must be 0 or 1")
        return forced == "1"
    caps = torch.cpu.get_capabilities()  # cpuinfo's flags; x86 names (other CPUs: none)
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` (CPU or CUDA) when ``bf16``, else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or error mid-write leaves the previous file intact (rename is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a read-only folder: the error names the file asked for, not .x.tmp
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp (and safetensors) make the file private (0600): a run shared with a team,
        # or served by another user, is as readable as any file the user writes (the umask).
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # reading it sets it: set it back at once
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str, errors: str = "strict") -> None:
    """``text`` as UTF-8; ``errors="surrogateescape"`` writes a name that is no UTF-8 (held
    as a lone surrogate) as its bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=errors)


def json_text(obj: Any) -> str:
    """``obj`` as the indented JSON text archlab writes (numpy values and paths as plain ones)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json_text(obj))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


T = TypeVar("T")


def file_key(path: str | Path, *args: object) -> str | None:
    """A cache key for what a reader makes of ``path`` with ``args``: the file's absolute path,
    size and modification time; None when the file cannot be stat'ed (the reader says why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return repr((os.path.abspath(path), st.st_size, st.st_mtime_ns, args))


class ContentCache(Generic[T]):
    """The last ``keep`` results of a pure, costly function, by a digest of its inputs.

    For baselines that runs in one process recompute on the same data (the trials of
    ``train --budget``, the seeds and techniques of an ablation). Callers copy what they hand
    out if it is mutable.
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._items: dict[str, T] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        if key not in self._items:
            self._items[key] = compute()
            self._trim()
        return self._items[key]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def lookup(self, key: str) -> T | None:
        """The result kept for ``key``, or None."""
        return self._items.get(key)

    def put(self, key: str, value: T) -> None:
        """Remember a result computed elsewhere (e.g. read back from a run dir)."""
        self._items[key] = value
        self._trim()

    def _trim(self) -> None:
        while len(self._items) > self.keep:
            self._items.pop(next(iter(self._items)))  # the oldest


def count(n: int, noun: str) -> str:
    """``n`` with ``noun`` in the singular or the regular plural: "1 step", "3 texts"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def shell_quote(word: str) -> str:
    """``word`` as one shell word for a command the user is meant to paste (a --resume hint).

    shlex.quote's form, unless ``word`` holds bytes that are not UTF-8 (a folder named
    b'caf\\xe9' is held as 'caf\\udce9'): printed, that showed as caf\\udce9, another name.
    Those words take bash's ANSI-C form, $'caf\\xe9', every byte not plain ASCII as \\xHH,
    which bash and zsh read back as the same bytes, whatever the terminal's encoding."""
    if not any("\udc80" <= c <= "\udcff" for c in word):
        return shlex.quote(word)
    raw = os.fsencode(word)  # the bytes Python read the name from (surrogateescape)
    return "$'" + "".join(_ansi_c(b) for b in raw) + "'"


def _ansi_c(byte: int) -> str:
    """One byte inside $'...': backslash and quote escaped, printable ASCII as is, else \\xHH
    (at most two hex digits are read, so a digit after it stays a digit)."""
    if byte in b"\\'":
        return "\\" + chr(byte)
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}"
