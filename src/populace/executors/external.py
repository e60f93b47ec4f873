"""No worker here: wait while `populace worker` processes elsewhere train the run."""

from __future__ import annotations

import time

from populace import stopping
from populace.store import TRAINING, Store

POLL = 0.5  # seconds between looks at the store


def run_external(store: Store) -> None:
    """Return once no member is left to train (every one done or failed), or the run
    stopped early. A stop asked of this process ends the wait, even one whose
    KeyboardInterrupt was lost (`stopping.check`)."""
    while True:
        stopping.check()
        status = store.progress()["status"]
        if not any(status.get(s) for s in TRAINING) or store.meta("stopped") is not None:
            return
        time.sleep(POLL)
