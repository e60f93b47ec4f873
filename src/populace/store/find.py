"""The lookups of a claim and a collection, each through an index (schema 6): a handful
of rows read, however large the population, where a scan of the member table would make
every ready cycle grow with it."""

from __future__ import annotations

from populace.store.driver import Cursor
from populace.store.records import Status


def claimable(cur: Cursor, now: float, prefer: int | None, synch: bool) -> int | None:
    """The member a claim leases: the one furthest behind among the ready members and
    those whose lease expired (ties: `prefer`, then the lowest id); in a synchronous run
    none while a member still trains an earlier step. None: nobody to claim."""
    cur.execute("SELECT step, id FROM members WHERE status = ? ORDER BY step, id LIMIT 1",
                (Status.READY,))
    ready = cur.fetchone()
    cur.execute("SELECT step, id FROM members WHERE status = ? AND lease_expires < ?"
                " ORDER BY step, id LIMIT 1", (Status.RUNNING, now))
    expired = cur.fetchone()
    found = [tuple(row) for row in (ready, expired) if row is not None]
    if not found:
        return None
    step, member = min(found)
    if synch:  # the generation's barrier: nobody past a member that still trains
        cur.execute("SELECT MIN(step) FROM members WHERE status = ?", (Status.RUNNING,))
        training = cur.fetchone()[0]
        if training is not None and training < step:
            return None
    if prefer is not None and prefer != member:
        cur.execute("SELECT step FROM members WHERE id = ? AND (status = ?"
                    " OR (status = ? AND lease_expires < ?))",
                    (prefer, Status.READY, Status.RUNNING, now))
        row = cur.fetchone()
        if row is not None and row[0] == step:
            return prefer
    return int(member)


def unreferenced(cur: Cursor, member: int) -> list[tuple[int, str]]:
    """The member's checkpoints (id, key) not deleted that no member row points at."""
    cur.execute("SELECT c.id, c.key FROM checkpoints c WHERE c.member = ? AND c.deleted = 0"
                " AND NOT EXISTS (SELECT 1 FROM members m WHERE m.checkpoint = c.id)",
                (member,))
    return [(row[0], row[1]) for row in cur.fetchall()]
