"""Synchronous generations: every member reaches the ready point, then all are decided at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from support.paths import COUNTER, ROOT

import populace
from populace.script import load_script
from populace.store import Decision, Report, open_store
from populace.testing.stores import run_record


def synch_store(tmp_path, population=3):
    store = open_store(tmp_path / "s.db")
    store.create(run_record(population=population, synch=True),
                 [{"lr": 0.01 * (i + 1)} for i in range(population)])
    return store


def segment(store, worker, step, score, decide=None):
    member = store.claim(worker, 60.0)
    assert member is not None, "a member should be claimable"
    sha = f"{member.id:02d}{step:062d}"
    return member, store.report(
        Report(member.id, worker, member.step, step, score, {"score": score}, member.hparams,
               f"{sha[:2]}/{sha}.ckpt", sha, 1, False), decide, 2)


def test_a_member_waits_until_its_generation_is_complete(tmp_path):
    store = synch_store(tmp_path)
    segment(store, "a", 4, 0.1)
    segment(store, "a", 4, 0.2)
    # member 0 and 1 finished generation 1; member 2 has not even started
    third = store.claim("a", 60.0)
    assert third.id == 2
    assert store.claim("b", 60.0) is None  # 0 and 1 are held at the barrier


def test_the_whole_generation_is_decided_against_one_snapshot(tmp_path):
    store = synch_store(tmp_path)
    seen = []

    def decide(snapshot, member):
        seen.append((member, tuple(snapshot.scores)))
        worst = int(snapshot.ids[snapshot.ranking()[-1]])
        best = int(snapshot.ids[snapshot.ranking()[0]])
        return Decision(best, {"lr": 0.5}, "t") if member == worst else None

    segment(store, "a", 4, 0.3, decide)
    segment(store, "a", 4, 0.1, decide)
    assert seen == []  # nobody is decided before the generation is complete
    _, outcome = segment(store, "a", 4, 0.2, decide)
    # the last report decided for all three, each against the same snapshot
    assert [m for m, _ in seen] == [0, 1, 2]
    assert len({scores for _, scores in seen}) == 1
    (event,) = store.events("exploit")
    assert (event.member, event.donor, event.step, event.donor_step) == (1, 0, 4, 4)
    assert outcome.decision is None  # the reporter (member 2) kept its own state
    assert [m.id for m in store.members() if m.status == "ready"] == [0, 1, 2]
    assert store.claim("b", 60.0) is not None  # the next generation is open


def test_a_donor_copied_in_the_same_generation_gives_its_state_before_the_round(tmp_path):
    """Tournament can chain: 2 copies 1 while 1 copies 0; 2 must get 1's own weights."""
    store = synch_store(tmp_path)
    plan = {1: 0, 2: 1}

    def decide(snapshot, member):
        return Decision(plan[member], {"lr": 0.9}, "t") if member in plan else None

    for score in (0.9, 0.5, 0.1):
        segment(store, "a", 4, score, decide)
    members = store.members()
    assert members[1].checkpoint.member == 0
    assert members[2].checkpoint.member == 1  # not member 0's, which 1 now holds


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_synch_run_decides_generation_by_generation(tmp_path, executor):
    script = load_script(COUNTER)
    populace.run(script.trainable, script.space, store=tmp_path / "s.db", script=COUNTER,
                 progress=False, **{**script.config, "synch": True, "executor": executor,
                                    "workers": 2, "population": 4})
    store = open_store(tmp_path / "s.db")
    assert [m.step for m in store.members()] == [20] * 4
    events = store.events("exploit")
    assert events
    # every exploit happened at a generation boundary, with the donor at the same step
    assert all(e.step % 4 == 0 and e.donor_step == e.step for e in events)
    # and no member trained past step s before every member had reported step s
    results = store.results()
    for r in results:
        if r.start > 0:
            reported = {o.member for o in results if o.step == r.start and o.id < r.id}
            assert reported == {0, 1, 2, 3}, (r, reported)


def test_a_synch_run_repeats_whatever_order_its_workers_report_in(tmp_path):
    """The README's promise: with --synch, several workers, the same seed: the same run."""
    script = load_script(COUNTER)

    def decisions(name):
        populace.run(script.trainable, script.space, store=tmp_path / name, script=COUNTER,
                     progress=False, **{**script.config, "synch": True, "workers": 2,
                                        "population": 4, "seed": 7})
        store = open_store(tmp_path / name)
        return ([(e.member, e.donor, e.step, e.after) for e in store.events("exploit")],
                [(m.id, m.hparams, m.score) for m in store.members()])

    first = decisions("a.db")
    assert first[0]  # it exploited
    assert decisions("b.db") == first


def test_synch_run_survives_a_worker_killed_mid_generation(tmp_path):
    store_path = tmp_path / "k.db"
    config = tmp_path / "c.yaml"
    config.write_text("lease_seconds: 1.0\nsynch: true\n")
    args = [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store",
            str(store_path), "--config", str(config), "--workers", "2", "--quiet"]
    pids = tmp_path / "pids"  # a file per process that built a member: the workers'
    pids.mkdir()
    env = {**os.environ, "COUNTER_SLEEP": "0.05", "COUNTER_PIDS": str(pids)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:  # opening a path that does not exist yet would create it
            if store_path.exists() and len(open_store(store_path).results()) >= 2:
                break
        except Exception:
            pass  # the store is still being created
        time.sleep(0.05)
    # kill one worker process outright, mid-generation; the other must carry the run (the
    # main process built a member too, to check the script)
    victims = [int(p.name) for p in pids.iterdir() if p.name.isdigit() and
               int(p.name) != proc.pid]
    assert victims
    os.kill(victims[-1], signal.SIGKILL)
    out = proc.communicate(timeout=120)[0].decode()
    members = open_store(store_path).members()
    assert [m.step for m in members] == [20] * 4, out
    assert proc.returncode == 0, out


def test_synch_needs_ready_steps():
    with pytest.raises(populace.ConfigError, match="synch needs ready_steps"):
        populace.RunConfig(synch=True, ready_seconds=5.0)


def test_json_roundtrip_of_numpy_free_events(tmp_path):
    store = synch_store(tmp_path, population=2)

    def decide(snapshot, member):
        return Decision(0, {"lr": 0.5}, "t") if member == 1 else None

    segment(store, "a", 4, 0.9, decide)
    segment(store, "a", 4, 0.1, decide)
    (event,) = store.events("exploit")
    assert json.loads(json.dumps(event.after)) == {"lr": 0.5}
    assert not isinstance(event.step, np.integer)


def test_a_failure_that_completes_a_generation_decides_it(tmp_path):
    store = synch_store(tmp_path)
    decided = []

    def decide(snapshot, member):
        decided.append(member)
        return Decision(0, {"lr": 0.5}, "t") if member == 1 else None

    segment(store, "a", 4, 0.9, decide)
    segment(store, "a", 4, 0.1, decide)
    assert decided == []
    last = store.claim("a", 60.0)
    assert last.id == 2
    assert store.fail("a", 2, "boom", decide=decide) == "failed"
    assert decided == [0, 1]  # the failed member is out; the others were waiting on it
    (event,) = store.events("exploit")
    assert (event.member, event.donor, event.step) == (1, 0, 4)
    claimed = store.claim("b", 60.0)  # the next generation is open
    assert claimed is not None
    # a failure at the start of the next segment does not decide generation 4 again
    assert store.fail("b", claimed.id, "x", decide=decide) == "failed"
    assert decided == [0, 1]
