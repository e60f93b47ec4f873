"""FIRE-PBT's plan for one member: what it does now, a pure function of one snapshot.

`Fire.plan` reads the snapshot's FIRE columns (`Snapshot.groups`, `changes`, `curves`,
`evaluated`, `evaluations`) and answers with a `Plan`, which the store carries out inside
the report's transaction (`populace.strategies.firedecide` turns it into a store
`Decision`). Every plan of one snapshot computes the same evaluator assignment, so a
synchronous generation never gives one parent to two evaluators.

- A member of P1..Pn first *adopts*: an evaluator that succeeded for it as it is now
  hands it its weights and curve; it keeps its own hparams. Failing that, truncation
  inside its sub-population: P1 by aligned scores, P2..Pn by FIRE fitness.
- An evaluator goes on while its verdict runs; a success is noted (the child adopts at
  its own next decision); a stop (a change of parent or child, no overlap, not
  significant) is noted and the evaluator starts on the next free parent, or idles.

Cross-member effects are lazy: a change of parent or child reaches an evaluator at its
own next decision, a success reaches the child at the child's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from populace.mode import Mode
from populace.snapshot import Snapshot
from populace.strategies.exploit import Truncation
from populace.strategies.fire import (
    Assignment,
    Evaluation,
    Fire,
    Parent,
    State,
    Verdict,
    adoption,
    child_of,
)


class Move(str, Enum):
    """What a plan does; its value names the copy's strategy (`fire+adopt`)."""

    COPY = "copy"  # truncation inside the sub-population: copy the donor, explore
    ADOPT = "adopt"  # take a successful evaluator's weights and curve, keep own hparams
    EVALUATE = "evaluate"  # an evaluator copies a parent, takes a child's hparams as they are
    SETTLE = "settle"  # no copy: an evaluation succeeded, or stopped with no parent left


@dataclass(frozen=True)
class Plan:
    """A member's FIRE decision: copy `donor` (None: no copy) and train on with `hparams`
    (None: the donor's, explored); `evaluation` is an evaluator's from now on (None with
    an evaluator: it idles); `notes` say what became of its evaluation, (kind, detail)
    with kind "stopped" or "succeeded", the store's event kinds; `reason` why it copies,
    for the copy's event."""

    donor: int | None
    move: Move = Move.COPY
    hparams: Mapping[str, Any] | None = None
    evaluation: Evaluation | None = None
    notes: tuple[tuple[str, str], ...] = ()
    reason: str = ""


class View:
    """FIRE's reading of one snapshot: each member's sub-population, changes, curve and
    evaluation by id, and the verdicts and assignment every plan of it shares."""

    def __init__(self, fire: Fire, snapshot: Snapshot):
        assert snapshot.groups is not None and snapshot.changes is not None
        self.fire, self.snapshot = fire, snapshot
        self.mode = Mode.MAX if snapshot.maximize else Mode.MIN
        self.ids = [int(i) for i in snapshot.ids]
        self.row = {m: r for r, m in enumerate(self.ids)}
        self.sub = dict(zip(self.ids, (int(g) for g in snapshot.groups), strict=True))
        self.changes = dict(zip(self.ids, (int(c) for c in snapshot.changes), strict=True))
        self.curves = dict(zip(self.ids, snapshot.curves or [[]] * len(self.ids), strict=True))
        self.evaluations = {m: Evaluation.from_dict(e) for m, e in
                            zip(self.ids, snapshot.evaluations or [None] * len(self.ids),
                                strict=True) if e is not None}
        self._assignment: dict[int, Assignment] | None = None

    def members(self, sub: int) -> list[int]:
        """The members of sub-population `sub` (0: the evaluators), by id."""
        return [m for m in self.ids if self.sub[m] == sub]

    def verdict(self, evaluator: int) -> Verdict:
        """Where `evaluator`'s evaluation stands. A child out of the snapshot (finished,
        failed, or waiting to copy: perhaps to adopt this very evaluator) leaves a success
        standing and ends a running evaluation, which has nothing to be compared with; a
        parent out of it changes nothing (the evaluator holds the weights it tests)."""
        e = self.evaluations[evaluator]
        if e.child not in self.row:
            if e.state is State.SUCCEEDED:
                return Verdict(State.SUCCEEDED, f"succeeded; child {e.child} has yet to adopt")
            return Verdict(State.STOPPED, f"child {e.child} no longer trains")
        changes = {e.parent: e.parent_changes, **self.changes}
        segments = (len(self.curves[evaluator]) - 1) / self.fire.points  # after its start point
        return self.fire.verdict(e, self.curves[evaluator], self.curves[e.child],
                                 segments=max(segments, 0.0), changes=changes, mode=self.mode)

    def live(self, sub: int) -> dict[int, int]:
        """The parents of `sub` under a live evaluation (running or succeeded, on the
        parent as it is now), each with its evaluator."""
        out: dict[int, int] = {}
        for evaluator, e in sorted(self.evaluations.items()):
            if (self.sub.get(e.parent) == sub and e.state in (State.RUNNING, State.SUCCEEDED)
                    and self.changes.get(e.parent) == e.parent_changes):
                out.setdefault(e.parent, evaluator)
        return out

    def fitness(self, sub: int) -> list[float]:
        """Each member of `sub`'s fitness, higher is better, in id order: P1 its latest
        score (what picks the child), P2..Pn its FIRE fitness from the live evaluations'
        curves (NaN: under none)."""
        ids = self.members(sub)
        if sub == 1:
            scores = self.snapshot.scores
            return [self.mode.sign * float(scores[self.row[m]]) for m in ids]
        live = self.live(sub)
        fit = self.fire.fitness({p: self.curves[e] for p, e in live.items()}, self.mode)
        return [fit.get(m, math.nan) for m in ids]

    def assignment(self) -> dict[int, Assignment]:
        """Which parent and child each evaluator needing a parent takes: the idle ones and
        those whose verdict stops now, the same for every plan of this snapshot (worked
        out once per snapshot: a synchronous generation asks it of every evaluator)."""
        if self._assignment is None:
            self._assignment = self._assign()
        return self._assignment

    def _assign(self) -> dict[int, Assignment]:
        needing = {m: int(self.snapshot.steps[self.row[m]]) for m in self.members(0)
                   if m not in self.evaluations
                   or self.verdict(m).state is State.STOPPED}
        if not needing:
            return {}
        busy = {e.parent for m, e in self.evaluations.items() if m not in needing}
        parents = [self._parent(m, busy) for m in self.ids if self.sub[m] >= 2]
        children = {}
        for k in range(2, max(self.sub.values()) + 1):  # the layout the run was created with
            below = self.members(k - 1)
            child = child_of(below, self.fitness(k - 1), [len(self.curves[m]) for m in below])
            if child is not None:
                children[k] = child
        return {a.evaluator: a for a in self.fire.assign(needing, parents, children)}

    def _parent(self, member: int, busy: set[int]) -> Parent:
        """What the assignment reads of parent `member`: its segments are its lineage's
        ready points as its trail holds them, and it was just copied when its curve holds
        only the point its copied weights started from."""
        s, row = self.snapshot, self.row[member]
        evaluated = s.evaluated[row] if s.evaluated else None
        trail = s.trails[row] if s.trails else ()
        copied = len(self.curves[member]) == 1 and self.changes[member] > 0
        return Parent(member, self.sub[member], int(s.steps[row]), len(trail),
                      None if evaluated is None else int(evaluated), member in busy, copied)


def plan(fire: Fire, snapshot: Snapshot, member: int, rng: np.random.Generator) -> Plan | None:
    """`Fire.plan`: what `member` does now, from `snapshot` alone."""
    if snapshot.groups is None or len(snapshot.groups) == 0:
        # no sub-populations (a plain snapshot, as the exploit battery's): truncation
        donor = Truncation(fire.fraction)(snapshot, member, rng)
        return None if donor is None else Plan(
            donor, reason=f"bottom {fire.fraction:.0%} by score (no sub-populations)")
    view = _view(fire, snapshot)
    if view.sub[member] == 0:
        return _evaluator(view, member)
    return _member(view, member, rng)


_last: list[View] = []  # the view of the latest snapshot planned on


def _view(fire: Fire, snapshot: Snapshot) -> View:
    """FIRE's view of `snapshot`, built once for all the plans of one snapshot (the store
    decides a synchronous generation, or the idle evaluators, against one snapshot)."""
    if _last and _last[0].snapshot is snapshot and _last[0].fire == fire:
        return _last[0]
    view = View(fire, snapshot)
    _last[:] = [view]
    return view


def _member(view: View, member: int, rng: np.random.Generator) -> Plan | None:
    """A member of P1..Pn: adopt its successful evaluator, or truncation inside its
    sub-population."""
    s = view.snapshot
    evaluators = view.members(0)
    scores = {e: float(s.scores[view.row[e]]) for e in evaluators}
    found = adoption(member, view.changes[member], view.evaluations, scores, view.mode)
    if found is not None:
        return Plan(found, Move.ADOPT, hparams=s.hparams[view.row[member]],
                    reason=f"evaluator {found} succeeded on its weights: takes them, keeps "
                           "its hparams")
    sub = view.sub[member]
    ids = view.members(sub)
    if sub == 1:  # by score, the members at other steps compared at this one's
        aligned = s.aligned(member)
        fit = [view.mode.sign * float(aligned.scores[view.row[m]]) for m in ids]
    else:
        fit = view.fitness(sub)
    donor = view.fire.truncate(ids, fit, member, rng)
    if donor is None:
        return None
    # fitness is oriented (higher is better); P1's is the score, shown as the run's
    sign = view.mode.sign if sub == 1 else 1.0
    mine, theirs = (sign * fit[ids.index(m)] for m in (member, donor))
    by = "score at its step" if sub == 1 else "FIRE fitness"
    return Plan(donor, reason=f"bottom {view.fire.fraction:.0%} of P{sub} by {by}: "
                              f"{mine:.4g} against member {donor}'s {theirs:.4g}")


def _evaluator(view: View, member: int) -> Plan | None:
    """An evaluator: go on, note a success, or stop and start on the next parent."""
    notes: tuple[tuple[str, str], ...] = ()
    current = view.evaluations.get(member)
    if current is not None:
        verdict = view.verdict(member)
        if verdict.state is State.RUNNING:
            return None
        if verdict.state is State.SUCCEEDED:
            if current.state is State.SUCCEEDED:
                return None  # it waits for the child's adopt
            # the child as it is now is the one it beat (it may have copied since the start)
            succeeded = replace(current, state=State.SUCCEEDED,
                                child_changes=view.changes[current.child])
            return Plan(None, Move.SETTLE, evaluation=succeeded,
                        notes=(("succeeded", verdict.reason),))
        notes = (("stopped", verdict.reason),)
    assigned = view.assignment().get(member)
    if assigned is None:
        return Plan(None, Move.SETTLE, notes=notes)  # no free parent: it idles
    s, parent, child = view.snapshot, assigned.parent, assigned.child
    hparams = dict(s.hparams[view.row[child]])
    evaluation = Evaluation(parent, child, view.changes[parent], view.changes[child],
                            int(s.steps[view.row[parent]]), hparams)
    return Plan(parent, Move.EVALUATE, hparams=hparams, evaluation=evaluation, notes=notes,
                reason=f"evaluator: trains parent {parent}'s weights with child {child}'s "
                       "hparams")
