"""A PostgreSQL server that restarts (fast, immediate) or drops every connection mid-run:
workers and their heartbeats reconnect with backoff and go on, and the run loses and
duplicates nothing. A worker that cannot reach the server within its lease stops, naming
the store with its password hidden."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from support.paths import COUNTER, ROOT
from support.postgres import OwnServer

from populace.store import open_store

POPULACE = [sys.executable, "-m", "populace.cli"]


@pytest.fixture
def server():
    own = OwnServer()
    yield own
    own.close()


def evaluations(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(path: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while evaluations(path) < n:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, f"fewer than {n} evaluations after 60 s"
        time.sleep(0.02)


def test_a_run_goes_on_through_restarts_and_dropped_connections(server, tmp_path):
    url = server.database("restarts")
    config = tmp_path / "run.yaml"
    config.write_text("lease_seconds: 20\n")
    evals = tmp_path / "evals"
    proc = subprocess.Popen(
        [*POPULACE, "run", str(COUNTER), "--store", url, "--checkpoints",
         str(tmp_path / "ckpt"), "--config", str(config), "--workers", "2", "--steps", "60",
         "--ready-steps", "4", "--quiet"],
        cwd=ROOT, env={**os.environ, "COUNTER_SLEEP": "0.02", "COUNTER_EVALS": str(evals)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(evals, 8, proc)
        server.restart("fast")
        wait_for(evals, 20, proc)
        server.restart("immediate")  # a crash: the server recovers from its log
        wait_for(evals, 32, proc)
        assert server.drop_connections() > 0
        out = proc.communicate(timeout=180)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    store = open_store(url)
    try:
        members, results, events = store.members(), store.results(), store.events()
    finally:
        store.close()
    assert [(m.status, m.step) for m in members] == [("done", 60)] * 4
    keys = Counter((r.member, r.start, r.step) for r in results)
    assert [k for k, n in keys.items() if n > 1] == []  # nothing stored twice
    copies = [e for e in events if e.kind == "exploit"]
    for m in range(4):  # nothing lost: each member's own segments join up, or a copy explains
        own = [r for r in results if r.member == m]
        assert own[0].start == 0 and own[-1].step == 60
        for a, b in pairwise(own):
            assert b.start == a.step or any(
                e.member == m and a.id <= e.result < b.id and e.donor_step == b.start
                for e in copies), f"member {m}: {a.start}-{a.step} then {b.start}-{b.step}"
    assert {e.kind for e in events} <= {"exploit", "wait", "dropped"}, Counter(
        e.kind for e in events)


def test_a_worker_that_cannot_reach_the_server_within_its_lease_stops(server, tmp_path):
    # trust authentication takes any password: it only has to stay out of every message
    url = server.database("gone").replace("populace@", "populace:secret@", 1)
    config = tmp_path / "run.yaml"
    config.write_text("lease_seconds: 3\n")
    evals = tmp_path / "evals"
    head = subprocess.Popen(
        [*POPULACE, "run", str(COUNTER), "--store", url, "--checkpoints", str(tmp_path / "ckpt"),
         "--config", str(config), "--workers", "0", "--steps", "400", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    worker = subprocess.Popen(
        [*POPULACE, "worker", "--store", url, "--wait", "30"], cwd=ROOT,
        env={**os.environ, "COUNTER_SLEEP": "0.02", "COUNTER_EVALS": str(evals)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(evals, 4, worker)
        server.stop("fast")
        began = time.monotonic()
        out = worker.communicate(timeout=60)[0].decode()
        waited = time.monotonic() - began
    finally:
        for p in (worker, head):
            if p.poll() is None:
                p.kill()
    assert worker.returncode == 2, out
    text = " ".join(out.split())
    assert "cannot reach the store postgresql://populace:***@127.0.0.1" in text
    assert "secret" not in out
    assert 3 <= waited < 30  # it waited out its lease, then stopped
