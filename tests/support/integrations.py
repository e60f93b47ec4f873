"""What the tests of the framework integrations (Lightning, Transformers) check alike."""

from __future__ import annotations

import gc
import threading
from contextlib import closing
from pathlib import Path

import pytest

from populace import run
from populace.script import load_script
from populace.store import Kind, open_store


def assert_segments_used(store: Path, metric: str, hparam: str) -> None:
    """Every segment's `metric` (the lr the optimizer used at its first step, as the
    member logged it) is the `hparam` populace had in force for it, copies included."""
    with closing(open_store(store)) as db:
        results, copies = db.results(), db.events(Kind.EXPLOIT)
    assert copies, "no member copied another: nothing was tested"
    for r in results:
        assert r.metrics[metric] == pytest.approx(r.hparams[hparam]), r


def assert_loop_ends_when_dropped(member: object) -> None:
    """A member no one holds ends its training loop's thread."""
    loop = member._paused._thread  # type: ignore[attr-defined]
    assert loop is not None and loop.is_alive()
    del member
    gc.collect()
    loop.join(10)
    assert not loop.is_alive()
    assert loop not in threading.enumerate()


def assert_example_trains_on_ray(example: Path, tmp_path: Path) -> None:
    """The framework's trainer, paused in a thread of a Ray worker process, copies a
    donor's checkpoint and trains on: `example` on a Ray cluster the run starts."""
    script = load_script(example)
    result = run(script.trainable, script.space, store=tmp_path / "ray.db", script=script.path,
                 progress=False, **{**script.config, "executor": "ray", "workers": 2,
                                    "population": 4, "steps": 4, "ready_steps": 1,
                                    "exploit": "tournament", "seed": 1})
    with closing(open_store(tmp_path / "ray.db")) as db:
        members, copies, results = db.members(), db.events(Kind.EXPLOIT), db.results()
    assert [(m.step, str(m.status)) for m in members] == [(4, "done")] * 4
    assert copies, "no member copied another: no checkpoint crossed workers"
    # every copy trained on from the donor's checkpoint, with its explored hparams
    for e in copies:
        after = [r for r in results if r.member == e.member and r.start == e.donor_step]
        assert after and after[0].hparams == e.after, e
    assert result.score is not None and result.score > 0.5
