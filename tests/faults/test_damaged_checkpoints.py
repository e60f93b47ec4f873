"""Damaged or missing checkpoints: found by their hash, the member goes back, the run goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from support.paths import COUNTER, ROOT

from populace.config import RunConfig
from populace.lineage import lineage
from populace.results import result_of
from populace.store import Decision, Report, RunRecord, open_store


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-2])
    elif how == "flipped":
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()


def interrupted_run(store: Path) -> list[str]:
    """Start a run of four members, stop it with Ctrl-C once member 0 has two checkpoints."""
    args = [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", str(store),
            "--workers", "1", "--executor", "inline", "--exploit", "none", "--quiet"]
    env = {**os.environ, "COUNTER_SLEEP": "0.02"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists():
            try:
                if len(open_store(store).results(0)) >= 2:
                    break
            except Exception:
                pass  # the store is still being created
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return args


@pytest.mark.parametrize("how", ["truncated", "flipped", "deleted"])
def test_a_damaged_checkpoint_sends_the_member_back_to_its_previous_one(tmp_path, how):
    store_path = tmp_path / "d.db"
    args = interrupted_run(store_path)
    store = open_store(store_path)
    member = store.members()[0]
    assert member.step < 20, "the run finished before it was interrupted"
    bad = member.checkpoint
    damage(Path(store.config().checkpoints) / bad.key, how)
    resumed = subprocess.run(args, cwd=ROOT, env={**os.environ, "COUNTER_SLEEP": "0"},
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"checkpoint {bad.key}" in resumed.stderr  # said plainly which one
    store = open_store(store_path)
    assert all(m.status == "done" and m.step == 20 for m in store.members())
    (event,) = store.events("recover")
    assert (event.member, event.step) == (0, bad.step)
    assert event.donor_step < bad.step and bad.key in event.detail
    # the damaged content is never offered again
    assert all(c.sha256 != bad.sha256 for c in store.checkpoints())
    # one coherent history: member 0's lineage climbs from 0 to 20 without a gap or a repeat
    path = lineage(store.members()[0].checkpoint.id, store.results())
    assert path[0].start == 0 and path[-1].step == 20
    assert all(a.step == b.start for a, b in zip(path, path[1:], strict=False))
    assert result_of(store).best.step == 20


def _claim(store, member: int):
    """Claim `member`, whoever is furthest behind; the row and the worker that holds it."""
    held = []
    while (row := store.claim(f"w{len(held)}", 60.0, prefer=member)).id != member:
        held.append(row)  # a member further behind: held by another worker meanwhile
    for i, other in enumerate(held):
        store.release(f"w{i}", other.id)
    return row, f"w{len(held)}"


def _report(store, member: int, step: int, decide=None) -> None:
    """Report a segment of `member` ending at `step`, with a checkpoint of its own."""
    row, worker = _claim(store, member)
    sha = f"{member:02x}{step:062x}"
    store.report(Report(member, worker, row.step, step, float(step), {"score": float(step)},
                        row.hparams, f"{sha[:2]}/{sha}.ckpt", sha, 10, False), decide, 2)


def test_a_damaged_checkpoint_after_an_exploit_sends_the_member_back_along_its_lineage(
        tmp_path):
    """Member 0 copies member 1 at step 15, trains to 20, and its checkpoint at 20 is bad.

    The checkpoint it held before that one is member 1's at step 15: it must go back
    there, not to its own state at step 10 from before the copy (trained with other
    hparams), and its lineage must stay one line.
    """
    store = open_store(tmp_path / "s.db")
    store.create(_record(tmp_path, 2), [{"x": 0.1}, {"x": 0.2}])
    _report(store, 0, 5)
    for step in (5, 10, 15):
        _report(store, 1, step)
    _report(store, 0, 10, decide=lambda snapshot, member: Decision(1, {"x": 0.3}))
    assert store.members()[0].step == 15  # copied member 1 at its step 15
    _report(store, 0, 20)
    _report(store, 1, 20)
    damaged, worker = _claim(store, 0)
    assert damaged.step == 20
    back = store.recover(worker, 0, damaged.checkpoint.key, "checkpoint damaged")
    assert back.step == 15 and back.checkpoint.member == 1
    store.release(worker, 0)
    for step in (20, 25):
        _report(store, 0, step)
    path = lineage(store.members()[0].checkpoint.id, store.results())
    assert path[0].start == 0 and all(b.start == a.step for a, b in pairwise(path))


def _record(tmp_path, population: int) -> RunRecord:
    return RunRecord(run=RunConfig(population=population, steps=100).to_dict(),
                     space={"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}},
                     checkpoints=str(tmp_path / "c"), trainable="t:T")


def _two_members_and_a_copy(tmp_path, population: int = 2):
    """Member 1 trains to step 10; member 0 reports step 5 and copies it (member 1 at 10)."""
    store = open_store(tmp_path / "s.db")
    store.create(_record(tmp_path, population),
                 [{"x": 0.1 * (i + 1)} for i in range(population)])
    _report(store, 1, 5)
    _report(store, 1, 10)
    _report(store, 0, 5, decide=lambda snapshot, member: Decision(1, {"x": 0.3}))
    copied, worker = _claim(store, 0)
    assert copied.step == 10 and copied.checkpoint.member == 1
    return store, copied, worker


def test_a_copy_whose_file_is_damaged_leaves_the_lineage_one_line(tmp_path):
    """Member 0 copies member 1's checkpoint, finds it damaged, and goes back to its own
    checkpoint at step 5: its lineage is its own 0-5, then 5-10."""
    store, copied, worker = _two_members_and_a_copy(tmp_path)
    back = store.recover(worker, 0, copied.checkpoint.key, "checkpoint damaged")
    assert back.step == 5 and back.checkpoint.member == 0
    store.release(worker, 0)
    _report(store, 0, 10)
    path = lineage(store.members()[0].checkpoint.id, store.results())
    assert [(r.member, r.start, r.step) for r in path] == [(0, 0, 5), (0, 5, 10)]


def test_a_donor_whose_checkpoint_was_found_damaged_is_not_copied_again(tmp_path):
    store, copied, worker = _two_members_and_a_copy(tmp_path, population=3)
    store.recover(worker, 0, copied.checkpoint.key, "checkpoint damaged")
    store.release(worker, 0)
    _report(store, 2, 5)
    _report(store, 2, 10, decide=lambda snapshot, member: Decision(1, {"x": 0.3}))
    assert [e.member for e in store.events("exploit")] == [0]  # member 2 did not copy it
