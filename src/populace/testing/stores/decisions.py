"""Store checks of the report and its decision, one transaction: a copy points at the
donor's checkpoint, a copy that cannot be made is dropped and said, a decision that
raises rolls the whole report back."""

from __future__ import annotations

import numpy as np

from populace.snapshot import Snapshot
from populace.store import Decision, Store
from populace.testing.stores._kit import (
    Stores,
    claim_exactly,
    equal,
    holds,
    raises,
    report,
    some,
    store_check,
    train,
)


@store_check
def check_store_a_decision_points_the_member_at_the_donors_checkpoint(stores: Stores) -> None:
    """An exploit copies by pointing at the donor's checkpoint, in the report's transaction."""
    store = stores.new(population=3)
    donor_outcome = train(store, 0, 7, 0.9)
    donor = some(store.members()[0].checkpoint)
    seen = []

    def decide(snapshot: Snapshot, _member: int) -> Decision | None:
        seen.append(snapshot)
        return Decision(0, {"lr": 0.5}, "truncation")

    outcome = train(store, 1, 3, 0.1, decide=decide, hparams={"lr": 0.02})
    holds(outcome.accepted)
    equal(outcome.decision, Decision(0, {"lr": 0.5}, "truncation"))
    equal(outcome.donor_checkpoint, donor)
    holds(donor.id == donor_outcome.checkpoint and donor.step == 7)

    member = store.members()[1]
    equal(member.checkpoint, donor)
    equal((member.step, member.generation, member.parent), (7, 1, 0))
    # the donor's checkpoint scored 0.9: the score travels with the weights it evaluated
    equal((member.hparams, member.status, member.score), ({"lr": 0.5}, "ready", 0.9))
    own = [c for c in store.checkpoints() if c.member == 1]
    equal([(c.id, c.step) for c in own], [(outcome.checkpoint, 3)])  # kept, not lost

    (event,) = store.events()
    result = store.results(member=1)[0]
    equal((event.kind, event.member, event.donor), ("exploit", 1, 0))
    equal((event.step, event.donor_step, event.result), (3, 7, result.id))
    equal((event.before, event.after, event.strategy), ({"lr": 0.02}, {"lr": 0.5},
                                                           "truncation"))
    equal(result.hparams, {"lr": 0.02})  # the hparams in force during the segment

    # the next claim of member 1 starts from the donor's state
    equal(some(store.claim("w", 60.0, prefer=1)).id, 2)
    claimed = some(store.claim("w", 60.0, prefer=1))
    equal((claimed.id, claimed.step, claimed.checkpoint), (1, 7, donor))
    equal(claimed.hparams, {"lr": 0.5})


@store_check
def check_store_generation_counts_exploits_along_the_lineage(stores: Stores) -> None:
    """Each copy adds one generation to the donor's: the lineage is read from the store."""
    store = stores.new(population=3)
    train(store, 0, 7, 0.9)
    train(store, 1, 3, 0.5, decide=lambda s, _m: Decision(0, {"lr": 0.5}))
    # member 2 copies member 1, which holds member 0's checkpoint
    outcome = train(store, 2, 2, 0.1, decide=lambda s, _m: Decision(1, {"lr": 0.6}))
    member = store.members()[2]
    equal((member.generation, member.parent, member.step), (2, 1, 7))
    holds(member.checkpoint == store.members()[0].checkpoint == outcome.donor_checkpoint)
    equal([(e.member, e.donor, e.donor_step) for e in store.events("exploit")], [
        (1, 0, 7), (2, 1, 7)])


@store_check
def check_store_a_member_its_own_donor_explores_in_place(stores: Stores) -> None:
    """A member that is its own donor (exploit "own") keeps its checkpoint, step, score and
    generation and takes the new hparams; an 'explore' event names no donor."""
    store = stores.new(population=2)
    outcome = train(store, 1, 4, 0.3, hparams={"lr": 0.02},
                    decide=lambda s, m: Decision(m, {"lr": 0.05}, "own+perturb"))
    holds(outcome.accepted)
    equal(outcome.decision, Decision(1, {"lr": 0.05}, "own+perturb"))
    member = store.members()[1]
    equal(outcome.donor_checkpoint, member.checkpoint)
    equal(some(member.checkpoint).id, outcome.checkpoint)
    equal((member.step, member.score, member.generation, member.parent), (4, 0.3, 0, None))
    equal((member.hparams, member.status), ({"lr": 0.05}, "ready"))
    equal(store.events("exploit"), [])
    (event,) = store.events()
    equal((event.kind, event.member, event.donor, event.step), ("explore", 1, None, 4))
    equal((event.before, event.after, event.strategy), ({"lr": 0.02}, {"lr": 0.05},
                                                           "own+perturb"))
    equal(event.result, store.results(member=1)[0].id)
    # the next claim goes on from the member's own state, with the explored hparams
    equal(some(store.claim("w", 60.0, prefer=0)).id, 0)
    claimed = some(store.claim("w", 60.0, prefer=1))
    equal((claimed.id, claimed.step, claimed.checkpoint), (1, 4, member.checkpoint))
    equal(claimed.hparams, {"lr": 0.05})


def _never_reported(store: Store) -> int:
    return 0


def _failed(store: Store) -> int:
    train(store, 0, 5, 0.9)
    claim_exactly(store, 0)
    equal(store.fail("w", 0, "boom"), "failed")
    return 0


def _finished(store: Store) -> int:
    # copying a member that has trained every step would make a clone that never trains
    train(store, 0, 100, 0.9, final=True)
    return 0


def _no_such_member(store: Store) -> int:
    return 99


@store_check
def check_store_a_decision_naming_a_donor_without_a_usable_checkpoint_is_dropped(
        stores: Stores) -> None:
    """A copy of a donor without a usable checkpoint is dropped and recorded, never faked."""
    for donor_of in (_never_reported, _failed, _no_such_member, _finished):
        # Ray's bug: exploiting a member that has no checkpoint yet trains the copy from scratch
        store = stores.new(population=3, name=donor_of.__name__)
        donor = donor_of(store)

        def copy(snapshot: Snapshot, _member: int, donor: int = donor) -> Decision:
            return Decision(donor, {"lr": 9.0})

        outcome = train(store, 1, 4, 0.1, decide=copy)
        holds(outcome.accepted)
        holds(outcome.decision is None and outcome.donor_checkpoint is None)
        member = store.members()[1]
        holds(member.checkpoint is not None and some(member.checkpoint).id == outcome.checkpoint)
        equal((member.step, member.hparams), (4, {"lr": 0.02}))
        equal((member.generation, member.parent), (0, None))
        equal(store.events("exploit"), [])
        (dropped,) = store.events("dropped")  # not silently: the event says why
        equal((dropped.member, dropped.donor, dropped.step), (1, donor, 4))
        holds(f"member {donor} " in str(dropped.detail) and dropped.after == {"lr": 9.0})
        equal(len(store.results()), 2 if donor_of in (_failed, _finished) else 1)


@store_check
def check_store_a_decision_that_raises_rolls_back_the_whole_report(stores: Stores) -> None:
    """A decision that raises leaves no half-written report; the lease is kept."""
    store = stores.new(population=2)
    train(store, 0, 5, 0.9)
    store.claim("w", 60.0, prefer=1)

    def decide(snapshot: Snapshot, _member: int) -> Decision | None:
        raise RuntimeError("strategy bug")

    with raises(RuntimeError, match="strategy bug"):
        store.report(report(1, "w", 3, 0.1), decide, 1)
    equal([r.member for r in store.results()], [0])
    equal([c.member for c in store.checkpoints(include_deleted=True)], [0])
    equal(store.events(), [])
    member = store.members()[1]
    equal((member.step, member.score, member.status, member.checkpoint), (0, None, "running",
                                                                            None))
    # the lease is kept: the same worker can report again, and no one else can claim
    equal(some(store.claim("other", 60.0)).id, 0)
    holds(store.claim("other", 60.0) is None)
    holds(store.report(report(1, "w", 3, 0.1), None, 1).accepted)


@store_check
def check_store_the_decision_sees_the_population_after_this_result(stores: Stores) -> None:
    """The decision ranks the population with this report's result in it, failed members out."""
    store = stores.new(population=4, mode="min")
    train(store, 0, 5, 0.7)
    train(store, 2, 2, 0.3)
    claim_exactly(store, 2)
    equal(store.fail("w", 2, "boom"), "failed")
    seen: list[Snapshot] = []

    def decide(snapshot: Snapshot, _member: int) -> Decision | None:
        seen.append(snapshot)
        return None

    train(store, 1, 4, 0.2, decide=decide, hparams={"lr": 0.25})
    (snapshot,) = seen
    holds(snapshot.maximize is False)
    equal(snapshot.ids.tolist(), [0, 1, 3])  # failed member 2 excluded
    equal(snapshot.steps.tolist(), [5, 4, 0])
    equal(snapshot.scores[:2].tolist(), [0.7, 0.2])
    holds(np.isnan(snapshot.scores[2]))
    equal([dict(h) for h in snapshot.hparams], [{"lr": 0.01}, {"lr": 0.25}, {"lr": 0.04}])


@store_check
def check_store_a_decision_ranks_only_the_members_still_training(stores: Stores) -> None:
    """A finished member can no longer be copied, so it takes no place in the ranking: the
    best member still training is the one to copy, not a finished one that would be refused."""
    store = stores.new(population=4)
    train(store, 3, 100, 0.99, final=True)
    for member, score in ((0, 0.1), (1, 0.5), (2, 0.6)):
        train(store, member, 5 if member == 0 else 10, score)
    seen: list[Snapshot] = []

    def copy_the_best(snapshot: Snapshot, member: int) -> Decision | None:
        seen.append(snapshot)
        return Decision(int(snapshot.ids[snapshot.ranking()[0]]), {"lr": 0.5}, "best")

    outcome = train(store, 0, 10, 0.1, decide=copy_the_best)
    equal(seen[0].ids.tolist(), [0, 1, 2])
    holds(outcome.decision is not None and outcome.decision.donor == 2)
    equal(store.members()[0].parent, 2)


@store_check
def check_store_a_final_report_is_not_decided_on(stores: Stores) -> None:
    """A member at its last step is done: no exploit is decided for it."""
    store = stores.new(population=2)
    train(store, 0, 5, 0.9)

    def decide(snapshot: Snapshot, _member: int) -> Decision | None:
        raise AssertionError("a finished member is not exploited")

    outcome = train(store, 1, 10, 0.1, decide=decide, final=True)
    holds(outcome.accepted and outcome.decision is None)
    equal(store.members()[1].status, "done")
