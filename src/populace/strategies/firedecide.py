"""FIRE-PBT's plans as the store's decisions: what a run's `decide` returns for `Fire`.

`Fire.plan` is pure and says what a member does (`populace.strategies.fireplan`); the
store carries out a `Decision` (`populace.store.exploits`). This module is the one step
between: a truncation copy explores the donor's hparams as every PBT copy does, an
adopt and an evaluation take theirs as they are, and the evaluation and its notes
travel as the row keeps them.
"""

from __future__ import annotations

import numpy as np

from populace.snapshot import Snapshot
from populace.space import Space
from populace.store.exploits import Decide
from populace.store.records import Decision, Kind
from populace.strategies.fire import Fire
from populace.strategies.fireplan import Move, Plan
from populace.strategies.protocols import Explore


def decision(plan: Plan, snapshot: Snapshot, member: int, explore: Explore, space: Space,
             rng: np.random.Generator, explore_name: str) -> Decision:
    """The store's `Decision` for `member`'s `plan`; its strategy reads `fire+adopt`,
    `fire+evaluate`, `fire+settle`, or `fire+<explore>` for a truncation copy."""
    notes = tuple((Kind(kind), detail) for kind, detail in plan.notes)
    evaluation = None if plan.evaluation is None else plan.evaluation.to_dict()
    if plan.donor is None:
        return Decision(None, {}, f"fire+{plan.move.value}", evaluation=evaluation,
                        notes=notes)
    if plan.hparams is None:  # a copy inside the sub-population explores, as in PBT
        copied = snapshot.hparams[snapshot.index(plan.donor)]
        hparams = space.normalize(explore(copied, space, rng))
        strategy = f"fire+{explore_name}"
    else:
        hparams, strategy = space.normalize(dict(plan.hparams)), f"fire+{plan.move.value}"
    return Decision(plan.donor, hparams, strategy, evaluation=evaluation,
                    adopt=plan.move is Move.ADOPT, reason=plan.reason, notes=notes)


def fire_decide(fire: Fire, explore: Explore, space: Space, seed: int,
                explore_name: str, replace: bool = False) -> Decide:
    """A run's `decide` for `Fire`, as `populace.segment.make_decide` is for the other
    exploits: one generator per member and step, so a decision is reproduced from the
    run's seed. With `replace`, the decision for a failed member (`replace_failed`): a
    member of P1..Pn its plan leaves without a copy (a failed one has no score, so it
    neither ranks nor copies) copies the best-scoring member of its sub-population; a
    failed evaluator's plan is kept (no copy: it stays failed)."""

    def decide(snapshot: Snapshot, member: int) -> Decision | None:
        step = int(snapshot.steps[snapshot.index(member)])
        rng = np.random.default_rng([seed, member, step])
        plan = fire.plan(snapshot, member, rng)
        if replace and (plan is None or plan.donor is None):
            plan = _replacement(snapshot, member) or plan
        if plan is None:
            return None
        return decision(plan, snapshot, member, explore, space, rng, explore_name)

    return decide


def _replacement(snapshot: Snapshot, member: int) -> Plan | None:
    """A failed member's copy of the best-scoring other member of its sub-population (a
    copy explored, as truncation's); None for an evaluator or with no member scored."""
    groups = (snapshot.groups if snapshot.groups is not None
              else np.ones(len(snapshot.ids), dtype=np.int64))  # one population
    sub = int(groups[snapshot.index(member)])
    if sub == 0:
        return None
    sign = 1.0 if snapshot.maximize else -1.0
    scored = [(sign * float(score), -int(m)) for m, score, group in
              zip(snapshot.ids, snapshot.scores, groups, strict=True)
              if m != member and group == sub and np.isfinite(score)]
    if not scored:
        return None
    return Plan(-max(scored)[1], reason=f"failed: copies the best-scoring member of P{sub}")
