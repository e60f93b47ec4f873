"""Immutable checkpoint files, checked by the sha256 of their bytes, in a local folder or
at any fsspec URL: one backend a module over one contract (`base.CheckpointStorage`).

`open_storage(root)` picks the backend: a local path (or a `file://` URL: the same thing)
gives a `LocalCheckpointStorage` (`local`), any other fsspec URL (`memory://...`,
`s3://bucket/prefix` where the user installed s3fs, ...) a `RemoteCheckpointStorage`
(`remote`). Callers hold either as a `CheckpointStorage` and load a checkpoint through
`fetch(key, sha256)`, which works for both: a local, hash-checked path to the file.
"""

from __future__ import annotations

import os
from typing import Any

from populace.checkpoints.base import (
    MARKER,
    CheckpointDamaged,
    CheckpointRef,
    CheckpointStorage,
    StorageMissing,
)
from populace.checkpoints.local import LocalCheckpointStorage
from populace.checkpoints.remote import RemoteCheckpointStorage

__all__ = ["MARKER", "CheckpointDamaged", "CheckpointRef", "CheckpointStorage",
           "LocalCheckpointStorage", "RemoteCheckpointStorage", "StorageMissing", "open_storage"]


def _is_remote(root: str | os.PathLike[str]) -> bool:
    """A URL other than file://; plain paths and file:// URLs are local."""
    if not isinstance(root, str):
        return False
    if "::" in root:  # fsspec chained URLs (simplecache::s3://...)
        return True
    return "://" in root and not root.startswith("file://")


def open_storage(root: str | os.PathLike[str], **options: Any) -> CheckpointStorage:
    """The checkpoint storage at `root`: a local folder for a path or file:// URL, else the
    fsspec URL's, `options` going to fsspec (a local folder takes none)."""
    if _is_remote(root):
        return RemoteCheckpointStorage(str(root), **options)
    return LocalCheckpointStorage(root, **options)
