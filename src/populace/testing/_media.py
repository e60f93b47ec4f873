"""What the storage battery does behind a storage's back: list everything in its medium,
damage a file, open it as another process does; and one check's bookkeeping.

Both kinds are known here, a local folder and an fsspec URL: every storage is one of
them (a storage of your own is an fsspec file system behind a URL).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from populace.checkpoints import (
    CheckpointRef,
    CheckpointStorage,
    LocalCheckpointStorage,
    RemoteCheckpointStorage,
)
from populace.testing._fail import fail

# a function that returns a new, empty storage each time it is called
StorageFactory = Callable[[], CheckpointStorage]
Check = Callable[..., Any]


def saver(data: bytes) -> Callable[[Path], None]:
    """A save function that writes `data`, as a user's torch.save would."""

    def save(path: Path) -> None:
        path.write_bytes(data)

    return save


def stored(storage: CheckpointStorage) -> list[str]:
    """Every file in the storage's medium, relative to its root: nothing can hide."""
    if isinstance(storage, RemoteCheckpointStorage):
        if not storage.fs.exists(storage.base):
            return []
        prefix = storage.base.lstrip("/") + "/"
        return sorted(p.split(prefix, 1)[1] for p in storage.fs.find(storage.base))
    root = _root(storage)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def cached(storage: CheckpointStorage) -> list[str]:
    """The files in a remote storage's private local folder (a local one has none)."""
    cache = getattr(storage, "_cache", None)
    return sorted(p.name for p in cache.iterdir()) if cache is not None and cache.exists() \
        else []


def leftovers(storage: CheckpointStorage) -> list[str]:
    """What a write that failed might leave: any entry under a local root (folders too), any
    object under a remote one, any file staged in the private folder."""
    if isinstance(storage, RemoteCheckpointStorage):
        return stored(storage) + [f"(cache) {name}" for name in cached(storage)]
    root = _root(storage)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) \
        if root.exists() else []


def put(storage: CheckpointStorage, name: str, data: bytes | None) -> None:
    """Write `data` under `name` behind the storage's back (None: remove it): damage."""
    if isinstance(storage, RemoteCheckpointStorage):
        target = f"{storage.base}/{name}"
        if data is None:
            storage.fs.rm_file(target)
        else:
            storage.fs.pipe_file(target, data)
        return
    path = _root(storage) / name
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


def _root(storage: CheckpointStorage) -> Path:
    """A local storage's folder: every storage not at an fsspec URL is a local one."""
    if not isinstance(storage, LocalCheckpointStorage):
        raise TypeError(f"{type(storage).__name__} is neither a local nor an fsspec storage")
    return storage.root


def other(storage: CheckpointStorage) -> CheckpointStorage:
    """The storage as another process opens it: a pickled copy, with a cache of its own."""
    copy: CheckpointStorage = pickle.loads(pickle.dumps(storage))
    return copy


class Checking:
    """One check on one storage: a failure names both and what was done."""

    def __init__(self, factory: StorageFactory, check: Check) -> None:
        self.check = check
        try:
            self.storage = factory()
        except Exception as e:
            fail(f"checkpoint storage factory {factory!r}", check,
                 f"it raised {type(e).__name__}: {e}", "a call with no arguments")
        if not isinstance(self.storage, CheckpointStorage):
            fail(f"checkpoint storage factory {factory!r}", check,
                 f"it returned {self.storage!r}, not a CheckpointStorage",
                 "a call with no arguments")
        self.doing = "a fresh storage from the factory"
        self.expect(leftovers(self.storage) == [],
                    lambda: f"a fresh storage must be empty; it holds {leftovers(self.storage)}")

    def did(self, doing: str) -> None:
        self.doing = doing

    def fail(self, problem: str) -> NoReturn:
        s = self.storage
        fail(f"checkpoint storage {type(s).__name__}({s.url!r})", self.check, problem,
             self.doing)

    def expect(self, condition: bool, problem: Callable[[], str]) -> None:
        if not condition:
            self.fail(problem())

    def write(self, data: bytes, storage: CheckpointStorage | None = None) -> CheckpointRef:
        try:
            return (storage or self.storage).write(saver(data))
        except Exception as e:
            self.fail(f"writing {len(data)} bytes raised {type(e).__name__}: {e}")

    def read(self, ref: CheckpointRef, storage: CheckpointStorage | None = None) -> bytes:
        """The checkpoint's bytes through `fetch` and `verify`, checked to be the same."""
        s = storage or self.storage
        try:
            fetched = s.fetch(ref.key, ref.sha256).read_bytes()
            verified = s.verify(ref.key, ref.sha256).read_bytes()
        except Exception as e:
            self.fail(f"reading {ref.key} back raised {type(e).__name__}: {e}")
        self.expect(fetched == verified, lambda: f"fetch and verify of {ref.key} gave "
                    f"different bytes ({len(fetched)} and {len(verified)})")
        return fetched

    def raises(self, error: type[BaseException], words: list[str],
               call: Callable[[], object]) -> str:
        """The message of the `error` that `call` must raise, holding each of `words`."""
        try:
            call()
        except error as e:
            message = str(e)
            missing = [w for w in words if w not in message]
            self.expect(not missing, lambda: f"its {error.__name__} must say {missing}; it "
                        f"said {message!r}")
            return message
        except Exception as e:
            self.fail(f"expected {error.__name__}, got {type(e).__name__}: {e}")
        self.fail(f"expected {error.__name__}, nothing was raised")
