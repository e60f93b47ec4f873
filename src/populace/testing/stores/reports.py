"""Store checks of reports: a result and its checkpoint row written at once, a report
from a worker without the lease refused and recorded."""

from __future__ import annotations

import math
import time

import numpy as np

from populace.snapshot import Snapshot
from populace.store import CheckpointRow, Decision
from populace.testing.stores._kit import (
    Stores,
    claim_exactly,
    digest,
    equal,
    holds,
    report,
    some,
    store_check,
    train,
)


@store_check
def check_store_report_round_trip(stores: Stores) -> None:
    """A report writes the result, the checkpoint row and the member's new state at once."""
    store = stores.new(population=3)
    store.claim("w", 60.0, prefer=1)
    sent = report(1, "w", 7, 0.75, hparams={"lr": 0.3}, metrics={"score": 0.75, "loss": 1.5})
    outcome = store.report(sent, None, 2)
    holds(outcome.accepted and outcome.decision is None and outcome.collect == [])

    (result,) = store.results()
    equal((result.member, result.step, result.score), (1, 7, 0.75))
    equal(result.metrics, {"score": 0.75, "loss": 1.5})
    equal(result.hparams, {"lr": 0.3})
    equal(result.seconds, 0.25)
    holds(store.results(member=1) == [result] and store.results(member=0) == [])

    member = store.members()[1]
    equal((member.step, member.score, member.status, member.hparams), (7, 0.75, "ready",
                                                                          {"lr": 0.3}))
    equal(member.checkpoint,
          CheckpointRow(some(outcome.checkpoint), 1, 7, sent.key, sent.sha256, 123))
    equal(store.checkpoints(), [member.checkpoint])
    equal([m.checkpoint for m in store.members()][::2], [None, None])

    claim_exactly(store, 1)
    holds(store.report(report(1, "w", 10, 0.9, final=True), None, 2).accepted)
    equal(store.members()[1].status, "done")
    equal([r.step for r in store.results(member=1)], [7, 10])


@store_check
def check_store_a_score_that_is_not_finite_is_stored_as_none(stores: Stores) -> None:
    """NaN and infinite scores are stored as None: a member without a valid score."""
    for i, score in enumerate((math.nan, math.inf, -math.inf, None)):
        store = stores.new(population=2, name=f"score{i}")
        holds(train(store, 0, 3, score).accepted)
        holds(store.results()[0].score is None)
        holds(store.members()[0].score is None)
        holds(np.isnan(store.snapshot().scores[0]))


@store_check
def check_store_a_report_after_the_lease_was_lost_is_refused_and_recorded(stores: Stores) -> None:
    """A late report from a worker whose lease was lost changes nothing but is recorded."""
    store = stores.new(population=1)
    equal(some(store.claim("late", 0.01)).id, 0)
    time.sleep(0.05)
    equal(some(store.claim("new", 60.0)).id, 0)

    def decide(snapshot: Snapshot, _member: int) -> Decision | None:
        raise AssertionError("a refused report must not reach the decision")

    late = report(0, "late", 4, 0.9)
    outcome = store.report(late, decide, 2)
    holds(not outcome.accepted)
    holds(outcome.checkpoint is None and outcome.decision is None)
    equal(outcome.collect, [late.key])  # the late worker's file is nobody's
    holds(store.results() == [] and store.checkpoints(include_deleted=True) == [])
    member = store.members()[0]
    equal((member.step, member.status, member.checkpoint), (0, "running", None))
    (event,) = store.events()
    equal((event.kind, event.member, event.step), ("refused", 0, 4))
    holds("late" in str(event.detail))
    holds(store.events("refused") == [event] and store.events("exploit") == [])

    # the worker that holds the lease now is not disturbed
    holds(store.report(report(0, "new", 4, 0.5), None, 2).accepted)
    equal([(r.step, r.score) for r in store.results()], [(4, 0.5)])


@store_check
def check_store_a_refused_report_hands_back_its_checkpoint_file(stores: Stores) -> None:
    """A refused report's checkpoint file is handed back for deletion unless a row needs it."""
    # the late worker already wrote its checkpoint file; no row will ever point at it,
    # so it must be collected, unless a live row holds the same content
    store = stores.new(population=2)
    shared = digest("identical bytes")
    train(store, 1, 3, sha=shared)
    equal(some(store.claim("late", 0.01, prefer=0)).id, 0)
    time.sleep(0.05)
    equal(some(store.claim("new", 60.0, prefer=0)).id, 0)

    outcome = store.report(report(0, "late", 4, sha=shared), None, 2)
    holds(not outcome.accepted and outcome.collect == [])  # member 1's row needs the file
    lost = report(0, "late", 4)
    outcome = store.report(lost, None, 2)
    holds(not outcome.accepted)
    equal(outcome.collect, [lost.key])


@store_check
def check_store_a_report_from_a_worker_that_never_claimed_is_refused(stores: Stores) -> None:
    """Only the worker holding the lease may report."""
    store = stores.new(population=2)
    holds(not store.report(report(0, "stranger", 1), None, 2).accepted)
    equal(store.members()[0].status, "ready")
    store.claim("owner", 60.0, prefer=1)
    holds(not store.report(report(1, "stranger", 1), None, 2).accepted)
    equal(store.results(), [])
    equal([e.kind for e in store.events()], ["refused", "refused"])
