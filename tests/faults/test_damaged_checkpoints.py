"""Damaged or missing checkpoints: found by their hash, the member goes back, the run goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from populace.api import result_of
from populace.lineage import lineage
from populace.store import open_store

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "tests" / "scripts" / "counter.py"


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
    damage(Path(store.config()["checkpoints"]) / bad.key, how)
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
    path = lineage(0, store.results(), store.events())
    assert path[0].start == 0 and path[-1].step == 20
    assert all(a.step == b.start for a, b in zip(path, path[1:], strict=False))
    assert result_of(store).best.step == 20
