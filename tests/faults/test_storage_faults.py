"""A storage that fails is not a member that fails: a full checkpoint disk or store disk
stops the run with exit status 75, naming the storage, the path and the cause; no member
is failed for it and no partial file is left; once space is freed the same command
resumes to the end with nothing lost or duplicated. On a real 1 MB tmpfs (CI runs as
root)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.processes import cleaned_up, start_counter, wait_for_evals
from support.runs import assert_one_history

from populace.store import open_store

POPULATION, STEPS = 4, 60
STORAGE_FAILED = 75  # the exit status docs/faults.md gives a storage fault
ENV = {"COUNTER_SLEEP": "0.03"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A tmpfs of the test's own, of the size asked (`"1m"`)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path) -> Path:
    """Fill the disk to its last byte; return the file that fills it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast


def flags(executor: str, *more: str) -> tuple[str, ...]:
    return ("--population", str(POPULATION), "--workers", "2", "--steps", str(STEPS),
            "--ready-steps", "4", "--executor", executor, "--quiet", *more)


def stopped_by_a_full_disk(store: Path, disk: Path, args: tuple[str, ...],
                           env: dict[str, str]) -> str:
    """Start the run, fill the disk once it trains, and return what it wrote as it
    stopped, after checking that it stopped as a storage fault, with no member failed,
    and that the same command then resumes it to the end."""
    evals = store.parent / "evals"
    proc = start_counter(store, evals, *args, env=env)
    with cleaned_up([proc]):
        wait_for_evals(proc, evals, 3)
        ballast = fill(disk)
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == STORAGE_FAILED, out
    assert "No space left on device" in out or "disk is full" in out, out
    db = open_store(store)
    assert db.events("failed") == [] and db.events("retry") == []
    assert all(m.status != "failed" and m.error is None for m in db.members())
    assert any(m.status != "done" for m in db.members()), "finished before the disk filled"
    db.close()
    ballast.unlink()
    again = start_counter(store, evals, *args, env=env)
    with cleaned_up([again]):
        resumed = again.communicate(timeout=120)[0].decode()
    assert again.returncode == 0, resumed
    db = open_store(store)
    assert_one_history(db, POPULATION, STEPS)
    db.close()
    return out


@pytest.mark.parametrize("executor", ["local", "inline"])
def test_a_full_checkpoint_disk_stops_the_run_and_the_same_command_resumes(
        tmp_path, small_disk, executor):
    """The save hides ENOSPC behind a RuntimeError, as torch's zip writer does."""
    disk = small_disk("1m")
    folder = disk / "checkpoints"
    out = stopped_by_a_full_disk(tmp_path / "s.db", disk,
                                 flags(executor, "--checkpoints", str(folder)),
                                 {**ENV, "COUNTER_HIDE_ERRNO": "1"})
    assert f"checkpoint storage {folder}" in out, out
    assert "unexpected pos" not in out.split("storage failed:")[-1], out
    # no partial file: only the run's mark and its shard folders
    assert [p.name for p in folder.iterdir() if p.is_file()] == [".populace-run"]
    assert not any(p.is_file() for shard in folder.iterdir() if shard.is_dir()
                   for p in shard.iterdir() if not p.name.endswith(".ckpt"))


def test_a_full_store_disk_stops_the_run_and_the_same_command_resumes(tmp_path, small_disk):
    """The workers cannot give their leases back to a full store: the same command waits
    for them to expire (lease_seconds)."""
    disk = small_disk("8m")  # room for the store to grow until the test fills it
    store, lease = disk / "s.db", tmp_path / "lease.yaml"
    lease.write_text("lease_seconds: 2\n")
    out = stopped_by_a_full_disk(store, disk, flags("local", "--checkpoints",
                                                    str(tmp_path / "ck"), "--config",
                                                    str(lease)), ENV)
    assert f"store {store}" in out and "database or disk is full" in out, out
