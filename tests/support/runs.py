"""Running a script the way the tests of whole runs do."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import populace
from populace.script import load_script
from populace.store import Store


def run_script(script: Path, store: Path, **settings):
    """populace.run on the script's trainable, space and initial hparams, `settings` over
    its config, with no progress line."""
    s = load_script(script)
    return populace.run(
        s.trainable, s.space, store=store, initial=s.initial, script=script, progress=False,
        **{**s.config, **settings},
    )


def assert_one_history(store: Store, population: int, steps: int) -> None:
    """Every member finished, no result stored twice, and each member's results follow on
    from each other (or from the donor's step an exploit copied): nothing lost."""
    members, rows = store.members(), store.results()
    assert [(m.status, m.step) for m in members] == [("done", steps)] * population
    keys = [(r.member, r.start, r.step) for r in rows]
    assert len(keys) == len(set(keys)), "a segment stored twice"
    copied = {(e.member, e.donor_step) for e in store.events("exploit")}
    for m in range(population):
        own = [r for r in rows if r.member == m]
        assert own[0].start == 0 and own[-1].step == steps
        for before, after in pairwise(own):
            assert after.start == before.step or (m, after.start) in copied, (before, after)
