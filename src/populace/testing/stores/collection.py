"""Store checks of checkpoint collection (each member keeps its newest few, and every
checkpoint a member points at) and of the progress summary."""

from __future__ import annotations

import numpy as np

from populace.snapshot import Snapshot
from populace.store import CheckpointRow, Decision, Store
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


def _live(store: Store) -> dict[int, CheckpointRow]:
    return {c.id: c for c in store.checkpoints()}


@store_check
def check_store_collection_keeps_the_newest_k_of_each_member(stores: Stores) -> None:
    """Each member keeps its newest `keep` checkpoints; each file is handed back once."""
    store = stores.new(population=2)
    keys = []
    for step in range(1, 8):
        outcome = train(store, 0, step, keep=2)
        keys.append(some(store.members()[0].checkpoint).key)
        live = [c.step for c in store.checkpoints() if c.member == 0]
        equal(live, list(range(max(1, step - 1), step + 1)))
        # a collected file is returned once, when its row is deleted
        equal(outcome.collect, [] if step <= 2 else [keys[step - 3]])
    deleted = [c for c in store.checkpoints(include_deleted=True) if c.id not in _live(store)]
    equal([c.step for c in deleted], [1, 2, 3, 4, 5])


@store_check
def check_store_a_checkpoint_another_member_points_at_is_never_collected(stores: Stores) -> None:
    """A checkpoint a copy points at is kept until no member needs it."""
    store = stores.new(population=2)
    train(store, 0, 5, 0.9, keep=1)
    donor = some(store.members()[0].checkpoint)
    train(store, 1, 2, 0.1, keep=1, decide=lambda s, _m: Decision(0, {"lr": 0.5}))
    equal(store.members()[1].checkpoint, donor)
    for step in range(6, 10):
        outcome = train(store, 0, step, keep=1)
        holds(donor.key not in outcome.collect)
        holds(donor.id in _live(store))
    # member 1 trains on from the copy, so nobody points at it any more
    train(store, 1, 6, 0.2, keep=1)
    holds(donor.id in _live(store))  # only member 0's own report collects it
    outcome = train(store, 0, 10, keep=1)
    holds(donor.key in outcome.collect)
    holds(donor.id not in _live(store))


@store_check
def check_store_a_file_shared_by_two_rows_is_deleted_with_the_last_row(stores: Stores) -> None:
    """Rows of the same bytes share a file, which goes with the last of them."""
    store = stores.new(population=2)
    shared = digest("identical bytes")
    train(store, 0, 1, keep=1, sha=shared)
    train(store, 1, 1, keep=1, sha=shared)
    key = some(store.members()[0].checkpoint).key
    equal(some(store.members()[1].checkpoint).key, key)

    outcome = train(store, 0, 2, keep=1)  # member 0's row of the file is collected...
    equal(outcome.collect, [])  # ...but member 1's row still needs the file
    equal([c.member for c in store.checkpoints() if c.sha256 == shared], [1])
    outcome = train(store, 1, 2, keep=1)
    equal(outcome.collect, [key])
    equal([c for c in store.checkpoints() if c.sha256 == shared], [])


@store_check
def check_store_collection_invariants_over_random_runs(stores: Stores) -> None:
    """Random reports, exploits and shared contents; after each report of member m:
    m keeps at most `keep` own rows plus rows a member points at, no member points
    at a deleted row, and a file is returned exactly when its last live row goes."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n, keep = 4, int(rng.integers(1, 4))
        store = stores.new(population=n, name=f"seed{seed}")
        steps = [0] * n
        shared = [digest(f"shared {i}") for i in range(3)]
        for _ in range(60):
            # a member waiting for a donor behind it is not claimable until the donor reports
            m = int(rng.choice([x.id for x in store.members() if x.status == "ready"]))
            claim_exactly(store, m)
            before = {c.id: c for c in store.checkpoints(include_deleted=True)}
            live_before = _live(store)
            donor = int(rng.integers(n))

            def decide(snapshot: Snapshot, _member: int, donor: int = donor,
                       rng: np.random.Generator = rng) -> Decision | None:
                return Decision(donor, {"lr": float(rng.random())}) if rng.random() < 0.3 else None

            steps[m] = store.members()[m].step + 1
            sha = shared[int(rng.integers(3))] if rng.random() < 0.3 else None
            outcome = store.report(report(m, "w", steps[m], float(rng.random()), sha=sha),
                                   decide, keep)
            holds(outcome.accepted)

            everything = store.checkpoints(include_deleted=True)
            live = _live(store)
            equal(set(before) | {outcome.checkpoint}, {c.id for c in everything})
            referenced = {x.checkpoint.id for x in store.members() if x.checkpoint is not None}
            holds(referenced <= set(live), "a member points at a collected checkpoint")
            own = [c.id for c in everything if c.member == m]
            newest = set(sorted(own)[-keep:])
            holds({c for c in live if live[c].member == m} <= newest | referenced)
            equal({c for c in own if c not in live}, set(own) - newest - referenced)
            gone = [live_before[c] for c in live_before if c not in live]
            holds(all(c.member == m for c in gone))
            live_shas = {c.sha256 for c in live.values()}
            equal(sorted(outcome.collect), sorted(
                {c.key for c in gone if c.sha256 not in live_shas}))


# min: member 4's 0.2 went with its own state when it copied member 1 (scored 0.9)
@store_check
def check_store_progress_summarises_the_population(stores: Stores) -> None:
    """The progress summary counts statuses, steps, the best score, the copies and the
    explores in place."""
    for mode, best in (("max", 0.9), ("min", 0.5)):
        store = stores.new(population=5, mode=mode, name=mode)
        equal(store.progress(), {"status": {"ready": 5}, "steps": 0, "best": None,
                                 "exploits": 0, "explores": 0})
        train(store, 0, 3, 0.5)
        train(store, 1, 5, 0.9, final=True)
        train(store, 2, 2, 5.0 if mode == "max" else -5.0)
        claim_exactly(store, 2)
        store.fail("w", 2, "boom")  # a failed member's score is not the best
        train(store, 4, 1, 0.2, decide=lambda s, _m: Decision(1, {"lr": 0.3}))  # now at step 5
        train(store, 3, 2, 0.6, decide=lambda s, m: Decision(m, {"lr": 0.4}))  # in place
        claim_exactly(store, 0)
        equal(store.progress(), {
            "status": {"ready": 2, "running": 1, "done": 1, "failed": 1},
            "steps": 3 + 5 + 2 + 2 + 5,
            "best": best,
            "exploits": 1,
            "explores": 1,
        })
