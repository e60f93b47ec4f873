"""The tables every backend holds, and the version of their layout."""

from __future__ import annotations

# 2: each result names the checkpoint it wrote and the one its segment started from
# 3: a member waiting for its donor keeps the decision it waits to carry out, and every
#    member a short trail of (step, score) along its lineage
# 4: each member its last few segments with the hparams in force (`segments`), for an
#    explore strategy that learns from them (PB2), and in a multi-objective run its latest
#    value of each objective (`objectives`)
# 5: FIRE-PBT: each member's sub-population and role (fixed at creation), a count of its
#    changes, its curve, the step its latest evaluation began, and an evaluator's evaluation
# 6: each member's revision, raised by a trigger at every change of its row (the driver's
#    `triggers`), so a process re-reads only the member rows that changed since it last
#    read the population (`populace.store.cache`); indexes for a claim and a collection
#    that read a handful of rows, not the whole population
SCHEMA_VERSION = 6

# the columns version 5 added to `members`, as `populace.store.migrate` adds them to an
# older store: a plain run's members all stand in sub-population 1, with no curve
FIRE_COLUMNS = (
    "sub INTEGER NOT NULL DEFAULT 1",
    "role TEXT NOT NULL DEFAULT 'member'",
    "changes INTEGER NOT NULL DEFAULT 0",
    "curve TEXT NOT NULL DEFAULT '[]'",
    "evaluated INTEGER",
    "evaluation TEXT",
)


# the member column version 6 added: 0 until the row first changes, then above every
# revision before it
REVISION_COLUMNS = ("revision INTEGER NOT NULL DEFAULT 0",)

# the indexes version 6 added: members changed since a revision; the claimable member
# furthest behind (by status, then step); whether a member still points at a checkpoint
REVISION_INDEXES = (
    "CREATE INDEX IF NOT EXISTS members_revision ON members (revision)",
    "CREATE INDEX IF NOT EXISTS members_claim ON members (status, step, id)",
    "CREATE INDEX IF NOT EXISTS members_checkpoint ON members (checkpoint)",
)


def schema(types: dict[str, str]) -> list[str]:
    """The statements that create a new store's tables (and nothing that exists)."""
    t = types
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS checkpoints (
            id {t['id']}, member INTEGER NOT NULL, step INTEGER NOT NULL,
            key TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
            created {t['real']} NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)""",
        """CREATE INDEX IF NOT EXISTS checkpoints_member
            ON checkpoints (member, deleted, id)""",
        "CREATE INDEX IF NOT EXISTS checkpoints_key ON checkpoints (key, deleted)",
        # a member's newest checkpoints, read at every report, without sorting its history
        "CREATE INDEX IF NOT EXISTS checkpoints_newest ON checkpoints (member, id)",
        f"""CREATE TABLE IF NOT EXISTS members (
            id INTEGER PRIMARY KEY, hparams TEXT NOT NULL, step INTEGER NOT NULL,
            score {t['real']}, generation INTEGER NOT NULL, parent INTEGER,
            status TEXT NOT NULL, checkpoint INTEGER REFERENCES checkpoints (id),
            lease_owner TEXT, lease_expires {t['real']}, error TEXT,
            recent TEXT NOT NULL DEFAULT '[]', trail TEXT NOT NULL DEFAULT '[]',
            segments TEXT NOT NULL DEFAULT '[]', objectives TEXT,
            failures INTEGER NOT NULL DEFAULT 0, waits_for INTEGER, pending TEXT,
            updated {t['real']} NOT NULL, {', '.join(FIRE_COLUMNS + REVISION_COLUMNS)})""",
        *REVISION_INDEXES,
        f"""CREATE TABLE IF NOT EXISTS results (
            id {t['id']}, member INTEGER NOT NULL, start INTEGER NOT NULL,
            step INTEGER NOT NULL, score {t['real']}, metrics TEXT NOT NULL, hparams TEXT NOT NULL,
            seconds {t['real']} NOT NULL, time {t['real']} NOT NULL,
            checkpoint INTEGER, parent INTEGER)""",
        "CREATE INDEX IF NOT EXISTS results_member ON results (member, step)",
        f"""CREATE TABLE IF NOT EXISTS events (
            id {t['id']}, kind TEXT NOT NULL, member INTEGER NOT NULL, donor INTEGER,
            step INTEGER NOT NULL, donor_step INTEGER, before TEXT, after TEXT,
            strategy TEXT NOT NULL, detail TEXT, result INTEGER, time {t['real']} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_member ON events (member, id)",
    ]
