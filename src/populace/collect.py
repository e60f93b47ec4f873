"""Collecting orphan checkpoint files: written, but named by no checkpoint row of the store.

The store collects the checkpoint rows no member or lineage needs (and deletes their
files); this module collects what it cannot see. A worker killed between writing a
checkpoint and reporting it (kill -9, a lost machine) leaves a file the store never
recorded, a crash inside a write a temp file, and a worker killed between a report and
its deletions a file whose row was collected. Collecting never touches a file a live row
names, nor one younger than the grace period: a live worker writes its file moments
before the report that names it.
"""

from __future__ import annotations

import time

from populace.checkpoints import CheckpointStorage
from populace.store import TRAINING, Store


def grace_for(store: Store) -> float:
    """How old an unnamed file must be before it is collected: none once no member trains
    (no worker can report any more), else twice the run's lease (a worker that went
    silent that long has lost its member, and its report would be refused)."""
    if not any(m.status in TRAINING for m in store.members()):
        return 0.0
    return 2.0 * store.config().run["lease_seconds"]


def orphans(store: Store, storage: CheckpointStorage, grace: float) -> list[str]:
    """The files in `storage` no live checkpoint row names, older than `grace` seconds."""
    began = time.time()
    named = store.checkpoint_keys()
    return sorted(name for name, mtime in storage.files()
                  if name not in named and mtime <= began - grace)


def collect(store: Store, storage: CheckpointStorage, grace: float) -> list[str]:
    """Remove the orphans (see `orphans`); return what was removed."""
    found = orphans(store, storage, grace)
    for name in found:
        storage.remove(name)
    return found
