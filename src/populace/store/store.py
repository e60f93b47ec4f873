"""The population store: the single source of truth of a run.

Every backend keeps four promises, and nothing above this module relies on
anything else:

1. A claim is atomic: two workers never hold a lease on one member.
2. A report and the exploit/explore decision it triggers are one
   transaction against the latest population: either both are stored or
   neither is, and no result, event or checkpoint row is lost or duplicated.
3. A report from a worker whose lease has been lost is refused and recorded,
   so a late worker cannot overwrite a member someone else now trains.
4. Every exploit decision is carried out, now or once its donor catches up,
   or recorded as a 'dropped' event with its reason: none is lost silently.

The fourth is kept by `populace.store.exploits`, which carries out the decisions
inside the transaction of the report (or failure) that set them off.

The SQL here is shared by all backends; a backend (a `Driver`) only supplies
the connection, the column types and the way a write transaction is
serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from populace.store import migrate
from populace.store.driver import Cursor, Driver, StoreError
from populace.store.exploits import Applied, Decide, Exploits
from populace.store.find import claimable, intact_ancestor, own_newest, unreferenced
from populace.store.read import StoreReader
from populace.store.records import (
    FailOutcome,
    Kind,
    MemberRow,
    Outcome,
    Report,
    Role,
    RunRecord,
    Status,
)
from populace.store.retry import retried
from populace.store.rows import finite, record_event, stored_objectives
from populace.store.schema import SCHEMA_VERSION, schema

__all__ = ["SCHEMA_VERSION", "Store", "StoreError"]

# how many (step, score) points of its lineage each member keeps, to rank members that are
# at other steps by what they scored at the decider's step (`Snapshot.aligned`)
TRAIL = 32


class Store(StoreReader):
    """A run's population database, over any `Driver`: the reads, and every write.

    A call raises what `StoreReader` says every call raises, and what its own
    `Raises` names.
    """

    # -- the run ---------------------------------------------------------

    def __init__(self, driver: Driver, patience: float = 60.0):
        super().__init__(driver, patience)
        self._upgrade()

    @retried
    def _upgrade(self) -> None:
        """Upgrade a store an older populace wrote, whole, and say so
        (`populace.store.migrate.upgrade_store`); one too old to upgrade, or newer, is
        refused when read.

        Raises:
            StoreError: the copy of a SQLite store could not be made (nothing upgraded).
        """
        migrate.upgrade_store(self.driver, self._version)

    def create(self, config: RunRecord, hparams: list[dict[str, Any]],
               groups: Sequence[int] | None = None) -> None:
        """Start a run: its record and one member per hparams, in one transaction.

        `groups` is FIRE-PBT's layout, fixed here for the whole run: each member's
        sub-population, 1..n, or 0 for an evaluator, which starts idle (None: one
        population, every member in sub-population 1).

        Raises:
            StoreError: the store already holds a run; `groups` is not one int >= 0 per
                member.
        """
        subs = _subs(groups, len(hparams))
        with self.driver.write() as cur:
            for sql in (*schema(self.driver.types), *self.driver.triggers):
                cur.execute(sql)
            cur.execute("SELECT value FROM meta WHERE key = 'config'")
            if cur.fetchone() is not None:
                raise StoreError(f"{self.url} already holds a run")
            now = time.time()
            for key, value in (
                ("schema_version", SCHEMA_VERSION),
                ("config", config.to_dict()),
                ("created", now),
                # the run's own name, which its checkpoint storage carries (`mark`)
                ("run", uuid.uuid4().hex),
            ):
                cur.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            for i, (h, sub) in enumerate(zip(hparams, subs, strict=True)):
                evaluator = sub == 0  # an evaluator waits idle for its first parent
                cur.execute(
                    "INSERT INTO members (id, hparams, step, score, generation, parent, status,"
                    " updated, sub, role) VALUES (?, ?, 0, NULL, 0, NULL, ?, ?, ?, ?)",
                    (i, json.dumps(h), Status.IDLE if evaluator else Status.READY, now, sub,
                     Role.EVALUATOR if evaluator else Role.MEMBER),
                )

    # -- workers: claim, heartbeat, report, fail --------------------------

    @retried
    def extend(self, steps: int) -> list[int]:
        """Let the run train on to `steps`, more than it was started with; the members
        that had finished are ready again (returned). Only while nothing trains it.

        Raises:
            StoreError: `steps` is not past the run's steps; the store holds no run.
        """
        now = time.time()
        with self.driver.write() as cur:
            record = self._config(cur)
            if steps <= record.steps:
                raise StoreError(f"a run can only be extended: it has {record.steps} "
                                 f"steps, got {steps}")
            extended = replace(record, run={**record.run, "steps": steps})
            cur.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                        (json.dumps(extended.to_dict()),))
            cur.execute("SELECT id FROM members WHERE status = ? ORDER BY id", (Status.DONE,))
            done = [row[0] for row in cur.fetchall()]
            cur.execute("UPDATE members SET status = ?, updated = ? WHERE status = ?",
                        (Status.READY, now, Status.DONE))
        self.__dict__.pop("_config_memo", None)  # the settings changed: read them again
        return done

    @retried
    def change_settings(self, changes: Mapping[str, Any]) -> None:
        """Store new values of settings that may change on a resume (a stop setting, say):
        every worker reads the run's settings from here.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.write() as cur:
            record = self._config(cur)
            changed = replace(record, run={**record.run, **changes})
            cur.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                        (json.dumps(changed.to_dict()),))
        self.__dict__.pop("_config_memo", None)

    @retried
    def begin_session(self) -> None:
        """A run command starts training the run: its time counts toward `time_budget`.

        Raises:
            StoreError: the store holds no run.
        """
        self._set_meta("session", time.time())

    @retried
    def end_session(self) -> None:
        """The run command ends: its session's time is added to the run's training time.

        Raises:
            StoreError: the store holds no run.
        """
        with self.driver.write() as cur:
            cur.execute("SELECT key, value FROM meta WHERE key IN ('session', 'trained')")
            found = {key: json.loads(value) for key, value in cur.fetchall()}
            if found.get("session") is not None:
                trained = found.get("trained", 0.0) + time.time() - found["session"]
                self._upsert(cur, "trained", trained)
                self._upsert(cur, "session", None)

    def trained_seconds(self) -> float:
        """The seconds run commands have spent training this run (a killed command's
        session, never ended, counts only while it is the newest).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        trained, session = self.meta("trained") or 0.0, self.meta("session")
        return trained + (time.time() - session if session is not None else 0.0)

    @retried
    def remember_source(self, digest: str | None) -> None:
        """Store the digest of the script a run command trains the run with: the next
        command tells by it whether the script was edited in between.

        Raises:
            StoreError: the store holds no run.
        """
        self._set_meta("source", digest)

    def _set_meta(self, key: str, value: Any) -> None:
        with self.driver.write() as cur:
            self._upsert(cur, key, value)

    @staticmethod
    def _upsert(cur: Cursor, key: str, value: Any) -> None:
        cur.execute("INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)))

    @retried
    def stop(self, reason: str | None) -> None:
        """Mark the run stopped early, saying why (None clears the mark): its workers
        claim nothing more, and an unfinished run reads as stopped, not as killed.

        Raises:
            StoreError: the store holds no run.
        """
        with self.driver.write() as cur:
            if reason is None:
                cur.execute("DELETE FROM meta WHERE key = 'stopped'")
            else:
                self._upsert(cur, "stopped", reason)

    @retried
    def retry_failed(self, members: Sequence[int] | None = None) -> list[int]:
        """Make failed members (all, or those of `members`) train again from their own
        checkpoints, as after a fix of what made them fail; return those retried.

        Raises:
            StoreError: the store holds no run.
        """
        now = time.time()
        with self.driver.write() as cur:
            cur.execute("SELECT id, step FROM members WHERE status = ? ORDER BY id",
                        (Status.FAILED,))
            rows = [(m, step) for m, step in cur.fetchall() if members is None or m in members]
            for member, step in rows:
                cur.execute("UPDATE members SET status = ?, failures = 0, error = NULL,"
                            " updated = ? WHERE id = ?", (Status.READY, now, member))
                record_event(cur, Kind.RETRY, member, step, now,
                             detail="retried by hand (populace retry)")
        return [m for m, _ in rows]

    @retried
    def claim(self, worker: str, lease: float, prefer: int | None = None) -> MemberRow | None:
        """Lease the member furthest behind (ties: `prefer`, then lowest id), or None.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        now = time.time()
        with self.driver.write() as cur:
            member = claimable(cur, now, prefer, self._config_cached(cur).synch)
            if member is None:
                return None
            cur.execute(
                "UPDATE members SET status = ?, lease_owner = ?, lease_expires = ?,"
                " updated = ? WHERE id = ?",
                (Status.RUNNING, worker, now + lease, now, member),
            )
            return self._member(cur, member)

    @retried
    def heartbeat(self, worker: str, member: int, lease: float) -> bool:
        """Extend `worker`'s lease on `member`; False when the lease was lost.

        Raises:
            StoreError: the store holds no run.
        """
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET lease_expires = ? WHERE id = ? AND lease_owner = ?"
                " AND status = ?",
                (time.time() + lease, member, worker, Status.RUNNING),
            )
            return cur.rowcount == 1

    @retried
    def report(self, report: Report, decide: Decide | None, keep: int) -> Outcome:
        """Store a segment's result and apply the decision it triggers, atomically.

        `decide(snapshot, member)` receives the members still training as they
        are after this result (a finished member cannot be copied) and returns
        an exploit/explore `Decision` or None; it must be pure. It decides for
        the reporting member, or, in a synchronous run, for every member at
        once when this report completes a generation; in a FIRE-PBT run, for its
        idle evaluators too (after the reporter, or with the generation), as the
        report may have freed a parent for them.
        `keep` is how many of the member's own newest checkpoints survive
        collection.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
            Exception: whatever `decide` raises; nothing of the report is then stored.
        """
        with self._population.kept(), self.driver.write() as cur:
            return self._report(cur, report, decide, keep, time.time())

    @retried
    def report_all(self, reports: Sequence[Report], decide: Decide | None,
                   keep: int) -> list[Outcome]:
        """Store the results of members ready together (a vectorized run's, a synchronous
        round's) as `report` stores each, in their order, in one transaction: one commit
        for them all instead of one each; the outcomes in the same order.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
            Exception: whatever `decide` raises; nothing of any report is then stored.
        """
        with self._population.kept(), self.driver.write() as cur:
            now = time.time()
            return [self._report(cur, report, decide, keep, now) for report in reports]

    def _report(self, cur: Cursor, report: Report, decide: Decide | None, keep: int,
                now: float) -> Outcome:
        """One report inside the caller's write transaction (`report`)."""
        if not self._holds_lease(cur, report.member, report.worker):
            return self._refuse(cur, report, now)
        checkpoint, result = self._record(cur, report, now)
        exploits = self._exploits(cur, decide, result, now)
        # members waiting for this one copy its new state before it decides for itself
        exploits.resolve(report.member)
        applied: Applied = {}
        if not report.final and decide is not None:
            members = exploits.deciding(report.member, report.step)
            if members:
                applied = exploits.decide_for(members)
            exploits.start_idle()  # FIRE: evaluators this report may give a parent
        decision, donor_checkpoint = applied.get(report.member, (None, None))
        collect = self._collect(cur, report.member, keep)
        return Outcome(True, checkpoint, decision, donor_checkpoint, collect)

    def _refuse(self, cur: Cursor, report: Report, now: float) -> Outcome:
        """The answer to a report from a worker without the lease: refused and recorded,
        unless it is this very report, stored by an earlier attempt whose commit's answer
        the network lost (the member row then already holds what it decided)."""
        cur.execute("SELECT id FROM checkpoints WHERE key = ? AND member = ?",
                    (report.key, report.member))
        if (row := cur.fetchone()) is not None:
            return Outcome(True, row[0])
        record_event(cur, Kind.REFUSED, report.member, report.step, now,
                     detail=f"late report from worker {report.worker}: its lease was lost")
        # its checkpoint file is nobody's, unless a live row names the same file
        cur.execute("SELECT COUNT(*) FROM checkpoints WHERE key = ? AND deleted = 0",
                    (report.key,))
        return Outcome(accepted=False, collect=[] if cur.fetchone()[0] else [report.key])

    def _record(self, cur: Cursor, report: Report, now: float) -> tuple[int, int]:
        """Write the report's checkpoint and result rows and the member's new state;
        return the two rows' ids."""
        score = finite(report.score)
        hparams = json.dumps(report.hparams)
        cur.execute(
            "INSERT INTO checkpoints (member, step, key, sha256, bytes, created)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (report.member, report.step, report.key, report.sha256, report.bytes, now),
        )
        checkpoint = cur.fetchone()[0]
        # the segment started from the member's checkpoint as it is now: no exploit or
        # recover moves a member while a worker holds its lease
        cur.execute("SELECT checkpoint, trail, recent, segments, score FROM members"
                    " WHERE id = ?", (report.member,))
        parent, trail, recent, segments, before = cur.fetchone()
        cur.execute(
            "INSERT INTO results (member, start, step, score, metrics, hparams, seconds,"
            " time, checkpoint, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (report.member, report.start, report.step, score,
             json.dumps(report.metrics), hparams, report.seconds, now, checkpoint, parent),
        )
        result = cur.fetchone()[0]
        if score is not None:
            trail, recent = self._remember(cur, trail, recent, report.step, score)
            if before is not None and self._config_cached(cur).segments:
                segments = self._segment(cur, segments, report, before, score)
        if score is not None and self._config_cached(cur).curve:
            self._extend_curve(cur, report.member, [*report.points, (report.step, score)])
        cur.execute(
            "UPDATE members SET step = ?, score = ?, checkpoint = ?, hparams = ?,"
            " status = ?, lease_owner = NULL, lease_expires = NULL, failures = 0,"
            " trail = ?, recent = ?, segments = ?, objectives = ?, updated = ? WHERE id = ?",
            (report.step, score, checkpoint, hparams,
             Status.DONE if report.final else Status.READY, trail, recent, segments,
             stored_objectives(self._config_cached(cur).objectives, report.metrics), now,
             report.member),
        )
        return checkpoint, result

    @retried
    def recover(self, worker: str, member: int, key: str, detail: str) -> MemberRow | None:
        """Send `member` back to the state it held before its checkpoint's file failed its hash.

        Every row of the damaged file is marked deleted (the file is bad for
        every member that points at it). A checkpoint the member wrote itself
        sends it back along its lineage, to the newest intact state its segments
        started from, with the hparams it trained from there; one it had copied
        undoes the copy, back to its own newest checkpoint and hparams. With
        neither it starts from scratch. A 'recover' event records both steps and
        the error. None when `worker` lost the lease.

        Raises:
            StoreError: the store holds no run.
        """
        now = time.time()
        with self.driver.write() as cur:
            if not self._holds_lease(cur, member, worker):
                return None
            cur.execute("SELECT c.key FROM members m JOIN checkpoints c ON c.id = m.checkpoint"
                        " WHERE m.id = ?", (member,))
            if (row := cur.fetchone()) is None or row[0] != key:
                return self._member(cur, member)  # already sent back (an earlier attempt)
            cur.execute("UPDATE checkpoints SET deleted = 1 WHERE key = ?", (key,))
            cur.execute("SELECT m.step, m.hparams, m.checkpoint, c.member FROM members m"
                        " LEFT JOIN checkpoints c ON c.id = m.checkpoint WHERE m.id = ?",
                        (member,))
            was, before, damaged, owner = cur.fetchone()
            checkpoint, step, hparams = (intact_ancestor(cur, damaged) if owner == member
                                         else own_newest(cur, member)) or (None, 0, before)
            # the trail forgets the steps the member no longer has
            cur.execute("SELECT trail FROM members WHERE id = ?", (member,))
            trail = [p for p in json.loads(cur.fetchone()[0]) if p[0] <= step]
            cur.execute("UPDATE members SET checkpoint = ?, step = ?, hparams = ?, trail = ?,"
                        " updated = ? WHERE id = ?",
                        (checkpoint, step, hparams, json.dumps(trail), now, member))
            cur.execute("SELECT MAX(id) FROM results")
            record_event(cur, Kind.RECOVER, member, was, now, donor=member, donor_step=step,
                         before=json.loads(before), after=json.loads(hparams), detail=detail,
                         result=cur.fetchone()[0])
            return self._member(cur, member)

    @retried
    def release(self, worker: str, member: int) -> bool:
        """Give back `worker`'s lease on `member` untouched (an interrupted segment).

        Raises:
            StoreError: the store holds no run.
        """
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET status = ?, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_owner = ? AND status = ?",
                (Status.READY, member, worker, Status.RUNNING),
            )
            return cur.rowcount == 1

    @retried
    def fail(self, worker: str, member: int, error: str, retries: int = 0,
             replace: Decide | None = None, decide: Decide | None = None,
             timed_out: bool = False) -> FailOutcome:
        """Record a segment that raised (traceback in `error`), or one stopped because it
        did not report in time (`timed_out`: a 'timeout' event first); say what became of
        the member.

        'retry': it failed at most `retries` times in a row, and trains the
        segment again from its checkpoint. Past that, 'replaced': `replace`
        (the run's exploit and explore) made it copy a healthy member, or
        'failed': it stays failed, never a donor. 'lost': `worker` no longer
        held the lease, and nothing changed. In a synchronous run the failure
        may complete a generation: `decide` then decides it.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
            Exception: whatever `replace` or `decide` raises; nothing of the failure is
                then stored.
        """
        now = time.time()
        with self._population.kept(), self.driver.write() as cur:
            if not self._holds_lease(cur, member, worker):
                return FailOutcome.LOST
            cur.execute("SELECT step, failures FROM members WHERE id = ?", (member,))
            step, failures = cur.fetchone()
            if timed_out:
                record_event(cur, Kind.TIMEOUT, member, step, now, detail=error)
            if failures < retries:
                cur.execute(
                    "UPDATE members SET status = ?, failures = ?, lease_owner = NULL,"
                    " lease_expires = NULL, updated = ? WHERE id = ?",
                    (Status.READY, failures + 1, now, member),
                )
                record_event(cur, Kind.RETRY, member, step, now, detail=error)
                return FailOutcome.RETRY
            record_event(cur, Kind.FAILED, member, step, now, detail=error)
            # no score: a failed member ranks last and never donates
            cur.execute(
                "UPDATE members SET status = ?, score = NULL, error = ?, failures = 0,"
                " lease_owner = NULL, lease_expires = NULL, updated = ? WHERE id = ?",
                (Status.FAILED, error, now, member),
            )
            cur.execute("SELECT MAX(id) FROM results")
            newest = cur.fetchone()[0]
            exploits = self._exploits(cur, decide, newest, now)
            outcome = FailOutcome.FAILED
            if replace is not None:
                cur.execute("UPDATE members SET status = ? WHERE id = ?", (Status.READY, member))
                if self._exploits(cur, replace, newest, now).decide_for([member]):
                    outcome = FailOutcome.REPLACED
                else:
                    cur.execute("UPDATE members SET status = ? WHERE id = ?",
                                (Status.FAILED, member))
            if outcome is FailOutcome.FAILED:
                exploits.resolve(member)
            cur.execute("SELECT MIN(step) FROM members WHERE status IN (?, ?)",
                        (Status.READY, Status.RUNNING))
            low = cur.fetchone()[0]
            if decide is not None and low is not None:
                generation = exploits.deciding(None, low)
                if generation:
                    exploits.decide_for(generation)
            return outcome

    def _exploits(self, cur: Cursor, decide: Decide | None, result: int | None,
                  now: float) -> Exploits:
        """This transaction's exploit decisions: made by `decide`, after result row `result`,
        against the members training now."""
        return Exploits(cur, decide, result, now, self._config_cached(cur),
                        lambda: self._snapshot(cur, training=True))

    def _holds_lease(self, cur: Cursor, member: int, worker: str) -> bool:
        cur.execute("SELECT status, lease_owner FROM members WHERE id = ?", (member,))
        row = cur.fetchone()
        return row is not None and row[0] == Status.RUNNING and row[1] == worker

    def _remember(self, cur: Cursor, trail: str, recent: str, step: int,
                  score: float) -> tuple[str, str]:
        """A member's trail and (for a t-test) recent window with a finite score added."""
        window = self._window(cur)
        if window:
            recent = json.dumps((json.loads(recent) + [score])[-window:])
        return json.dumps((json.loads(trail) + [[step, score]])[-TRAIL:]), recent

    def _extend_curve(self, cur: Cursor, member: int, points: list[tuple[int, float]]) -> None:
        """Add the segment's points (its scores within, `Report.points`, then its end's) to
        the member's curve, the newest points kept."""
        cur.execute("SELECT curve FROM members WHERE id = ?", (member,))
        curve = json.loads(cur.fetchone()[0]) + [[s, v] for s, v in points]
        cur.execute("UPDATE members SET curve = ? WHERE id = ?",
                    (json.dumps(curve[-self._config_cached(cur).curve:]), member))

    def _segment(self, cur: Cursor, segments: str, report: Report, before: float,
                 score: float) -> str:
        """A member's window of segments with this one added: from the step and score its
        row held when the segment started, trained with the report's hparams."""
        segment = [report.start, report.step, before, score, report.hparams]
        return json.dumps((json.loads(segments) + [segment])[-self._config_cached(cur).segments:])

    def _collect(self, cur: Cursor, member: int, keep: int) -> list[str]:
        """Mark the member's old, unreferenced checkpoints deleted; return files to remove."""
        cur.execute(
            "SELECT id FROM checkpoints WHERE member = ? ORDER BY id DESC LIMIT ?", (member, keep)
        )
        newest = {row[0] for row in cur.fetchall()}
        keys = []
        for cid, key in unreferenced(cur, member):
            if cid in newest:
                continue
            cur.execute("UPDATE checkpoints SET deleted = 1 WHERE id = ?", (cid,))
            # a file is written for one row; a row of its own names it only in tests and
            # in stores of older populace versions, so check rather than trust
            cur.execute("SELECT COUNT(*) FROM checkpoints WHERE key = ? AND deleted = 0", (key,))
            if cur.fetchone()[0] == 0:
                keys.append(key)
        return keys


def _subs(groups: Sequence[int] | None, members: int) -> list[int]:
    """Each member's sub-population from `Store.create`'s `groups` (None: all in 1)."""
    if groups is None:
        return [1] * members
    subs = list(groups)
    if len(subs) != members or not all(
            isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g >= 0
            for g in subs):
        raise StoreError(f"groups must hold one int >= 0 per member ({members}), got {subs}")
    return [int(g) for g in subs]
