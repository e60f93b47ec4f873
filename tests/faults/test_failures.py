"""Training that raises and scores that are not finite: retried, then failed or replaced."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.paths import COUNTER

import populace
from populace.checkpoints import MARKER
from populace.errors import StorageFault
from populace.script import load_script
from populace.store import open_store

EXECUTORS = ["inline", "local"]


def run(tmp_path, initial=None, **settings):
    s = load_script(COUNTER)
    return populace.run(s.trainable, s.space, store=tmp_path / "f.db", script=COUNTER,
                        initial=initial, progress=False, **{**s.config, **settings})


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_passing_failure_is_retried_and_the_member_finishes(tmp_path, monkeypatch, executor):
    (tmp_path / "once").mkdir()
    monkeypatch.setenv("COUNTER_FAIL_ONCE", str(tmp_path / "once"))
    run(tmp_path, retries=1, executor=executor, workers=2)
    store = open_store(tmp_path / "f.db")
    assert [(m.status, m.step) for m in store.members()] == [("done", 20)] * 4
    retries = store.events("retry")
    assert sorted(e.member for e in retries) == [0, 1, 2, 3]  # each failed once, at its start
    assert all("a passing failure" in e.detail for e in retries)
    assert store.events("failed") == []


def test_without_retries_the_same_failure_fails_the_member(tmp_path, monkeypatch):
    (tmp_path / "once").mkdir()
    monkeypatch.setenv("COUNTER_FAIL_ONCE", str(tmp_path / "once"))
    with pytest.raises(populace.RunFailed):
        run(tmp_path, executor="inline")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retries_run_out_then_the_member_fails_with_its_traceback(tmp_path, monkeypatch,
                                                                   executor):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    initial = [{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}]
    run(tmp_path, initial, retries=2, exploit="none", executor=executor, workers=2)
    store = open_store(tmp_path / "f.db")
    members = store.members()
    assert [m.status for m in members] == ["done", "done", "failed", "done"]
    assert [e.member for e in store.events("retry")] == [2, 2]
    (failed,) = store.events("failed")
    assert failed.member == 2 and "x=0.9 is too large" in failed.detail
    assert "Traceback" in members[2].error


def stored_nothing_of_a_bad_score(store) -> None:
    """Every score stored is finite, and every checkpoint stored is an accepted result's."""
    results = store.results()
    assert all(r.score is not None and math.isfinite(r.score) for r in results)
    assert sorted((c.member, c.step) for c in store.checkpoints(include_deleted=True)) == sorted(
        (r.member, r.step) for r in results)
    folder = Path(store.config().checkpoints)
    on_disk = {str(f.relative_to(folder)) for f in folder.rglob("*")
               if f.is_file() and f.name != MARKER}
    assert on_disk == {c.key for c in store.checkpoints()}  # no file of a bad segment


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_passing_nan_score_is_retried_and_the_member_finishes(tmp_path, monkeypatch,
                                                               executor):
    (tmp_path / "once").mkdir()
    monkeypatch.setenv("COUNTER_NAN_ONCE", str(tmp_path / "once"))
    run(tmp_path, retries=1, executor=executor, workers=2)
    store = open_store(tmp_path / "f.db")
    assert [(m.status, m.step) for m in store.members()] == [("done", 20)] * 4
    retries = store.events("retry")
    # each member's first segment ended on NaN once, and was trained again from step 0
    assert sorted(e.member for e in retries) == [0, 1, 2, 3]
    assert all(e.step == 0 and e.detail.startswith("score is nan at step 4") for e in retries)
    assert store.events("failed") == []
    stored_nothing_of_a_bad_score(store)
    for m in range(4):
        firsts = [r for r in store.results(m) if r.start == 0]
        assert len(firsts) == 1 and firsts[0].step == 4


@pytest.mark.parametrize(("executor", "bad"),
                         [("inline", "nan"), ("local", "nan"), ("inline", "inf"),
                          ("inline", "-inf")])
def test_a_score_that_stays_not_finite_fails_the_member_after_its_retries(
        tmp_path, monkeypatch, executor, bad):
    monkeypatch.setenv("COUNTER_NAN_ABOVE", "0.5")
    monkeypatch.setenv("COUNTER_BAD_SCORE", bad)
    initial = [{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}]
    run(tmp_path, initial, retries=2, exploit="none", executor=executor, workers=2)
    store = open_store(tmp_path / "f.db")
    members = store.members()
    assert [m.status for m in members] == ["done", "done", "failed", "done"]
    assert [e.member for e in store.events("retry")] == [2, 2]
    (failed,) = store.events("failed")
    assert failed.member == 2 and failed.detail.startswith(f"score is {bad} at step 4")
    assert members[2].error == failed.detail and members[2].step == 0
    # the diverged segments left no result, score or checkpoint behind
    assert store.results(2) == [] and members[2].score is None
    stored_nothing_of_a_bad_score(store)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_member_whose_score_is_not_finite_is_replaced_by_a_healthy_one(tmp_path, monkeypatch,
                                                                        executor):
    """With replace_failed, a diverged member copies a healthy donor, and never donates."""
    monkeypatch.setenv("COUNTER_NAN_ABOVE", "0.5")
    # steps of 10 ms: with steps of microseconds, a worker descheduled while it holds member
    # 2 let the other train every healthy member to its end, and a finished member is no
    # donor, so nothing was left to replace member 2 with (once in a full suite on 2 loaded
    # cores)
    monkeypatch.setenv("COUNTER_SLEEP", "0.01")
    initial = [{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}]
    run(tmp_path, initial, retries=1, replace_failed=True, executor=executor, workers=2,
        explore={"name": "perturb", "factors": [0.5]})  # the copy's x stays under 0.5
    store = open_store(tmp_path / "f.db")
    assert all(m.status == "done" and m.step == 20 for m in store.members())
    assert [e.member for e in store.events("retry")] == [2]
    (failed,) = store.events("failed")
    assert failed.member == 2 and failed.detail.startswith("score is nan at step 4")
    copy = [e for e in store.events("exploit") if e.member == 2 and e.id > failed.id][0]
    assert copy.donor != 2 and copy.before == {"x": 0.9} and copy.after["x"] <= 0.5
    assert all(e.donor != 2 for e in store.events("exploit") if e.id < copy.id)
    assert all(r.hparams != {"x": 0.9} for r in store.results())  # no NaN segment stored
    stored_nothing_of_a_bad_score(store)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failed_member_is_replaced_by_a_copy_of_a_healthy_one(tmp_path, monkeypatch,
                                                                executor):
    """With replace_failed, the failed member copies a donor, gets new hparams, and goes on."""
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    # member 2 fails after the others have reported once, so a healthy donor exists
    initial = [{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}]
    run(tmp_path, initial, replace_failed=True, executor=executor, workers=2,
        explore={"name": "perturb", "factors": [0.5]})  # halving x brings it under 0.5
    store = open_store(tmp_path / "f.db")
    members = store.members()
    assert all(m.status == "done" and m.step == 20 for m in members)
    failed = store.events("failed")
    assert [e.member for e in failed] == [2]
    copy = [e for e in store.events("exploit") if e.member == 2 and e.id > failed[0].id][0]
    assert copy.donor != 2 and copy.before == {"x": 0.9} and copy.after["x"] <= 0.5
    # while it failed it never donated
    assert all(e.donor != 2 for e in store.events("exploit") if e.id < copy.id)


def test_replacement_needs_a_donor_else_the_member_stays_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    initial = [{"x": 0.9}, {"x": 0.8}]
    with pytest.raises(populace.RunFailed):
        run(tmp_path, initial, population=2, replace_failed=True, executor="inline")
    assert [m.status for m in open_store(tmp_path / "f.db").members()] == ["failed"] * 2


@pytest.mark.parametrize(("field", "value"), [("retries", -1), ("replace_failed", "yes")])
def test_bad_failure_settings_are_refused(field, value):
    with pytest.raises(populace.ConfigError, match=field):
        populace.RunConfig(**{field: value})


def test_a_full_disk_stops_the_run_and_fails_no_member(tmp_path, monkeypatch):
    """ENOSPC writing a checkpoint is the storage's fault: the run stops naming it, no member
    is failed or retried for it, and no temp or partial file is left (the real disk is in
    tests/faults/test_storage_faults.py)."""
    monkeypatch.setenv("COUNTER_DISK_FULL", "1")
    with pytest.raises(StorageFault, match="checkpoint storage .*No space left on device"):
        run(tmp_path, executor="inline")
    store = open_store(tmp_path / "f.db")
    assert store.results() == [] and store.checkpoints(include_deleted=True) == []
    assert store.events("retry") == [] and store.events("failed") == []
    assert all(m.status == "ready" and m.step == 0 for m in store.members())
    folder = Path(store.config().checkpoints)
    # no temp or partial file: only the mark that the folder is this run's
    assert not folder.exists() or list(folder.rglob("*")) == [folder / MARKER]


def test_a_failing_store_stops_the_worker_and_never_fails_the_member(tmp_path, monkeypatch):
    """A store error (here: locked past its timeout) is the store's fault, not the member's:
    the worker stops and the member is left to resume, with no retry or failure on it."""
    from populace.store import Store, StoreError

    real = Store.report
    calls = []

    def locked_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise StoreError(f"store {self.url}: database is locked")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "report", locked_once)
    with pytest.raises(StoreError, match="database is locked"):
        run(tmp_path, executor="inline", lease_seconds=1.0)
    store = open_store(tmp_path / "f.db")
    assert store.events("retry") == [] and store.events("failed") == []
    assert all(m.status in ("ready", "running") for m in store.members())
    monkeypatch.setattr(Store, "report", real)
    run(tmp_path, executor="inline")  # the run resumes to its end once the store answers
    assert [(m.status, m.step) for m in open_store(tmp_path / "f.db").members()] == [
        ("done", 20)] * 4
