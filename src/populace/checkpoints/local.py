"""Checkpoints in a folder of this machine (or one it mounts): the fast path.

The file written by the user's `save` is hashed once, renamed into place, then fsynced
with its folder; `fetch` hands out the stored file itself once it hashes right.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from populace.checkpoints.base import (
    KEY,
    MARKER,
    CheckpointDamaged,
    CheckpointRef,
    CheckpointStorage,
    hash_file,
    is_temp,
    key_of,
    mkdir,
    new_key,
    new_name,
    remove_leftovers,
    stage,
    storage_fault,
)


class LocalCheckpointStorage(CheckpointStorage):
    """Checkpoints under a local folder: a path, or a file:// URL (the same thing)."""

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        """Remember the root; it is created on the first write so read-only users create nothing."""
        if options:
            raise TypeError(f"options {sorted(options)} only apply to a URL, not to {root!r}")
        if isinstance(root, str) and root.startswith("file://"):
            root = root[len("file://"):]
        self.root = Path(root).absolute()
        self.url = str(self.root)
        self._laid_out = False

    def _layout(self) -> None:
        """The root and its 256 shard folders, made once with one fsync of the root.

        Made lazily, a shard folder costs a root fsync when it appears: in a fresh run
        that is most of the first few hundred writes. A missing shard (a root made by
        another version, a folder removed by hand) is still made when needed.
        """
        if self._laid_out:
            return
        if not (self.root / "ff").is_dir():
            mkdir(self.root)
            for i in range(256):
                mkdir(self.root / f"{i:02x}")
            _fsync_dir(self.root)
        self._laid_out = True

    def write(self, save: Callable[[Path], None]) -> CheckpointRef:
        """Let save() write one file, then store it under a new key atomically and durably.

        Once this returns the file is in place under its key and on disk (its bytes and
        its folder entry fsynced): the store may record it.
        """
        if not self._laid_out:
            mkdir(self.root)
        # A fresh name in the root: renamed into its shard folder on the same file system.
        tmp = self.root / new_name()
        try:
            f, sha256, size = stage(save, tmp)
            with f:
                self._layout()  # after save() succeeded: a failed one leaves the root empty
                ref = CheckpointRef(key=new_key(sha256), sha256=sha256, bytes=size)
                final = self.root / ref.key
                shard_is_new = mkdir(final.parent)
                # Rename, then fsync: one journal commit makes both the bytes and the
                # name durable, and the folder's fsync below finds little left to do.
                # A crash in between leaves at most a file the store never recorded.
                os.replace(tmp, final)
                os.fsync(f.fileno())
            _fsync_dir(final.parent)
            if shard_is_new:
                _fsync_dir(self.root)
        except Exception as e:
            fault = storage_fault(self.url, self.root, e)  # while the partial file is there
            remove_leftovers(tmp)
            if fault is not None:
                raise fault from e
            raise
        except BaseException:
            remove_leftovers(tmp)
            raise
        return ref

    def path(self, ref_or_key: CheckpointRef | str) -> Path:
        """Return the absolute path of a checkpoint without touching the filesystem."""
        return self.root / key_of(ref_or_key)

    def location(self, ref_or_key: CheckpointRef | str) -> str:
        """The checkpoint's path."""
        return str(self.path(ref_or_key))

    def verify(self, key: str, sha256: str) -> Path:
        """Return the path once the file exists and hashes to sha256, so nobody loads bad bytes."""
        path = self.path(key)
        try:
            found, size = hash_file(path)
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

    def fetch(self, key: str, sha256: str) -> Path:
        """The stored file itself, as `verify`: a local file needs no copy."""
        return self.verify(key, sha256)

    def _marker(self) -> str | None:
        try:
            return (self.root / MARKER).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _write_marker(self, text: str, replace: bool = False) -> None:
        mkdir(self.root)
        path = self.root / (new_name() if replace else MARKER)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:  # owner-only, as every checkpoint file
            f.write(text + "\n")
        if replace:  # whole or not at all: a reader never sees half a mark
            os.replace(path, self.root / MARKER)

    def _remove_marker(self) -> None:
        """The mark, then the folders it leaves empty."""
        (self.root / MARKER).unlink(missing_ok=True)
        for folder in (*(self.root / f"{i:02x}" for i in range(256)), self.root):
            with contextlib.suppress(OSError):  # kept when not empty: not only ours
                folder.rmdir()

    def files(self) -> Iterator[tuple[str, float]]:
        """(name, modification time) of every checkpoint file and leftover temp file here:
        a key, or the temp name a crashed write left in the root."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in entries:
            if is_temp(entry.name):
                yield entry.name, entry.stat(follow_symlinks=False).st_mtime
            elif entry.is_dir(follow_symlinks=False) and len(entry.name) == 2:
                for file in os.scandir(entry.path):
                    key = f"{entry.name}/{file.name}"
                    if KEY.fullmatch(key):
                        yield key, file.stat(follow_symlinks=False).st_mtime

    def remove(self, name: str) -> None:
        """Delete what `files` named: a checkpoint by its key, or a leftover temp file."""
        if is_temp(name):
            remove_leftovers(self.root / name)
        else:
            self.delete(name)

    def delete(self, key: str) -> None:
        """Remove a checkpoint; a missing one is fine so collection can be retried."""
        # Empty shard dirs are kept: removing one could race a writer renaming into it.
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
