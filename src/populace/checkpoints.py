"""Immutable checkpoint files in a local directory, named by the sha256 of their bytes."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
# Keys come from the store; anything else (absolute paths, "..") must never reach the filesystem.
_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}\.ckpt")


@dataclass(frozen=True)
class CheckpointRef:
    """Where a stored checkpoint lives and what its bytes must hash to."""

    key: str
    sha256: str
    bytes: int


class CheckpointDamaged(RuntimeError):
    """A checkpoint file is missing or its bytes no longer match the recorded hash."""


def _hash_file(path: Path) -> tuple[str, int]:
    """Return (sha256 hex, size) of a file, read in chunks to keep big checkpoints out of memory."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir(path: Path) -> bool:
    """Create a private directory (and missing parents); return whether it was new."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return False
    return True


class CheckpointStorage:
    """Content-addressed checkpoint files under one root directory, safe for concurrent writers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Remember the root; it is created on the first write so read-only users create nothing."""
        self.root = Path(root).absolute()

    def write(self, save: Callable[[Path], None]) -> CheckpointRef:
        """Let save() write one file, then store it under its sha256 atomically and durably."""
        _mkdir(self.root)
        # A private temp dir per call (not a pre-created temp file) lets us tell "save wrote
        # nothing" from "save wrote an empty file", and cleans up whatever save left on failure.
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".tmp-") as tmp_dir:
            tmp = Path(tmp_dir) / "checkpoint.ckpt"
            save(tmp)
            if not tmp.is_file():
                written = sorted(p.name for p in Path(tmp_dir).iterdir())
                raise FileNotFoundError(
                    f"save() must write one file at the path it is given ({tmp}); "
                    f"it wrote {written or 'nothing'} instead"
                )
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            sha256, size = _hash_file(tmp)
            ref = CheckpointRef(key=f"{sha256[:2]}/{sha256}.ckpt", sha256=sha256, bytes=size)
            final = self.path(ref)
            shard_is_new = _mkdir(final.parent)
            try:
                present = final.stat().st_size == size
            except FileNotFoundError:
                present = False
            # Same name means same bytes, so an existing file of the right size is kept; a file
            # of the wrong size is damaged and is repaired by the replace below.
            if not present:
                os.replace(tmp, final)
                _fsync_dir(final.parent)
                if shard_is_new:
                    _fsync_dir(self.root)
        return ref

    def path(self, ref_or_key: CheckpointRef | str) -> Path:
        """Return the absolute path of a checkpoint without touching the filesystem."""
        key = ref_or_key.key if isinstance(ref_or_key, CheckpointRef) else ref_or_key
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a checkpoint key: {key!r}")
        return self.root / key

    def verify(self, key: str, sha256: str) -> Path:
        """Return the path once the file exists and hashes to sha256, so nobody loads bad bytes."""
        path = self.path(key)
        try:
            found, size = _hash_file(path)
        except FileNotFoundError:
            raise CheckpointDamaged(
                f"checkpoint {key} is missing: expected sha256 {sha256}, found no file at {path}"
            ) from None
        if found != sha256:
            raise CheckpointDamaged(
                f"checkpoint {key} is damaged: expected sha256 {sha256}, "
                f"found sha256 {found} ({size} bytes) at {path}"
            )
        return path

    def delete(self, key: str) -> None:
        """Remove a checkpoint; a missing one is fine so collection can be retried."""
        # Empty shard dirs are kept: removing one could race a writer renaming into it.
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
