"""FIRE-PBT's decisions (Dalibard & Jaderberg 2021, arXiv 2109.13800), pure and small.

Plain PBT ranks members by the score they have now, so it favours hparams that pay off
soon: it is greedy. FIRE splits the population into sub-populations P1..Pn, each running
truncation inside itself. P1 ranks by score, and the run's answer comes from it. A parent
of Pk, k > 1, is ranked instead by how fast its *weights* improve once trained with the
best hparams of P(k-1): an evaluator copies the parent and trains it with the child's
hparams, and its curve is compared with the other evaluators' (fitness) and with the
child's own (the verdict). An evaluator that significantly beats its child from the same
score hands the child its weights (the adopt): long-horizon weights enter P1 that way.

This module holds what a decision computes, from plain arguments, with no I/O; the curve
math is in `populace.strategies.curves`, and `Fire.plan` (`populace.strategies.fireplan`)
reads them from the Snapshot's FIRE columns, which the store fills for a run whose exploit
declares `curve` (`curve_of`), each read from member rows, never from the history:

- `groups`: each member's sub-population, 1..n, or 0 for an evaluator (`Layout.groups`,
  fixed when the members are created);
- `curves`: each member's [step, score] points since its weights last changed hands, at
  most `Fire.curve` of them: a copy resets it, an adopt takes the evaluator's, and an
  evaluation starts it at the parent checkpoint's score;
- `changes`: how many times each member's weights or hparams changed (copy, adopt,
  explore in place), the witness for "parent changed" and "child changed" (`generation`
  is none: a copy can land on an equal generation);
- `evaluated`: the step at which each parent's latest evaluation began (None: never);
- `evaluations`: each evaluator's `Evaluation` (None while idle);

and, per decision, the segments each evaluator has trained since its evaluation began
(its curve's points after the first, over `points`) and whether each parent was copied at
its latest ready point (its curve holds only the point its copied weights started from).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from populace.checks import number, one_of, refused, whole
from populace.errors import ConfigError
from populace.mode import Mode
from populace.snapshot import Snapshot
from populace.space import Space
from populace.strategies.curves import (
    Comparison,
    Curve,
    Overlap,
    best_difference,
    compare,
    min_points,
    oriented,
    overlap,
)

if TYPE_CHECKING:
    from populace.strategies.fireplan import Plan


ALIGNS = ("score", "start")  # how P2..Pn's fitness aligns two evaluators' curves


def subpopulations_for(population: int) -> int:
    """FIRE's sub-populations where the run gives none: one per 4 members, from 2 to 4.

    More sub-populations take P1 further from greed (on the noisy quadratic ready every 20
    steps, 4 beat 3 at 16 and 32 members, and 3 beat 2 at 16: benchmarks/RESULTS.md), but
    each truncates among its own members only, and one of 2 copies its worse member onto
    its better one at every ready point: at 8 members 3 sub-populations (2/2/2) ended
    behind PBT in 4 seeds of 10, up to 3.5 times its loss. One per 4 members keeps each
    at 3 or more beside a quarter of evaluators: 8 -> 3/3 + 2, 12 -> 3/3/3 + 3, 16 ->
    3/3/3/3 + 4, 32 -> 6/6/6/6 + 8 (12 to 15 were not measured).
    """
    return min(4, max(2, population // 4))


class Layout(NamedTuple):
    """How a run's population splits: each sub-population's size, P1 first, and how many
    members are evaluators. Evaluators count inside `--population`, so FIRE and PBT train
    the same number of models."""

    sizes: tuple[int, ...]
    evaluators: int

    @property
    def groups(self) -> np.ndarray:
        """Each member's group, in id order: 1..n for the sub-populations, 0 for evaluators."""
        subs = [k for k, size in enumerate(self.sizes, start=1) for _ in range(size)]
        return np.asarray(subs + [0] * self.evaluators, dtype=np.int64)


class State(str, Enum):
    """Where an evaluation stands; stored as its value."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    STOPPED = "stopped"


class Stop(str, Enum):
    """Why an evaluation stopped: the paper's three stopping rules, as PBT-Zoo quotes them."""

    HOPELESS = "hopeless"  # no overlap with the child once the budget is spent
    NOT_SIGNIFICANT = "not significant"  # p above the tightening bar
    PARENT_CHANGED = "parent changed"  # the weights it tests are gone
    CHILD_CHANGED = "child changed"  # after a success: the curve it beat is gone


class Verdict(NamedTuple):
    """An evaluation's state, why in words (for status and events), why as a `Stop` when
    stopped, and the comparison it came from (None when a change decided it)."""

    state: State
    reason: str
    stop: Stop | None = None
    comparison: Comparison | None = None


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator tests: `parent`'s weights, copied at step `start_step`, trained
    with child `child`'s `hparams`, frozen then; the two members' `changes` counts tell
    later whether either has changed: the parent's since the start, the child's since
    the success (`Fire.verdict`). `state` is RUNNING or SUCCEEDED."""

    parent: int
    child: int
    parent_changes: int
    child_changes: int
    start_step: int
    hparams: Mapping[str, Any]
    state: State = State.RUNNING

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as an evaluator's row keeps it (JSON values)."""
        return {"parent": self.parent, "child": self.child,
                "parent_changes": self.parent_changes, "child_changes": self.child_changes,
                "start_step": self.start_step, "hparams": dict(self.hparams),
                "state": self.state.value}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Evaluation:
        """The evaluation `to_dict` gave, read back from a row."""
        return cls(**{**stored, "state": State(stored["state"])})


class Parent(NamedTuple):
    """What the assignment reads of a member of P2..Pn: its sub-population `sub`, `step`,
    the `segments` it has trained, the step its latest evaluation began (`evaluated`,
    None: never), whether one is on it now (`busy`) and whether it was copied at its
    latest ready point (`copied`)."""

    id: int
    sub: int
    step: int
    segments: int
    evaluated: int | None
    busy: bool
    copied: bool


class Assignment(NamedTuple):
    """An evaluator starts on `parent`'s weights with `child`'s hparams."""

    evaluator: int
    parent: int
    child: int


@dataclass(frozen=True)
class Fire:
    """FIRE-PBT (Dalibard & Jaderberg 2021, arXiv 2109.13800, section 3, as PBT-Zoo quotes
    it; where this version departs from it, see `populace.strategies.curves`).

    `subpopulations` is n, P1 being plain PBT by score; `evaluators` the share of the
    population that evaluates; `fraction` the truncation inside each sub-population;
    `significance` the p-value a success needs, and the bar a running evaluation must
    stay under once its `budget` (in segments) is spent, the bar tightening from above 1
    to `significance` over the budget; `points` the curve points each segment records;
    `start` the segments a parent trains before its first evaluation; `smoothing` the
    moving-average window used only to align two curves; `curve` the points kept per
    member. Where `subpopulations` is None, the population sets it (`subpopulations_for`:
    2 at 8 members, 4 from 16). No verdict comes before `min_points(significance)` points
    (7 at 0.01), so `budget * points` must reach it.

    The defaults are the paper's test (significance 0.01) on 4 curve points a segment
    (PBT-Zoo records 10): every executor also scores each segment at `points - 1` evenly
    spaced steps inside it (`populace.segment.Segments.marks`; it needs ready_steps), so
    a verdict's 7 points can come within 2 segments, and `budget=4` stops a hopeless or
    insignificant evaluation after 4. One point a segment (`points=1`) saves those
    evaluations and needs a budget of 7 segments, in which truncation changes most
    parents first (benchmarks/greedy.md). `align` is how P2..Pn's fitness aligns two
    evaluators' curves: "score", the paper's, from the score they share; "start" (the
    default), after as many points under the child's hparams, which on the noisy
    quadratic does not reward weights merely for having more easy progress left. The
    defaults (budget 4, "start", n by the population) are the setting measured at 8, 16
    and 32 members on the noisy quadratic (benchmarks/RESULTS.md, issue 30); the paper's
    fitness with budget 2, the defaults before, was bimodal there. A run that is
    given no initial hparams starts P1..Pn from a space-filling draw (`initial`), so that
    each small sub-population spans the prior. See docs/strategies/fire.md.
    """

    subpopulations: int | None = None  # None: by the population (`subpopulations_for`)
    evaluators: float = 0.25
    fraction: float = 0.25
    significance: float = 0.01
    budget: int = 4
    points: int = 4
    start: int = 1
    smoothing: int = 3
    curve: int = 128
    align: str = "start"

    def __post_init__(self) -> None:
        if self.subpopulations is not None:
            object.__setattr__(self, "subpopulations",
                               whole("Fire", "subpopulations", self.subpopulations, 2, 4))
        for name, low, high in (("budget", 1, 1000),
                                ("points", 1, 100), ("start", 0, 1000),
                                ("smoothing", 1, 51), ("curve", 8, 1000)):
            object.__setattr__(self, name, whole("Fire", name, getattr(self, name), low, high))
        for name, open_high in (("evaluators", False), ("fraction", False),
                                ("significance", True)):  # all in (0, 0.5], or (0, 0.5)
            share = number("Fire", name, getattr(self, name), low=0, open_low=True, high=0.5,
                           open_high=open_high)
            object.__setattr__(self, name, share)
        object.__setattr__(self, "align", one_of("Fire", "align", self.align, ALIGNS))
        if self.smoothing % 2 == 0:  # a centred window needs a middle point
            raise refused("Fire", "smoothing", "an odd int in [1, 51]", self.smoothing)
        self._check_resolution()

    def _check_resolution(self) -> None:
        """Refuse a budget that can never reach a verdict, or curves too short to hold one."""
        held, needed = self.budget * self.points, min_points(self.significance)
        if held < needed:
            raise ConfigError(
                f"Fire: budget {self.budget} x points {self.points} = {held} curve points; "
                f"significance {self.significance:g} needs >= {needed}: raise budget or points")
        if self.curve < held + 1:
            raise ConfigError(
                f"Fire: curve must be >= budget x points + 1 = {held + 1}, so an evaluation's "
                f"curve is kept whole up to its budget, got curve={self.curve}")

    def __call__(self, snapshot: Snapshot, member_id: int,
                 rng: np.random.Generator) -> int | None:
        """The donor of `plan`, for the `Exploit` protocol: on a snapshot without FIRE's
        columns (no sub-populations), truncation over everyone by `fraction`."""
        plan = self.plan(snapshot, member_id, rng)
        return None if plan is None else plan.donor

    def plan(self, snapshot: Snapshot, member_id: int,
             rng: np.random.Generator) -> Plan | None:
        """What `member_id` does now, from `snapshot` alone (`populace.strategies.fireplan`):
        adopt, copy inside its sub-population, or, as an evaluator, go on, succeed, stop
        and start on the next parent; None: it goes on as it is."""
        from populace.strategies.fireplan import plan  # it builds on this module's words

        return plan(self, snapshot, member_id, rng)

    def layout(self, population: int) -> Layout:
        """The sub-population sizes and evaluator count for `population` members.

        E = round(evaluators x N) (at least 1), lowered until every sub-population has 2
        members and the parents (P2..Pn) outnumber the evaluators, so a free parent always
        exists. The rest splits evenly, P1 taking the remainder: with 2 sub-populations,
        8 -> 3/3/2 (PBT-Zoo's pop8), 16 -> 6/6/4, 32 -> 12/12/8; with none given,
        `subpopulations_for` picks them.
        """
        population = whole(None, "population", population, 2)
        n = self.subpopulations or subpopulations_for(population)
        if population < 2 * n + 1:
            raise ConfigError(
                f"exploit fire needs population >= {2 * n + 1} for {n} sub-populations "
                f"(2 each + 1 evaluator), got {population}")
        # rounded half up, and first to 9 places: 0.3 x 10 must give 3
        e = max(1, math.floor(round(self.evaluators * population, 9) + 0.5))
        while e > 1 and ((population - e) // n < 2
                         or e > (population - e) // n * (n - 1) - 1):
            e -= 1
        rest = population - e
        base = rest // n
        return Layout((base + rest % n,) + (base,) * (n - 1), e)

    def initial(self, space: Space, population: int,
                rng: np.random.Generator) -> list[dict[str, Any]]:
        """Each member's starting hparams, in id order (`layout`): P1..Pn's drawn
        space-filling and dealt so that each sub-population spans the prior
        (`Space.latin`), the evaluators' from the prior.

        A sub-population truncates among its own few members, so it explores little more
        than what it starts from: three independent draws all land in the prior's lower
        half one time in eight, and on the noisy quadratic a sub-population
        that drew no lr near the best kept its lr far below it to the end
        (benchmarks/greedy.md). An evaluator's own hparams train only until its first
        evaluation gives it a child's.
        """
        layout = self.layout(population)
        return (space.latin(rng, layout.sizes)
                + [space.sample(rng) for _ in range(layout.evaluators)])

    def verdict(self, evaluation: Evaluation, evaluator: Curve, child: Curve, *,
                segments: float, changes: Mapping[int, int], mode: Mode) -> Verdict:
        """Where `evaluation` stands after `segments` segments, its curve `evaluator`
        against `child`'s curve, `changes` holding the parent's and child's counts now.

        A change of parent ends it (the weights whose fitness it measures are gone). A
        child that copied meanwhile is followed: the evaluator is compared with the
        child as it is now, from the score they share, for P1's truncation would end
        most evaluations before a verdict otherwise (benchmarks/greedy.md). Once
        succeeded it waits for the child's adopt, which a child change ends (the
        success was over the curve it had then; `child_changes` is the count then).
        """
        parent, kid = evaluation.parent, evaluation.child
        if evaluation.state is State.SUCCEEDED:
            if changes[kid] != evaluation.child_changes:
                return Verdict(State.STOPPED, f"child {kid} changed", Stop.CHILD_CHANGED)
            return Verdict(State.SUCCEEDED, f"succeeded; child {kid} has yet to adopt")
        if changes[parent] != evaluation.parent_changes:
            return Verdict(State.STOPPED, f"parent {parent} changed", Stop.PARENT_CHANGED)
        c = compare(oriented(evaluator, mode), oriented(child, mode), self.smoothing)
        return self._judge(c, kid, segments)

    def _judge(self, c: Comparison, kid: int, segments: float) -> Verdict:
        """The verdict from a comparison with child `kid`, after `segments` segments."""
        at = f"{segments:g}/{self.budget} segments"
        needed = min_points(self.significance)
        if c.behind:
            if segments >= self.budget:  # a soft limit: it holds only without an overlap
                return Verdict(State.STOPPED, f"no overlap with child {kid} after "
                               f"{segments:g} segments", Stop.HOPELESS, c)
            return Verdict(State.RUNNING, f"no overlap with child {kid} yet at {at}", None, c)
        if c.points < needed:  # too few points to pass, so too few to fail on either
            return Verdict(State.RUNNING, f"{c.points} of {needed} points at {at}", None, c)
        if c.p < self.significance and c.difference > 0:
            return Verdict(State.SUCCEEDED, f"p={c.p:.2g}, best-score difference "
                           f"{c.difference:.2g} over {c.points} points", None, c)
        bar = self.bar(segments)
        if c.p > bar:
            return Verdict(State.STOPPED, f"not significant: p={c.p:.2g} > {bar:.2g} at {at}",
                           Stop.NOT_SIGNIFICANT, c)
        return Verdict(State.RUNNING, f"p={c.p:.2g} over {c.points} points at {at}", None, c)

    def bar(self, segments: float) -> float:
        """The p-value a running evaluation must stay under: above 1 at its start (no stop),
        tightening to `significance` when the budget is spent."""
        return self.significance + max(0.0, 1.0 - segments / self.budget)

    def fitness(self, curves: Mapping[int, Curve], mode: Mode) -> dict[int, float]:
        """Each parent's FIRE fitness, from its evaluator's curve (`curves`: parent id ->
        the curve of the evaluation it is under now): the sum of its best-score
        differences against every other parent's evaluator, curves that never meet adding
        0. It sums to 0 over the parents. A parent under no evaluation has no fitness (NaN
        to `truncate`): it is absent from the answer."""
        ids = sorted(curves)
        values = {p: oriented(curves[p], mode) for p in ids}
        out = dict.fromkeys(ids, 0.0)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:  # bsd is antisymmetric: one overlap per pair
                va, vb = values[a], values[b]
                where = (overlap(va, vb, self.smoothing) if self.align == "score"
                         else Overlap(0, 0, min(len(va), len(vb))) if len(va) and len(vb)
                         else None)
                d = best_difference(va, vb, where)
                out[a] += d
                out[b] -= d
        return out

    def truncate(self, ids: Sequence[int], fitness: Sequence[float], member: int,
                 rng: np.random.Generator) -> int | None:
        """The donor `member` copies inside its sub-population `ids`, or None.

        Truncation by `fitness` (higher is better: FIRE fitness in P2..Pn, oriented
        scores in P1): of the n members with a finite fitness, the bottom k =
        ceil(fraction x n) (at most n // 2) copies a random one of the top k strictly
        better than itself. A NaN fitness (no evaluation yet) neither copies nor donates,
        unlike `Truncation`; a tie is no evidence, so it copies no one.
        """
        fit = np.asarray(fitness, dtype=np.float64)
        members = np.asarray(ids, dtype=np.int64)
        rows = np.flatnonzero(members == member)
        if len(rows) == 0:
            raise KeyError(f"member {member} is not in the sub-population {members.tolist()}")
        row = int(rows[0])
        if not np.isfinite(fit[row]):
            return None
        valid = np.flatnonzero(np.isfinite(fit))
        ranked = valid[np.lexsort((members[valid], -fit[valid]))]  # best first, ids break ties
        n = len(ranked)
        k = min(math.ceil(round(self.fraction * n, 9)), n // 2)
        if k == 0 or row not in ranked[n - k:]:
            return None
        top = [int(r) for r in ranked[:k] if fit[r] > fit[row]]
        return int(members[rng.choice(top)]) if top else None

    def assign(self, evaluators: Mapping[int, int], parents: Sequence[Parent],
               children: Mapping[int, int]) -> list[Assignment]:
        """Which parent each idle evaluator (`evaluators`: id -> its step) takes, and with
        which child (`children`: sub-population k -> the best of P(k-1), see `child_of`).

        Deterministic, evaluators in id order, so every decision of one snapshot computes
        the same assignment and no parent goes to two evaluators. A parent is free when no
        evaluation is on it, it has trained `start` segments, and its sub-population has a
        child. Each evaluator takes the free parent first by `_priority`; with none left
        it idles.
        """
        free = [p for p in parents
                if not p.busy and p.segments >= self.start and p.sub in children]
        out = []
        for evaluator in sorted(evaluators):
            if not free:
                break
            pick = min(free, key=partial(_priority, step=evaluators[evaluator]))
            free.remove(pick)
            out.append(Assignment(evaluator, pick.id, children[pick.sub]))
        return out


def _priority(parent: Parent, step: int) -> tuple[bool, bool, bool, int, int]:
    """Sort key of a free parent for an evaluator at `step`, lowest first: a just-copied
    parent last (its weights are its donor's, hardly its own); then one at or past the
    evaluator's step (it would wait for one behind, never going back in steps); then the
    longest without an evaluation, never evaluated first; then the smallest id."""
    evaluated = parent.evaluated is not None
    return (parent.copied, parent.step < step, evaluated, parent.evaluated or 0, parent.id)


def child_of(ids: Sequence[int], fitness: Sequence[float], lengths: Sequence[int]) -> int | None:
    """The child P(k+1)'s evaluators train with: the best of Pk by `fitness` (higher is
    better; ties to the smallest id) with at least 2 curve points (`lengths`), which also
    leaves out a member copied at its latest ready point (a copy resets its curve); None
    when no member qualifies."""
    best: tuple[float, int] | None = None
    for member, fit, length in zip(ids, fitness, lengths, strict=True):
        if length >= 2 and math.isfinite(fit) and (
                best is None or fit > best[0] or (fit == best[0] and member < best[1])):
            best = (float(fit), int(member))
    return None if best is None else best[1]


def adoption(member: int, changes: int, evaluations: Mapping[int, Evaluation],
             scores: Mapping[int, float], mode: Mode) -> int | None:
    """The evaluator `member` adopts (copies its weights, keeping its own hparams), or None.

    Among the evaluators that succeeded for `member` as it is now (its `changes` count
    unchanged since the success), the best by latest score (`scores`,
    evaluator id -> score; ties to the smallest id); one without a finite score is passed
    over.
    """
    best: tuple[float, int] | None = None
    for evaluator in sorted(evaluations):
        e = evaluations[evaluator]
        score = mode.sign * scores.get(evaluator, math.nan)
        if (e.child == member and e.state is State.SUCCEEDED and e.child_changes == changes
                and math.isfinite(score) and (best is None or score > best[0])):
            best = (score, evaluator)
    return None if best is None else best[1]
