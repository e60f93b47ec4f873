"""Store checks of FIRE-PBT's state: the layout fixed at creation, evaluations started,
settled and adopted inside the report's transaction, and every connection reading them
back alike. The decisions are written by hand, so a backend is checked without Fire."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from populace.store import Decision, Kind, Status, Store
from populace.testing.stores._kit import (
    Decide,
    Stores,
    equal,
    holds,
    run_record,
    some,
    store_check,
    train,
)

# P1 = {0}, P2 = {1, 2}, evaluator 3; a run whose exploit keeps 16 curve points
GROUPS = [1, 2, 2, 0]
EVALUATION = {"parent": 1, "child": 0, "parent_changes": 0, "child_changes": 0,
              "start_step": 2, "hparams": {"lr": 0.01}, "state": "running"}


def _fire_run(stores: Stores, name: str = "run") -> Store:
    store = stores.open(name)
    record = replace(run_record("min", len(GROUPS)), curve=16)
    store.create(record, [{"lr": 0.01 * (i + 1)} for i in range(len(GROUPS))], GROUPS)
    return store


def _once(member: int, decision: Decision) -> Decide:
    """A decide that makes `member` take `decision` once (an evaluator it idles is decided
    again in the same report, and must then stay idle)."""
    left = [decision]

    def decide(snapshot: Any, deciding: int) -> Decision | None:
        return left.pop() if deciding == member and left else None

    return decide


def _fire_columns(store: Store) -> list[tuple[Any, ...]]:
    """Each member's FIRE state as the snapshot carries it, by id."""
    s = store.snapshot()
    assert s.groups is not None and s.changes is not None, "a FIRE run's snapshot has them"
    return [(int(s.ids[r]), int(s.groups[r]), int(s.changes[r]), s.curves[r], s.evaluated[r],
             s.evaluations[r]) for r in range(len(s))]


@store_check
def check_store_a_fire_run_keeps_its_layout_and_curves(stores: Stores) -> None:
    """The sub-populations are fixed at creation, an evaluator starts idle (never
    claimed), and each report adds its score to the member's curve."""
    store = _fire_run(stores)
    equal([m.status for m in store.members()], ["ready"] * 3 + ["idle"])
    train(store, 0, 2, 0.9, hparams={"lr": 0.01})
    train(store, 0, 4, 0.8, hparams={"lr": 0.01})
    columns = _fire_columns(store)
    equal([c[1] for c in columns], GROUPS)
    equal(columns[0][3], [[2, 0.9], [4, 0.8]])
    equal([c[3] for c in columns[1:]], [[], [], []])
    claimed = {some(store.claim("w", 60.0)).id for _ in range(3)}
    equal((claimed, store.claim("w", 60.0)), ({0, 1, 2}, None))


@store_check
def check_store_an_evaluation_starts_settles_and_is_adopted(stores: Stores) -> None:
    """An evaluation starts as a copy of the parent with the child's hparams (its curve
    from the parent's score, the parent's `evaluated` set, an 'evaluation' event); a
    success is a note with no copy; the child's adopt takes the evaluator's weights and
    curve, keeps its hparams and idles the evaluator with a 'stopped' event; another
    connection reads the same state."""
    store = _fire_run(stores)
    train(store, 0, 2, 0.9, hparams={"lr": 0.01})
    start = Decision(1, {"lr": 0.01}, "fire+evaluate", evaluation=EVALUATION)
    # parent 1 reports; the idle evaluator 3 is decided after it, in the same transaction
    train(store, 1, 2, 1.5, hparams={"lr": 0.02},
          decide=lambda s, m: start if m == 3 else None)
    evaluator = store.members()[3]
    equal((evaluator.status, evaluator.hparams, evaluator.step), ("ready", {"lr": 0.01}, 2))
    holds(evaluator.checkpoint is not None and evaluator.checkpoint.member == 1)
    equal(_fire_columns(store)[3][2:], (1, [[2, 1.5]], None, EVALUATION))
    equal(_fire_columns(store)[1][4], 2)  # parent 1's evaluation began at step 2
    (event,) = store.events(Kind.EVALUATION)
    equal((event.member, event.donor, event.after), (3, 1, {"lr": 0.01}))

    succeeded = {**EVALUATION, "state": "succeeded"}
    note = Decision(None, {}, "fire+settle", evaluation=succeeded,
                    notes=((Kind.SUCCEEDED, "p=0.0078"),))
    outcome = train(store, 3, 4, 0.1, hparams={"lr": 0.01}, decide=lambda s, m: note)
    equal(outcome.decision, None)  # no copy: the evaluator goes on with its own state
    equal(_fire_columns(store)[3][3:], ([[2, 1.5], [4, 0.1]], None, succeeded))
    (event,) = store.events(Kind.SUCCEEDED)
    equal((event.member, event.detail), (3, "p=0.0078"))

    adopt = Decision(3, {"lr": 0.01}, "fire+adopt", adopt=True)
    train(store, 0, 4, 0.85, hparams={"lr": 0.01}, decide=lambda s, m: adopt if m == 0 else None)
    child = store.members()[0]
    equal((child.hparams, child.parent, child.step, child.score), ({"lr": 0.01}, 3, 4, 0.1))
    again = stores.open()  # another connection sees all of it
    for s in (store, again):
        columns = _fire_columns(s)
        equal(columns[0][2:4], (1, [[2, 1.5], [4, 0.1]]))  # a change; the evaluator's curve
        equal(columns[3][5], None)
        equal(s.members()[3].status, Status.IDLE)
        (stopped,) = s.events(Kind.STOPPED)
        equal((stopped.member, stopped.donor, stopped.detail), (3, 0, "adopted by child 0"))


@store_check
def check_store_an_evaluator_with_no_parent_left_idles(stores: Stores) -> None:
    """A stop with no next parent is a note and an idle evaluator; a copy resets the
    copier's curve to the point its copied weights scored and counts as a change."""
    store = _fire_run(stores)
    train(store, 1, 2, 1.5, hparams={"lr": 0.02})
    start = Decision(1, {"lr": 0.01}, "fire+evaluate", evaluation=EVALUATION)
    train(store, 2, 2, 1.4, hparams={"lr": 0.03}, decide=lambda s, m: start if m == 3 else None)
    stop = Decision(None, {}, "fire+settle", notes=((Kind.STOPPED, "parent 1 changed"),))
    train(store, 3, 4, 1.2, hparams={"lr": 0.01}, decide=_once(3, stop))
    equal(store.members()[3].status, Status.IDLE)
    equal(_fire_columns(store)[3][5], None)
    equal([(e.member, e.detail) for e in store.events(Kind.STOPPED)], [(3, "parent 1 changed")])
    train(store, 2, 4, 1.3, hparams={"lr": 0.03})
    copy = Decision(2, {"lr": 0.5}, "fire+perturb")
    train(store, 1, 4, 1.6, hparams={"lr": 0.02}, decide=_once(1, copy))
    equal(_fire_columns(store)[1][2:4], (1, [[4, 1.3]]))
