"""A signal to a run's main process only (systemd, Kubernetes, Slurm, `kill PID`) stops
every process of the run within seconds, each giving its lease back; a main process
killed with -9 leaves no worker training on as an orphan."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.processes import alive, cleaned_up, start_counter, wait_for_evals, workers_of

from populace.store import open_store

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(),
                                reason="needs Linux /proc")
FLAGS = ("--population", "4", "--workers", "2", "--steps", "400", "--ready-steps", "4",
         "--quiet")
STOPPED_WITHIN = 5.0  # seconds: "a few"


def stop_and_check(tmp_path: Path, signum: int) -> int | None:
    """Start a run, send `signum` to its main process alone once it trains, check that
    every worker process ends within STOPPED_WITHIN s and nothing trains after; return
    the main process's exit status."""
    store, evals = tmp_path / "s.db", tmp_path / "evals"
    proc = start_counter(store, evals, *FLAGS, env={"COUNTER_SLEEP": "0.02"})
    with cleaned_up([proc]):
        wait_for_evals(proc, evals, 4)
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signum)
        deadline = time.monotonic() + STOPPED_WITHIN
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers), "a worker trains on after the stop"
        proc.wait(timeout=STOPPED_WITHIN)
    trained = len(evals.read_text().splitlines())
    time.sleep(1.0)
    assert len(evals.read_text().splitlines()) == trained
    db = open_store(store)
    members = db.members()
    db.close()
    assert any(m.step < 400 for m in members), "finished before the signal"
    assert [m.status for m in members if m.status == "running"] == [], "a lease kept"
    return proc.returncode


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_main_process_stops_the_whole_run(tmp_path, signum):
    assert stop_and_check(tmp_path, signum) == 128 + signum


def test_workers_stop_when_their_main_process_is_killed(tmp_path):
    assert stop_and_check(tmp_path, signal.SIGKILL) == -signal.SIGKILL
