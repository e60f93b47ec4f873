"""Store checks of leases: a claim takes the member furthest behind, a heartbeat keeps
it, an expired lease frees it; release and fail end it."""

from __future__ import annotations

import time

from populace.testing.stores._kit import (
    Stores,
    claim_exactly,
    equal,
    holds,
    report,
    some,
    store_check,
    train,
)


@store_check
def check_store_claim_takes_the_member_furthest_behind(stores: Stores) -> None:
    """Workers pull the member furthest behind (ties: the preferred one, then the lowest id)."""
    store = stores.new(population=4)
    # all at step 0: prefer wins the tie, then the lowest id
    equal(some(store.claim("a", 60.0, prefer=2)).id, 2)
    equal(some(store.claim("b", 60.0)).id, 0)
    holds(store.report(report(0, "b", 5), None, 2).accepted)
    holds(store.report(report(2, "a", 3), None, 2).accepted)
    # steps are now 0:5, 1:0, 2:3, 3:0; prefer never beats a lower step
    equal(some(store.claim("c", 60.0, prefer=0)).id, 1)
    equal(some(store.claim("c", 60.0, prefer=0)).id, 3)
    equal(some(store.claim("c", 60.0, prefer=0)).id, 2)
    claimed = some(store.claim("c", 60.0, prefer=0))
    equal((claimed.id, claimed.step, claimed.status), (0, 5, "running"))
    holds(store.claim("c", 60.0) is None)


@store_check
def check_store_a_claimed_member_is_not_claimed_again_while_its_lease_lives(stores: Stores) -> None:
    """A leased member is one worker's: no other claims it while the lease lives."""
    store = stores.new(population=2)
    equal(some(store.claim("a", 60.0)).id, 0)
    equal(some(store.claim("b", 60.0)).id, 1)
    holds(store.claim("c", 60.0) is None)
    holds(store.claim("c", 60.0, prefer=0) is None)
    equal([m.status for m in store.members()], ["running", "running"])


@store_check
def check_store_an_expired_lease_makes_the_member_claimable_by_another_worker(
        stores: Stores) -> None:
    """A worker that died gives its member back when its lease runs out."""
    store = stores.new(population=2)
    # long enough that a busy machine still claims member 1 before member 0's lease ends
    equal(some(store.claim("a", 0.5)).id, 0)
    equal(some(store.claim("b", 60.0)).id, 1)
    time.sleep(0.6)
    claimed = some(store.claim("c", 60.0))
    holds(claimed is not None and claimed.id == 0)
    holds(store.claim("d", 60.0) is None)  # c's new lease lives


@store_check
def check_store_heartbeat_extends_only_the_owners_lease(stores: Stores) -> None:
    """A heartbeat keeps the lease of the worker that holds it, and no one else's."""
    store = stores.new(population=2)
    equal(some(store.claim("a", 0.5)).id, 0)
    equal(some(store.claim("b", 60.0)).id, 1)
    holds(store.heartbeat("a", 0, 60.0))
    holds(not store.heartbeat("b", 0, 60.0))  # not b's member
    holds(not store.heartbeat("a", 1, 60.0))
    time.sleep(0.6)
    holds(store.claim("c", 60.0) is None)  # a's lease was extended past its first 0.5 s


@store_check
def check_store_heartbeat_fails_once_the_lease_is_lost(stores: Stores) -> None:
    """A worker whose member was taken over learns it at its next heartbeat."""
    store = stores.new(population=1)
    equal(some(store.claim("a", 0.01)).id, 0)
    time.sleep(0.05)
    equal(some(store.claim("b", 60.0)).id, 0)
    holds(not store.heartbeat("a", 0, 60.0))
    holds(store.heartbeat("b", 0, 60.0))


@store_check
def check_store_claim_returns_none_when_every_member_is_running_or_done(stores: Stores) -> None:
    """Nothing to claim is None, not a member already leased or done."""
    store = stores.new(population=3)
    holds(train(store, 0, 10, final=True).accepted)
    holds(train(store, 1, 10, final=True).accepted)
    equal(some(store.claim("a", 60.0)).id, 2)
    holds(store.claim("b", 60.0) is None)
    equal([m.status for m in store.members()], ["done", "done", "running"])


@store_check
def check_store_release_gives_the_member_back_untouched(stores: Stores) -> None:
    """A stopped worker gives its member back as it was, for another to claim at once."""
    store = stores.new(population=2)
    train(store, 0, 3, 0.5)
    claim_exactly(store, 0, worker="a")
    before = store.members()[0]
    holds(not store.release("b", 0))  # not b's lease
    equal(store.members()[0].status, "running")
    holds(store.release("a", 0))
    after = store.members()[0]
    equal(after.status, "ready")
    equal((after.step, after.score, after.checkpoint, after.hparams), (
        before.step, before.score, before.checkpoint, before.hparams))
    holds(not store.release("a", 0))  # released once only
    holds(not store.report(report(0, "a", 4), None, 2).accepted)


@store_check
def check_store_fail_marks_the_member_failed_with_its_error(stores: Stores) -> None:
    """A failed member keeps its error, is recorded, and is never claimed again."""
    store = stores.new(population=2)
    train(store, 0, 3, 0.5)
    claim_exactly(store, 0, worker="a")
    equal(store.fail("b", 0, "not b's"), "lost")
    equal(store.members()[0].status, "running")
    equal(store.events(), [])

    error = "Traceback: ValueError: nan loss"
    equal(store.fail("a", 0, error), "failed")
    member = store.members()[0]
    equal((member.status, member.error, member.step), ("failed", error, 3))
    (event,) = store.events()
    equal((event.kind, event.member, event.step, event.detail), ("failed", 0, 3, error))
    equal(store.events("failed"), [event])
    # failed members are never claimed again, and a failed worker cannot report
    equal(some(store.claim("c", 60.0)).id, 1)
    holds(store.claim("c", 60.0) is None)
    equal(store.fail("a", 0, "again"), "lost")
    holds(not store.report(report(0, "a", 4), None, 2).accepted)
