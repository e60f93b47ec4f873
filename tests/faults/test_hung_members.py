"""A step that never returns (a deadlocked data loader, a stuck collective): with
`segment_timeout`, its segment is stopped by ending its worker process, which is
replaced; a 'timeout' event names the member and step, and the member is handled as one
whose segment raised (retried, then failed or replaced)."""

from __future__ import annotations

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


@pytest.mark.parametrize("executor", ["inline", "vectorized"])
def test_a_process_that_cannot_end_itself_refuses_a_segment_timeout(executor):
    with pytest.raises(populace.ConfigError, match="segment_timeout .*cannot end itself"):
        populace.RunConfig(executor=executor, segment_timeout=10)
