"""The store's lookups: a claim's and a collection's, each through an index (schema 6), a
handful of rows read however large the population (a scan of the member table would make
every ready cycle grow with it); and where a recover sends a member back."""

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


def intact_ancestor(cur: Cursor, checkpoint: int) -> tuple[int, int, str] | None:
    """The newest intact checkpoint on the lineage before `checkpoint`, its step and the
    hparams trained from it; None when the lineage has none left (train from scratch)."""
    while True:
        cur.execute("SELECT r.parent, r.hparams, c.step, c.deleted FROM results r"
                    " LEFT JOIN checkpoints c ON c.id = r.parent WHERE r.checkpoint = ?",
                    (checkpoint,))
        row = cur.fetchone()
        if row is None or row[0] is None:
            return None
        parent, hparams, step, deleted = row
        if not deleted:
            return parent, step, hparams
        checkpoint = parent


def own_newest(cur: Cursor, member: int) -> tuple[int, int, str] | None:
    """The member's own newest intact checkpoint, its step and the hparams it was
    trained with; None when it has none."""
    cur.execute("SELECT c.id, c.step, r.hparams FROM checkpoints c JOIN results r"
                " ON r.checkpoint = c.id WHERE c.member = ? AND c.deleted = 0"
                " ORDER BY c.id DESC LIMIT 1", (member,))
    return cur.fetchone()
