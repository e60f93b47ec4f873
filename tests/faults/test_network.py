"""Safe by default: a run on the local executor opens no listening socket.

The run and its worker processes are found through /proc, and every socket
they hold is looked up in the kernel's TCP and UDP tables: none may be a
listening TCP socket or a bound UDP one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import COUNTER

from populace.store import StoreError, open_store

PROC = Path("/proc")


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in (PROC / str(p) / "task").glob("*/children"):
            todo.extend(int(c) for c in task.read_text().split())
    return found


def _sockets(pid: int) -> set[str]:
    """The inodes of the sockets `pid` holds open."""
    inodes = set()
    for fd in (PROC / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _listening() -> dict[str, str]:
    """inode -> local address of every listening TCP socket and bound UDP socket."""
    found = {}
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        path = PROC / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state:
                found[fields[9]] = f"{table} {fields[1]}"
    return found


def _training(store: Path) -> bool:
    """Whether a member of the run in `store` is being trained (the file exists a moment
    before its run is written in it)."""
    try:
        return store.exists() and any(m.status == "running" for m in open_store(store).members())
    except StoreError:
        return False


@pytest.mark.skipif(not (PROC / "net" / "tcp").exists(), reason="needs Linux /proc/net")
def test_a_local_run_listens_on_no_port(tmp_path):
    store = tmp_path / "run.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", str(store),
         "--workers", "2", "--quiet"],
        env={**os.environ, "COUNTER_SLEEP": "0.05"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(_tree(proc.pid)) < 3:  # the run and its two workers
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        while not _training(store):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        pids = _tree(proc.pid)
        ours = set().union(*(_sockets(p) for p in pids))
        listening = _listening()
        assert {i: listening[i] for i in ours if i in listening} == {}
    finally:
        proc.kill()
        proc.communicate(timeout=30)
