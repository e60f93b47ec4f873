"""The worker's contract with a Trainable: what it calls, in which order, and when."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import SCRIPTS

import populace
from populace.checkpoints import CheckpointDamaged, open_storage
from populace.script import load_script
from populace.store import open_store

RECORDER = SCRIPTS / "recorder.py"


@pytest.fixture
def recorder():
    script = load_script(RECORDER)
    module_calls = script.trainable.build.__globals__["CALLS"]
    module_calls.clear()
    return script, module_calls


def run(tmp_path, script, **settings):
    return populace.run(script.trainable, script.space, store=tmp_path / "r.db",
                        progress=False, **{**script.config, **settings})


def test_after_an_exploit_the_explored_hparams_win_over_the_checkpoint(tmp_path, recorder):
    script, calls = recorder
    run(tmp_path, script, initial=[{"x": 0.1}, {"x": 0.9}], population=2)
    exploit = open_store(tmp_path / "r.db").events("exploit")[0]
    loads = [i for i, c in enumerate(calls) if c[1] == "load"]
    # every load is followed at once by apply on the same object
    for i in loads:
        assert calls[i + 1][:2] == (calls[i][0], "apply")
    # the exploit's copy: the checkpoint brought the donor's x, apply put the explored x
    copies = [i for i in loads if calls[i + 1][2] == exploit.after]
    assert copies
    assert calls[copies[0]][2]["x"] == 0.9 != exploit.after["x"]


def test_a_worker_keeps_its_live_member_when_nothing_changed(tmp_path, recorder, monkeypatch):
    """Claiming again the member it just trained, a worker goes on with the live object."""
    script, calls = recorder
    monkeypatch.setenv("RECORDER_FAIL_ABOVE", "0.5")  # member 1 fails: member 0 is left alone
    run(tmp_path, script, initial=[{"x": 0.1}, {"x": 0.9}], exploit="none")
    store = open_store(tmp_path / "r.db")
    assert [m.status for m in store.members()] == ["done", "failed"]
    # one worker, furthest behind first: member 0 trains a segment, then member 1 (which
    # fails), then member 0 three times: rebuilt and loaded once, then kept live
    assert len(store.results(0)) == 4
    kinds = [c[1] for c in calls[1:]]  # calls[0] is the run's preflight build
    assert kinds == ["build", "build", "build", "load", "apply"]


def test_a_damaged_checkpoint_fails_the_member_naming_the_checkpoint(tmp_path, recorder):
    script, _ = recorder
    store_path = tmp_path / "r.db"
    run(tmp_path, script, population=2, steps=4, exploit="none")
    store = open_store(store_path)
    member = store.members()[0]
    path = Path(store.config().checkpoints) / member.checkpoint.key
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    with pytest.raises(CheckpointDamaged, match=member.checkpoint.key):
        open_storage(store.config().checkpoints).verify(
            member.checkpoint.key, member.checkpoint.sha256)


def test_ready_every_t_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTER_SLEEP", "0.01")
    script = load_script(SCRIPTS / "counter.py")
    populace.run(script.trainable, script.space, store=tmp_path / "s.db", progress=False,
                 **{**script.config, "ready_steps": None, "ready_seconds": 0.05,
                    "executor": "inline", "population": 2})
    results = open_store(tmp_path / "s.db").results()
    steps = sorted({r.step for r in results if r.member == 0})
    # about five 10 ms steps per 50 ms segment, the last one cut at the final step
    assert steps[-1] == 20
    assert 3 <= len(steps) <= 8


def best_as_numpy(snapshot, member_id, rng):
    """A user exploit that hands back a numpy integer, as numpy code naturally does."""
    best = snapshot.ids[snapshot.ranking()[0]]
    return None if best == member_id else best


def outsider(snapshot, member_id, rng):
    return 7


def test_decide_turns_a_numpy_donor_into_an_int_and_refuses_a_donor_outside_the_run():
    import numpy as np

    from populace.config import RunConfig
    from populace.segment import make_decide
    from populace.space import Float, Space
    from populace.strategies import Snapshot

    space = Space({"x": Float(0.0, 1.0)})
    snapshot = Snapshot(ids=np.array([0, 1]), steps=np.array([4, 4]),
                        scores=np.array([0.1, 0.9]), hparams=[{"x": 0.1}, {"x": 0.9}])
    decision = make_decide(RunConfig(exploit=f"{__name__}:best_as_numpy"), space)(snapshot, 0)
    assert decision.donor == 1 and type(decision.donor) is int
    with pytest.raises(ValueError, match=r"chose member 7 .* one of \[0, 1\]"):
        make_decide(RunConfig(exploit=f"{__name__}:outsider"), space)(snapshot, 0)
    # the member itself: it keeps its state and explores its own hparams
    decision = make_decide(RunConfig(exploit="own", explore="resample"), space)(snapshot, 0)
    assert decision.donor == 0 and decision.hparams != {"x": 0.1}
    assert decision.strategy == "own+resample"
