"""Immutable checkpoint files, checked by the sha256 of their bytes, in a local directory or
at any fsspec URL.

`CheckpointStorage(root)` takes a local path (or a `file://` URL: the same thing) or any
other fsspec URL (`memory://...`, `s3://bucket/prefix` where the user installed s3fs, ...);
for a URL it returns a `RemoteCheckpointStorage`. Both store a checkpoint under the key
`ab/<sha256>-<token>.ckpt` and never change a stored one. The token makes every write a
file of its own: two writes of the same bytes (a state that stopped changing, members
that reached the same state) never share a file, so deleting one checkpoint can never
take the file of another, or of a write not yet recorded in the store. Members share a
checkpoint only through the store (an exploit points at the donor's row).

The local storage is the fast path: the file written by the user's `save` is hashed once,
renamed into place, then fsynced with its folder. A remote one stages the file locally,
uploads it under a temporary name and moves it into place (a single put on object stores,
where a put is atomic), and hands out local, hash-checked copies of stored checkpoints
(`fetch`) from a private cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_CHUNK = 1 << 20
# Keys come from the store; anything else (absolute paths, "..") must never reach the filesystem.
_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}-[0-9a-f]{12}\.ckpt")
_TMP = ".tmp-"
# fsspec protocols of object stores: no rename, but a put is atomic (the object appears whole
# or not at all), so a checkpoint is uploaded with one put straight to its key.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oci",
                            "oss"})


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


MARKER = ".populace-run"  # in every storage root: the id of the run its checkpoints belong to


def _machine() -> str:
    import socket

    return socket.gethostname()


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a checkpoint key: {key!r}")
    return key


def _key_of(ref_or_key: CheckpointRef | str) -> str:
    return _check_key(ref_or_key.key if isinstance(ref_or_key, CheckpointRef) else ref_or_key)


def _digest(f: BinaryIO) -> tuple[str, int]:
    """(sha256 hex, size) of an open binary file from its current position, in one pass."""
    if hasattr(hashlib, "file_digest"):  # Python 3.11+: a reused buffer, GIL released
        start = f.tell()
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell() - start
    digest, size = hashlib.sha256(), 0
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _hash_file(path: Path) -> tuple[str, int]:
    """Return (sha256 hex, size) of a file, read in chunks to keep big checkpoints out of memory."""
    with open(path, "rb", buffering=0) as f:
        return _digest(f)


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


def _key(sha256: str) -> str:
    """A new key for bytes hashing to sha256: its shard, its hash, a token of its own."""
    return f"{sha256[:2]}/{sha256}-{os.urandom(6).hex()}.ckpt"


def _new_name() -> str:
    """A temporary name no other writer (thread, process or machine) will pick."""
    return f"{_TMP}{os.urandom(12).hex()}.ckpt"


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


def _remove_leftovers(tmp: Path) -> None:
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


def _stage(save: Callable[[Path], None], tmp: Path) -> tuple[BinaryIO, str, int]:
    """Run save(tmp); return the file it wrote, open for reading and owner-only, and its
    (sha256, size). The caller closes it."""
    save(tmp)
    try:
        f = open(tmp, "rb", buffering=0)
    except (FileNotFoundError, IsADirectoryError):
        raise _nothing_written(tmp) from None
    try:
        os.fchmod(f.fileno(), 0o600)
        return f, *_digest(f)
    except BaseException:
        f.close()
        raise


def _mtime(info: dict[str, Any]) -> float:
    """An fsspec entry's modification time in seconds since the epoch (now if unknown)."""
    import time

    for field in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(field)
        if isinstance(value, (int, float)):
            return float(value)
        if value is not None and hasattr(value, "timestamp"):  # a datetime
            return float(value.timestamp())
    return time.time()


def is_remote(root: str | os.PathLike[str]) -> bool:
    """A URL other than file://; plain paths and file:// URLs are local."""
    if not isinstance(root, str):
        return False
    if "::" in root:  # fsspec chained URLs (simplecache::s3://...)
        return True
    return "://" in root and not root.startswith("file://")


def _local_root(root: str | os.PathLike[str]) -> Path:
    if isinstance(root, str) and root.startswith("file://"):
        root = root[len("file://"):]
    return Path(root).absolute()


class CheckpointStorage:
    """Content-addressed checkpoint files under one root, safe for concurrent writers.

    A plain path (or file:// URL) is a local directory; any other fsspec URL gives a
    `RemoteCheckpointStorage` with the same methods. To load a checkpoint, callers use
    `fetch(key, sha256)`, which works for both: a local, hash-checked
    path to the file.
    """


    def __new__(cls, root: str | os.PathLike[str] | None = None,
                **options: Any) -> CheckpointStorage:
        """A local storage, or a `RemoteCheckpointStorage` for a URL other than file://."""
        # (root is None only when pickle rebuilds an instance)
        if cls is CheckpointStorage and root is not None and is_remote(root):
            cls = RemoteCheckpointStorage
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        """Remember the root; it is created on the first write so read-only users create nothing."""
        if options:
            raise TypeError(f"options {sorted(options)} only apply to a URL, not to {root!r}")
        self.root = _local_root(root)
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
            _mkdir(self.root)
            for i in range(256):
                _mkdir(self.root / f"{i:02x}")
            _fsync_dir(self.root)
        self._laid_out = True

    def write(self, save: Callable[[Path], None]) -> CheckpointRef:
        """Let save() write one file, then store it under a new key atomically and durably.

        Once this returns the file is in place under its key and on disk (its bytes and
        its folder entry fsynced): the store may record it.
        """
        if not self._laid_out:
            _mkdir(self.root)
        # A fresh name in the root: renamed into its shard folder on the same file system.
        tmp = self.root / _new_name()
        try:
            f, sha256, size = _stage(save, tmp)
            with f:
                self._layout()  # after save() succeeded: a failed one leaves the root empty
                ref = CheckpointRef(key=_key(sha256), sha256=sha256, bytes=size)
                final = self.root / ref.key
                shard_is_new = _mkdir(final.parent)
                # Rename, then fsync: one journal commit makes both the bytes and the
                # name durable, and the folder's fsync below finds little left to do.
                # A crash in between leaves at most a file the store never recorded.
                os.replace(tmp, final)
                os.fsync(f.fileno())
            _fsync_dir(final.parent)
            if shard_is_new:
                _fsync_dir(self.root)
        except BaseException:
            _remove_leftovers(tmp)
            raise
        return ref

    def path(self, ref_or_key: CheckpointRef | str) -> Path:
        """Return the absolute path of a checkpoint without touching the filesystem."""
        return self.root / _key_of(ref_or_key)

    def location(self, ref_or_key: CheckpointRef | str) -> str:
        """Where the checkpoint lives, for people: a path, or a URL for remote storage."""
        return str(self.path(ref_or_key))

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

    def fetch(self, key: str, sha256: str) -> Path:
        """A local file holding the checkpoint's bytes, checked against sha256.

        Local storage: the stored file itself (as `verify`). Remote storage: a copy in a
        private cache. Raises CheckpointDamaged when the checkpoint is missing or damaged.
        """
        return self.verify(key, sha256)

    def mark(self, run: str) -> None:
        """Record in the storage that it holds run `run`'s checkpoints.

        Every worker checks the mark (`check`) before it trains: without it a folder
        that is not mounted, or was moved away, would look like a storage whose every
        checkpoint is missing, and the whole run would quietly restart from scratch.
        """
        found = self._marker()
        if found is None:
            self._write_marker(run)
        elif found != run:
            raise StorageMissing(f"checkpoints {self.url} belong to another run ({found}); "
                                 "give each run a checkpoint storage of its own")

    def check(self, run: str) -> None:
        """StorageMissing unless this is run `run`'s storage, reachable from this machine."""
        found = self._marker()
        if found is None:
            raise StorageMissing(
                f"the run's checkpoint storage {self.url} is not there on machine "
                f"{_machine()!r} (no {self.url}/{MARKER}): mount the shared folder or reach "
                "the bucket there, or move the folder back; nothing was trained")
        if found != run:
            raise StorageMissing(f"checkpoints {self.url} belong to another run ({found}), "
                                 f"not this one ({run})")

    def _marker(self) -> str | None:
        """The run id the storage is marked with; None when there is no mark."""
        try:
            return (self.root / MARKER).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _write_marker(self, run: str) -> None:
        _mkdir(self.root)
        fd = os.open(self.root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:  # owner-only, as every checkpoint file
            f.write(run + "\n")

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
            if entry.name.startswith(_TMP):
                yield entry.name, entry.stat(follow_symlinks=False).st_mtime
            elif entry.is_dir(follow_symlinks=False) and len(entry.name) == 2:
                for file in os.scandir(entry.path):
                    key = f"{entry.name}/{file.name}"
                    if _KEY.fullmatch(key):
                        yield key, file.stat(follow_symlinks=False).st_mtime

    def remove(self, name: str) -> None:
        """Delete what `files` named: a checkpoint by its key, or a leftover temp file."""
        if name.startswith(_TMP) and "/" not in name:
            _remove_leftovers(self.root / name)
        else:
            self.delete(name)

    def delete(self, key: str) -> None:
        """Remove a checkpoint; a missing one is fine so collection can be retried."""
        # Empty shard dirs are kept: removing one could race a writer renaming into it.
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()


class RemoteCheckpointStorage(CheckpointStorage):
    """Checkpoints at an fsspec URL (`memory://`, `s3://`, `gcs://`, `sftp://`, ...).

    Writes stage the file in a private local folder, hash it, and upload it: on object
    stores with one put straight to its key (a put is atomic), elsewhere under a temporary
    name that is then moved to its key. Reads (`fetch`, `verify`) download into
    the private folder while hashing and raise CheckpointDamaged on a mismatch; the newest
    `cache_files` copies are kept there (a checkpoint this process wrote or fetched is not
    downloaded again), the folder goes when the storage is garbage collected or the process
    exits. Extra keyword arguments go to fsspec (credentials, endpoint, ...).
    """


    def __init__(self, root: str, *, cache_dir: str | os.PathLike[str] | None = None,
                 cache_files: int = 4, **storage_options: Any) -> None:
        """Open the URL's file system (fsspec, imported here only); nothing is written yet."""
        import fsspec.core  # an optional cost: local storage never imports it

        self.url = root.rstrip("/")
        self.fs, base = fsspec.core.url_to_fs(root, **storage_options)
        self.base = base.rstrip("/")
        protocol = self.fs.protocol
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        self.object_store = bool(_OBJECT_STORES.intersection(protocols))
        self._options = {"cache_dir": cache_dir, "cache_files": cache_files, **storage_options}
        self._cache_parent = cache_dir
        self._cache_files = max(1, cache_files)
        self._cache: Path | None = None
        self._cached: OrderedDict[str, Path] = OrderedDict()  # key -> local copy, oldest first
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its URL and options: a copy opens its own file system and cache."""
        return functools.partial(RemoteCheckpointStorage, self.url, **self._options), ()

    @property
    def root(self) -> Path:  # type: ignore[override]
        raise AttributeError(f"{self.url} is remote: it has no local root (use .url)")

    def _target(self, key: str) -> str:
        return f"{self.base}/{_check_key(key)}"

    def _cache_dir(self) -> Path:
        """The private local folder for staged and fetched files, made on first use."""
        with self._lock:
            if self._cache is None:
                import tempfile

                if self._cache_parent is not None:
                    _mkdir(Path(self._cache_parent))
                made = Path(tempfile.mkdtemp(prefix="populace-checkpoints-",
                                             dir=self._cache_parent))
                weakref.finalize(self, shutil.rmtree, made, True)
                self._cache = made
            return self._cache

    def _remember(self, key: str, local: Path) -> None:
        """Note a verified local copy; drop the oldest beyond cache_files."""
        with self._lock:
            self._cached[key] = local
            self._cached.move_to_end(key)
            while len(self._cached) > self._cache_files:
                _, old = self._cached.popitem(last=False)
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _forget(self, key: str) -> None:
        with self._lock:
            local = self._cached.pop(key, None)
        if local is not None:
            with contextlib.suppress(FileNotFoundError):
                local.unlink()

    def _size(self, target: str) -> int | None:
        try:
            return int(self.fs.size(target))
        except FileNotFoundError:
            return None

    def write(self, save: Callable[[Path], None]) -> CheckpointRef:
        """Let save() write one file locally, then upload it under its sha256 atomically.

        Once this returns the object is in place under its key with the right size, as
        the file system reports it: the store may record it.
        """
        cache = self._cache_dir()
        tmp = cache / _new_name()
        try:
            f, sha256, size = _stage(save, tmp)  # a staging copy: no fsync
            f.close()
            ref = CheckpointRef(key=_key(sha256), sha256=sha256, bytes=size)
            target = self._target(ref.key)
            self._upload(tmp, target)
            found = self._size(target)
            if found != size:
                raise OSError(f"uploading checkpoint {ref.key} to {self.url}: the stored "
                              f"object has {found} bytes, expected {size}")
            local = cache / Path(ref.key).name
            os.replace(tmp, local)  # the writer can load it again without a download
            self._remember(ref.key, local)
        except BaseException:
            _remove_leftovers(tmp)
            raise
        return ref

    def _upload(self, local: Path, target: str) -> None:
        if self.object_store:
            self.fs.put_file(str(local), target)
            return
        staged = f"{self.base}/{_new_name()}"
        try:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(local), staged)
            self.fs.mv(staged, target)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(staged)
            raise

    def path(self, ref_or_key: CheckpointRef | str) -> Path:
        """Refused: a remote checkpoint has no local path; use `fetch`."""
        raise ValueError(f"checkpoints at {self.url} are remote: use fetch(key, sha256) for "
                         f"a local copy, location(key) for its URL")

    def location(self, ref_or_key: CheckpointRef | str) -> str:
        """The checkpoint's URL."""
        return f"{self.url}/{_key_of(ref_or_key)}"

    def fetch(self, key: str, sha256: str) -> Path:
        """A local copy of the checkpoint, its bytes checked against sha256."""
        target = self._target(key)
        with self._lock:
            local = self._cached.get(key)
        if local is not None:
            try:
                if _hash_file(local)[0] == sha256:
                    self._remember(key, local)
                    return local
            except FileNotFoundError:
                pass
            self._forget(key)  # damaged or gone locally: download it again
        cache = self._cache_dir()
        tmp = cache / _new_name()
        try:
            digest, size = hashlib.sha256(), 0
            try:
                with self.fs.open(target, "rb") as src, open(tmp, "wb") as dst:
                    os.fchmod(dst.fileno(), 0o600)
                    while chunk := src.read(_CHUNK):  # hash while copying: one pass
                        digest.update(chunk)
                        dst.write(chunk)
                        size += len(chunk)
            except FileNotFoundError:
                raise CheckpointDamaged(f"checkpoint {key} is missing: expected sha256 "
                                        f"{sha256}, found no object at {self.location(key)}"
                                        ) from None
            found = digest.hexdigest()
            if found != sha256:
                raise CheckpointDamaged(
                    f"checkpoint {key} is damaged: expected sha256 {sha256}, "
                    f"found sha256 {found} ({size} bytes) at {self.location(key)}"
                )
            local = cache / Path(key).name
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self._remember(key, local)
        return local

    def verify(self, key: str, sha256: str) -> Path:
        """As `fetch`: the bytes can only be hashed once they are here."""
        return self.fetch(key, sha256)

    def _marker(self) -> str | None:
        try:
            return self.fs.cat_file(f"{self.base}/{MARKER}").decode().strip()
        except FileNotFoundError:
            return None

    def _write_marker(self, run: str) -> None:
        self.fs.makedirs(self.base, exist_ok=True)
        self.fs.pipe_file(f"{self.base}/{MARKER}", (run + "\n").encode())

    def _remove_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.base}/{MARKER}")

    def files(self) -> Iterator[tuple[str, float]]:
        """(name, modification time) of every checkpoint object and leftover temp object
        (an object whose store reports no time counts as written now)."""
        try:
            found = self.fs.find(self.base, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            name = path[len(self.base):].lstrip("/") if path.startswith(self.base) else path
            if _KEY.fullmatch(name) or (name.startswith(_TMP) and "/" not in name):
                yield name, _mtime(info)

    def remove(self, name: str) -> None:
        """Delete what `files` named: a checkpoint by its key, or a leftover temp object."""
        if name.startswith(_TMP) and "/" not in name:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self.base}/{name}")
        else:
            self.delete(name)

    def delete(self, key: str) -> None:
        """Remove a checkpoint (and any local copy); a missing one is fine."""
        target = self._target(key)
        self._forget(key)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(target)
