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

The SQL here is shared by all backends; a backend (a `Driver`) only supplies
the connection, the column types and the way a write transaction is
serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from populace import pareto
from populace.snapshot import Snapshot
from populace.store.driver import Cursor, StoreError
from populace.store.read import StoreReader
from populace.store.records import (
    TRAINING,
    CheckpointRow,
    Decision,
    FailOutcome,
    Kind,
    MemberRow,
    Outcome,
    Report,
    RunRecord,
    Status,
)
from populace.store.retry import retried
from populace.store.schema import SCHEMA_VERSION, schema

__all__ = ["SCHEMA_VERSION", "Decide", "Store", "StoreError"]

# the statuses of members still in the run, as an SQL list
_TRAINING_SQL = "(" + ", ".join(f"'{s.value}'" for s in TRAINING) + ")"

# exploit + explore for one member (by id) against a population snapshot
Decide = Callable[[Snapshot, int], "Decision | None"]
# what a donor hands over: its generation, checkpoint, recent scores, trail (both JSON),
# the score its checkpoint was evaluated at and its objectives there (JSON, or None)
DonorState = tuple[int, CheckpointRow, str, str, "float | None", "str | None"]


class Waiting(NamedTuple):
    """A member waiting for its donor: its step, score and hparams, and the decision."""

    member: int
    step: int
    score: float | None
    hparams: dict[str, Any]
    decision: Decision
    objectives: list[float | None] | None = None


# how many (step, score) points of its lineage each member keeps, to rank members that are
# at other steps by what they scored at the decider's step (`Snapshot.aligned`)
TRAIL = 32


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class Store(StoreReader):
    """A run's population database, over any `Driver`: the reads, and every write."""

    # -- the run ---------------------------------------------------------

    def create(self, config: RunRecord, hparams: list[dict[str, Any]]) -> None:
        """Start a run: its record and one member per hparams, in one transaction."""
        with self.driver.write() as cur:
            for sql in schema(self.driver.types):
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
            for i, h in enumerate(hparams):
                cur.execute(
                    "INSERT INTO members (id, hparams, step, score, generation, parent, status,"
                    " updated) VALUES (?, ?, 0, NULL, 0, NULL, 'ready', ?)",
                    (i, json.dumps(h), now),
                )

    # -- workers: claim, heartbeat, report, fail --------------------------

    @retried
    def extend(self, steps: int) -> list[int]:
        """Let the run train on to `steps`, more than it was started with; the members
        that had finished are ready again (returned). Only while nothing trains it."""
        now = time.time()
        with self.driver.write() as cur:
            record = self._config(cur)
            if steps <= record.run["steps"]:
                raise StoreError(f"a run can only be extended: it has {record.run['steps']} "
                                 f"steps, got {steps}")
            extended = replace(record, run={**record.run, "steps": steps})
            cur.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                        (json.dumps(extended.to_dict()),))
            cur.execute("SELECT id FROM members WHERE status = 'done' ORDER BY id")
            done = [row[0] for row in cur.fetchall()]
            cur.execute("UPDATE members SET status = 'ready', updated = ? WHERE status = 'done'",
                        (now,))
        self.__dict__.pop("_config_memo", None)  # the settings changed: read them again
        return done

    @retried
    def change_settings(self, changes: Mapping[str, Any]) -> None:
        """Store new values of settings that may change on a resume (a stop setting, say):
        every worker reads the run's settings from here."""
        with self.driver.write() as cur:
            record = self._config(cur)
            changed = replace(record, run={**record.run, **changes})
            cur.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                        (json.dumps(changed.to_dict()),))
        self.__dict__.pop("_config_memo", None)

    @retried
    def begin_session(self) -> None:
        """A run command starts training the run: its time counts toward `time_budget`."""
        self._set_meta("session", time.time())

    @retried
    def end_session(self) -> None:
        """The run command ends: its session's time is added to the run's training time."""
        with self.driver.write() as cur:
            cur.execute("SELECT key, value FROM meta WHERE key IN ('session', 'trained')")
            found = {key: json.loads(value) for key, value in cur.fetchall()}
            if found.get("session") is not None:
                trained = found.get("trained", 0.0) + time.time() - found["session"]
                self._upsert(cur, "trained", trained)
                self._upsert(cur, "session", None)

    def trained_seconds(self) -> float:
        """The seconds run commands have spent training this run (a killed command's
        session, never ended, counts only while it is the newest)."""
        trained, session = self.meta("trained") or 0.0, self.meta("session")
        return trained + (time.time() - session if session is not None else 0.0)

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
        claim nothing more, and an unfinished run reads as stopped, not as killed."""
        with self.driver.write() as cur:
            if reason is None:
                cur.execute("DELETE FROM meta WHERE key = 'stopped'")
            else:
                self._upsert(cur, "stopped", reason)

    @retried
    def retry_failed(self, members: Sequence[int] | None = None) -> list[int]:
        """Make failed members (all, or those of `members`) train again from their own
        checkpoints, as after a fix of what made them fail; return those retried."""
        now = time.time()
        with self.driver.write() as cur:
            cur.execute("SELECT id, step FROM members WHERE status = 'failed' ORDER BY id")
            rows = [(m, step) for m, step in cur.fetchall() if members is None or m in members]
            for member, step in rows:
                cur.execute("UPDATE members SET status = 'ready', failures = 0, error = NULL,"
                            " updated = ? WHERE id = ?", (now, member))
                self._event(cur, Kind.RETRY, member, step, now,
                            detail="retried by hand (populace retry)")
        return [m for m, _ in rows]

    @retried
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

    @retried
    def heartbeat(self, worker: str, member: int, lease: float) -> bool:
        """Extend `worker`'s lease on `member`; False when the lease was lost."""
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET lease_expires = ? WHERE id = ? AND lease_owner = ?"
                " AND status = 'running'",
                (time.time() + lease, member, worker),
            )
            return cur.rowcount == 1

    @retried
    def report(self, report: Report, decide: Decide | None, keep: int) -> Outcome:
        """Store a segment's result and apply the decision it triggers, atomically.

        `decide(snapshot, member)` receives the members still training as they
        are after this result (a finished member cannot be copied) and returns
        an exploit/explore `Decision` or None; it must be pure. It decides for
        the reporting member, or, in a synchronous run, for every member at
        once when this report completes a generation.
        `keep` is how many of the member's own newest checkpoints survive
        collection.
        """
        now = time.time()
        with self.driver.write() as cur:
            if not self._holds_lease(cur, report.member, report.worker):
                return self._refuse(cur, report, now)
            checkpoint, result = self._record(cur, report, now)
            # members waiting for this one copy its new state before it decides for itself
            self._resolve(cur, report.member, decide, result, now)
            applied: dict[int, tuple[Decision, CheckpointRow | None]] = {}
            if not report.final and decide is not None:
                members = self._deciding(cur, report.member, report.step)
                if members:
                    applied = self._decide(cur, members, decide, result, now)
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
        self._event(cur, Kind.REFUSED, report.member, report.step, now,
                    detail=f"late report from worker {report.worker}: its lease was lost")
        # its checkpoint file is nobody's, unless a live row names the same file
        cur.execute("SELECT COUNT(*) FROM checkpoints WHERE key = ? AND deleted = 0",
                    (report.key,))
        return Outcome(accepted=False, collect=[] if cur.fetchone()[0] else [report.key])

    def _record(self, cur: Cursor, report: Report, now: float) -> tuple[int, int]:
        """Write the report's checkpoint and result rows and the member's new state;
        return the two rows' ids."""
        score = _finite(report.score)
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
        cur.execute(
            "UPDATE members SET step = ?, score = ?, checkpoint = ?, hparams = ?,"
            " status = ?, lease_owner = NULL, lease_expires = NULL, failures = 0,"
            " trail = ?, recent = ?, segments = ?, objectives = ?, updated = ? WHERE id = ?",
            (report.step, score, checkpoint, hparams,
             Status.DONE if report.final else Status.READY, trail, recent, segments,
             self._objectives(cur, report.metrics), now, report.member),
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
            checkpoint, step, hparams = (self._intact_ancestor(cur, damaged) if owner == member
                                         else self._own_newest(cur, member)) or (None, 0, before)
            # the trail forgets the steps the member no longer has
            cur.execute("SELECT trail FROM members WHERE id = ?", (member,))
            trail = [p for p in json.loads(cur.fetchone()[0]) if p[0] <= step]
            cur.execute("UPDATE members SET checkpoint = ?, step = ?, hparams = ?, trail = ?,"
                        " updated = ? WHERE id = ?",
                        (checkpoint, step, hparams, json.dumps(trail), now, member))
            cur.execute("SELECT MAX(id) FROM results")
            self._event(cur, Kind.RECOVER, member, was, now, donor=member, donor_step=step,
                        before=json.loads(before), after=json.loads(hparams), detail=detail,
                        result=cur.fetchone()[0])
            return self._member(cur, member)

    def _intact_ancestor(self, cur: Cursor, checkpoint: int) -> tuple[int, int, str] | None:
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

    def _own_newest(self, cur: Cursor, member: int) -> tuple[int, int, str] | None:
        """The member's own newest intact checkpoint, its step and the hparams it was
        trained with; None when it has none."""
        cur.execute("SELECT c.id, c.step, r.hparams FROM checkpoints c JOIN results r"
                    " ON r.checkpoint = c.id WHERE c.member = ? AND c.deleted = 0"
                    " ORDER BY c.id DESC LIMIT 1", (member,))
        return cur.fetchone()

    @retried
    def release(self, worker: str, member: int) -> bool:
        """Give back `worker`'s lease on `member` untouched (an interrupted segment)."""
        with self.driver.write() as cur:
            cur.execute(
                "UPDATE members SET status = 'ready', lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (member, worker),
            )
            return cur.rowcount == 1

    @retried
    def fail(self, worker: str, member: int, error: str, retries: int = 0,
             replace: Decide | None = None, decide: Decide | None = None) -> FailOutcome:
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
                return FailOutcome.LOST
            cur.execute("SELECT step, failures FROM members WHERE id = ?", (member,))
            step, failures = cur.fetchone()
            if failures < retries:
                cur.execute(
                    "UPDATE members SET status = 'ready', failures = ?, lease_owner = NULL,"
                    " lease_expires = NULL, updated = ? WHERE id = ?",
                    (failures + 1, now, member),
                )
                self._event(cur, Kind.RETRY, member, step, now, detail=error)
                return FailOutcome.RETRY
            self._event(cur, Kind.FAILED, member, step, now, detail=error)
            # no score: a failed member ranks last and never donates
            cur.execute(
                "UPDATE members SET status = 'failed', score = NULL, error = ?, failures = 0,"
                " lease_owner = NULL, lease_expires = NULL, updated = ? WHERE id = ?",
                (error, now, member),
            )
            cur.execute("SELECT MAX(id) FROM results")
            newest = cur.fetchone()[0]
            outcome = FailOutcome.FAILED
            if replace is not None:
                cur.execute("UPDATE members SET status = 'ready' WHERE id = ?", (member,))
                if self._decide(cur, [member], replace, newest, now):
                    outcome = FailOutcome.REPLACED
                else:
                    cur.execute("UPDATE members SET status = 'failed' WHERE id = ?", (member,))
            if outcome is FailOutcome.FAILED:
                self._resolve(cur, member, decide, newest, now)
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
        return row is not None and row[0] == Status.RUNNING and row[1] == worker

    def _remember(self, cur: Cursor, trail: str, recent: str, step: int,
                  score: float) -> tuple[str, str]:
        """A member's trail and (for a t-test) recent window with a finite score added."""
        window = self._window(cur)
        if window:
            recent = json.dumps((json.loads(recent) + [score])[-window:])
        return json.dumps((json.loads(trail) + [[step, score]])[-TRAIL:]), recent

    def _segment(self, cur: Cursor, segments: str, report: Report, before: float,
                 score: float) -> str:
        """A member's window of segments with this one added: from the step and score its
        row held when the segment started, trained with the report's hparams."""
        segment = [report.start, report.step, before, score, report.hparams]
        return json.dumps((json.loads(segments) + [segment])[-self._config_cached(cur).segments:])

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
            f"SELECT COUNT(*) FROM members WHERE status IN {_TRAINING_SQL} AND step < ?",
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
                now: float) -> dict[int, tuple[Decision, CheckpointRow | None]]:
        """Decide for `members` against one snapshot; carry out each exploit, or wait for it.

        A donor whose checkpoint is behind the member would send it back in steps
        (it would train them again and, deciding alike, could loop for ever), so
        the member waits instead: status 'waiting', not claimable, until the donor
        reports a checkpoint at or past its step (`_resolve`); its worker trains
        other members meanwhile. A waiting member is never a donor, so waits
        cannot form a cycle. `result` is the newest result row: the copies happen
        after it, so the lineage takes a donor's results up to it and a member's
        own after it. A checkpoint of None in the answer means the member waits.
        A member that is its own donor keeps its state and takes the new hparams
        (`_explore`).
        """
        snapshot = self._snapshot(cur, training=True)
        wanted = {m: d for m in members if (d := decide(snapshot, m)) is not None}
        # every donor's state is read before any member changes: in a synchronous
        # generation a donor may copy another member in the same round
        donors = {d.donor: self._donor(cur, d.donor) for d in wanted.values()}
        applied: dict[int, tuple[Decision, CheckpointRow | None]] = {}
        for member, decision in wanted.items():
            row = snapshot.index(member)
            step, before = int(snapshot.steps[row]), snapshot.hparams[row]
            donor = donors[decision.donor]
            if decision.donor == member and not isinstance(donor, str):
                self._explore(cur, member, step, before, decision, result, now)
                applied[member] = (decision, donor[1])
                continue
            if isinstance(donor, str):
                self._event(cur, Kind.DROPPED, member, step, now, decision=decision,
                            before=before, detail=donor, result=result)
                continue
            checkpoint = donor[1]
            if checkpoint.step < step:
                cur.execute(
                    "UPDATE members SET status = 'waiting', waits_for = ?, pending = ?,"
                    " updated = ? WHERE id = ?",
                    (decision.donor, json.dumps([decision.hparams, decision.strategy]), now,
                     member),
                )
                self._event(cur, Kind.WAIT, member, step, now, decision=decision,
                            donor_step=checkpoint.step, before=before, result=result,
                            detail=f"waits for member {decision.donor} to reach step {step}")
                applied[member] = (decision, None)
                continue
            self._copy(cur, member, step, before, decision, donor, decide, result, now)
            applied[member] = (decision, checkpoint)
        return applied

    def _copy(self, cur: Cursor, member: int, step: int, before: Mapping[str, Any],
              decision: Decision, donor: DonorState, decide: Decide | None,
              result: int | None, now: float) -> None:
        """Carry out an exploit: the member takes the donor's checkpoint and new hparams."""
        generation, checkpoint, recent, trail, score, objectives = donor
        # the score, objectives, trail and recent scores travel with the weights: they are
        # the copied state's evaluation and history, so a copy does not rank with its old
        # score
        cur.execute(
            "UPDATE members SET hparams = ?, checkpoint = ?, step = ?, score = ?,"
            " objectives = ?, generation = ?, parent = ?, recent = ?, trail = ?,"
            " status = 'ready', waits_for = NULL, pending = NULL, updated = ? WHERE id = ?",
            (json.dumps(decision.hparams), checkpoint.id, checkpoint.step, score, objectives,
             generation + 1, decision.donor, recent, trail, now, member),
        )
        self._event(cur, Kind.EXPLOIT, member, step, now, decision=decision,
                    donor_step=checkpoint.step, before=before, result=result)
        # who waited for this member's own state will not get it: they decide again
        self._redecide(cur, member, f"member {member} copied member {decision.donor} first",
                       decide, result, now)

    def _explore(self, cur: Cursor, member: int, step: int, before: Mapping[str, Any],
                 decision: Decision, result: int | None, now: float) -> None:
        """Carry out an explore in place (the member its own donor): new hparams, the
        same weights, score and history; members waiting for its state still get it."""
        cur.execute("UPDATE members SET hparams = ?, updated = ? WHERE id = ?",
                    (json.dumps(decision.hparams), now, member))
        self._event(cur, Kind.EXPLORE, member, step, now, decision=decision, before=before,
                    result=result)

    def _waiting(self, cur: Cursor, donor: int) -> list[Waiting]:
        """The members waiting for `donor`, by id."""
        cur.execute("SELECT id, step, score, hparams, pending, objectives FROM members"
                    " WHERE status = 'waiting' AND waits_for = ? ORDER BY id", (donor,))
        return [Waiting(m, step, score, json.loads(hparams), Decision(donor, *json.loads(p)),
                        None if o is None else json.loads(o))
                for m, step, score, hparams, p, o in cur.fetchall()]

    def _resolve(self, cur: Cursor, donor: int, decide: Decide | None, result: int | None,
                 now: float) -> None:
        """Carry out the exploits that wait for `donor`, now that its row changed.

        A member whose donor reached its step copies the donor's new checkpoint, if
        that still scores better than the member: the state it waited for is not
        the one it chose. One whose donor can no longer donate (it finished,
        failed), or fell behind it, records why and decides again against the
        population as it is now.
        """
        waiting = self._waiting(cur, donor)
        if not waiting:
            return
        state = self._donor(cur, donor)
        if isinstance(state, str):
            self._drop(cur, waiting, state, decide, result, now)
            return
        arrived = [w for w in waiting if state[1].step >= w.step]
        fell = [w for w in arrived if not self._better(cur, state[4], w.score) or
                self._dominated(cur, state[5], w.objectives)]
        for w in arrived:
            if w not in fell:
                self._copy(cur, w.member, w.step, w.hparams, w.decision, state, decide,
                           result, now)
        self._drop(cur, fell, f"member {donor} no longer scores better at this step",
                   decide, result, now)

    def _better(self, cur: Cursor, a: float | None, b: float | None) -> bool:
        """Whether score `a` beats score `b` in the run's mode (a missing score never wins);
        with several objectives, only whether `a` is a score (`_dominated` compares)."""
        if a is None:
            return False
        if b is None or self._run(cur).get("objectives"):
            return True
        return a > b if self._run(cur)["mode"] == "max" else a < b

    def _dominated(self, cur: Cursor, donor: str | None,
                   member: list[float | None] | None) -> bool:
        """Whether the member's objectives now dominate the donor's (JSON): its wait no
        longer leads anywhere better (always False with one objective)."""
        objectives = self._run(cur).get("objectives")
        if not objectives or donor is None or member is None or None in member:
            return False
        mine, theirs = pareto.oriented([member, json.loads(donor)], objectives.values())
        return bool(np.isnan(theirs).any()) or pareto.dominates(mine, theirs)

    def _redecide(self, cur: Cursor, donor: int, reason: str, decide: Decide | None,
                  result: int | None, now: float) -> None:
        """Drop every exploit waiting for `donor`, with `reason` (see `_drop`)."""
        self._drop(cur, self._waiting(cur, donor), reason, decide, result, now)

    def _drop(self, cur: Cursor, waiting: list[Waiting], reason: str, decide: Decide | None,
              result: int | None, now: float) -> None:
        """Drop these waiting exploits (a 'dropped' event each, with `reason`); the members
        decide again now (with no `decide`: they train on with their own state)."""
        for w in waiting:
            cur.execute("UPDATE members SET status = 'ready', waits_for = NULL, pending = NULL,"
                        " updated = ? WHERE id = ?", (now, w.member))
            self._event(cur, Kind.DROPPED, w.member, w.step, now, decision=w.decision,
                        before=w.hparams, detail=reason, result=result)
        if waiting and decide is not None:
            self._decide(cur, [w.member for w in waiting], decide, result, now)

    def _donor(self, cur: Cursor, donor: int) -> DonorState | str:
        """What a donor hands over (`DonorState`), or why it cannot donate."""
        cur.execute(
            "SELECT m.generation, c.id, c.member, c.step, c.key, c.sha256, c.bytes, m.status,"
            " m.recent, m.trail, r.score, r.metrics FROM members m LEFT JOIN checkpoints c"
            " ON c.id = m.checkpoint AND c.deleted = 0 LEFT JOIN results r"
            " ON r.member = c.member AND r.step = c.step AND r.checkpoint = c.id"
            " WHERE m.id = ?",
            (donor,),
        )
        row = cur.fetchone()
        if row is None:
            return f"member {donor} is not in the run"
        if row[7] == Status.FAILED:
            return f"member {donor} failed"
        if row[7] == Status.WAITING:
            return f"member {donor} is itself waiting to copy another member"
        if row[1] is None:
            # a donor without an intact checkpoint would make the copy train from scratch
            return f"member {donor} has no intact checkpoint to copy"
        checkpoint = CheckpointRow(*row[1:7])
        if checkpoint.step >= self._run(cur)["steps"]:
            # a finished donor's copy would end as its clone, never trained again
            return f"member {donor} finished training"
        metrics = None if row[11] is None else json.loads(row[11])
        return row[0], checkpoint, row[8], row[9], row[10], self._objectives(cur, metrics)

    def _objectives(self, cur: Cursor, metrics: Mapping[str, Any] | None) -> str | None:
        """The run's objectives as `metrics` gave them (JSON; a missing or non-finite one
        None), or None in a run with one score."""
        names = self._run(cur).get("objectives")
        if not names or metrics is None:
            return None
        values = [metrics.get(name) for name in names]
        return json.dumps([_finite(float(v)) if isinstance(v, (int, float)) else None
                           for v in values])

    def _collect(self, cur: Cursor, member: int, keep: int) -> list[str]:
        """Mark the member's old, unreferenced checkpoints deleted; return files to remove."""
        cur.execute(
            "SELECT id FROM checkpoints WHERE member = ? ORDER BY id DESC LIMIT ?", (member, keep)
        )
        newest = {row[0] for row in cur.fetchall()}
        cur.execute(
            "SELECT id, key FROM checkpoints WHERE member = ? AND deleted = 0"
            " AND id NOT IN (SELECT checkpoint FROM members WHERE checkpoint IS NOT NULL)",
            (member,),
        )
        keys = []
        for cid, key in cur.fetchall():
            if cid in newest:
                continue
            cur.execute("UPDATE checkpoints SET deleted = 1 WHERE id = ?", (cid,))
            # a file is written for one row; a row of its own names it only in tests and
            # in stores of older populace versions, so check rather than trust
            cur.execute("SELECT COUNT(*) FROM checkpoints WHERE key = ? AND deleted = 0", (key,))
            if cur.fetchone()[0] == 0:
                keys.append(key)
        return keys

    def _event(self, cur: Cursor, kind: Kind, member: int, step: int, now: float, *,
               decision: Decision | None = None, donor: int | None = None,
               donor_step: int | None = None, before: Mapping[str, Any] | None = None,
               after: Mapping[str, Any] | None = None, detail: str | None = None,
               result: int | None = None) -> None:
        """Record an event of `member` at `step`; an exploit decision's own gives its donor,
        new hparams and strategy (`decision`), other events name what they need."""
        strategy = ""
        if decision is not None:
            donor, after, strategy = decision.donor, decision.hparams, decision.strategy
            donor = None if donor == member else donor  # an explore in place copies no one
        cur.execute(
            "INSERT INTO events (kind, member, donor, step, donor_step, before, after,"
            " strategy, detail, result, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, member, donor, step, donor_step,
             None if before is None else json.dumps(before),
             None if after is None else json.dumps(after), strategy, detail, result, now),
        )
