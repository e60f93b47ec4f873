"""Strategy options in real runs: burn-in, t-test selection, and the event log."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.paths import COUNTER, TOY

import populace
from populace.cli import main
from populace.script import load_script
from populace.store import open_store
from populace.strategies import Snapshot, TTest


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_no_exploit_before_the_burn_in(tmp_path, executor):
    script = load_script(COUNTER)
    populace.run(script.trainable, script.space, store=tmp_path / "b.db", script=COUNTER,
                 progress=False, **{**script.config, "burn_in": 12, "executor": executor,
                                    "workers": 2, "steps": 40})
    store = open_store(tmp_path / "b.db")
    events = store.events("exploit")
    assert events, "truncation exploits once the burn-in is over"
    assert min(e.step for e in events) >= 12
    # members still reported, and donated, during the burn-in
    assert any(r.step < 12 for r in store.results())
    assert any(e.donor_step < 12 for e in events) or all(e.step >= 12 for e in events)


def snapshot(recent, maximize=True):
    n = len(recent)
    return Snapshot(ids=np.arange(n), steps=np.zeros(n, dtype=np.int64),
                    scores=np.array([r[-1] for r in recent], dtype=float),
                    hparams=[{}] * n, maximize=maximize, recent=recent)


def test_ttest_copies_only_a_significantly_better_member():
    rng_windows = np.random.default_rng(0)
    low = list(rng_windows.normal(0.0, 0.1, 10))
    high = list(rng_windows.normal(1.0, 0.1, 10))
    close = list(np.array(low) + rng_windows.normal(0.02, 0.1, 10))
    strategy = TTest()
    # with two members the rival is always the other one
    assert strategy(snapshot([low, high]), 0, np.random.default_rng(1)) == 1
    assert strategy(snapshot([low, high]), 1, np.random.default_rng(1)) is None
    # better on average but not significantly: keep
    assert strategy(snapshot([low, close]), 0, np.random.default_rng(1)) is None
    # minimising flips who is better
    assert strategy(snapshot([low, high], maximize=False), 1, np.random.default_rng(1)) == 0
    # too few scores to test: keep
    assert strategy(snapshot([low, [5.0]]), 0, np.random.default_rng(1)) is None


def test_ttest_reads_only_the_window():
    old_bad_new_good = [0.0] * 20 + [1.0, 1.1, 0.9, 1.0, 1.05]
    steady = [0.5, 0.52, 0.48, 0.5, 0.51]
    assert TTest(window=5)(snapshot([steady, old_bad_new_good]), 0,
                           np.random.default_rng(0)) == 1
    assert TTest(window=25)(snapshot([steady, old_bad_new_good]), 0,
                            np.random.default_rng(0)) is None


@pytest.mark.parametrize("bad", [{"window": 1}, {"significance": 0}, {"significance": 1.5}])
def test_ttest_refuses_bad_settings(bad):
    with pytest.raises(populace.ConfigError, match=next(iter(bad))):
        TTest(**bad)


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_ttest_run_keeps_a_bounded_window_per_member(tmp_path, executor, monkeypatch):
    script = load_script(COUNTER)
    # one worker process keeps the members in step: with two on a busy machine, the better
    # member can fall behind the one comparing, and a donor behind is never copied
    populace.run(script.trainable, script.space, store=tmp_path / "t.db", script=COUNTER,
                 progress=False, **{**script.config, "steps": 40, "exploit":
                                    {"name": "ttest", "window": 3}, "executor": executor,
                                    "workers": 1})
    store = open_store(tmp_path / "t.db")
    assert store.config().window == 3
    snap = store.snapshot()
    assert all(len(w) <= 3 for w in snap.recent)
    assert [m.step for m in store.members()] == [40] * 4
    # counter's scores grow steadily with x, so the larger x is significantly better
    assert store.events("exploit")


def test_toy_runs_from_the_cli_with_ttest_burn_in_and_synch(tmp_path, capsys):
    for flags in (["--exploit", "ttest"], ["--burn-in", "40"], ["--synch"]):
        store = tmp_path / f"{flags[0][2:]}.db"
        assert main(["run", str(TOY), "--store", str(store), "--quiet", *flags]) == 0
        assert [m.step for m in open_store(store).members()] == [200, 200]
    assert min(e.step for e in open_store(tmp_path / "burn-in.db").events("exploit")) >= 40


def test_status_events_lists_every_exploit(tmp_path, capsys):
    store = tmp_path / "toy.db"
    assert main(["run", str(TOY), "--store", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", str(store), "--events", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    events = open_store(store).events("exploit")
    assert len(rows) == len(events) > 0
    for row, event in zip(rows, events, strict=True):
        assert {"member", "donor", "step", "before", "after"} <= set(row)
        assert (row["member"], row["donor"], row["step"]) == (event.member, event.donor,
                                                              event.step)
        assert row["after"] == event.after and row["before"] == event.before
    assert main(["status", str(store), "--events"]) == 0
    assert f"{len(events)} exploit/explore events" in capsys.readouterr().out
