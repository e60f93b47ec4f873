"""The store battery: every backend keeps the same promises.

Each test takes `store_factory` / `new_store` (tests/conftest.py), which are
parametrized over the backends, so a new backend runs this whole file by
adding one name to conftest.BACKENDS.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import run_config

from populace.snapshot import Snapshot
from populace.store import (
    SCHEMA_VERSION,
    CheckpointRow,
    Decision,
    Report,
    Store,
    StoreError,
    open_store,
)

_serial = itertools.count()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def report(
    member: int,
    worker: str,
    step: int,
    score: float | None = 1.0,
    *,
    final: bool = False,
    sha: str | None = None,
    hparams: dict | None = None,
    metrics: dict | None = None,
) -> Report:
    """A segment's report; each gets its own checkpoint content unless `sha` is given."""
    sha = sha or _sha(f"{member}:{step}:{os.getpid()}:{next(_serial)}")
    return Report(
        member=member, worker=worker, start=max(0, step - 4), step=step, score=score,
        metrics={"score": score, "loss": 0.5} if metrics is None else metrics,
        hparams={"lr": 0.01 * (member + 1)} if hparams is None else hparams,
        key=f"{sha[:2]}/{sha}.ckpt", sha256=sha, bytes=123, final=final, seconds=0.25,
    )


def train(store: Store, member: int, step: int, score: float | None = 1.0, *, decide=None,
          keep: int = 10, worker: str = "w", **kwargs):
    """Claim `member` and report one segment."""
    claim_exactly(store, member, worker)
    return store.report(report(member, worker, step, score, **kwargs), decide, keep)


def claim_exactly(store: Store, member: int, worker: str = "w", lease: float = 60.0) -> None:
    """Lease `member`, whatever its step: lease the others first, then give them back."""
    others = []
    while True:
        m = store.claim(worker, lease)
        assert m is not None, f"member {member} is not claimable"
        if m.id == member:
            break
        others.append(m.id)
    for other in others:
        assert store.release(worker, other)


# -- the run -------------------------------------------------------------------


def test_create_and_read_back(store_factory):
    store = store_factory()
    assert not store.exists()
    hparams = [{"lr": 0.1, "layers": 2}, {"lr": 0.2, "layers": 3}, {"lr": 0.3, "layers": 4}]
    config = run_config("min", population=3)
    store.create(config, hparams)

    again = store_factory()  # a second connection sees the committed run
    for s in (store, again):
        assert s.exists()
        assert s.config() == config
        members = s.members()
        assert [m.id for m in members] == [0, 1, 2]
        assert [m.hparams for m in members] == hparams
        for m in members:
            assert (m.step, m.score, m.status, m.checkpoint) == (0, None, "ready", None)
            assert (m.generation, m.parent, m.error) == (0, None, None)
        assert s.results() == [] and s.events() == [] and s.checkpoints() == []
    assert again.snapshot().maximize is False


def test_creating_twice_is_refused_and_changes_nothing(new_store):
    store = new_store(population=3)
    with pytest.raises(StoreError, match="already holds a run"):
        store.create(run_config("min", population=5), [{"lr": 1.0}] * 5)
    assert store.config() == run_config("max", population=3)
    assert len(store.members()) == 3


def test_a_fresh_store_holds_no_run(store_factory):
    store = store_factory()
    assert not store.exists()
    with pytest.raises(StoreError, match="not a populace store"):
        store.config()
    with pytest.raises(StoreError, match="not a populace store"):
        store.members()


def test_another_programs_database_is_not_a_store(store_factory):
    store = store_factory()
    with store.driver.write() as cur:
        cur.execute(f"CREATE TABLE notes (id {store.driver.types['id']}, body TEXT)")
        cur.execute("INSERT INTO notes (body) VALUES ('mine')")
    store = store_factory()
    assert not store.exists()
    for read in (store.config, store.members, store.results, store.events, store.progress):
        with pytest.raises(StoreError, match="not a populace store"):
            read()


def test_another_programs_meta_table_is_not_a_store(store_factory):
    store = store_factory()
    with store.driver.write() as cur:
        cur.execute("CREATE TABLE meta (name TEXT, data TEXT)")
    store = store_factory()
    assert not store.exists()
    with pytest.raises(StoreError, match="not a populace store"):
        store.config()


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 40, os.urandom(8192)])
def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path: Path, content: bytes):
    # SQLite only: what a garbage file is depends on the backend
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a populace store") as caught:
        open_store(path).exists()
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content  # left untouched


@pytest.mark.parametrize("other, advice", [(1, "upgrade populace"),
                                           (-1, "the populace that started it")])
def test_another_schema_is_refused_naming_both_versions(new_store, store_factory, other,
                                                        advice):
    store = new_store()
    with store.driver.write() as cur:
        cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (json.dumps(SCHEMA_VERSION + other),))
    store = store_factory()
    expected = rf"schema version {SCHEMA_VERSION + other}.*version {SCHEMA_VERSION}.*{advice}"
    with pytest.raises(StoreError, match=expected):
        store.exists()
    with pytest.raises(StoreError, match=expected):
        store.config()
    with pytest.raises(StoreError, match=expected):
        store.members()


# -- claim and heartbeat -------------------------------------------------------


def test_claim_takes_the_member_furthest_behind(new_store):
    store = new_store(population=4)
    # all at step 0: prefer wins the tie, then the lowest id
    assert store.claim("a", 60.0, prefer=2).id == 2
    assert store.claim("b", 60.0).id == 0
    assert store.report(report(0, "b", 5), None, 2).accepted
    assert store.report(report(2, "a", 3), None, 2).accepted
    # steps are now 0:5, 1:0, 2:3, 3:0; prefer never beats a lower step
    assert store.claim("c", 60.0, prefer=0).id == 1
    assert store.claim("c", 60.0, prefer=0).id == 3
    assert store.claim("c", 60.0, prefer=0).id == 2
    claimed = store.claim("c", 60.0, prefer=0)
    assert (claimed.id, claimed.step, claimed.status) == (0, 5, "running")
    assert store.claim("c", 60.0) is None


def test_a_claimed_member_is_not_claimed_again_while_its_lease_lives(new_store):
    store = new_store(population=2)
    assert store.claim("a", 60.0).id == 0
    assert store.claim("b", 60.0).id == 1
    assert store.claim("c", 60.0) is None
    assert store.claim("c", 60.0, prefer=0) is None
    assert [m.status for m in store.members()] == ["running", "running"]


def test_an_expired_lease_makes_the_member_claimable_by_another_worker(new_store):
    store = new_store(population=2)
    # long enough that a busy machine still claims member 1 before member 0's lease ends
    assert store.claim("a", 0.5).id == 0
    assert store.claim("b", 60.0).id == 1
    time.sleep(0.6)
    claimed = store.claim("c", 60.0)
    assert claimed is not None and claimed.id == 0
    assert store.claim("d", 60.0) is None  # c's new lease lives


def test_heartbeat_extends_only_the_owners_lease(new_store):
    store = new_store(population=2)
    assert store.claim("a", 0.5).id == 0
    assert store.claim("b", 60.0).id == 1
    assert store.heartbeat("a", 0, 60.0)
    assert not store.heartbeat("b", 0, 60.0)  # not b's member
    assert not store.heartbeat("a", 1, 60.0)
    time.sleep(0.6)
    assert store.claim("c", 60.0) is None  # a's lease was extended past its first 0.5 s


def test_heartbeat_fails_once_the_lease_is_lost(new_store):
    store = new_store(population=1)
    assert store.claim("a", 0.01).id == 0
    time.sleep(0.05)
    assert store.claim("b", 60.0).id == 0
    assert not store.heartbeat("a", 0, 60.0)
    assert store.heartbeat("b", 0, 60.0)


def test_claim_returns_none_when_every_member_is_running_or_done(new_store):
    store = new_store(population=3)
    assert train(store, 0, 10, final=True).accepted
    assert train(store, 1, 10, final=True).accepted
    assert store.claim("a", 60.0).id == 2
    assert store.claim("b", 60.0) is None
    assert [m.status for m in store.members()] == ["done", "done", "running"]


# -- report --------------------------------------------------------------------


def test_report_round_trip(new_store):
    store = new_store(population=3)
    store.claim("w", 60.0, prefer=1)
    sent = report(1, "w", 7, 0.75, hparams={"lr": 0.3}, metrics={"score": 0.75, "loss": 1.5})
    outcome = store.report(sent, None, 2)
    assert outcome.accepted and outcome.decision is None and outcome.collect == []

    (result,) = store.results()
    assert (result.member, result.step, result.score) == (1, 7, 0.75)
    assert result.metrics == {"score": 0.75, "loss": 1.5}
    assert result.hparams == {"lr": 0.3}
    assert result.seconds == 0.25
    assert store.results(member=1) == [result] and store.results(member=0) == []

    member = store.members()[1]
    assert (member.step, member.score, member.status, member.hparams) == (7, 0.75, "ready",
                                                                          {"lr": 0.3})
    assert member.checkpoint == CheckpointRow(outcome.checkpoint, 1, 7, sent.key, sent.sha256, 123)
    assert store.checkpoints() == [member.checkpoint]
    assert [m.checkpoint for m in store.members()][::2] == [None, None]

    claim_exactly(store, 1)
    assert store.report(report(1, "w", 10, 0.9, final=True), None, 2).accepted
    assert store.members()[1].status == "done"
    assert [r.step for r in store.results(member=1)] == [7, 10]


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf, None])
def test_a_score_that_is_not_finite_is_stored_as_none(new_store, score):
    store = new_store(population=2)
    assert train(store, 0, 3, score).accepted
    assert store.results()[0].score is None
    assert store.members()[0].score is None
    assert np.isnan(store.snapshot().scores[0])


def test_a_report_after_the_lease_was_lost_is_refused_and_recorded(new_store):
    store = new_store(population=1)
    assert store.claim("late", 0.01).id == 0
    time.sleep(0.05)
    assert store.claim("new", 60.0).id == 0

    def decide(snapshot, _member):
        raise AssertionError("a refused report must not reach the decision")

    late = report(0, "late", 4, 0.9)
    outcome = store.report(late, decide, 2)
    assert not outcome.accepted
    assert outcome.checkpoint is None and outcome.decision is None
    assert outcome.collect == [late.key]  # the late worker's file is nobody's
    assert store.results() == [] and store.checkpoints(include_deleted=True) == []
    member = store.members()[0]
    assert (member.step, member.status, member.checkpoint) == (0, "running", None)
    (event,) = store.events()
    assert (event.kind, event.member, event.step) == ("refused", 0, 4)
    assert "late" in event.detail
    assert store.events("refused") == [event] and store.events("exploit") == []

    # the worker that holds the lease now is not disturbed
    assert store.report(report(0, "new", 4, 0.5), None, 2).accepted
    assert [(r.step, r.score) for r in store.results()] == [(4, 0.5)]


def test_a_refused_report_hands_back_its_checkpoint_file(new_store):
    # the late worker already wrote its checkpoint file; no row will ever point at it,
    # so it must be collected, unless a live row holds the same content
    store = new_store(population=2)
    shared = _sha("identical bytes")
    train(store, 1, 3, sha=shared)
    assert store.claim("late", 0.01, prefer=0).id == 0
    time.sleep(0.05)
    assert store.claim("new", 60.0, prefer=0).id == 0

    outcome = store.report(report(0, "late", 4, sha=shared), None, 2)
    assert not outcome.accepted and outcome.collect == []  # member 1's row needs the file
    lost = report(0, "late", 4)
    outcome = store.report(lost, None, 2)
    assert not outcome.accepted
    assert outcome.collect == [lost.key]


def test_a_report_from_a_worker_that_never_claimed_is_refused(new_store):
    store = new_store(population=2)
    assert not store.report(report(0, "stranger", 1), None, 2).accepted
    assert store.members()[0].status == "ready"
    store.claim("owner", 60.0, prefer=1)
    assert not store.report(report(1, "stranger", 1), None, 2).accepted
    assert store.results() == []
    assert [e.kind for e in store.events()] == ["refused", "refused"]


# -- report + decision, one transaction ------------------------------------------


def test_a_decision_points_the_member_at_the_donors_checkpoint(new_store):
    store = new_store(population=3)
    donor_outcome = train(store, 0, 7, 0.9)
    donor = store.members()[0].checkpoint
    seen = []

    def decide(snapshot, _member):
        seen.append(snapshot)
        return Decision(0, {"lr": 0.5}, "truncation")

    outcome = train(store, 1, 3, 0.1, decide=decide, hparams={"lr": 0.02})
    assert outcome.accepted
    assert outcome.decision == Decision(0, {"lr": 0.5}, "truncation")
    assert outcome.donor_checkpoint == donor
    assert donor.id == donor_outcome.checkpoint and donor.step == 7

    member = store.members()[1]
    assert member.checkpoint == donor
    assert (member.step, member.generation, member.parent) == (7, 1, 0)
    # the donor's checkpoint scored 0.9: the score travels with the weights it evaluated
    assert (member.hparams, member.status, member.score) == ({"lr": 0.5}, "ready", 0.9)
    own = [c for c in store.checkpoints() if c.member == 1]
    assert [(c.id, c.step) for c in own] == [(outcome.checkpoint, 3)]  # kept, not lost

    (event,) = store.events()
    result = store.results(member=1)[0]
    assert (event.kind, event.member, event.donor) == ("exploit", 1, 0)
    assert (event.step, event.donor_step, event.result) == (3, 7, result.id)
    assert (event.before, event.after, event.strategy) == ({"lr": 0.02}, {"lr": 0.5},
                                                           "truncation")
    assert result.hparams == {"lr": 0.02}  # the hparams in force during the segment

    # the next claim of member 1 starts from the donor's state
    assert store.claim("w", 60.0, prefer=1).id == 2
    claimed = store.claim("w", 60.0, prefer=1)
    assert (claimed.id, claimed.step, claimed.checkpoint) == (1, 7, donor)
    assert claimed.hparams == {"lr": 0.5}


def test_generation_counts_exploits_along_the_lineage(new_store):
    store = new_store(population=3)
    train(store, 0, 7, 0.9)
    train(store, 1, 3, 0.5, decide=lambda s, _m: Decision(0, {"lr": 0.5}))
    # member 2 copies member 1, which holds member 0's checkpoint
    outcome = train(store, 2, 2, 0.1, decide=lambda s, _m: Decision(1, {"lr": 0.6}))
    member = store.members()[2]
    assert (member.generation, member.parent, member.step) == (2, 1, 7)
    assert member.checkpoint == store.members()[0].checkpoint == outcome.donor_checkpoint
    assert [(e.member, e.donor, e.donor_step) for e in store.events("exploit")] == [
        (1, 0, 7), (2, 1, 7)]


def _never_reported(store):
    return 0


def _failed(store):
    train(store, 0, 5, 0.9)
    claim_exactly(store, 0)
    assert store.fail("w", 0, "boom") == "failed"
    return 0


def _itself(store):
    return 1


def _finished(store):
    # copying a member that has trained every step would make a clone that never trains
    train(store, 0, 100, 0.9, final=True)
    return 0


def _no_such_member(store):
    return 99


@pytest.mark.parametrize("donor_of",
                         [_never_reported, _failed, _itself, _no_such_member, _finished])
def test_a_decision_naming_a_donor_without_a_usable_checkpoint_is_dropped(new_store, donor_of):
    # Ray's bug: exploiting a member that has no checkpoint yet trains the copy from scratch
    store = new_store(population=3)
    donor = donor_of(store)
    outcome = train(store, 1, 4, 0.1, decide=lambda s, _m: Decision(donor, {"lr": 9.0}))
    assert outcome.accepted
    assert outcome.decision is None and outcome.donor_checkpoint is None
    member = store.members()[1]
    assert member.checkpoint is not None and member.checkpoint.id == outcome.checkpoint
    assert (member.step, member.hparams) == (4, {"lr": 0.02})
    assert (member.generation, member.parent) == (0, None)
    assert store.events("exploit") == []
    (dropped,) = store.events("dropped")  # not silently: the event says why
    assert (dropped.member, dropped.donor, dropped.step) == (1, donor, 4)
    assert f"member {donor} " in dropped.detail and dropped.after == {"lr": 9.0}
    assert len(store.results()) == (2 if donor_of in (_failed, _finished) else 1)


def test_a_decision_that_raises_rolls_back_the_whole_report(new_store):
    store = new_store(population=2)
    train(store, 0, 5, 0.9)
    store.claim("w", 60.0, prefer=1)

    def decide(snapshot, _member):
        raise RuntimeError("strategy bug")

    with pytest.raises(RuntimeError, match="strategy bug"):
        store.report(report(1, "w", 3, 0.1), decide, 1)
    assert [r.member for r in store.results()] == [0]
    assert [c.member for c in store.checkpoints(include_deleted=True)] == [0]
    assert store.events() == []
    member = store.members()[1]
    assert (member.step, member.score, member.status, member.checkpoint) == (0, None, "running",
                                                                            None)
    # the lease is kept: the same worker can report again, and no one else can claim
    assert store.claim("other", 60.0).id == 0
    assert store.claim("other", 60.0) is None
    assert store.report(report(1, "w", 3, 0.1), None, 1).accepted


def test_the_decision_sees_the_population_after_this_result(new_store):
    store = new_store(population=4, mode="min")
    train(store, 0, 5, 0.7)
    train(store, 2, 2, 0.3)
    claim_exactly(store, 2)
    assert store.fail("w", 2, "boom") == "failed"
    seen: list[Snapshot] = []

    def decide(snapshot, _member):
        seen.append(snapshot)

    train(store, 1, 4, 0.2, decide=decide, hparams={"lr": 0.25})
    (snapshot,) = seen
    assert snapshot.maximize is False
    assert snapshot.ids.tolist() == [0, 1, 3]  # failed member 2 excluded
    assert snapshot.steps.tolist() == [5, 4, 0]
    assert snapshot.scores[:2].tolist() == [0.7, 0.2]
    assert np.isnan(snapshot.scores[2])
    assert [dict(h) for h in snapshot.hparams] == [{"lr": 0.01}, {"lr": 0.25}, {"lr": 0.04}]


def test_a_decision_ranks_only_the_members_still_training(new_store):
    """A finished member can no longer be copied, so it takes no place in the ranking: the
    best member still training is the one to copy, not a finished one that would be refused."""
    store = new_store(population=4)
    train(store, 3, 100, 0.99, final=True)
    for member, score in ((0, 0.1), (1, 0.5), (2, 0.6)):
        train(store, member, 5 if member == 0 else 10, score)
    seen: list[Snapshot] = []

    def copy_the_best(snapshot, member):
        seen.append(snapshot)
        return Decision(int(snapshot.ids[snapshot.ranking()[0]]), {"lr": 0.5}, "best")

    outcome = train(store, 0, 10, 0.1, decide=copy_the_best)
    assert seen[0].ids.tolist() == [0, 1, 2]
    assert outcome.decision is not None and outcome.decision.donor == 2
    assert store.members()[0].parent == 2


def test_a_final_report_is_not_decided_on(new_store):
    store = new_store(population=2)
    train(store, 0, 5, 0.9)

    def decide(snapshot, _member):
        raise AssertionError("a finished member is not exploited")

    outcome = train(store, 1, 10, 0.1, decide=decide, final=True)
    assert outcome.accepted and outcome.decision is None
    assert store.members()[1].status == "done"


# -- release and fail ------------------------------------------------------------


def test_release_gives_the_member_back_untouched(new_store):
    store = new_store(population=2)
    train(store, 0, 3, 0.5)
    claim_exactly(store, 0, worker="a")
    before = store.members()[0]
    assert not store.release("b", 0)  # not b's lease
    assert store.members()[0].status == "running"
    assert store.release("a", 0)
    after = store.members()[0]
    assert after.status == "ready"
    assert (after.step, after.score, after.checkpoint, after.hparams) == (
        before.step, before.score, before.checkpoint, before.hparams)
    assert not store.release("a", 0)  # released once only
    assert not store.report(report(0, "a", 4), None, 2).accepted


def test_fail_marks_the_member_failed_with_its_error(new_store):
    store = new_store(population=2)
    train(store, 0, 3, 0.5)
    claim_exactly(store, 0, worker="a")
    assert store.fail("b", 0, "not b's") == "lost"
    assert store.members()[0].status == "running"
    assert store.events() == []

    error = "Traceback: ValueError: nan loss"
    assert store.fail("a", 0, error) == "failed"
    member = store.members()[0]
    assert (member.status, member.error, member.step) == ("failed", error, 3)
    (event,) = store.events()
    assert (event.kind, event.member, event.step, event.detail) == ("failed", 0, 3, error)
    assert store.events("failed") == [event]
    # failed members are never claimed again, and a failed worker cannot report
    assert store.claim("c", 60.0).id == 1
    assert store.claim("c", 60.0) is None
    assert store.fail("a", 0, "again") == "lost"
    assert not store.report(report(0, "a", 4), None, 2).accepted


# -- checkpoint collection --------------------------------------------------------


def _live(store: Store) -> dict[int, CheckpointRow]:
    return {c.id: c for c in store.checkpoints()}


def test_collection_keeps_the_newest_k_of_each_member(new_store):
    store = new_store(population=2)
    keys = []
    for step in range(1, 8):
        outcome = train(store, 0, step, keep=2)
        keys.append(store.members()[0].checkpoint.key)
        live = [c.step for c in store.checkpoints() if c.member == 0]
        assert live == list(range(max(1, step - 1), step + 1))
        # a collected file is returned once, when its row is deleted
        assert outcome.collect == ([] if step <= 2 else [keys[step - 3]])
    deleted = [c for c in store.checkpoints(include_deleted=True) if c.id not in _live(store)]
    assert [c.step for c in deleted] == [1, 2, 3, 4, 5]


def test_a_checkpoint_another_member_points_at_is_never_collected(new_store):
    store = new_store(population=2)
    train(store, 0, 5, 0.9, keep=1)
    donor = store.members()[0].checkpoint
    train(store, 1, 2, 0.1, keep=1, decide=lambda s, _m: Decision(0, {"lr": 0.5}))
    assert store.members()[1].checkpoint == donor
    for step in range(6, 10):
        outcome = train(store, 0, step, keep=1)
        assert donor.key not in outcome.collect
        assert donor.id in _live(store)
    # member 1 trains on from the copy, so nobody points at it any more
    train(store, 1, 6, 0.2, keep=1)
    assert donor.id in _live(store)  # only member 0's own report collects it
    outcome = train(store, 0, 10, keep=1)
    assert donor.key in outcome.collect
    assert donor.id not in _live(store)


def test_a_file_shared_by_two_rows_is_deleted_with_the_last_row(new_store):
    store = new_store(population=2)
    shared = _sha("identical bytes")
    train(store, 0, 1, keep=1, sha=shared)
    train(store, 1, 1, keep=1, sha=shared)
    key = store.members()[0].checkpoint.key
    assert store.members()[1].checkpoint.key == key

    outcome = train(store, 0, 2, keep=1)  # member 0's row of the file is collected...
    assert outcome.collect == []  # ...but member 1's row still needs the file
    assert [c.member for c in store.checkpoints() if c.sha256 == shared] == [1]
    outcome = train(store, 1, 2, keep=1)
    assert outcome.collect == [key]
    assert [c for c in store.checkpoints() if c.sha256 == shared] == []


@pytest.mark.parametrize("seed", range(6))
def test_collection_invariants_over_random_runs(new_store, seed):
    """Random reports, exploits and shared contents; after each report of member m:
    m keeps at most `keep` own rows plus rows a member points at, no member points
    at a deleted row, and a file is returned exactly when its last live row goes."""
    rng = np.random.default_rng(seed)
    n, keep = 4, int(rng.integers(1, 4))
    store = new_store(population=n)
    steps = [0] * n
    shared = [_sha(f"shared {i}") for i in range(3)]
    for _ in range(60):
        # a member waiting for a donor behind it is not claimable until the donor reports
        m = int(rng.choice([x.id for x in store.members() if x.status == "ready"]))
        claim_exactly(store, m)
        before = {c.id: c for c in store.checkpoints(include_deleted=True)}
        live_before = _live(store)
        donor = int(rng.integers(n))

        def decide(snapshot, _member, donor=donor):
            return Decision(donor, {"lr": float(rng.random())}) if rng.random() < 0.3 else None

        steps[m] = store.members()[m].step + 1
        sha = shared[int(rng.integers(3))] if rng.random() < 0.3 else None
        outcome = store.report(report(m, "w", steps[m], float(rng.random()), sha=sha),
                               decide, keep)
        assert outcome.accepted

        everything = store.checkpoints(include_deleted=True)
        live = _live(store)
        assert set(before) | {outcome.checkpoint} == {c.id for c in everything}
        referenced = {x.checkpoint.id for x in store.members() if x.checkpoint is not None}
        assert referenced <= set(live), "a member points at a collected checkpoint"
        own = [c.id for c in everything if c.member == m]
        newest = set(sorted(own)[-keep:])
        assert {c for c in live if live[c].member == m} <= newest | referenced
        assert {c for c in own if c not in live} == set(own) - newest - referenced
        gone = [live_before[c] for c in live_before if c not in live]
        assert all(c.member == m for c in gone)
        live_shas = {c.sha256 for c in live.values()}
        assert sorted(outcome.collect) == sorted(
            {c.key for c in gone if c.sha256 not in live_shas})


# -- many workers, one store ----------------------------------------------------

# eight workers and thousands of reports: contention as a cluster run would see it
N_WORKERS, N_MEMBERS, TARGET = 8, 16, 200


def _claim_report_loop(url: str, worker: str, short_leases: bool, barrier, out) -> None:
    """Child process: claim and report until every member is done; send back a log.

    With short_leases, one claim in five takes a lease far shorter than its
    segment, so other workers take the member over and the late report is refused.
    """
    log, errors = [], []
    rng = np.random.default_rng(int(worker[1:]))
    try:
        store = open_store(url)
        barrier.wait()
        while True:
            late = short_leases and rng.random() < 0.2
            member = store.claim(worker, 0.001 if late else 60.0)
            if member is None:
                if store.progress()["status"].get("done", 0) == N_MEMBERS:
                    break
                time.sleep(0.002)
                continue
            time.sleep(0.02 if late else 0.001)  # training, outside any transaction
            step = member.step + 1
            score = step * member.hparams["lr"]

            def decide(snapshot, _member, me=member.id, step=step):
                # the worst member copies the best one, never going back in steps
                rank = snapshot.ranking()
                best, worst = int(snapshot.ids[rank[0]]), int(snapshot.ids[rank[-1]])
                if worst != me or best == me or not step <= snapshot.steps[rank[0]] < TARGET:
                    return None
                return Decision(best, {"lr": snapshot.hparams[rank[0]]["lr"] * 1.1}, "t")

            outcome = store.report(
                report(member.id, worker, step, score, hparams=member.hparams,
                       final=step >= TARGET), decide, 2)
            log.append((member.id, member.step, step, outcome.accepted,
                        outcome.decision is not None))
        store.close()
    except BaseException:
        errors.append(traceback.format_exc())
    out.put((worker, log, errors))


@pytest.mark.parametrize("short_leases", [False, True], ids=["leases-live", "leases-expire"])
def test_concurrent_workers_lose_and_duplicate_nothing(new_store, short_leases):
    store = new_store(population=N_MEMBERS)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(N_WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_claim_report_loop,
                         args=(store.url, f"w{i}", short_leases, barrier, out))
             for i in range(N_WORKERS)]
    for p in procs:
        p.start()
    answers = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [e for _, _, errs in answers for e in errs]
    assert errors == [], "\n".join(errors)  # no "database is locked", nothing else
    assert all(len(log) > 0 for _, log, _ in answers), "the workers did not run concurrently"
    logs = [entry for _, log, _ in answers for entry in log]

    accepted = [e for e in logs if e[3]]
    refused = len(logs) - len(accepted)
    assert len(store.events("refused")) == refused
    assert (refused > 0) == short_leases
    results = store.results()
    assert len(results) == len(accepted) >= N_MEMBERS * TARGET // 2
    assert Counter((r.member, r.step) for r in results) == Counter(
        (e[0], e[2]) for e in accepted)
    assert len(store.events("exploit")) == sum(e[4] for e in accepted)
    for m in range(N_MEMBERS):
        mine = [r.step for r in results if r.member == m]
        # steps only grow: two workers never trained one member at once
        assert mine == sorted(set(mine)), f"member {m}: {mine}"
    assert all(e[2] > e[1] for e in logs)
    members = store.members()
    assert [(m.status, m.step) for m in members] == [("done", TARGET)] * N_MEMBERS
    assert all(m.checkpoint.step == m.step for m in members)
    assert store.progress()["steps"] == N_MEMBERS * TARGET


# -- progress ------------------------------------------------------------------


# min: member 4's 0.2 went with its own state when it copied member 1 (scored 0.9)
@pytest.mark.parametrize("mode, best", [("max", 0.9), ("min", 0.5)])
def test_progress_summarises_the_population(new_store, mode, best):
    store = new_store(population=5, mode=mode)
    assert store.progress() == {"status": {"ready": 5}, "steps": 0, "best": None, "exploits": 0}
    train(store, 0, 3, 0.5)
    train(store, 1, 5, 0.9, final=True)
    train(store, 2, 2, 5.0 if mode == "max" else -5.0)
    claim_exactly(store, 2)
    store.fail("w", 2, "boom")  # a failed member's score is not the best
    train(store, 4, 1, 0.2, decide=lambda s, _m: Decision(1, {"lr": 0.3}))  # now at step 5
    claim_exactly(store, 0)
    assert store.progress() == {
        "status": {"ready": 2, "running": 1, "done": 1, "failed": 1},
        "steps": 3 + 5 + 2 + 0 + 5,
        "best": best,
        "exploits": 1,
    }
