"""The population cache (`populace.store.cache`): each process re-reads only the member
rows whose revision changed, and still decides against the population as it is now:
what other processes changed, and nothing of a transaction that rolled back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.paths import ROOT

from populace.store import Decision, open_store
from populace.testing.stores import run_record, train


def _revisions(store) -> dict[int, int]:
    with store.driver.read() as cur:
        cur.execute("SELECT id, revision FROM members ORDER BY id")
        return dict(cur.fetchall())


def _copy_best(snapshot, member):
    """Copy the best-scored member, if another (what truncation's top does, in brief)."""
    best = int(snapshot.ids[snapshot.best(1)[0]])
    return None if best == member else Decision(best, {"lr": 0.5})


def test_a_report_decides_with_what_another_store_changed(new_store, store_factory):
    mine = new_store(4)
    other = store_factory()  # a second connection, as another process holds
    for m in range(4):
        train(mine, m, 4, 0.1 * m)
    assert mine.snapshot().scores.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    train(other, 1, 8, 9.0)  # behind this process's back: member 1 leads now
    assert mine.snapshot().scores.tolist() == pytest.approx([0.0, 9.0, 0.2, 0.3])
    outcome = train(mine, 0, 8, 0.5, decide=_copy_best)
    assert outcome.decision is not None and outcome.decision.donor == 1
    assert [m.hparams for m in other.members()][0] == {"lr": 0.5}


def test_every_change_of_a_member_raises_its_revision_above_all_others(new_store):
    store = new_store(3)
    first = _revisions(store)
    assert len(set(first.values())) == 3  # each insert its own revision
    train(store, 0, 4, 0.5)  # the first claim takes member 0: no other row changes
    after = _revisions(store)
    assert after[0] > max(first.values()) and after[1] == first[1] and after[2] == first[2]
    store.extend(10**6)  # no member is done: nothing changes, no revision either
    assert _revisions(store) == after
    with store.driver.write() as cur:  # any writer's change counts, a hand-made one too
        cur.execute("UPDATE members SET hparams = ? WHERE id IN (0, 2)", ('{"lr": 1.0}',))
    again = _revisions(store)
    assert min(again[0], again[2]) > max(after.values()) and again[1] == after[1]
    assert [h["lr"] for h in store.snapshot().hparams] == [1.0, 0.02, 1.0]
    assert store.snapshot().scores[0] == 0.5


def test_a_report_that_rolled_back_leaves_no_trace_in_the_cache(new_store, store_factory):
    store = new_store(3)
    for m in range(3):
        train(store, m, 4, 0.1 * m)

    def fails(snapshot, member):
        raise RuntimeError("a strategy that fails after the report's own rows changed")

    with pytest.raises(RuntimeError, match="fails after"):
        train(store, 0, 8, 5.0, decide=fails)
    fresh = store_factory()
    for snapshot in (store.snapshot(), fresh.snapshot()):
        assert snapshot.steps.tolist() == [4, 4, 4]
        assert snapshot.scores.tolist() == pytest.approx([0.0, 0.1, 0.2])
    # the next change takes the revision the rolled-back one had: it is read all the same
    train(store, 2, 8, 7.0)
    assert store.snapshot().scores.tolist() == pytest.approx([0.0, 0.1, 7.0])


def test_a_snapshot_leaves_out_whom_a_decision_cannot_rank(new_store):
    store = new_store(4)
    for m in range(4):
        train(store, m, 4, 0.1 * m)
    train(store, 3, 10**9, 0.9, final=True)  # done: live, never ranked
    live = store.snapshot()
    with store.driver.read() as cur:
        ranked = store._snapshot(cur, training=True)
    assert live.ids.tolist() == [0, 1, 2, 3]
    assert ranked.ids.tolist() == [0, 1, 2] and ranked.hparams[2] == {"lr": 0.03}


SEPARATE = """
import sys
from populace.store import open_store
from populace.testing.stores import train
train(open_store(sys.argv[1]), 2, 8, 42.0)
"""


def test_a_change_by_another_process_is_read(tmp_path):
    path = tmp_path / "run.db"
    store = open_store(path)
    store.create(run_record("max", 3), [{"lr": 0.1 * i} for i in range(3)])
    assert store.snapshot().steps.tolist() == [0, 0, 0]
    done = subprocess.run([sys.executable, "-c", SEPARATE, str(path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr
    snapshot = store.snapshot()
    assert snapshot.steps.tolist() == [0, 0, 8] and snapshot.scores[2] == 42.0
    store.close()


def test_a_snapshot_kept_across_a_change_keeps_what_it_read(new_store):
    """The cache changes its arrays after a read only where no snapshot still reads them."""
    store = new_store(3)
    before = store.snapshot()
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET hparams = ? WHERE id = 1", ('{"lr": 9.0}',))
    after = store.snapshot()
    assert [h["lr"] for h in before.hparams] == [0.01, 0.02, 0.03]
    assert before.hparams[1] == {"lr": 0.02} and after.hparams[1] == {"lr": 9.0}
    del before, after  # none left: the next change is made in place, and read all the same
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET hparams = ? WHERE id = 2", ('{"lr": 8.0}',))
    assert [h["lr"] for h in store.snapshot().hparams] == [0.01, 9.0, 8.0]
