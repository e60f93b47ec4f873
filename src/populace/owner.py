"""Whose checkpoints: a copy of a store never trains in, collects from or deletes the
checkpoint storage of the store it was copied from.

A copy carries its run's id, so the run id alone cannot tell them apart. A checkpoint
storage outside the store's folder (`--checkpoints` elsewhere, a bucket, every
PostgreSQL run's) therefore names in its mark the store that trains there
(`Driver.identity`). A store that is not the one named is either that store moved, and
takes the storage over, or a copy, and is refused with the command that gives it a
storage of its own (`detach`). Checkpoints inside the store's folder travel with it: a
copied folder holds its own copy of them, and no owner is named.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from populace.checkpoints import CheckpointStorage, StorageMissing, open_storage
from populace.store import Store, StoreError, rename_run, run_at

Identity = dict[str, str | int]


class CopiedStore(StorageMissing):
    """The store is a copy of the one that trains in its checkpoint storage."""


@dataclass(frozen=True)
class Detached:
    """What `detach` did: the run's new id and storage, and how many files it copied."""

    run: str
    storage: str
    copied: int


def run_storage(store: Store) -> CheckpointStorage:
    """The run's checkpoint storage, marked as the run's when the run has trained nothing
    yet (a new run, or one stopped before its first checkpoint), checked when it has: a
    folder that is not mounted here is not a run whose checkpoints all broke. A copy of
    a store that shares its storage with the original is refused (StorageMissing)."""
    storage = open_storage(store.config().checkpoints)
    run = store.meta("run")
    keys = store.checkpoint_keys()
    if (not keys and not store.results()) or _holds_unmarked(storage, keys):
        storage.mark(run, _owner_text(store))
    return owned(store, storage)


def _holds_unmarked(storage: CheckpointStorage, keys: set[str]) -> bool:
    """Whether a storage without a mark holds checkpoints the run names: the run's own,
    written by a populace older than the marks, not a folder that is missing here."""
    return not storage.marked() and any(name in keys for name, _ in storage.files())


def owned(store: Store, storage: CheckpointStorage | None = None) -> CheckpointStorage:
    """The run's storage once it is the run's and this store's (taken over when the store
    was moved); StorageMissing for another run's, a missing one, or a copy's."""
    storage = storage or open_storage(store.config().checkpoints)
    run = store.meta("run")
    named = storage.owner(run)  # checks the run id first
    here = _owner_text(store)
    if here is None or named == here:
        return storage
    here_identity = json.loads(here)
    named_identity = None if named is None else json.loads(named)
    if named_identity is not None and not _moved(named_identity, here_identity, run):
        raise CopiedStore(_copy_message(store, storage, named_identity))
    storage.own(run, here)
    return storage


def detach(store: Store, storage: CheckpointStorage, recorded: str) -> Detached:
    """Copy the checkpoints the run keeps into `storage` (empty, unmarked), then give the
    run a new id and that storage in one transaction, then mark it: a copied store goes
    on alone. `recorded` is the storage as the store records it (populace.api._stored).
    A crash before the transaction leaves the store as it was (and orphan files in the
    new storage, which `populace collect` removes)."""
    if storage.marked():
        raise StorageMissing(f"checkpoints {storage.url} hold another run's checkpoints: "
                             "give the copy an empty folder of its own")
    leased = store.leased()
    if leased:
        raise StoreError(f"the run in {store.url} is training members "
                         f"{', '.join(map(str, leased))}: stop its workers first")
    source = owned_or_named(store)
    keys: dict[str, str] = {}
    for row in store.checkpoints():
        keys[row.key] = storage.write(partial(_copy, source.fetch(row.key, row.sha256))).key
    new = uuid.uuid4().hex
    rename_run(store, new, recorded, keys)
    storage.mark(new, _owner_text(store))
    return Detached(new, storage.url, len(keys))


def _copy(source: Path, path: Path) -> None:
    shutil.copyfile(source, path)


def owned_or_named(store: Store) -> CheckpointStorage:
    """The storage the store names, checked to be its run's (a copy's too: `detach` reads
    the checkpoints it shares, and never writes there)."""
    storage = open_storage(store.config().checkpoints)
    storage.check(store.meta("run"))
    return storage


def _owner_text(store: Store) -> str | None:
    """The identity to name in the mark, compact; None for a storage inside the SQLite
    store's folder, which a copy of the folder copies too."""
    identity = store.driver.identity()
    if "sqlite" in identity:
        folder = Path(str(identity["sqlite"])).parent
        checkpoints = store.config().checkpoints
        if "://" not in checkpoints and Path(checkpoints).resolve().is_relative_to(folder):
            return None
    return json.dumps(identity, sort_keys=True, separators=(",", ":"))


def _moved(named: Identity, here: Identity, run: str) -> bool:
    """Whether this store is the store `named` (reached another way, or moved), not a copy.

    SQLite: the same file (its inode) seen from this or another machine, or moved on
    this machine, the file it was at no longer holding the run. PostgreSQL: the same
    cluster, database and schema only: a dump restored elsewhere is a copy.
    """
    if "sqlite" not in named or "sqlite" not in here:
        return False
    if named["inode"] == here["inode"] and (named["host"] == here["host"]
                                            or named["sqlite"] == here["sqlite"]):
        return True
    if named["host"] != socket.gethostname():
        return False  # another machine's file: it may still train there
    path = str(named["sqlite"])
    return not (os.path.exists(path) and not os.path.samefile(path, str(here["sqlite"]))
                and run_at(path) == run)


def _copy_message(store: Store, storage: CheckpointStorage, named: Identity) -> str:
    where = (f"{named['sqlite']} on {named['host']}" if "sqlite" in named
             else f"PostgreSQL {named['postgresql']}")
    return (f"{store.url} is a copy of the store at {where}, which trains run "
            f"{store.meta('run')} in {storage.url}; a copy must not train in, collect from "
            f"or delete another store's checkpoints: give it its own with `populace detach "
            f"{store.url} --checkpoints NEW_FOLDER` (it copies the checkpoints the run "
            "keeps there and gives the run a new id), or resume the original instead")
