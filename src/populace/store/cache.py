"""The population as this process last read it, kept between reads of one store.

A report decides against the whole population, and a population of 10,000 members
read whole at every report would cost the run a full table read a segment. Every
member row carries a revision that a trigger raises above every earlier one at each
change (schema 6, the driver's `triggers`), so a read takes only the rows whose
revision is past the newest this process holds: those the report itself and other
processes changed since. The columns stay parsed and in arrays by member id, and a
`Snapshot` is cut out of them without a Python loop over the population.

A write transaction that read into the cache and then rolled back would leave in it
rows that were never committed: `Store` calls `clear` then (and the next read is whole).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from populace import pareto
from populace.snapshot import Segment, Snapshot
from populace.store.driver import Cursor
from populace.store.records import RunRecord, Status

_STATUSES = tuple(Status)
_CODE = {status.value: code for code, status in enumerate(_STATUSES)}
# the columns kept (by position in `_COLUMNS`): the rest are JSON, parsed once a change
_COLUMNS = ("id, revision, status, step, score, hparams, recent, trail, segments, objectives,"
            " sub, changes, curve, evaluated, evaluation")
_PARSED = {"hparams": 5, "recent": 6, "trails": 7, "segments": 8, "objectives": 9,
           "curves": 12, "evaluations": 14}


def _segments(stored: list[list[Any]]) -> list[Segment]:
    return [Segment(*s) for s in stored]


class Rows(Sequence[Any]):
    """A snapshot's column of parsed entries (hparams, trails...), one per member, each
    read when a strategy reads it: a decision reads a few members' entries, and a list
    of all 10,000 made at every report would cost more than the decision. It reads the
    cache's array, which the cache copies before changing while a `Rows` is alive."""

    __slots__ = ("_values", "_rows", "__weakref__")

    def __init__(self, values: np.ndarray, rows: np.ndarray | None):
        self._values, self._rows = values, rows  # rows None: every entry

    def __len__(self) -> int:
        return len(self._values if self._rows is None else self._rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        return self._values[i] if self._rows is None else self._values[self._rows[i]]

    def __iter__(self) -> Iterator[Any]:
        values = self._values if self._rows is None else self._values[self._rows]
        return iter(values.tolist())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


class Population:
    """Every member row of one store as last read, refreshed by revision (`snapshot`)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every row: the next read takes the whole table."""
        self.revision = -1  # the newest revision held; every row starts at 0
        self.position: dict[int, int] = {}
        self.ids = np.zeros(0, np.int64)
        self.steps = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float64)
        self.statuses = np.zeros(0, np.int8)
        self.groups = np.zeros(0, np.int64)
        self.changes = np.zeros(0, np.int64)
        # JSON columns parsed, and `evaluated` (an int or None), in object arrays
        self.evaluated = np.zeros(0, object)
        self.columns: dict[str, np.ndarray] = {name: np.zeros(0, object) for name in _PARSED}
        # the `Rows` handed out that read these arrays: while one lives, a change copies
        self._lent: list[weakref.ref[Rows]] = []

    def refresh(self, cur: Cursor) -> None:
        """Read the rows changed since the last read into the arrays."""
        # by revision: the index reads the changed rows alone (by id, it scans the table)
        cur.execute(f"SELECT {_COLUMNS} FROM members WHERE revision > ? ORDER BY revision",
                    (self.revision,))
        rows = cur.fetchall()
        if not rows:
            return
        if any(lent() is not None for lent in self._lent):
            # a snapshot still reads the arrays: leave them be, and change copies
            self.columns = {name: column.copy() for name, column in self.columns.items()}
            self.evaluated = self.evaluated.copy()
        self._lent = []
        if any(r[0] not in self.position for r in rows):
            self._grow(sorted({r[0] for r in rows} | self.position.keys()))
        for r in rows:
            i = self.position[r[0]]
            self.statuses[i], self.steps[i] = _CODE[r[2]], r[3]
            self.scores[i] = np.nan if r[4] is None else r[4]
            self.groups[i], self.changes[i], self.evaluated[i] = r[10], r[11], r[13]
            for name, at in _PARSED.items():
                text = r[at]
                value = None if text is None else json.loads(text)
                self.columns[name][i] = (_segments(value) if name == "segments" and value
                                         else value)
        self.revision = rows[-1][1]  # read in the order of revision

    def _grow(self, ids: list[int]) -> None:
        """Make room for members not held yet (the first read), keeping those held."""
        old = self.position
        self.position = {m: i for i, m in enumerate(ids)}
        keep = np.array([self.position[m] for m in old], np.int64)
        n = len(ids)

        def moved(array: np.ndarray) -> np.ndarray:
            out = np.zeros(n, array.dtype) if array.dtype != object else np.full(n, None)
            out[keep] = array
            return out

        self.ids = np.array(ids, np.int64)
        self.steps, self.scores = moved(self.steps), moved(self.scores)
        self.statuses, self.groups = moved(self.statuses), moved(self.groups)
        self.changes, self.evaluated = moved(self.changes), moved(self.evaluated)
        self.columns = {name: moved(column) for name, column in self.columns.items()}

    def snapshot(self, cur: Cursor, record: RunRecord, statuses: Sequence[Status]) -> Snapshot:
        """The members of `statuses` as a strategy sees them, after reading what changed;
        FIRE's columns only when the run's exploit reads curves."""
        self.refresh(cur)
        table = np.zeros(len(_STATUSES), bool)
        table[[_CODE[s.value] for s in statuses]] = True
        wanted = table[self.statuses]
        rows = None if wanted.all() else np.flatnonzero(wanted)
        cut = slice(None) if rows is None else rows
        column = self.columns
        objectives = None
        if record.objectives is not None:
            objectives = pareto.oriented(column["objectives"][cut].tolist(),
                                         record.objectives.values())
        snapshot = Snapshot(
            ids=self.ids[cut].copy(), steps=self.steps[cut].copy(),
            scores=self.scores[cut].copy(), hparams=self._lend(column["hparams"], rows),
            maximize=record.mode.maximize,
            recent=self._lend(column["recent"], rows) if record.window else (),
            trails=self._lend(column["trails"], rows),
            segments=self._lend(column["segments"], rows) if record.segments else (),
            objectives=objectives,
        )
        if not record.curve:
            return snapshot
        return replace(snapshot, groups=self.groups[cut].copy(),
                       changes=self.changes[cut].copy(), curves=self._lend(column["curves"], rows),
                       evaluated=self._lend(self.evaluated, rows),
                       evaluations=self._lend(column["evaluations"], rows))

    def _lend(self, column: np.ndarray, rows: np.ndarray | None) -> Rows:
        """The entries of the object array `column` at `rows` (None: all), read later."""
        lent = Rows(column, rows)
        if len(self._lent) > 64:  # reads without changes in between: forget the dead
            self._lent = [r for r in self._lent if r() is not None]
        self._lent.append(weakref.ref(lent))
        return lent

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Around a write transaction that reads into the cache: a rollback clears it."""
        try:
            yield
        except BaseException:
            self.clear()
            raise
