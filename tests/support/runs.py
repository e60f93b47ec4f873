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


def curves(store: Store) -> dict[int, list[list[float]]]:
    """Each member's curve as its row keeps it (FIRE-PBT), finished members too."""
    import json

    with store.driver.read() as cur:
        cur.execute("SELECT id, curve FROM members ORDER BY id")
        return {int(m): json.loads(curve) for m, curve in cur.fetchall()}


def assert_counter_curves(store: Store, every: int) -> None:
    """A counter's curves (its score grows by x each step, x fixed within a segment) hold
    a point every `every` steps, and each point inside a segment lies on the line from
    the point before it to the segment's end: scores taken where the steps say, by the
    weights the segment trained. Every curve of two points or more holds one."""
    ready = store.config().run["ready_steps"]
    for member, curve in curves(store).items():
        steps = [int(s) for s, _ in curve]
        assert all(b - a == every for a, b in pairwise(steps)), (member, steps)
        inside = [i for i, s in enumerate(steps) if s % ready and 0 < i < len(steps) - 1]
        assert inside or len(curve) < 2, (member, curve)
        for i in inside:
            end = next(j for j in range(i, len(steps)) if steps[j] % ready == 0)
            (s0, v0), (s1, v1) = curve[i - 1], curve[end]
            assert abs(curve[i][1] - (v0 + (v1 - v0) * (steps[i] - s0) / (s1 - s0))) < 1e-5
