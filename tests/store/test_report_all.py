"""`Store.report_all`: members ready together (a vectorized run's) reported in one
transaction, one commit, deciding exactly as the same reports made one by one."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from populace.snapshot import Snapshot
from populace.store import Decision, Store
from populace.testing.stores import claim_exactly
from populace.testing.stores._kit import report


def _copy_best(snapshot: Snapshot, member: int) -> Decision | None:
    """The worst scored member copies the best (a decision that reads the reports before)."""
    scored = snapshot.valid()
    if scored.sum() < 2 or snapshot.place(snapshot.index(member)) != scored.sum() - 1:
        return None
    return Decision(int(snapshot.ids[snapshot.best(1)[0]]), {"lr": 0.5})


def _ready_together(store: Store) -> list:
    """Every member claimed, each with a report at step 4 (member 1 best, 3 worst)."""
    for m in range(4):
        claim_exactly(store, m)
    scores = [0.4, 0.9, 0.3, 0.1]
    return [report(m, "w", 4, scores[m], sha=f"{m:064x}", hparams={"lr": 0.01 * (m + 1)})
            for m in range(4)]


def _what_is_stored(store: Store) -> tuple:
    return ([(m.id, m.status, m.step, m.score, m.hparams, m.parent) for m in store.members()],
            [(e.kind, e.member, e.donor, e.step, e.after) for e in store.events()],
            [(r.member, r.step, r.score) for r in store.results()])


def test_reports_together_store_and_decide_as_one_by_one(new_store):
    together, alone = new_store(4, name="together"), new_store(4, name="alone")
    outcomes = together.report_all(_ready_together(together), _copy_best, 10)
    one_by_one = [alone.report(r, _copy_best, 10) for r in _ready_together(alone)]
    assert [(o.accepted, o.decision) for o in outcomes] == [
        (o.accepted, o.decision) for o in one_by_one]
    assert _what_is_stored(together) == _what_is_stored(alone)
    # each decided against the reports before it: members 2 and 3, each the worst when it
    # reported, copy member 1, the best
    assert [None if o.decision is None else o.decision.donor for o in outcomes] == [
        None, None, 1, 1]


def test_reports_together_are_one_transaction(new_store, monkeypatch):
    store = new_store(4)
    reports = _ready_together(store)
    writes = []
    opened = store.driver.write

    @contextmanager
    def counted():
        writes.append(1)
        with opened() as cur:
            yield cur

    monkeypatch.setattr(store.driver, "write", counted)
    outcomes = store.report_all(reports, None, 10)
    assert len(writes) == 1 and all(o.accepted for o in outcomes)
    monkeypatch.undo()

    def fails_late(snapshot: Snapshot, member: int) -> Decision | None:
        if member == 2:
            raise RuntimeError("the third decision fails")
        return None

    other = new_store(4, name="other")
    with pytest.raises(RuntimeError, match="third decision"):
        other.report_all(_ready_together(other), fails_late, 10)
    assert other.results() == [] and {m.status for m in other.members()} == {"running"}


def test_a_late_report_among_them_is_refused_alone(new_store, store_factory):
    store = new_store(4)
    reports = _ready_together(store)
    store.release("w", 1)
    claim_exactly(store_factory(), 1, worker="thief")  # member 1's lease is another's now
    outcomes = store.report_all(reports, None, 10)
    assert [o.accepted for o in outcomes] == [True, False, True, True]
    assert [r.member for r in store.results()] == [0, 2, 3]
