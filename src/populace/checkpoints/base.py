"""What every checkpoint storage is: the contract, the words, and the file handling the
backends share.

A checkpoint is stored under the key `ab/<sha256>-<token>.ckpt` and never changed. The
token makes every write a file of its own: two writes of the same bytes (a state that
stopped changing, members that reached the same state) never share a file, so deleting
one checkpoint can never take the file of another, or of a write not yet recorded in the
store. Members share a checkpoint only through the store (an exploit points at the
donor's row).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from populace.errors import StorageFault

CHUNK = 1 << 20
# Keys come from the store; anything else (absolute paths, "..") must never reach the filesystem.
KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}-[0-9a-f]{12}\.ckpt")
TMP = ".tmp-"
MARKER = ".populace-run"  # in every storage root: whose run (its id) and store its files are
# what a write into a storage meets when the storage, not the save, is at fault
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.ENOENT, errno.EIO})
PROBE_BYTES = 1 << 16  # what a storage that takes no more must refuse


@dataclass(frozen=True)
class CheckpointRef:
    """Where a stored checkpoint lives and what its bytes must hash to."""

    key: str
    sha256: str
    bytes: int


class CheckpointDamaged(RuntimeError):
    """A checkpoint file is missing or its bytes no longer match the recorded hash."""


class StorageMissing(RuntimeError):
    """A run's checkpoint storage as a whole is not there on this machine (a folder not
    mounted, a bucket out of reach), or holds another run's checkpoints: not damage."""


class CheckpointStorage(ABC):
    """Content-addressed checkpoint files under one root, safe for concurrent writers.

    The promise every backend keeps (`populace.testing.check_storage` checks it): once
    `write` returns, the file is whole under its new key and survives a crash, so the
    store may record it; `fetch` gives a local file whose bytes hash to what was recorded,
    or raises CheckpointDamaged; nothing is ever changed in place, and `delete` of a
    missing key is fine, so collecting can be retried. `open_storage` picks the backend
    for a path or URL. The run's mark (`mark`, `check`, `clear`) is built once, here.
    """

    url: str  # where the storage is, for people and error messages

    @abstractmethod
    def write(self, save: Callable[[Path], None]) -> CheckpointRef:
        """Let save() write one file, then store it under a new key, atomically and durably."""

    @abstractmethod
    def fetch(self, key: str, sha256: str) -> Path:
        """A local file holding the checkpoint's bytes, checked against sha256."""

    @abstractmethod
    def verify(self, key: str, sha256: str) -> Path:
        """As `fetch`, for a caller that means the check: nobody loads bad bytes."""

    @abstractmethod
    def location(self, ref_or_key: CheckpointRef | str) -> str:
        """Where the checkpoint lives, for people: a path, or a URL."""

    @abstractmethod
    def files(self) -> Iterator[tuple[str, float]]:
        """(name, modification time) of every checkpoint file and leftover temp file."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete what `files` named: a checkpoint by its key, or a leftover temp file."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a checkpoint; a missing one is fine so collection can be retried."""

    @abstractmethod
    def _marker(self) -> str | None:
        """The mark's text; None when there is no mark."""

    @abstractmethod
    def _write_marker(self, text: str, replace: bool = False) -> None:
        """Write the mark, owner-only; an existing one only with `replace`."""

    @abstractmethod
    def _remove_marker(self) -> None:
        """Remove the mark (and what it leaves empty); a missing one is fine."""

    def _mark(self) -> tuple[str, str | None] | None:
        """(run id, owning store or None) from the mark: its first line, then its second
        (a mark written before stores were named in it has none); None without a mark."""
        text = self._marker()
        if text is None:
            return None
        run, _, owner = text.partition("\n")
        return run.strip(), owner.strip() or None

    def mark(self, run: str, owner: str | None = None) -> None:
        """Record in the storage that it holds run `run`'s checkpoints, for the store
        `owner` names (populace.owner: a copy of the store is another owner).

        Every worker checks the mark (`check`) before it trains: without it a folder
        that is not mounted, or was moved away, would look like a storage whose every
        checkpoint is missing, and the whole run would quietly restart from scratch.
        """
        found = self._mark()
        if found is None:
            self._write_marker(run if owner is None else f"{run}\n{owner}")
        elif found[0] != run:
            raise StorageMissing(f"checkpoints {self.url} belong to another run ({found[0]}); "
                                 "give each run a checkpoint storage of its own")

    def marked(self) -> bool:
        """Whether the storage carries a run's mark (any run's)."""
        return self._marker() is not None

    def owner(self, run: str) -> str | None:
        """The store the mark names as the one training run `run` here (None: unnamed);
        StorageMissing as `check`."""
        self.check(run)
        found = self._mark()
        return None if found is None else found[1]

    def own(self, run: str, owner: str) -> None:
        """Name `owner` in run `run`'s mark: the store was moved, or its mark predates
        owners (populace.owner decides which)."""
        self.check(run)
        self._write_marker(f"{run}\n{owner}", replace=True)

    def check(self, run: str) -> None:
        """StorageMissing unless this is run `run`'s storage, reachable from this machine."""
        found = self._mark()
        if found is None:
            raise StorageMissing(
                f"the run's checkpoint storage {self.url} is not there on machine "
                f"{_machine()!r} (no {self.url}/{MARKER}): mount the shared folder or reach "
                "the bucket there, or move the folder back; nothing was trained")
        if found[0] != run:
            raise StorageMissing(f"checkpoints {self.url} belong to another run ({found[0]}), "
                                 f"not this one ({run})")

    def clear(self, run: str) -> int:
        """Delete every file of run `run` here and its mark (the run is being deleted);
        return how many. Refused (StorageMissing) for another run's storage."""
        if self._marker() is None:
            return 0  # never marked: the run wrote nothing here
        self.check(run)
        names = [name for name, _ in self.files()]
        for name in names:
            self.remove(name)
        self._remove_marker()
        return len(names)


def _machine() -> str:
    import socket

    return socket.gethostname()


def check_key(key: str) -> str:
    """The key, once it is a checkpoint key and nothing else (no path of the caller's)."""
    if not KEY.fullmatch(key):
        raise ValueError(f"not a checkpoint key: {key!r}")
    return key


def key_of(ref_or_key: CheckpointRef | str) -> str:
    return check_key(ref_or_key.key if isinstance(ref_or_key, CheckpointRef) else ref_or_key)


def new_key(sha256: str) -> str:
    """A new key for bytes hashing to sha256: its shard, its hash, a token of its own."""
    return f"{sha256[:2]}/{sha256}-{os.urandom(6).hex()}.ckpt"


def new_name() -> str:
    """A temporary name no other writer (thread, process or machine) will pick."""
    return f"{TMP}{os.urandom(12).hex()}.ckpt"


def is_temp(name: str) -> bool:
    """Whether `files` named a temp file a crashed write left in the root, not a key."""
    return name.startswith(TMP) and "/" not in name


def digest(f: BinaryIO) -> tuple[str, int]:
    """(sha256 hex, size) of an open binary file from its current position, in one pass."""
    if hasattr(hashlib, "file_digest"):  # Python 3.11+: a reused buffer, GIL released
        start = f.tell()
        found = hashlib.file_digest(f, "sha256")
        return found.hexdigest(), f.tell() - start
    running, size = hashlib.sha256(), 0
    while chunk := f.read(CHUNK):
        running.update(chunk)
        size += len(chunk)
    return running.hexdigest(), size


def hash_file(path: Path) -> tuple[str, int]:
    """Return (sha256 hex, size) of a file, read in chunks to keep big checkpoints out of memory."""
    with open(path, "rb", buffering=0) as f:
        return digest(f)


def mkdir(path: Path) -> bool:
    """Create a private directory (and missing parents); return whether it was new."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return False
    return True


def stage(save: Callable[[Path], None], tmp: Path) -> tuple[BinaryIO, str, int]:
    """Run save(tmp); return the file it wrote, open for reading and owner-only, and its
    (sha256, size). The caller closes it."""
    save(tmp)
    try:
        f = open(tmp, "rb", buffering=0)
    except (FileNotFoundError, IsADirectoryError):
        raise _nothing_written(tmp) from None
    try:
        os.fchmod(f.fileno(), 0o600)
        return f, *digest(f)
    except BaseException:
        f.close()
        raise


def _nothing_written(tmp: Path) -> FileNotFoundError:
    """The error for a save() that did not write the file it was given."""
    try:
        written = sorted(p.name for p in tmp.parent.iterdir() if p.name.startswith(tmp.name))
    except OSError:
        written = []
    return FileNotFoundError(
        f"save() must write one file at the path it is given ({tmp}); "
        f"it wrote {written or 'nothing'} instead"
    )


def remove_leftovers(tmp: Path) -> None:
    """Remove the temp file and whatever save() wrote beside it under the same name."""
    try:
        entries = [p for p in tmp.parent.iterdir() if p.name.startswith(tmp.name)]
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def storage_fault(url: str, root: Path, error: BaseException) -> StorageFault | None:
    """The storage's own fault behind a failed write into `root` (full, unwritable, gone),
    or None when the storage is fine and the error is the save's.

    A save may hide the cause (torch's zip writer reports a full disk as "unexpected
    pos"), so unless an OSError writing into `root` names it, the storage is tried: a file
    written there while what the failed save left still takes its space.
    """
    cause = _os_error_in(error, root) or _probe(root)
    if cause is None:
        return None
    return StorageFault(f"checkpoint storage {url} failed: {cause}; no member was failed "
                        "for it: fix it (free space, make it writable, mount it), then run "
                        "the same command again")


def _os_error_in(error: BaseException, root: Path) -> str | None:
    """The storage's errno among the errors that led to `error` (as a traceback shows
    them: not what a `raise ... from None` hid), for a file under root."""
    seen: BaseException | None = error
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS
                and str(seen.filename or "").startswith(str(root))):
            return f"cannot write {seen.filename}: {seen.strerror}"
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def _probe(root: Path) -> str | None:
    """Why a file of PROBE_BYTES cannot be written in root; None when it can."""
    probe = root / f"{TMP}probe-{os.urandom(6).hex()}"  # a temp name: collected if left
    try:
        with open(probe, "xb") as f:
            f.write(bytes(PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return f"cannot write in {root}: {e.strerror}"
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None
