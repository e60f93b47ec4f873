"""Mending a run that went wrong: failed members trained again after a fix, or the
whole run deleted (its store and checkpoints) to start afresh."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from populace.checkpoints import open_storage
from populace.owner import CopiedStore, owned
from populace.store import Status, Store, StoreError, beside, open_store, store_exists
from populace.store.driver import safe_url


def retry(url: str | os.PathLike[str], members: Sequence[int] | None = None) -> list[int]:
    """Make the failed members of the run at `url` (all, or `members`) train again from
    their own checkpoints; the next `populace run` or `populace worker` resumes them."""
    store = _open(url)
    try:
        failed = [m.id for m in store.members() if m.status == Status.FAILED]
        unknown = sorted(set(members or ()) - set(failed))
        if unknown:
            raise StoreError(f"member(s) {', '.join(map(str, unknown))} of the run in "
                             f"{safe_url(os.fspath(url))} did not fail; failed: "
                             f"{', '.join(map(str, failed)) or 'none'}")
        return store.retry_failed(members)
    finally:
        store.close()


def delete(url: str | os.PathLike[str]) -> int:
    """Delete the run at `url`: its checkpoint files, its store, then its report folder;
    return how many checkpoint files went. Refused while a member is leased, so a live run
    is never deleted. A replay of the run is a run of its own, and stays."""
    store = _open(url)
    try:
        leased = store.leased()
        if leased:
            raise StoreError(f"the run in {safe_url(os.fspath(url))} is training members "
                             f"{', '.join(map(str, leased))}: stop its workers first (a "
                             "killed worker's lease expires after the run's lease_seconds)")
        removed = _clear(store)
    finally:
        store.close()
    store.driver.remove()
    # `populace report`'s folder (populace.report.default_out): a report of a run that is
    # gone would be taken for the next run's under the same name
    shutil.rmtree(beside(url, ".report"), ignore_errors=True)
    return removed


def _clear(store: Store) -> int:
    """Delete the run's checkpoint files; none of a copy's, which are the original's."""
    storage = open_storage(store.config().checkpoints)
    if not storage.marked():
        return 0  # never marked: the run wrote nothing there
    try:
        owned(store, storage)
    except CopiedStore:
        return 0
    return storage.clear(store.meta("run"))


def _open(url: str | os.PathLike[str]) -> Store:
    if not store_exists(url):
        raise StoreError(f"{safe_url(os.fspath(url))} does not exist")
    store = open_store(url)
    if not store.exists():
        store.close()
        raise StoreError(f"{safe_url(os.fspath(url))} holds no run")
    return store
