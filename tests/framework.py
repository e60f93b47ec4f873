"""What the tests of the framework integrations (Lightning, Transformers) check alike."""

from __future__ import annotations

import gc
import threading
from contextlib import closing
from pathlib import Path

import pytest

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
