"""No worker here: wait while `populace worker` processes elsewhere train the run."""

from __future__ import annotations

import time

from populace.store import TRAINING, Store

POLL = 0.5  # seconds between looks at the store


def run_external(store: Store) -> None:
    """Return once no member is left to train (every one done or failed)."""
    while True:
        status = store.progress()["status"]
        if not any(status.get(s) for s in TRAINING):
            return
        time.sleep(POLL)
