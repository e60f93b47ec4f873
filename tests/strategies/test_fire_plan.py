"""`Fire.plan` on hand-made snapshots carrying FIRE's columns: pure, no store.

The population (mode min): P1 = {0, 1}, P2 = {2, 3, 4}, evaluators 5 and 6; member 0 is
the child (P1's best with a curve of two points).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from populace.snapshot import Snapshot
from populace.strategies.fire import Evaluation, Fire, State
from populace.strategies.fireplan import Move, Plan

FIRE = Fire(points=1, budget=10, smoothing=1)
GROUPS = [1, 1, 2, 2, 2, 0, 0]
HPARAMS = [{"lr": 0.01 * (i + 1)} for i in range(7)]


def curve(*scores: float, start: int = 10) -> list[list[float]]:
    return [[start + 10 * i, s] for i, s in enumerate(scores)]


def snapshot(curves: dict[int, list[list[float]]], evaluations: dict[int, Evaluation],
             changes: dict[int, int] | None = None) -> Snapshot:
    """Seven members at step 30, scored by their curves' newest points."""
    rows = [curves.get(m, []) for m in range(7)]
    stored: list[Any] = [evaluations[m].to_dict() if m in evaluations else None
                         for m in range(7)]
    return Snapshot(
        ids=np.arange(7), steps=np.full(7, 30), hparams=HPARAMS, maximize=False,
        scores=np.array([c[-1][1] if c else np.nan for c in rows]),
        trails=[c or [[30, 1.0]] for c in rows],
        groups=np.array(GROUPS), changes=np.array([(changes or {}).get(m, 0) for m in range(7)]),
        curves=rows, evaluations=stored,
        # each parent under evaluation was evaluated from its evaluation's start
        evaluated=[next((e.start_step for e in evaluations.values() if e.parent == m), None)
                   for m in range(7)],
    )


CHILD = curve(1.0, 0.99, 0.98)
PARENTS = {1: curve(1.2), 2: curve(1.5, 1.5), 3: curve(1.4, 1.4), 4: curve(1.45, 1.45)}


ADOPTS_5 = "evaluator 5 succeeded on its weights: takes them, keeps its hparams"


def evaluation(parent: int, state: State = State.RUNNING) -> Evaluation:
    return Evaluation(parent, 0, 0, 0, 20, HPARAMS[0], state)


def plan(s: Snapshot, member: int) -> Plan | None:
    return FIRE.plan(s, member, np.random.default_rng(0))


def test_idle_evaluators_of_one_snapshot_take_distinct_parents_with_the_childs_hparams():
    s = snapshot({0: CHILD, **PARENTS}, {})
    five, six = plan(s, 5), plan(s, 6)
    assert (five.move, five.donor, six.move, six.donor) == (Move.EVALUATE, 2, Move.EVALUATE, 3)
    assert five.hparams == HPARAMS[0] and five.evaluation.child == 0
    assert five.evaluation.parent_changes == 0 and five.notes == ()


def test_no_child_with_two_points_leaves_the_evaluators_idle():
    s = snapshot({0: curve(1.0), **PARENTS}, {})
    assert plan(s, 5) == Plan(None, Move.SETTLE)


def test_a_parent_ranked_below_by_fire_fitness_copies_the_other_though_it_scores_better():
    # 2's evaluator halves its loss, 3's hardly moves; 3 scores better now (1.4 < 1.5)
    curves = {0: CHILD, **PARENTS, 5: curve(1.5, 0.75, 0.37, start=20),
              6: curve(1.4, 1.399, 1.398, start=20)}
    s = snapshot(curves, {5: evaluation(2), 6: evaluation(3)})
    assert plan(s, 3) == Plan(  # truncation: the donor's hparams explored
        2, reason="bottom 25% of P2 by FIRE fitness: -1.028 against member 2's 1.028")
    assert plan(s, 2) is None and plan(s, 4) is None  # 4 is under no evaluation


def test_a_success_is_noted_and_the_child_adopts_keeping_its_hparams():
    better = curve(1.5, *(0.9 - 0.05 * i for i in range(7)), start=20)
    s = snapshot({0: CHILD + curve(0.97, 0.96, 0.95, 0.94, start=40), **PARENTS, 5: better},
                 {5: evaluation(2)})
    succeeded = plan(s, 5)
    assert succeeded.move is Move.SETTLE and succeeded.donor is None
    assert succeeded.evaluation.state is State.SUCCEEDED
    assert [kind for kind, _ in succeeded.notes] == ["succeeded"]
    s = snapshot({0: CHILD, **PARENTS, 5: better}, {5: evaluation(2, State.SUCCEEDED)})
    assert plan(s, 0) == Plan(5, Move.ADOPT, hparams=HPARAMS[0], reason=ADOPTS_5)
    assert plan(s, 5) is None  # it waits for the adopt


def test_an_evaluation_follows_a_child_that_copied_and_the_child_adopts_as_it_is_now():
    # child 0 copied (changes 2) since evaluator 5 began on it: its curve restarted at
    # 0.97; the evaluator, from 1.5, falls below it and then beats it point by point
    better = curve(1.5, *(0.96 - 0.05 * i for i in range(8)), start=20)
    copied = curve(0.97, 0.965, 0.96, 0.955, 0.95, 0.945, 0.94, 0.935, start=30)
    s = snapshot({0: copied, **PARENTS, 5: better}, {5: evaluation(2)}, changes={0: 2})
    succeeded = plan(s, 5)
    assert [kind for kind, _ in succeeded.notes] == ["succeeded"]
    assert succeeded.evaluation.child_changes == 2  # the child it beat is the one now
    s = snapshot({0: copied, **PARENTS, 5: better}, {5: succeeded.evaluation}, changes={0: 2})
    assert plan(s, 0) == Plan(5, Move.ADOPT, hparams=HPARAMS[0], reason=ADOPTS_5)
    # a child that copies again after the success has a curve the success never saw
    s = snapshot({0: copied, **PARENTS, 5: better}, {5: succeeded.evaluation}, changes={0: 3})
    assert plan(s, 0) != Plan(5, Move.ADOPT, hparams=HPARAMS[0])
    assert plan(s, 5).notes == (("stopped", "child 0 changed"),)
    # while it runs, a copied child's evaluation goes on rather than stop
    s = snapshot({0: copied, **PARENTS, 5: better[:3]}, {5: evaluation(2)}, changes={0: 2})
    assert plan(s, 5) is None


def test_a_changed_parent_stops_the_evaluation_and_it_moves_to_a_free_parent():
    curves = {0: CHILD, **PARENTS, 5: curve(1.5, 0.75, start=20), 6: curve(1.4, 1.39, start=20)}
    s = snapshot(curves, {5: evaluation(2), 6: evaluation(3)}, changes={3: 1})
    moved = plan(s, 6)
    assert moved.notes == (("stopped", "parent 3 changed"),)
    # 2 is busy; 4, never evaluated, comes before 3, evaluated at step 20
    assert (moved.move, moved.donor) == (Move.EVALUATE, 4)


def without(s: Snapshot, member: int) -> Snapshot:
    """`s` without `member`'s row, as the store leaves out a member waiting to copy."""
    keep = [r for r in range(len(s)) if s.ids[r] != member]
    return Snapshot(
        ids=s.ids[keep], steps=s.steps[keep], scores=s.scores[keep], maximize=s.maximize,
        hparams=[s.hparams[r] for r in keep], trails=[s.trails[r] for r in keep],
        groups=s.groups[keep], changes=s.changes[keep], curves=[s.curves[r] for r in keep],
        evaluated=[s.evaluated[r] for r in keep], evaluations=[s.evaluations[r] for r in keep])


def test_a_succeeded_evaluation_stands_while_its_child_is_away_and_a_running_one_stops():
    # the child waits to adopt (out of the ranked snapshot): the success is not lost
    curves = {0: CHILD, **PARENTS, 5: curve(1.5, 0.7, start=20)}
    s = without(snapshot(curves, {5: evaluation(2, State.SUCCEEDED)}), 0)
    assert plan(s, 5) is None
    s = without(snapshot(curves, {5: evaluation(2)}), 0)
    assert plan(s, 5).notes == (("stopped", "child 0 no longer trains"),)


def test_a_failed_members_replacement_copies_the_best_of_its_sub_population():
    from populace.space import Float, Space
    from populace.strategies import Keep
    from populace.strategies.firedecide import fire_decide

    s = snapshot({0: CHILD, 1: curve(1.2), 2: curve(1.5, 1.5), 4: curve(1.45, 1.45)}, {})
    assert np.isnan(s.scores[3])  # member 3 failed: no score, so no FIRE fitness
    space = Space({"lr": Float(0.001, 1.0)})
    decide = fire_decide(FIRE, Keep(), space, seed=0, explore_name="keep")
    replace = fire_decide(FIRE, Keep(), space, seed=0, explore_name="keep", replace=True)
    assert decide(s, 3) is None  # a member without a score neither ranks nor copies
    copy = replace(s, 3)
    assert (copy.donor, copy.hparams, copy.strategy) == (4, HPARAMS[4], "fire+keep")
    # an evaluator's plan is its own, replacing it or not: it starts on a free parent
    assert replace(s, 5) == decide(s, 5) and decide(s, 5).strategy == "fire+evaluate"
