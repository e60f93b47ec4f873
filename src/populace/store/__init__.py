"""Population stores: the single source of truth of a run (see `base.Store`)."""

from __future__ import annotations

import os
from pathlib import Path

from populace.store.base import SCHEMA_VERSION, Store, StoreError
from populace.store.records import (
    CheckpointRow,
    Decision,
    Event,
    MemberRow,
    Outcome,
    Report,
    Result,
)
from populace.store.sqlite import SQLiteDriver

__all__ = [
    "SCHEMA_VERSION", "CheckpointRow", "Decision", "Event", "MemberRow", "Outcome", "Report",
    "Result", "Store", "StoreError", "beside", "open_store", "store_exists",
]


def _sqlite_path(url: str | os.PathLike[str]) -> str | None:
    text = os.fspath(url)
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///"):]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(f"store URL scheme must be sqlite (or a file path), got {scheme!r}")
    return text


def beside(url: str | os.PathLike[str], suffix: str) -> Path:
    """A path next to the store's file: `runs/x.db` and ".report" give `runs/x.report`."""
    path = Path(os.fspath(url).removeprefix("sqlite:///"))
    return path.parent / f"{path.stem}{suffix}"


def store_exists(url: str | os.PathLike[str]) -> bool:
    """Whether something is at `url` already (a run to resume, or a file that is not a store)."""
    path = _sqlite_path(url)
    return path is not None and os.path.isfile(path) and os.path.getsize(path) > 0


def open_store(url: str | os.PathLike[str]) -> Store:
    """Open the store at `url`: a file path or sqlite:///PATH."""
    return Store(SQLiteDriver(_sqlite_path(url)))
