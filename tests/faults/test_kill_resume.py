"""kill -9 of a whole run, several times, then `populace run` on the same store resumes it:
every member finishes, nothing is lost or duplicated, and the history reads as one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from support.paths import COUNTER, ROOT
from support.processes import workers_of

from populace.lineage import lineage
from populace.report.data import evaluations, gather
from populace.store import open_store
from populace.testing import EXECUTOR_CHECKS

POPULATION, STEPS, READY = 4, 40, 4


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_run_left_behind() -> Iterator[None]:
    yield
    while STARTED:  # a failed test leaves no run going
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start(store: Path, config: Path, evals: Path, *flags: str,
          population: int = POPULATION) -> subprocess.Popen:
    """`populace run` in a process group of its own: the parent and its workers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", str(store),
         "--config", str(config), "--population", str(population), "--workers", "2",
         "--steps", str(STEPS), "--ready-steps", str(READY), "--quiet", *flags],
        cwd=ROOT, env={**os.environ, "COUNTER_SLEEP": "0.02", "COUNTER_EVALS": str(evals)},
        start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    STARTED.append(proc)
    return proc


def kill_when(proc: subprocess.Popen, evals: Path, n: int) -> None:
    """SIGKILL the whole run once its members have evaluated `n` times in all.

    The test follows the run by the lines the counter writes, not by reading the
    store, so a resumed run recovers the store after a kill with nobody else in it.
    """
    deadline = time.monotonic() + 60
    while not evals.exists() or len(evals.read_text().splitlines()) < n:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, f"fewer than {n} evaluations after 60 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_run_killed_several_times_resumes_to_one_coherent_history(tmp_path):
    store = tmp_path / "k.db"
    config = tmp_path / "lease.yaml"
    config.write_text("lease_seconds: 1.0\n")  # the killed workers' leases expire quickly
    evals = tmp_path / "evals"
    for n in (3, 12, 21):  # killed mid-run three times, each time resumed
        kill_when(start(store, config, evals), evals, n)
    db = open_store(store)
    assert any(m.status != "done" for m in db.members()), "finished before its last kill"
    db.close()
    resumed = start(store, config, evals)
    out = resumed.communicate(timeout=90)[0].decode()
    assert resumed.returncode == 0, out

    db = open_store(store)
    members, rows, events = db.members(), db.results(), db.events()
    # every member at the final step
    assert [(m.status, m.step) for m in members] == [("done", STEPS)] * POPULATION
    # nothing stored twice
    keys = [(r.member, r.start, r.step) for r in rows]
    assert len(keys) == len(set(keys))
    event_keys = [(e.kind, e.member, e.donor, e.step, e.donor_step, json.dumps(e.before),
                   json.dumps(e.after), e.result) for e in events]
    assert len(event_keys) == len(set(event_keys))
    # no failure, retry or recovery: only decisions, and every wait ended in a copy or a
    # dropped decision (whose member decided again)
    assert {e.kind for e in events} <= {"exploit", "wait", "dropped"}
    for wait in (e for e in events if e.kind == "wait"):
        assert any(e.member == wait.member and e.id > wait.id and e.kind in ("exploit", "dropped")
                   for e in events)
    # each member's own line: it never went back past its last checkpoint, and every jump
    # forward is an exploit that copied the donor's checkpoint at that step
    exploits = [e for e in events if e.kind == "exploit"]
    for m in range(POPULATION):
        own = [r for r in rows if r.member == m]
        assert own[0].start == 0 and own[-1].step == STEPS
        for before, after in pairwise(own):
            assert after.start >= before.step
            if after.start != before.step:
                assert any(e.member == m and before.id <= e.result < after.id
                           and e.donor_step == after.start for e in exploits)
        own_checkpoints = [c.step for c in db.checkpoints(include_deleted=True) if c.member == m]
        assert own_checkpoints == sorted(set(own_checkpoints))
    # every member's lineage is one unbroken line from step 0 to the end
    for m in range(POPULATION):
        path = lineage(members[m].checkpoint.id, rows)
        assert path[0].start == 0 and path[-1].step == STEPS and path[-1].member == m
        assert all(b.start == a.step for a, b in pairwise(path))
    # the report reads the same history
    view = gather(db)
    assert view.summary.status == {"done": POPULATION} and view.summary.results == len(rows)
    assert view.lineage == lineage(members[view.summary.best].checkpoint.id, rows)
    steps = {r.step for r in view.lineage}
    assert all(e.donor_step in steps for e in view.ancestry)
    assert [e.step for e in view.schedule] == sorted({e.step for e in view.schedule})
    assert view.schedule[0].step == 0
    assert all(len({r.step for r in line}) == len(line) for line in view.results.values())
    # every checkpoint a member holds is whole
    root = Path(db.config().checkpoints)
    for m in members:
        data = (root / m.checkpoint.key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == m.checkpoint.sha256
    db.close()


@pytest.mark.parametrize("synch", [False, True], ids=["asynchronous", "synchronous"])
def test_a_fire_run_killed_several_times_resumes_with_every_evaluation_accounted_for(
        tmp_path, synch):
    """FIRE-PBT's evaluators and evaluations survive kill -9: the executor contract holds,
    and each evaluator's evaluations follow one another, each begun after the last ended."""
    store, evals = tmp_path / "f.db", tmp_path / "evals"
    config = tmp_path / "lease.yaml"
    config.write_text("lease_seconds: 1.0\n")
    flags = ("--exploit", "fire", *(("--synch",) if synch else ()))
    for n in (6, 30, 60):
        kill_when(start(store, config, evals, *flags, population=8), evals, n)
    db = open_store(store)
    assert any(m.status not in ("done", "idle") for m in db.members()), "finished before"
    assert db.config().run.get("synch", False) is synch
    db.close()
    resumed = start(store, config, evals, *flags, population=8)
    out = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, out
    db = open_store(store)
    try:
        for check in EXECUTOR_CHECKS:
            check(db)
        events = db.events()
    finally:
        db.close()
    found = evaluations(events)
    assert found and any(e.outcome != "running" for e in found), found
    for evaluator in {e.evaluator for e in found}:
        own = [e for e in found if e.evaluator == evaluator]
        assert all(e.end is not None and e.end <= later.step for e, later in pairwise(own)), own


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_run_whose_workers_are_all_terminated_does_not_claim_success(tmp_path):
    store, evals = tmp_path / "t.db", tmp_path / "evals"
    config = tmp_path / "lease.yaml"
    config.write_text("lease_seconds: 1.0\n")
    proc = start(store, config, evals)
    deadline = time.monotonic() + 60
    while not evals.exists() or len(evals.read_text().splitlines()) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    for pid in workers_of(proc.pid):
        os.kill(pid, signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    db = open_store(store)
    left = [m.id for m in db.members() if m.status != "done"]
    db.close()
    assert left, "the run finished before its workers were terminated"
    assert proc.returncode == 1 and "run again to resume" in out, out
