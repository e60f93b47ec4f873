"""Checkpoints at an fsspec URL (`memory://`, `s3://`, `gcs://`, `sftp://`, ...).

A write stages the file locally, uploads it under a temporary name and moves it into
place (a single put on object stores, where a put is atomic); a read hands out a local,
hash-checked copy from a private cache. fsspec is imported only here, and only when such
a storage is opened: local storage never pays for it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from populace.checkpoints.base import (
    CHUNK,
    KEY,
    MARKER,
    CheckpointDamaged,
    CheckpointRef,
    CheckpointStorage,
    check_key,
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
from populace.errors import StorageFault

# fsspec protocols of object stores: no rename, but a put is atomic (the object appears whole
# or not at all), so a checkpoint is uploaded with one put straight to its key.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oci",
                            "oss"})


class RemoteCheckpointStorage(CheckpointStorage):
    """Checkpoints at an fsspec URL.

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
    def root(self) -> Path:
        raise AttributeError(f"{self.url} is remote: it has no local root (use .url)")

    def _target(self, key: str) -> str:
        return f"{self.base}/{check_key(key)}"

    def _cache_dir(self) -> Path:
        """The private local folder for staged and fetched files, made on first use."""
        with self._lock:
            if self._cache is None:
                import tempfile

                if self._cache_parent is not None:
                    mkdir(Path(self._cache_parent))
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
        tmp = cache / new_name()
        try:
            try:
                f, sha256, size = stage(save, tmp)  # a staging copy: no fsync
            except Exception as e:
                fault = storage_fault(f"{self.url} (staged in {cache})", cache, e)
                if fault is not None:
                    raise fault from e
                raise
            f.close()
            ref = CheckpointRef(key=new_key(sha256), sha256=sha256, bytes=size)
            self._store(tmp, ref)
            local = cache / Path(ref.key).name
            os.replace(tmp, local)  # the writer can load it again without a download
            self._remember(ref.key, local)
        except BaseException:
            remove_leftovers(tmp)
            raise
        return ref

    def _store(self, local: Path, ref: CheckpointRef) -> None:
        """Upload the staged file under its key; a failure is the storage's (the save's
        part is done): StorageFault, naming the storage, the key and the cause."""
        try:
            self._upload(local, self._target(ref.key))
            found = self._size(self._target(ref.key))
        except Exception as e:
            raise StorageFault(f"checkpoint storage {self.url} failed: uploading checkpoint "
                               f"{ref.key}: {type(e).__name__}: {e}; no member was failed "
                               "for it: fix it, then run the same command again") from e
        if found != ref.bytes:
            raise StorageFault(f"checkpoint storage {self.url} failed: uploading checkpoint "
                               f"{ref.key}: the stored object has {found} bytes, expected "
                               f"{ref.bytes}; run the same command again")

    def _upload(self, local: Path, target: str) -> None:
        if self.object_store:
            self.fs.put_file(str(local), target)
            return
        staged = f"{self.base}/{new_name()}"
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
        return f"{self.url}/{key_of(ref_or_key)}"

    def fetch(self, key: str, sha256: str) -> Path:
        """A local copy of the checkpoint, its bytes checked against sha256."""
        target = self._target(key)
        with self._lock:
            local = self._cached.get(key)
        if local is not None:
            try:
                if hash_file(local)[0] == sha256:
                    self._remember(key, local)
                    return local
            except FileNotFoundError:
                pass
            self._forget(key)  # damaged or gone locally: download it again
        cache = self._cache_dir()
        tmp = cache / new_name()
        try:
            self._download(key, target, tmp, sha256)
            local = cache / Path(key).name
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self._remember(key, local)
        return local

    def _download(self, key: str, target: str, tmp: Path, sha256: str) -> None:
        """Copy the object to `tmp`, owner-only, hashing while copying (one pass);
        CheckpointDamaged when it is missing or its bytes do not hash to sha256."""
        running, size = hashlib.sha256(), 0
        try:
            with self.fs.open(target, "rb") as src, open(tmp, "wb") as dst:
                os.fchmod(dst.fileno(), 0o600)
                while chunk := src.read(CHUNK):
                    running.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise CheckpointDamaged(f"checkpoint {key} is missing: expected sha256 "
                                    f"{sha256}, found no object at {self.location(key)}"
                                    ) from None
        found = running.hexdigest()
        if found != sha256:
            raise CheckpointDamaged(
                f"checkpoint {key} is damaged: expected sha256 {sha256}, "
                f"found sha256 {found} ({size} bytes) at {self.location(key)}"
            )

    def verify(self, key: str, sha256: str) -> Path:
        """As `fetch`: the bytes can only be hashed once they are here."""
        return self.fetch(key, sha256)

    def _marker(self) -> str | None:
        try:
            return self.fs.cat_file(f"{self.base}/{MARKER}").decode().strip()
        except FileNotFoundError:
            return None

    def _write_marker(self, text: str, replace: bool = False) -> None:
        self.fs.makedirs(self.base, exist_ok=True)  # an object is put whole: no half mark
        self.fs.pipe_file(f"{self.base}/{MARKER}", (text + "\n").encode())

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
            if KEY.fullmatch(name) or is_temp(name):
                yield name, _mtime(info)

    def remove(self, name: str) -> None:
        """Delete what `files` named: a checkpoint by its key, or a leftover temp object."""
        if is_temp(name):
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
