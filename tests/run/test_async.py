"""Asynchronous PBT end to end: no member starves, and a copy becomes its own member."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import SCRIPTS

import populace
from populace.script import load_script
from populace.store import open_store

WORST = SCRIPTS / "worst.py"


def run(tmp_path: Path, **settings):
    s = load_script(WORST)
    populace.run(s.trainable, s.space, store=tmp_path / "w.db", script=WORST, progress=False,
                 **{**s.config, **settings})
    store = open_store(tmp_path / "w.db")
    try:
        return store.results(), store.events()
    finally:
        store.close()


@pytest.mark.parametrize("executor, workers", [("inline", 1), ("local", 2), ("local", 4)])
def test_the_worst_member_copies_at_every_ready_point(tmp_path, monkeypatch, executor,
                                                      workers):
    """Member 0 always scores worst: at each of its ready points where the whole population
    had a score (before that, members without one hold the bottom place), it copies then,
    at once or once its donor reaches its step. With one worker member 0 reports first in
    every round, so every donor is behind it: before waiting, none of its copies happened."""
    monkeypatch.setenv("WORST_SLEEP", "0.02" if executor == "local" else "0")
    results, events = run(tmp_path, executor=executor, workers=workers)
    copies = {e.step: e for e in events if e.kind == "exploit" and e.member == 0}
    checked = 0
    for r in results:
        scored = {x.member for x in results if x.id < r.id} | {r.member}
        if r.member != 0 or r.step >= 40 or len(scored) < 4:
            continue
        assert r.step in copies, f"member 0 did not copy at step {r.step}"
        assert copies[r.step].donor_step >= r.step  # never a state behind it
        checked += 1
    assert checked >= 5  # of its ready points 8..36, whichever came after the first round
    # a copy of member 0 (its score travels with the weights it copied) looks good until it
    # reports its own -1: who waited for it drops that copy, with the reason
    assert all(e.detail for e in events if e.kind == "dropped")


def test_a_copy_draws_from_its_own_random_stream(tmp_path):
    """Explore keeps the hparams, so a copy and its donor differ only by their random
    streams: one step after the copy their states must differ."""
    results, events = run(tmp_path, executor="inline", workers=1)
    by_checkpoint = {}
    for r in results:
        by_checkpoint.setdefault(r.parent, []).append(r)
    compared = 0
    for e in events:
        if e.kind != "exploit":
            continue
        # the segments that started from the copied checkpoint: the donor's and the copy's
        donor_ckpt = next(r.checkpoint for r in results
                          if r.member == e.donor and r.step == e.donor_step)
        after = {r.member: r for r in by_checkpoint.get(donor_ckpt, [])}
        if e.member in after and e.donor in after and e.donor != 0:
            mine, theirs = after[e.member], after[e.donor]
            assert mine.hparams == theirs.hparams
            assert mine.metrics != theirs.metrics or e.member == 0
            compared += 1
    assert compared > 0
