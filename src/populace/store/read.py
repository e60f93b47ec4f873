"""The read side of a store: a run's config, the population snapshot decisions
read, and the rows that status, reports and lineage show."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from populace.snapshot import Snapshot
from populace.store.cache import Population
from populace.store.driver import Cursor, Driver, StoreError
from populace.store.migrate import OLDEST
from populace.store.records import (
    CheckpointRow,
    Event,
    Kind,
    MemberRow,
    Result,
    Role,
    RunRecord,
    Status,
)
from populace.store.retry import retried
from populace.store.schema import SCHEMA_VERSION

# the members a decision ranks (training now or next, and FIRE's evaluators waiting for a
# parent, whom a decision may start), and every member still in the run
_RANKED = (Status.READY, Status.RUNNING, Status.IDLE)
_LIVE = (Status.READY, Status.RUNNING, Status.WAITING, Status.DONE, Status.IDLE)


class StoreReader:
    """Reads a run's store over any `Driver`; `Store` adds the writes.

    Besides what each method's own `Raises` names, every call raises StoreError
    when the database refuses it (a server error, a file that is not a populace
    store) or its server stays out of reach for `patience` seconds (`retried`).
    """

    def __init__(self, driver: Driver, patience: float = 60.0):
        self.driver = driver
        # seconds a call keeps trying while the server is unavailable (see `retried`)
        self.patience = patience
        # the member rows as this process last read them, refreshed by revision
        self._population = Population()

    @property
    def url(self) -> str:
        return self.driver.url

    def close(self) -> None:
        self.driver.close()

    # -- the run ---------------------------------------------------------

    @retried
    def exists(self) -> bool:
        """Whether this store already holds a run.

        Raises:
            StoreError: the store holds a run of another schema version (an older or
                newer populace's).
        """
        with self.driver.read() as cur:
            if not self._has_meta(cur):
                return False
            cur.execute("SELECT value FROM meta WHERE key = 'config'")
            return cur.fetchone() is not None

    @retried
    def config(self) -> RunRecord:
        """The run as it was stored at creation: settings, space, where its parts are.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            return self._config(cur)

    @retried
    def meta(self, key: str) -> Any:
        """The run's stored value under `key` (None when it has none).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute("SELECT value FROM meta WHERE key = ?", (key,))
            row = cur.fetchone()
            return None if row is None else json.loads(row[0])

    def _version(self, cur: Cursor) -> int | None:
        """The store's schema version; None when it holds no populace store."""
        if not {"key", "value"} <= self.driver.columns(cur, "meta"):
            return None  # an empty database, or another program's
        cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        return None if row is None else int(json.loads(row[0]))

    def _has_meta(self, cur: Cursor) -> bool:
        version = self._version(cur)
        if version is None:
            return False
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.url} has store schema version {version}; this populace reads "
                f"version {SCHEMA_VERSION}: upgrade populace"
            )
        if version < SCHEMA_VERSION:  # older than any upgrade `Store` makes on opening
            raise StoreError(
                f"{self.url} has store schema version {version}, written by an older populace; "
                f"this one reads version {SCHEMA_VERSION} and upgrades stores from version "
                f"{OLDEST}: finish that run with the populace that started it"
            )
        return True

    def _config(self, cur: Cursor) -> RunRecord:
        if not self._has_meta(cur):
            raise StoreError(f"{self.url} is not a populace store (no run in it)")
        cur.execute("SELECT value FROM meta WHERE key = 'config'")
        return self._located(RunRecord.from_dict(json.loads(cur.fetchone()[0])))

    def _located(self, record: RunRecord) -> RunRecord:
        """The run with its checkpoint folder as a path. Kept in a SQLite store's folder,
        it is stored relative to it, so a run folder copied or moved elsewhere uses the
        checkpoints beside it, never those of the run it was copied from; an older
        populace stored the folder beside the store absolute: the one beside the store
        now, when there is one, is its copy."""
        store: Path | None = getattr(self.driver, "path", None)  # None: no file (PostgreSQL)
        if store is None or "://" in record.checkpoints:
            return record
        folder, here = Path(record.checkpoints), store.resolve().parent
        if not folder.is_absolute():
            return replace(record, checkpoints=str(here / folder))
        if folder.name == f"{store.stem}.checkpoints" and (here / folder.name).is_dir():
            return replace(record, checkpoints=str(here / folder.name))
        return record

    def _window(self, cur: Cursor) -> int:
        """How many recent scores each member keeps (what the exploit strategy reads)."""
        return self._config_cached(cur).window

    # -- reading -----------------------------------------------------------

    def _snapshot(self, cur: Cursor, training: bool = False) -> Snapshot:
        """Each live member's latest state, from the member rows only (never history),
        reading only those changed since this process last read them (`Population`).

        `training`: only the members a decision ranks, those training now or next: a
        finished member can no longer be copied (its copy would end as its clone), and
        one waiting to copy another has given up its own state.
        """
        return self._population.snapshot(cur, self._config_cached(cur),
                                         _RANKED if training else _LIVE)

    def _config_cached(self, cur: Cursor) -> RunRecord:
        """The run's config, read once: it never changes during a run."""
        if not hasattr(self, "_config_memo"):
            self._config_memo = self._config(cur)
        return self._config_memo

    @retried
    def snapshot(self) -> Snapshot:
        """Each live member's latest state, as a strategy sees the population.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            return self._snapshot(cur)

    _MEMBER_SQL = (
        "SELECT m.id, m.hparams, m.step, m.score, m.generation, m.parent, m.status, m.error,"
        " c.id, c.member, c.step, c.key, c.sha256, c.bytes, m.objectives, m.sub, m.role,"
        " m.evaluation FROM members m LEFT JOIN checkpoints c ON c.id = m.checkpoint"
    )

    @staticmethod
    def _member_row(row: tuple) -> MemberRow:
        checkpoint = None if row[8] is None else CheckpointRow(*row[8:14])
        return MemberRow(
            id=row[0], hparams=json.loads(row[1]), step=row[2], score=row[3],
            generation=row[4], parent=row[5], status=Status(row[6]), checkpoint=checkpoint,
            error=row[7], objectives=None if row[14] is None else json.loads(row[14]),
            sub=row[15], role=Role(row[16]),
            evaluation=None if row[17] is None else json.loads(row[17]),
        )

    def _member(self, cur: Cursor, member: int) -> MemberRow:
        cur.execute(self._MEMBER_SQL + " WHERE m.id = ?", (member,))
        return self._member_row(cur.fetchone())

    @retried
    def members(self) -> list[MemberRow]:
        """Every member's row, by id.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(self._MEMBER_SQL + " ORDER BY m.id")
            return [self._member_row(r) for r in cur.fetchall()]

    _RESULT_COLUMNS = ("id, member, step, score, metrics, hparams, seconds, time, start,"
                       " checkpoint, parent")
    _EVENT_COLUMNS = ("id, kind, member, donor, step, donor_step, before, after, strategy, time,"
                      " detail, result")

    @staticmethod
    def _result_row(r: tuple) -> Result:
        return Result(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7],
                      r[8], r[9], r[10])

    @staticmethod
    def _event_row(r: tuple) -> Event:
        return Event(r[0], Kind(r[1]), r[2], r[3], r[4], r[5],
                     None if r[6] is None else json.loads(r[6]),
                     None if r[7] is None else json.loads(r[7]), r[8], r[9], r[10], r[11])

    @retried
    def results(self, member: int | None = None) -> list[Result]:
        """Every reported result (of one member, or all), in the order they were stored.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        where, params = ("WHERE member = ?", (member,)) if member is not None else ("", ())
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(f"SELECT {self._RESULT_COLUMNS} FROM results {where} ORDER BY id",
                        params)
            return [self._result_row(r) for r in cur.fetchall()]

    @retried
    def results_after(self, after: int, limit: int) -> list[Result]:
        """The results stored after the one with id `after`, oldest first, at most `limit`
        of them: what a live display reads at each poll.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(f"SELECT {self._RESULT_COLUMNS} FROM results WHERE id > ?"
                        " ORDER BY id LIMIT ?", (after, limit))
            return [self._result_row(r) for r in cur.fetchall()]

    @retried
    def results_sampled(self, points: int, metrics: bool = True) -> list[Result]:
        """Each member's results thinned to about `points`: every k-th by step (k the
        member's count over `points`, rounded up), and always its last; by member, then
        by step. The thinning runs in the database (window functions, which SQLite >=
        3.25 and PostgreSQL have, over the index of members' steps), so a long run's
        history is never read whole. `metrics` False: each result's metrics left empty
        (not parsed), for a reader that draws scores and hparams alone.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        points = max(1, points)
        columns = self._RESULT_COLUMNS if metrics else self._RESULT_COLUMNS.replace(
            "metrics", "'{}'")
        stride = "((total + ? - 1) / ?)"
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(
                f"SELECT {columns} FROM results WHERE id IN (SELECT id FROM (SELECT id,"
                " ROW_NUMBER() OVER (PARTITION BY member ORDER BY step, id) AS n,"
                " COUNT(*) OVER (PARTITION BY member) AS total FROM results) AS r"
                # (n - 1) mod stride = 0, in arithmetic both databases take
                f" WHERE (n - 1) - ((n - 1) / {stride}) * {stride} = 0 OR n = total)"
                " ORDER BY member, step, id",
                (points, points, points, points),
            )
            rows = cur.fetchall()
        parsed: dict[str, Any] = {}  # a member's hparams repeat from result to result
        return [Result(r[0], r[1], r[2], r[3], json.loads(r[4]) if metrics else {},
                       parsed[r[5]] if r[5] in parsed else parsed.setdefault(r[5],
                                                                             json.loads(r[5])),
                       r[6], r[7], r[8], r[9], r[10]) for r in rows]

    @retried
    def scores_by_step(self) -> list[tuple[int, float, float, float]]:
        """For each step any result reached: its lowest, highest and mean score, by step
        (what comparing two runs reads, without reading their results).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute("SELECT step, MIN(score), MAX(score), AVG(score) FROM results"
                        " WHERE score IS NOT NULL GROUP BY step ORDER BY step")
            return [tuple(r) for r in cur.fetchall()]

    @retried
    def latest(self) -> tuple[int, int]:
        """The id of the newest result and of the newest event (0 when there is none).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute("SELECT (SELECT MAX(id) FROM results), (SELECT MAX(id) FROM events)")
            results, events = cur.fetchone()
            return results or 0, events or 0

    @retried
    def members_updated(self, since: float | None = None) -> tuple[list[MemberRow], float]:
        """The members whose row changed at or after `since` (every member: None), by
        id, and the latest change's time (the writers' clocks: a reader that follows a
        run asks again from a little before it).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        where, params = ("WHERE m.updated >= ?", (since,)) if since is not None else ("", ())
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(self._MEMBER_SQL + f" {where} ORDER BY m.id", params)
            rows = cur.fetchall()
            cur.execute("SELECT MAX(updated) FROM members")
            latest = cur.fetchone()[0] or 0.0
            return [self._member_row(r) for r in rows], latest

    @retried
    def events(self, kind: str | None = None) -> list[Event]:
        """Every event (or those of one kind), in the order they happened.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        where, params = ("WHERE kind = ?", (kind,)) if kind is not None else ("", ())
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(f"SELECT {self._EVENT_COLUMNS} FROM events {where} ORDER BY id",
                        params)
            return [self._event_row(r) for r in cur.fetchall()]

    @retried
    def events_after(self, after: int, limit: int, kinds: tuple[str, ...] = (),
                     member: int | None = None, newest: bool = False,
                     details: bool = True) -> list[Event]:
        """At most `limit` events after the one with id `after` (of `kinds`, of `member`,
        where given), oldest first; `newest`: the newest of them, newest first.
        `details` False: without their hparams before and after and their detail (None),
        for a reader that follows who copied whom alone.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        where, params = ["id > ?"], list[object]([after])
        if kinds:
            where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params += kinds
        if member is not None:
            where.append("member = ?")
            params.append(member)
        with self.driver.read() as cur:
            self._config(cur)
            columns = self._EVENT_COLUMNS if details else self._EVENT_COLUMNS.replace(
                "before, after", "NULL, NULL").replace("detail", "NULL")
            cur.execute(f"SELECT {columns} FROM events WHERE {' AND '.join(where)}"
                        f" ORDER BY id {'DESC' if newest else ''} LIMIT ?", [*params, limit])
            return [self._event_row(r) for r in cur.fetchall()]

    @retried
    def checkpoints(self, include_deleted: bool = False) -> list[CheckpointRow]:
        """Every checkpoint row, by id (with `include_deleted`, those collected too).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        where = "" if include_deleted else "WHERE deleted = 0"
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute(
                f"SELECT id, member, step, key, sha256, bytes FROM checkpoints {where}"
                " ORDER BY id"
            )
            return [CheckpointRow(*r) for r in cur.fetchall()]

    @retried
    def checkpoint_keys(self) -> set[str]:
        """The key of every checkpoint a live row names (what no collection may remove).

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            self._config(cur)
            cur.execute("SELECT key FROM checkpoints WHERE deleted = 0")
            return {row[0] for row in cur.fetchall()}

    @retried
    def leased(self) -> dict[int, float]:
        """The members a worker holds a live lease on now, with the seconds each lease has
        left (an expired one is nobody's: the next claim takes its member).

        Raises:
            StoreError: the store holds no run.
        """
        now = time.time()
        with self.driver.read() as cur:
            cur.execute("SELECT id, lease_expires FROM members WHERE status = ?"
                        " AND lease_expires > ? ORDER BY id", (Status.RUNNING, now))
            return {member: expires - now for member, expires in cur.fetchall()}

    @retried
    def progress(self) -> dict[str, Any]:
        """A cheap summary for live displays: counts by status, steps, best score, exploits
        (copies) and explores in place.

        Raises:
            StoreError: the store holds no run (or one of another schema version).
        """
        with self.driver.read() as cur:
            maximize = self._config_cached(cur).mode.maximize
            cur.execute("SELECT status, COUNT(*), SUM(step) FROM members GROUP BY status")
            by_status = {s: (n, steps) for s, n, steps in cur.fetchall()}
            best = "MAX" if maximize else "MIN"
            cur.execute(f"SELECT {best}(score) FROM members WHERE status != ?", (Status.FAILED,))
            best_score = cur.fetchone()[0]
            cur.execute("SELECT kind, COUNT(*) FROM events WHERE kind IN (?, ?) GROUP BY kind",
                        (Kind.EXPLOIT, Kind.EXPLORE))
            decisions = dict(cur.fetchall())
        return {
            "status": {s: n for s, (n, _) in by_status.items()},
            "steps": sum(steps or 0 for _, steps in by_status.values()),
            "best": best_score,
            "exploits": decisions.get("exploit", 0),
            "explores": decisions.get("explore", 0),
        }
