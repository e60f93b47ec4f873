"""The plain view of a population that every strategy decides from.

A worker process and a batched trainer build the same `Snapshot`, so a
strategy never knows (or cares) where the population lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from populace import pareto


class Segment(NamedTuple):
    """One segment a member trained: from step `start`, where its weights scored `before`,
    to `step`, where they scored `score`, with `hparams` in force (what PB2 learns from)."""

    start: int
    step: int
    before: float
    score: float
    hparams: Mapping[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """Each member's latest state, one column per field, row i is one member.

    `scores` holds NaN for a member that has not reported yet or reported a
    non-finite score; such a member ranks below every other and never donates.
    """

    ids: np.ndarray  # int64, member ids
    steps: np.ndarray  # int64, each member's step
    scores: np.ndarray  # float64, latest score, NaN when missing or not finite
    hparams: Sequence[Mapping[str, Any]]
    maximize: bool = True
    # each member's last few finite scores, oldest first (empty when not kept)
    recent: Sequence[Sequence[float]] = ()
    # each member's last few (step, score) points along its lineage, oldest first: what
    # its weights scored at earlier ready points, whoever trained them (empty: not known)
    trails: Sequence[Sequence[Sequence[float]]] = ()
    # each member's last few segments of its own, oldest first, kept for an explore
    # strategy that declares `segments` (empty when not kept); they stay with the member
    # on an exploit: they are what its hparams did, not its weights' history
    segments: Sequence[Sequence[Segment]] = ()
    # a multi-objective run: one row per member, one column per objective, each oriented so
    # that higher is better (NaN: not reported); None: the run ranks by `scores` alone
    objectives: np.ndarray | None = None
    # FIRE-PBT's columns, filled only for an exploit that declares `curve` (`Curved`), all
    # read from member rows, never from the history (`populace.strategies.fire`):
    # each member's sub-population, 1..n, 0 for an evaluator (None: no sub-populations)
    groups: np.ndarray | None = None
    # how many times each member's weights or hparams changed hands (copy, adopt, explore)
    changes: np.ndarray | None = None
    # each member's [step, score] points since its weights last changed hands, oldest first
    curves: Sequence[Sequence[Sequence[float]]] = ()
    # the step each member's latest evaluation began at, as a parent (None: never)
    evaluated: Sequence[int | None] = ()
    # each evaluator's evaluation as stored (JSON; None: none, as for every other member)
    evaluations: Sequence[Mapping[str, Any] | None] = ()

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.steps) == len(self.scores) == len(self.hparams) == n):
            raise ValueError("Snapshot columns must have equal lengths")
        if self.recent and len(self.recent) != n:
            raise ValueError("Snapshot.recent must have one window per member")
        if self.trails and len(self.trails) != n:
            raise ValueError("Snapshot.trails must have one trail per member")
        if self.segments and len(self.segments) != n:
            raise ValueError("Snapshot.segments must have one list of segments per member")
        if self.objectives is not None and len(self.objectives) != n:
            raise ValueError("Snapshot.objectives must have one row per member")
        for name in ("groups", "changes", "curves", "evaluated", "evaluations"):
            column = getattr(self, name)
            if column is not None and len(column) not in (0, n):
                raise ValueError(f"Snapshot.{name} must have one entry per member")

    def aligned(self, member_id: int) -> Snapshot:
        """The scores as `member_id` should be ranked against them, at its own step.

        An asynchronous population is spread over steps, and a member that only
        trained longer scores higher: ranked by newest scores, the members ahead
        would be copied for being ahead, and the deciding member (it has just
        reported, so it is often ahead) would almost never copy. So the advantage
        of extra training is taken away, and none is given: a member ahead counts
        with what it scored at the deciding member's step (or its newest score,
        if that is worse); a member behind is credited with the progress the
        deciding member made since that member's step (none if it made none).
        Where a trail does not reach back that far, its oldest point is the
        nearest comparison. A deciding member without a score ranks below every
        other at any step, so it sees the newest scores, as does a synchronous
        generation, all at one step.
        """
        row = self.index(member_id)
        step = int(self.steps[row])
        if not self.trails or bool(np.all(self.steps == step)):
            return self
        sign = 1.0 if self.maximize else -1.0  # work on values where higher is better
        scores = _aligned(sign * self.scores, self.steps, self.trails, row, sign)
        if self.objectives is None:
            return self if scores is None else replace(self, scores=sign * scores)
        # several objectives: the first is the score, what training moves, and is aligned
        # as one score is; the others (a size, a cost) stand as they are: they do not grow
        # with training, and a credit of their change would pass on what the deciding
        # member's hparams did (measured: benchmarks/RESULTS.md, "Multi-objective PBT")
        if scores is None:
            return self
        objectives = self.objectives.copy()
        objectives[:, 0] = scores
        return replace(self, scores=sign * scores, objectives=objectives)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, member_id: int) -> int:
        """Row of `member_id` in the columns."""
        rows = np.flatnonzero(self.ids == member_id)
        if len(rows) == 0:
            raise KeyError(f"member {member_id} is not in the snapshot")
        return int(rows[0])

    def valid(self) -> np.ndarray:
        """Boolean mask of members with a finite score (the only possible donors); with
        several objectives, a finite value of each."""
        if self.objectives is not None:
            return np.isfinite(self.objectives).all(axis=1)
        return np.isfinite(self.scores)

    def ranking(self) -> np.ndarray:
        """Row indices from best to worst; members without a valid score come last.

        Ties keep the order of `ids`, so a ranking is deterministic. With several
        objectives: by Pareto front, then crowding distance (`populace.pareto`).
        """
        if self.objectives is not None:
            return pareto.ranking(self.objectives, self.ids)
        key = self._key()
        # lexsort sorts by the last key first: best score, then smallest id
        return np.lexsort((self.ids, -key))

    def place(self, row: int) -> int:
        """Where row `row` stands in `ranking` (0: best), without ranking everyone: a
        decision about one member of 10,000 reads its place, not a sorted population."""
        if self.objectives is not None:
            return int(np.flatnonzero(self.ranking() == row)[0])
        key = self._key()
        mine, me = key[row], self.ids[row]
        return int(np.count_nonzero((key > mine) | ((key == mine) & (self.ids < me))))

    def best(self, k: int) -> np.ndarray:
        """The first `k` rows of `ranking`, in its order, sorting only the rows that can be
        among them."""
        if self.objectives is not None or k >= len(self):
            return self.ranking()[:k]
        if k <= 0:
            return np.zeros(0, np.int64)
        key = self._key()
        # the k-th best key: every row at or above it (ties included) may be among the k
        kth = -np.partition(-key, k - 1)[k - 1]
        rows = np.flatnonzero(key >= kth)
        order = np.lexsort((self.ids[rows], -key[rows]))
        return rows[order[:k]]

    def _key(self) -> np.ndarray:
        """Each row's score oriented so that higher is better; -inf where not valid."""
        oriented = self.scores if self.maximize else -self.scores
        return np.where(np.isfinite(oriented), oriented, -np.inf)

    def better(self, a: int, b: int) -> bool:
        """Whether row `a` has a strictly better valid score than row `b`; with several
        objectives, whether it lies on a strictly better Pareto front."""
        if self.objectives is not None:
            rank = pareto.fronts(self.objectives)
            return bool(rank[a] < rank[b])
        sa, sb = self.scores[a], self.scores[b]
        if not np.isfinite(sa):
            return False
        if not np.isfinite(sb):
            return True
        return bool(sa > sb) if self.maximize else bool(sa < sb)


def _aligned(values: np.ndarray, steps: np.ndarray, trails: Sequence[Sequence[Sequence[float]]],
             row: int, sign: float) -> np.ndarray | None:
    """Oriented scores `values` (higher is better) as row `row` should be ranked against
    them at its own step (`Snapshot.aligned`), the trails' scores turned by `sign`; None
    when the deciding member has no finite score of its own."""
    step, mine_now = int(steps[row]), values[row]
    if not np.isfinite(mine_now):
        return None
    out = values.copy()
    scored = np.isfinite(values)
    for k in np.flatnonzero((steps > step) & scored).tolist():  # ahead: few, in practice
        then = _score_at(trails[k], step)
        if then is not None:
            out[k] = min(sign * then, out[k])
    behind = np.flatnonzero((steps < step) & scored)
    trail = np.asarray(trails[row], dtype=float).reshape(-1, 2)
    if len(behind) and len(trail):
        # each member's credit at once: the deciding member's score at its step by
        # `_score_at`, the newest trail point at or before it (a trail grows in step
        # order), else the oldest
        at = np.searchsorted(trail[:, 0], steps[behind], side="right") - 1
        out[behind] += np.maximum(0.0, mine_now - sign * trail[np.maximum(at, 0), 1])
    return out


def _score_at(trail: Sequence[Sequence[float]], step: int) -> float | None:
    """The score a trail's weights had at `step`: its newest point at or before it, else
    its oldest point (None for an empty trail)."""
    for at, score in reversed(trail):
        if at <= step:
            return float(score)
    return float(trail[0][1]) if trail else None
