"""A step that never returns (a deadlocked data loader, a stuck collective): with
`segment_timeout`, its segment is stopped by ending its worker process, which is
replaced; a 'timeout' event names the member and step, and the member is handled as one
whose segment raised (retried, then failed or replaced)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.paths import COUNTER
from support.runs import run_script

import populace
from populace.store import open_store

TIMEOUT = 3.0


def hung_run(tmp_path, monkeypatch, **settings) -> tuple[populace.RunResult, list]:
    (tmp_path / "hang").mkdir()
    monkeypatch.setenv("COUNTER_HANG_ONCE", str(tmp_path / "hang"))
    result = run_script(COUNTER, tmp_path / "h.db", executor="local", workers=2,
                        segment_timeout=TIMEOUT, **settings)
    store = open_store(tmp_path / "h.db")
    events = store.events()
    store.close()
    return result, events


def test_a_hung_segment_is_stopped_recorded_and_retried(tmp_path, monkeypatch):
    result, events = hung_run(tmp_path, monkeypatch, retries=1)
    assert [m.status for m in result.members] == ["done"] * 4  # trained again, to the end
    timeouts = [e for e in events if e.kind == "timeout"]
    assert len(timeouts) == 1, events
    hung = timeouts[0]
    assert f"member {hung.member}'s segment did not report within" in hung.detail
    assert [(e.member, e.step) for e in events if e.kind == "retry"] == [(hung.member,
                                                                         hung.step)]


def test_a_synchronous_run_goes_on_without_a_member_that_timed_out(tmp_path, monkeypatch):
    result, events = hung_run(tmp_path, monkeypatch, synch=True)
    failed = [m for m in result.members if m.status == "failed"]
    assert len(failed) == 1 and "segment_timeout" in failed[0].error
    assert all(m.status == "done" and m.step == 20 for m in result.members
               if m is not failed[0])
    assert [e.member for e in events if e.kind == "timeout"] == [failed[0].id]


def test_a_populace_worker_whose_segment_hangs_starts_again_and_trains_the_run_out(
        tmp_path):
    """An external worker (`populace worker`, started by Slurm or systemd) is replaced too:
    the process execs a fresh worker under the same id, so its supervisor sees it go on."""
    (tmp_path / "hang").mkdir()
    env = {**os.environ, "COUNTER_HANG_ONCE": str(tmp_path / "hang")}
    store, config = tmp_path / "x.db", tmp_path / "retries.toml"
    config.write_text("retries = 1\n")
    populace_cli = [sys.executable, "-m", "populace.cli"]
    head = subprocess.Popen(
        [*populace_cli, "run", str(COUNTER), "--store", str(store), "--workers", "0",
         "--segment-timeout", str(TIMEOUT), "--config", str(config), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = subprocess.Popen([*populace_cli, "worker", "--store", str(store)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = worker.communicate(timeout=180)[0]
    assert worker.returncode == 0, said
    assert head.communicate(timeout=60)[0] is not None and head.returncode == 0
    assert said.count("starts again in a new process") == 1, said
    assert "no member left to train: the run is done" in said
    db = open_store(store)
    events, members = db.events(), db.members()
    db.close()
    timeouts = [e for e in events if e.kind == "timeout"]
    assert len(timeouts) == 1 and (tmp_path / "hang" / "hung").exists()
    assert [(e.member, e.step) for e in events if e.kind == "retry"] == [
        (timeouts[0].member, timeouts[0].step)]
    assert all(m.status == "done" and m.step == 20 for m in members)


@pytest.mark.parametrize("executor", ["inline", "vectorized"])
def test_a_process_that_cannot_end_itself_refuses_a_segment_timeout(executor):
    with pytest.raises(populace.ConfigError, match="segment_timeout .*cannot end itself"):
        populace.RunConfig(executor=executor, segment_timeout=10)
