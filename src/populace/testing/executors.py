"""The executor contract, checked on the store of a run an executor trained.

Every executor (inline, local processes, Ray tasks, `populace worker` processes
elsewhere) only runs workers against the store, so a finished run looks the same
whichever trained it: every member done at the run's last step, no segment's
result stored twice, each member's steps rising, every copy from another member,
every checkpoint the store names intact in the run's storage. And a run trained by
one worker at a time is the same run, decision for decision, on any executor: its
`trace` is equal. `check_executor(train, store)` trains a run with `train` and runs
every check; `EXECUTOR_CHECKS` lists them for a test to parametrize over.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from populace.checkpoints import CheckpointDamaged, open_storage
from populace.store import Kind, Status, Store, open_store
from populace.store.driver import safe_url
from populace.testing._fail import fail

# trains the run in the store at this URL (a path, sqlite:/// or postgresql://) to its end
Train = Callable[[str], object]


def _fail(store: Store, check: Callable[..., Any], problem: str) -> None:
    fail(f"the run in {safe_url(store.url)}", check, problem, "the store after training")


def check_members_done(store: Store) -> None:
    """An executor returns once the run is over: every member trained to the last step
    (but a FIRE-PBT evaluator left idle, with no parent to test: it holds no run back)."""
    steps = store.config().run["steps"]
    members = store.members()
    left = [(m.id, str(m.status), m.step) for m in members
            if (m.status != Status.DONE or m.step != steps) and m.status != Status.IDLE]
    if not members or left:
        _fail(store, check_members_done, f"every member must be done at step {steps}; "
              f"(member, status, step) of the others: {left or 'no members'}")


def check_no_result_twice(store: Store) -> None:
    """Two workers never train the same segment: each (member, start, step) is stored once."""
    seen = Counter((r.member, r.start, r.step) for r in store.results())
    twice = sorted(k for k, n in seen.items() if n > 1)
    if twice:
        _fail(store, check_no_result_twice,
              f"(member, start, step) results stored more than once: {twice}")


def check_steps_rise(store: Store) -> None:
    """A member's segments follow each other: each trains on from where the last ended (or
    from a donor ahead, after a copy), never back over steps already trained."""
    for m in store.members():
        end = 0
        for r in store.results(m.id):
            if not end <= r.start < r.step:
                _fail(store, check_steps_rise, f"member {m.id} trained ({r.start}, {r.step}] "
                      f"after its segment ending at step {end}")
            end = r.step


def check_copies_from_members(store: Store) -> None:
    """Each exploit event copies another member of the run, at a step that member reached:
    by a report, or by a copy of its own made before (a member that just copied is a
    donor like any other, its state the one it copied, at that state's step)."""
    ids = {m.id for m in store.members()}
    reached = {(r.member, r.step) for r in store.results()}
    for e in store.events(Kind.EXPLOIT):  # in the order they happened
        if e.donor not in ids - {e.member}:
            _fail(store, check_copies_from_members,
                  f"member {e.member} copied {e.donor!r}, not another member: {e}")
        if e.donor_step is not None and (e.donor, e.donor_step) not in reached:
            _fail(store, check_copies_from_members, f"member {e.member} copied member "
                  f"{e.donor} at step {e.donor_step}, which it never reported nor copied "
                  f"before: {e}")
        if e.donor_step is not None:
            reached.add((e.member, e.donor_step))


def check_checkpoints_intact(store: Store) -> None:
    """Every checkpoint the store still names is in the run's storage, with its hash: a
    resumed or replayed run can load any of them."""
    storage = open_storage(store.config().checkpoints)
    rows = store.checkpoints()
    if not rows:
        _fail(store, check_checkpoints_intact, "the store names no checkpoint")
    for row in rows:
        try:
            storage.fetch(row.key, row.sha256)
        except CheckpointDamaged as e:
            _fail(store, check_checkpoints_intact, str(e))


EXECUTOR_CHECKS: tuple[Callable[[Store], None], ...] = (
    check_members_done,
    check_no_result_twice,
    check_steps_rise,
    check_copies_from_members,
    check_checkpoints_intact,
)


@dataclass(frozen=True)
class RunTrace:
    """What a run decided and reached, without when, where or by which worker: equal for
    two runs that trained the same members the same way."""

    members: tuple[tuple[Any, ...], ...]  # id, status, step, score, generation, parent, hparams
    results: tuple[tuple[Any, ...], ...]  # member, start, step, score, metrics, hparams
    events: tuple[tuple[Any, ...], ...]  # kind, member, donor, step, donor_step, before, after


def trace(store: Store) -> RunTrace:
    """The run in `store` as a `RunTrace`, its results and events in the order written: one
    worker at a time writes them in the same order on any executor."""
    return RunTrace(
        members=tuple((m.id, str(m.status), m.step, m.score, m.generation, m.parent, m.hparams)
                      for m in store.members()),
        results=tuple((r.member, r.start, r.step, r.score, r.metrics, r.hparams)
                      for r in store.results()),
        events=tuple((str(e.kind), e.member, e.donor, e.step, e.donor_step, e.before, e.after)
                     for e in store.events()),
    )


def check_same_run(expected: RunTrace, got: RunTrace, what: str = "the second run") -> None:
    """AssertionError naming the first row where `got` differs from `expected`."""
    for f in fields(RunTrace):
        a, b = getattr(expected, f.name), getattr(got, f.name)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                fail(what, check_same_run, f"its {f.name} differ first at row {i}: expected "
                     f"{x}, got {y}", "two traces of runs with the same settings and seed")
        if len(a) != len(b):
            fail(what, check_same_run, f"it has {len(b)} {f.name}, expected {len(a)}",
                 "two traces of runs with the same settings and seed")


def check_executor(train: Train, store: str | os.PathLike[str]) -> RunTrace:
    """Train a run into `store` (a new one) with `train`, run every executor check on it,
    and return its trace, to compare with another executor's (`check_same_run`)."""
    url = os.fspath(store)
    train(url)
    db = open_store(url)
    try:
        for check in EXECUTOR_CHECKS:
            check(db)
        return trace(db)
    finally:
        db.close()
