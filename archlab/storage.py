"""Shared work storage for many workers: an Optuna database (SQLite or a server) and the file
lock that serializes SQLite workers on one machine. Used by sweeps and shared ablations."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from archlab.errors import ArchlabError

SQLITE_TIMEOUT_S = 60  # how long a worker waits for another one's SQLite write lock


def open_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """An Optuna database storage; a bad URL or a missing driver is one line."""
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else None
    )
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except sqlalchemy.exc.ArgumentError as e:  # also a missing database driver
        raise ArchlabError(f"--storage {url!r}: {e}") from None


def sqlite_lock_path(url: str) -> Path | None:
    """The lock file beside an SQLite database (None for other databases)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ArchlabError(
            f"--storage {url!r}: not a database URL (e.g. sqlite:///sweep.db, "
            "postgresql://user@host/db)"
        ) from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    db = Path(parsed.database)
    if not db.parent.is_dir():
        raise ArchlabError(f"--storage {url!r}: folder {db.parent} does not exist")
    return db.with_name(db.name + ".lock")


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (nothing for None); serializes SQLite workers."""
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
