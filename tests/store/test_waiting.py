"""Asynchronous exploits whose donor is behind: the member waits, then copies; none is lost.

Part of the store battery (parametrized over the backends by `new_store`).
"""

from __future__ import annotations

import json

from populace.store import Decision
from populace.testing.stores import claim_exactly, train


def copy(donor: int, lr: float = 9.0):
    """A decide that always makes the reporter copy `donor`."""
    return lambda snapshot, member: Decision(donor, {"lr": lr}, "test")


def test_a_member_whose_donor_is_behind_waits_then_copies_its_next_checkpoint(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    outcome = train(store, 1, 4, 0.1, decide=copy(0))
    # the decision stands, but nothing is copied yet: member 0's state is 2 steps behind
    assert outcome.decision == Decision(0, {"lr": 9.0}, "test")
    assert outcome.donor_checkpoint is None
    waiting = store.members()[1]
    assert (waiting.status, waiting.step, waiting.hparams) == ("waiting", 4, {"lr": 0.02})
    (wait,) = store.events("wait")
    assert (wait.member, wait.donor, wait.step, wait.donor_step) == (1, 0, 4, 2)
    # a waiting member is never handed to a worker, and the run is not over
    claimed = {store.claim("w", 60.0).id, store.claim("w", 60.0).id}
    assert claimed == {0, 2} and store.claim("w", 60.0) is None
    assert store.progress()["status"]["waiting"] == 1
    store.release("w", 0)
    store.release("w", 2)

    donor = train(store, 0, 4, 0.8)  # the donor reaches step 4: the copy is carried out
    member = store.members()[1]
    assert member.status == "ready" and member.checkpoint.id == donor.checkpoint
    assert (member.step, member.hparams, member.score) == (4, {"lr": 9.0}, 0.8)
    assert (member.generation, member.parent) == (1, 0)
    (exploit,) = store.events("exploit")
    assert (exploit.member, exploit.donor, exploit.step, exploit.donor_step) == (1, 0, 4, 4)
    assert exploit.result == store.results()[-1].id  # the donor's result up to the copy
    assert store.events("dropped") == []


def test_a_copy_made_after_a_wait_keeps_its_reason(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=lambda snapshot, member: Decision(
        0, {"lr": 9.0}, "test", reason="bottom 25% of P2 by FIRE fitness"))
    train(store, 0, 4, 0.8)  # the donor arrives: the decision kept while waiting is made
    (exploit,) = store.events("exploit")
    assert (exploit.member, exploit.detail) == (1, "bottom 25% of P2 by FIRE fitness")


def test_a_pending_decision_of_a_store_written_before_reasons_is_carried_out(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=copy(0))
    # what an older populace kept of a waiting decision: four fields, no reason
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET pending = ? WHERE id = 1",
                    (json.dumps([{"lr": 9.0}, "test", None, False]),))
    train(store, 0, 4, 0.8)
    (exploit,) = store.events("exploit")
    assert (exploit.member, exploit.after, exploit.detail) == (1, {"lr": 9.0}, None)


def test_a_waiting_member_copies_only_a_donor_at_or_past_its_step(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 1, 8, 0.1, decide=copy(0))
    train(store, 0, 4, 0.9)
    assert store.members()[1].status == "waiting"  # 4 < 8: still behind
    train(store, 0, 9, 0.9)
    member = store.members()[1]
    assert (member.status, member.step, member.parent) == ("ready", 9, 0)


def test_a_waiting_member_is_out_of_the_ranking_and_never_a_donor(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=copy(0))
    seen = []

    def decide(snapshot, member):
        seen.append(list(snapshot.ids))
        return None

    train(store, 2, 4, 0.5, decide=decide)
    assert seen == [[0, 2]]


def test_several_members_wait_for_one_donor_and_all_copy_it(new_store):
    store = new_store(population=4)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=copy(0, 1.0))
    train(store, 2, 4, 0.2, decide=copy(0, 2.0))
    train(store, 0, 4, 0.9)
    members = store.members()
    assert [(m.status, m.parent, m.hparams["lr"]) for m in members[1:3]] == [
        ("ready", 0, 1.0), ("ready", 0, 2.0)]
    assert [e.member for e in store.events("exploit")] == [1, 2]


def test_a_donor_that_finishes_first_drops_the_copy_and_the_member_decides_again(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 2, 6, 0.7)
    train(store, 1, 4, 0.1, decide=copy(0))
    asked = []

    def decide(snapshot, member):
        asked.append(member)
        return Decision(2, {"lr": 3.0}, "again") if member == 1 else None

    train(store, 0, 100, 0.95, final=True, decide=decide)  # member 0 jumps to the end
    (dropped,) = store.events("dropped")
    assert (dropped.member, dropped.donor) == (1, 0)
    assert "finished" in dropped.detail
    assert asked == [1]
    member = store.members()[1]
    assert (member.status, member.parent, member.hparams, member.step) == (
        "ready", 2, {"lr": 3.0}, 6)


def test_a_donor_that_fails_drops_the_copy_with_its_reason(new_store):
    store = new_store(population=3)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=copy(0))
    claim_exactly(store, 0)
    assert store.fail("w", 0, "boom", decide=lambda s, m: None) == "failed"
    (dropped,) = store.events("dropped")
    assert (dropped.member, dropped.donor, dropped.detail) == (1, 0, "member 0 failed")
    member = store.members()[1]
    assert (member.status, member.hparams, member.parent) == ("ready", {"lr": 0.02}, None)
    assert {store.claim("w", 60.0).id for _ in range(2)} == {1, 2}  # 1 trains on, its own state


def test_a_donor_that_copies_another_first_drops_the_waiting_copy(new_store):
    store = new_store(population=3)
    train(store, 2, 9, 0.99)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.1, decide=copy(0))

    def decide(snapshot, member):
        return Decision(2, {"lr": 5.0}, "t") if member == 0 else Decision(2, {"lr": 6.0}, "t")

    train(store, 0, 3, 0.5, decide=decide)  # 3 < 4: no copy of 0's state for member 1
    kinds = [(e.kind, e.member, e.donor) for e in store.events()]
    assert ("exploit", 0, 2) in kinds and ("dropped", 1, 0) in kinds
    assert kinds[-1] == ("exploit", 1, 2)  # member 1 decided again, against the new ranking
    assert store.members()[1].hparams == {"lr": 6.0}


def test_a_donor_that_no_longer_scores_better_when_it_arrives_is_not_copied(new_store):
    store = new_store(population=3)
    train(store, 2, 8, 0.5)
    train(store, 0, 2, 0.9)
    train(store, 1, 4, 0.3, decide=copy(0))
    asked = []

    def decide(snapshot, member):
        asked.append(member)
        return Decision(2, {"lr": 4.0}, "again") if member == 1 else None

    train(store, 0, 4, 0.2, decide=decide)  # it reached step 4 with 0.2, below member 1's 0.3
    (dropped,) = store.events("dropped")
    assert (dropped.member, dropped.donor) == (1, 0)
    assert dropped.detail == "member 0 no longer scores better at this step"
    assert asked[0] == 1  # member 1 decided again, before member 0 decided for itself
    member = store.members()[1]
    assert (member.status, member.parent, member.hparams) == ("ready", 2, {"lr": 4.0})
