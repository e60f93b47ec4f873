"""Upgrading a store written by an older populace to the schema this one reads.

Each schema change is one step from its version to the next: the statements that turn
a store of version v into one of version v + 1, in the backends' shared SQL. `upgrade`
runs the steps from a store's version up to `SCHEMA_VERSION` and records the new
version, in the one write transaction its caller holds, so a store is upgraded whole or
not at all. A later schema change adds its step to `STEPS`; a store older than the
oldest step, or newer than this populace, is refused where it is read
(`populace.store.read`), naming both versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from populace.store.driver import Cursor
from populace.store.schema import FIRE_COLUMNS, SCHEMA_VERSION

# the statements of one step, given the backend's column types (`Driver.types`)
Step = Callable[[dict[str, str]], list[str]]


def _to_5(types: dict[str, str]) -> list[str]:
    """4 -> 5: FIRE-PBT's member columns, with the defaults of a plain run's members."""
    return [f"ALTER TABLE members ADD COLUMN {column}" for column in FIRE_COLUMNS]


# the step from each version to the next
STEPS: dict[int, Step] = {4: _to_5}
OLDEST = min(STEPS)  # the oldest version this populace upgrades


def upgradable(version: int) -> bool:
    """Whether a store of `version` can be upgraded to `SCHEMA_VERSION` (an older one
    that every step from it up to here exists for)."""
    return version < SCHEMA_VERSION and all(v in STEPS for v in range(version, SCHEMA_VERSION))


def upgrade(cur: Cursor, types: dict[str, str], version: int) -> None:
    """Turn the store at `cur` from `version` into `SCHEMA_VERSION`, inside the caller's
    write transaction, and record the new version."""
    if not upgradable(version):
        raise ValueError(f"no upgrade from store schema version {version} to {SCHEMA_VERSION}")
    for v in range(version, SCHEMA_VERSION):
        for sql in STEPS[v](types):
            cur.execute(sql)
    cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (json.dumps(SCHEMA_VERSION),))
