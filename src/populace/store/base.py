"""The population store: the single source of truth of a run.

Every backend keeps three promises, and nothing above this module relies on
anything else:

1. A claim is atomic: two workers never hold a lease on one member.
2. A report and the exploit/explore decision it triggers are one
   transaction against the latest population: either both are stored or
   neither is, and no result, event or checkpoint row is lost or duplicated.
3. A report from a worker whose lease has been lost is refused and recorded,
   so a late worker cannot overwrite a member someone else now trains.

The SQL here is shared by all backends; a backend (a `Driver`) only supplies
the connection, the column types and the way a write transaction is
serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from populace.store.records import (
    CheckpointRow,
    Decision,
    Event,
    MemberRow,
    Outcome,
    Report,
    Result,
)
from populace.strategies.snapshot import Snapshot

SCHEMA_VERSION = 1

# exploit + explore for one member (by id) against a population snapshot
Decide = Callable[[Snapshot, int], "Decision | None"]


class StoreError(RuntimeError):
    """The store cannot be used as asked (not a populace store, no run, a newer schema...)."""


class Cursor(Protocol):
    def execute(self, sql: str, params: tuple | list = ()) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...


class Driver(Protocol):
    """What a backend supplies: connections and transactions, nothing else."""

    url: str
    types: dict[str, str]  # id, real, text, blob column types in the backend's dialect

    def write(self) -> AbstractContextManager[Cursor]:
        """A serialised write transaction (committed on exit, rolled back on error)."""

    def read(self) -> AbstractContextManager[Cursor]:
        """A read-only transaction seeing one consistent state."""

    def columns(self, cur: Cursor, table: str) -> set[str]:
        """The column names of `table` (empty when there is no such table)."""

    def close(self) -> None: ...

    def remove(self) -> None:
        """Delete the store's database (only ever one that holds no run)."""


def _schema(types: dict[str, str]) -> list[str]:
    t = types
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS checkpoints (
            id {t['id']}, member INTEGER NOT NULL, step INTEGER NOT NULL,
            key TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
            created {t['real']} NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)""",
        """CREATE INDEX IF NOT EXISTS checkpoints_member
            ON checkpoints (member, deleted, id)""",
        "CREATE INDEX IF NOT EXISTS checkpoints_sha ON checkpoints (sha256, deleted)",
        # a member's newest checkpoints, read at every report, without sorting its history
        "CREATE INDEX IF NOT EXISTS checkpoints_newest ON checkpoints (member, id)",
        f"""CREATE TABLE IF NOT EXISTS members (
            id INTEGER PRIMARY KEY, hparams TEXT NOT NULL, step INTEGER NOT NULL,
            score {t['real']}, generation INTEGER NOT NULL, parent INTEGER,
            status TEXT NOT NULL, checkpoint INTEGER REFERENCES checkpoints (id),
            lease_owner TEXT, lease_expires {t['real']}, error TEXT,
            recent TEXT NOT NULL DEFAULT '[]', failures INTEGER NOT NULL DEFAULT 0,
            updated {t['real']} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS results (
            id {t['id']}, member INTEGER NOT NULL, start INTEGER NOT NULL,
            step INTEGER NOT NULL, score {t['real']}, metrics TEXT NOT NULL, hparams TEXT NOT NULL,
            seconds {t['real']} NOT NULL, time {t['real']} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS results_member ON results (member, step)",
        f"""CREATE TABLE IF NOT EXISTS events (
            id {t['id']}, kind TEXT NOT NULL, member INTEGER NOT NULL, donor INTEGER,
            step INTEGER NOT NULL, donor_step INTEGER, before TEXT, after TEXT,
            strategy TEXT NOT NULL, detail TEXT, result INTEGER, time {t['real']} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_member ON events (member, id)",
    ]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class Store:
    """A run's population database, over any `Driver`."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self._hparams_cache: dict[int, tuple[str, Any]] = {}
        self._recent_cache: dict[int, tuple[str, Any]] = {}

    @property
    def url(self) -> str:
        return self.driver.url

    def close(self) -> None:
        self.driver.close()

    # -- the run ---------------------------------------------------------

    def exists(self) -> bool:
        """Whether this store already holds a run."""
        with self.driver.read() as cur:
            if not self._has_meta(cur):
                return False
            cur.execute("SELECT value FROM meta WHERE key = 'config'")
            return cur.fetchone() is not None

    def create(self, config: dict[str, Any], hparams: list[dict[str, Any]]) -> None:
        """Start a run: its config and one member per hparams, in one transaction."""
        with self.driver.write() as cur:
            for sql in _schema(self.driver.types):
                cur.execute(sql)
            cur.execute("SELECT value FROM meta WHERE key = 'config'")
            if cur.fetchone() is not None:
                raise StoreError(f"{self.url} already holds a run")
            now = time.time()
            for key, value in (
                ("schema_version", SCHEMA_VERSION),
                ("config", config),
                ("created", now),
            ):
                cur.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            for i, h in enumerate(hparams):
                cur.execute(
                    "INSERT INTO members (id, hparams, step, score, generation, parent, status,"
                    " updated) VALUES (?, ?, 0, NULL, 0, NULL, 'ready', ?)",
                    (i, json.dumps(h), now),
                )

    def config(self) -> dict[str, Any]:
        """The run's config as it was stored at creation."""
        with self.driver.read() as cur:
            return self._config(cur)

    def meta(self, key: str) -> Any:
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute("SELECT value FROM meta WHERE key = ?", (key,))
            row = cur.fetchone()
            return None if row is None else json.loads(row[0])

    def _has_meta(self, cur: Cursor) -> bool:
        if not {"key", "value"} <= self.driver.columns(cur, "meta"):
            return False  # an empty database, or another program's
        cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        if row is None:
            return False
        version = json.loads(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.url} has store schema version {version}; this populace reads "
                f"version {SCHEMA_VERSION} or older: upgrade populace"
            )
        return True

    def _config(self, cur: Cursor) -> dict[str, Any]:
        if not self._has_meta(cur):
            raise StoreError(f"{self.url} is not a populace store (no run in it)")
        cur.execute("SELECT value FROM meta WHERE key = 'config'")
        return json.loads(cur.fetchone()[0])

    # -- workers: claim, heartbeat, report, fail --------------------------

    def claim(self, worker: str, lease: float, prefer: int | None = None) -> MemberRow | None:
        """Lease the member furthest behind (ties: `prefer`, then lowest id), or None."""
        now = time.time()
        with self.driver.write() as cur:
            # a synchronous run holds back members that finished the current generation
            barrier = (" AND step <= (SELECT MIN(step) FROM members"
                       " WHERE status IN ('ready', 'running'))") if self._run(cur)["synch"] else ""
            cur.execute(
                "SELECT id FROM members WHERE (status = 'ready'"
                f" OR (status = 'running' AND lease_expires < ?)){barrier}"
                " ORDER BY step, CASE WHEN id = ? THEN 0 ELSE 1 END, id LIMIT 1",
                (now, -1 if prefer is None else prefer),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE members SET status = 'running', lease_owner = ?, lease_expires = ?,"
                " updated = ? WHERE id = ?",
                (worker, now + lease, now, row[0]),
            )
            return self._member(cur, row[0])

    def heartbeat(self, worker: str, member: int, lease: float) -> bool:
        """Extend `worker`'s lease on `member`; False when the lease was lost."""
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET lease_expires = ? WHERE id = ? AND lease_owner = ?"
                " AND status = 'running'",
                (time.time() + lease, member, worker),
            )
            return cur.rowcount == 1

    def report(self, report: Report, decide: Decide | None, keep: int) -> Outcome:
        """Store a segment's result and apply the decision it triggers, atomically.

        `decide(snapshot, member)` receives the population as it is after this
        result and returns an exploit/explore `Decision` or None; it must be
        pure. It decides for the reporting member, or, in a synchronous run,
        for every member at once when this report completes a generation.
        `keep` is how many of the member's own newest checkpoints survive
        collection.
        """
        now = time.time()
        with self.driver.write() as cur:
            if not self._holds_lease(cur, report.member, report.worker):
                self._insert_event(
                    cur, "refused", report.member, None, report.step, None, None, None, "",
                    f"late report from worker {report.worker}: its lease was lost", now,
                )
                # its checkpoint file is nobody's, unless a live row holds the same bytes
                cur.execute("SELECT COUNT(*) FROM checkpoints WHERE sha256 = ? AND deleted = 0",
                            (report.sha256,))
                return Outcome(accepted=False,
                               collect=[] if cur.fetchone()[0] else [report.key])
            score = _finite(report.score)
            hparams = json.dumps(report.hparams)
            cur.execute(
                "INSERT INTO checkpoints (member, step, key, sha256, bytes, created)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (report.member, report.step, report.key, report.sha256, report.bytes, now),
            )
            checkpoint = cur.fetchone()[0]
            cur.execute(
                "INSERT INTO results (member, start, step, score, metrics, hparams, seconds,"
                " time) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (report.member, report.start, report.step, score,
                 json.dumps(report.metrics), hparams, report.seconds, now),
            )
            result = cur.fetchone()[0]
            cur.execute(
                "UPDATE members SET step = ?, score = ?, checkpoint = ?, hparams = ?,"
                " status = ?, lease_owner = NULL, lease_expires = NULL, failures = 0,"
                " updated = ? WHERE id = ?",
                (report.step, score, checkpoint, hparams,
                 "done" if report.final else "ready", now, report.member),
            )
            if score is not None and self._window(cur):
                self._remember(cur, report.member, score)
            applied: dict[int, tuple[Decision, CheckpointRow]] = {}
            if not report.final and decide is not None:
                members = self._deciding(cur, report.member, report.step)
                if members:
                    applied = self._decide(cur, members, decide, result, now)
            decision, donor_checkpoint = applied.get(report.member, (None, None))
            collect = self._collect(cur, report.member, keep)
            return Outcome(True, checkpoint, decision, donor_checkpoint, collect)

    def recover(self, worker: str, member: int, sha256: str, detail: str) -> MemberRow | None:
        """Put `member` back on its newest other checkpoint after its file failed its hash.

        Every row of the damaged content is marked deleted (the file is bad for
        every member that points at it). The member falls back to its own newest
        remaining checkpoint, or starts from scratch when it has none, and a
        'recover' event records both steps and the error. None when `worker`
        lost the lease.
        """
        now = time.time()
        with self.driver.write() as cur:
            if not self._holds_lease(cur, member, worker):
                return None
            cur.execute("UPDATE checkpoints SET deleted = 1 WHERE sha256 = ?", (sha256,))
            cur.execute(
                "SELECT id, step FROM checkpoints WHERE member = ? AND deleted = 0"
                " ORDER BY id DESC LIMIT 1", (member,),
            )
            fallback = cur.fetchone()
            checkpoint, step = fallback if fallback is not None else (None, 0)
            cur.execute("SELECT step, hparams FROM members WHERE id = ?", (member,))
            was, hparams = cur.fetchone()
            cur.execute("UPDATE members SET checkpoint = ?, step = ?, updated = ? WHERE id = ?",
                        (checkpoint, step, now, member))
            cur.execute("SELECT MAX(id) FROM results")
            # like an exploit of its own earlier state: the lineage then drops the results
            # trained on top of the damaged checkpoint
            self._insert_event(cur, "recover", member, member, was, step, json.loads(hparams),
                               json.loads(hparams), "", detail, now, cur.fetchone()[0])
            return self._member(cur, member)

    def release(self, worker: str, member: int) -> bool:
        """Give back `worker`'s lease on `member` untouched (an interrupted segment)."""
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET status = 'ready', lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (member, worker),
            )
            return cur.rowcount == 1

    def fail(self, worker: str, member: int, error: str, retries: int = 0,
             replace: Decide | None = None, decide: Decide | None = None) -> str:
        """Record a segment that raised (traceback in `error`); say what became of the member.

        'retry': it failed at most `retries` times in a row, and trains the
        segment again from its checkpoint. Past that, 'replaced': `replace`
        (the run's exploit and explore) made it copy a healthy member, or
        'failed': it stays failed, never a donor. 'lost': `worker` no longer
        held the lease, and nothing changed. In a synchronous run the failure
        may complete a generation: `decide` then decides it.
        """
        now = time.time()
        with self.driver.write() as cur:
            if not self._holds_lease(cur, member, worker):
                return "lost"
            cur.execute("SELECT step, failures FROM members WHERE id = ?", (member,))
            step, failures = cur.fetchone()
            if failures < retries:
                cur.execute(
                    "UPDATE members SET status = 'ready', failures = ?, lease_owner = NULL,"
                    " lease_expires = NULL, updated = ? WHERE id = ?",
                    (failures + 1, now, member),
                )
                self._insert_event(cur, "retry", member, None, step, None, None, None, "",
                                   error, now)
                return "retry"
            self._insert_event(cur, "failed", member, None, step, None, None, None, "",
                               error, now)
            # no score: a failed member ranks last and never donates
            cur.execute(
                "UPDATE members SET status = 'failed', score = NULL, error = ?, failures = 0,"
                " lease_owner = NULL, lease_expires = NULL, updated = ? WHERE id = ?",
                (error, now, member),
            )
            cur.execute("SELECT MAX(id) FROM results")
            newest = cur.fetchone()[0]
            outcome = "failed"
            if replace is not None:
                cur.execute("UPDATE members SET status = 'ready' WHERE id = ?", (member,))
                if self._decide(cur, [member], replace, newest, now):
                    outcome = "replaced"
                else:
                    cur.execute("UPDATE members SET status = 'failed' WHERE id = ?", (member,))
            cur.execute("SELECT MIN(step) FROM members WHERE status IN ('ready', 'running')")
            low = cur.fetchone()[0]
            if decide is not None and low is not None:
                generation = self._deciding(cur, None, low)
                if generation:
                    self._decide(cur, generation, decide, newest, now)
            return outcome

    def _holds_lease(self, cur: Cursor, member: int, worker: str) -> bool:
        cur.execute("SELECT status, lease_owner FROM members WHERE id = ?", (member,))
        row = cur.fetchone()
        return row is not None and row[0] == "running" and row[1] == worker

    def _window(self, cur: Cursor) -> int:
        """How many recent scores each member keeps (what the exploit strategy reads)."""
        return self._config_cached(cur).get("window", 0)

    def _remember(self, cur: Cursor, member: int, score: float) -> None:
        cur.execute("SELECT recent FROM members WHERE id = ?", (member,))
        recent = json.loads(cur.fetchone()[0]) + [score]
        cur.execute("UPDATE members SET recent = ? WHERE id = ?",
                    (json.dumps(recent[-self._window(cur):]), member))

    def _deciding(self, cur: Cursor, reporter: int | None, step: int) -> list[int]:
        """Who is decided on now: the reporter, or in a synchronous run the whole
        generation at `step` once none of its members is behind (nobody before that,
        and never twice)."""
        if not self._run(cur)["synch"]:
            return [] if reporter is None else [reporter]
        cur.execute("SELECT value FROM meta WHERE key = 'decided'")
        row = cur.fetchone()
        if row is not None and step <= json.loads(row[0]):
            return []
        cur.execute(
            "SELECT COUNT(*) FROM members WHERE status IN ('ready', 'running') AND step < ?",
            (step,),
        )
        if cur.fetchone()[0]:
            return []
        cur.execute(
            "INSERT INTO meta (key, value) VALUES ('decided', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (json.dumps(step),)
        )
        cur.execute("SELECT id FROM members WHERE status = 'ready' AND step = ? ORDER BY id",
                    (step,))
        return [row[0] for row in cur.fetchall()]

    def _decide(self, cur: Cursor, members: list[int], decide: Decide, result: int | None,
                now: float) -> dict[int, tuple[Decision, CheckpointRow]]:
        """Decide for `members` against one snapshot and apply the exploits.

        `result` is the newest result row: the copies happen after it, so the
        lineage takes a donor's results up to it and a member's own after it.
        """
        snapshot = self._snapshot(cur)
        wanted = {m: d for m in members if (d := decide(snapshot, m)) is not None}
        # every donor's state is read before any member changes: in a synchronous
        # generation a donor may copy another member in the same round
        donors = {d.donor: self._donor(cur, d.donor) for d in wanted.values()}
        applied = {}
        for member, decision in wanted.items():
            donor = donors[decision.donor]
            if donor is None or decision.donor == member:
                continue
            generation, checkpoint, recent = donor
            row = snapshot.index(member)
            if checkpoint.step < snapshot.steps[row]:
                # a copy of a state behind the member would send it back in steps: it
                # would train those steps again and, deciding alike, could loop for ever
                continue
            # the recent scores travel with the weights: they are the copied state's history
            cur.execute(
                "UPDATE members SET hparams = ?, checkpoint = ?, step = ?, generation = ?,"
                " parent = ?, recent = ? WHERE id = ?",
                (json.dumps(decision.hparams), checkpoint.id, checkpoint.step, generation + 1,
                 decision.donor, recent, member),
            )
            self._insert_event(
                cur, "exploit", member, decision.donor, int(snapshot.steps[row]),
                checkpoint.step, snapshot.hparams[row], decision.hparams, decision.strategy,
                None, now, result,
            )
            applied[member] = (decision, checkpoint)
        return applied

    def _donor(self, cur: Cursor, donor: int) -> tuple[int, CheckpointRow, str] | None:
        """A donor's generation, checkpoint and recent scores; None if it cannot donate."""
        cur.execute(
            "SELECT m.generation, c.id, c.member, c.step, c.key, c.sha256, c.bytes, m.status,"
            " m.recent FROM members m JOIN checkpoints c ON c.id = m.checkpoint WHERE m.id = ?",
            (donor,),
        )
        row = cur.fetchone()
        if row is None or row[7] == "failed":
            return None  # a donor without a checkpoint would make the copy train from scratch
        checkpoint = CheckpointRow(*row[1:7])
        if checkpoint.step >= self._run(cur)["steps"]:
            return None  # a finished donor's copy would end as its clone, never trained again
        return row[0], checkpoint, row[8]

    def _collect(self, cur: Cursor, member: int, keep: int) -> list[str]:
        """Mark the member's old, unreferenced checkpoints deleted; return files to remove."""
        cur.execute(
            "SELECT id FROM checkpoints WHERE member = ? ORDER BY id DESC LIMIT ?", (member, keep)
        )
        newest = {row[0] for row in cur.fetchall()}
        cur.execute(
            "SELECT id, sha256, key FROM checkpoints WHERE member = ? AND deleted = 0"
            " AND id NOT IN (SELECT checkpoint FROM members WHERE checkpoint IS NOT NULL)",
            (member,),
        )
        keys = []
        for cid, sha, key in cur.fetchall():
            if cid in newest:
                continue
            cur.execute("UPDATE checkpoints SET deleted = 1 WHERE id = ?", (cid,))
            cur.execute(
                "SELECT COUNT(*) FROM checkpoints WHERE sha256 = ? AND deleted = 0", (sha,)
            )
            if cur.fetchone()[0] == 0:  # content-addressed: another row may share the file
                keys.append(key)
        return keys

    def _insert_event(self, cur: Cursor, kind: str, member: int, donor: int | None, step: int,
                      donor_step: int | None, before: dict | None, after: dict | None,
                      strategy: str, detail: str | None, now: float,
                      result: int | None = None) -> None:
        cur.execute(
            "INSERT INTO events (kind, member, donor, step, donor_step, before, after,"
            " strategy, detail, result, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, member, donor, step, donor_step,
             None if before is None else json.dumps(before),
             None if after is None else json.dumps(after), strategy, detail, result, now),
        )

    # -- reading -----------------------------------------------------------

    def _snapshot(self, cur: Cursor) -> Snapshot:
        """Each live member's latest state, reading the member rows only (never history)."""
        cur.execute(
            "SELECT id, step, score, hparams, recent FROM members WHERE status != 'failed'"
            " ORDER BY id"
        )
        rows = cur.fetchall()
        hparams = [self._parsed(self._hparams_cache, r[0], r[3]) for r in rows]
        recent = ([self._parsed(self._recent_cache, r[0], r[4]) for r in rows]
                  if self._window(cur) else ())
        return Snapshot(
            ids=np.fromiter((r[0] for r in rows), np.int64, len(rows)),
            steps=np.fromiter((r[1] for r in rows), np.int64, len(rows)),
            scores=np.fromiter(
                (np.nan if r[2] is None else r[2] for r in rows), np.float64, len(rows)
            ),
            hparams=hparams,
            maximize=self._run(cur)["mode"] == "max",
            recent=recent,
        )

    @staticmethod
    def _parsed(cache: dict[int, tuple[str, Any]], member: int, text: str) -> Any:
        """JSON `text` of a member's column, parsed only when it changed since last time."""
        hit = cache.get(member)
        if hit is None or hit[0] != text:
            hit = cache[member] = (text, json.loads(text))
        return hit[1]

    def _config_cached(self, cur: Cursor) -> dict[str, Any]:
        """The run's config, read once: it never changes during a run."""
        if not hasattr(self, "_config_memo"):
            self._config_memo = self._config(cur)
        return self._config_memo

    def _run(self, cur: Cursor) -> dict[str, Any]:
        return self._config_cached(cur)["run"]

    def snapshot(self) -> Snapshot:
        with self.driver.read() as cur:
            return self._snapshot(cur)

    _MEMBER_SQL = (
        "SELECT m.id, m.hparams, m.step, m.score, m.generation, m.parent, m.status, m.error,"
        " c.id, c.member, c.step, c.key, c.sha256, c.bytes"
        " FROM members m LEFT JOIN checkpoints c ON c.id = m.checkpoint"
    )

    @staticmethod
    def _member_row(row: tuple) -> MemberRow:
        checkpoint = None if row[8] is None else CheckpointRow(*row[8:14])
        return MemberRow(
            id=row[0], hparams=json.loads(row[1]), step=row[2], score=row[3],
            generation=row[4], parent=row[5], status=row[6], checkpoint=checkpoint,
            error=row[7],
        )

    def _member(self, cur: Cursor, member: int) -> MemberRow:
        cur.execute(self._MEMBER_SQL + " WHERE m.id = ?", (member,))
        return self._member_row(cur.fetchone())

    def members(self) -> list[MemberRow]:
        """Every member's row, by id."""
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(self._MEMBER_SQL + " ORDER BY m.id")
            return [self._member_row(r) for r in cur.fetchall()]

    def results(self, member: int | None = None) -> list[Result]:
        """Every reported result (of one member, or all), in the order they were stored."""
        where, params = ("WHERE member = ?", (member,)) if member is not None else ("", ())
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(
                "SELECT id, member, step, score, metrics, hparams, seconds, time, start"
                f" FROM results {where} ORDER BY id",
                params,
            )
            return [
                Result(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7],
                       r[8])
                for r in cur.fetchall()
            ]

    def events(self, kind: str | None = None) -> list[Event]:
        """Every event (or those of one kind), in the order they happened."""
        where, params = ("WHERE kind = ?", (kind,)) if kind is not None else ("", ())
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(
                "SELECT id, kind, member, donor, step, donor_step, before, after, strategy,"
                f" time, detail, result FROM events {where} ORDER BY id",
                params,
            )
            return [
                Event(r[0], r[1], r[2], r[3], r[4], r[5],
                      None if r[6] is None else json.loads(r[6]),
                      None if r[7] is None else json.loads(r[7]), r[8], r[9], r[10], r[11])
                for r in cur.fetchall()
            ]

    def checkpoints(self, include_deleted: bool = False) -> list[CheckpointRow]:
        where = "" if include_deleted else "WHERE deleted = 0"
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(
                f"SELECT id, member, step, key, sha256, bytes FROM checkpoints {where}"
                " ORDER BY id"
            )
            return [CheckpointRow(*r) for r in cur.fetchall()]

    def progress(self) -> dict[str, Any]:
        """A cheap summary for live displays: counts by status, steps, best score, exploits."""
        with self.driver.read() as cur:
            maximize = self._run(cur)["mode"] == "max"
            cur.execute("SELECT status, COUNT(*), SUM(step) FROM members GROUP BY status")
            by_status = {s: (n, steps) for s, n, steps in cur.fetchall()}
            best = "MAX" if maximize else "MIN"
            cur.execute(f"SELECT {best}(score) FROM members WHERE status != 'failed'")
            best_score = cur.fetchone()[0]
            cur.execute("SELECT COUNT(*) FROM events WHERE kind = 'exploit'")
            exploits = cur.fetchone()[0]
        return {
            "status": {s: n for s, (n, _) in by_status.items()},
            "steps": sum(steps or 0 for _, steps in by_status.values()),
            "best": best_score,
            "exploits": exploits,
        }

