"""A storage that fails is not a member that fails: a full checkpoint disk or store disk
stops the run with exit status 75, naming the storage, the path and the cause; no member
is failed for it and no partial file is left; once space is freed the same command
resumes to the end with nothing lost or duplicated. On a real 1 MB tmpfs (CI runs as
root)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from support.postgres import OwnServer
from support.processes import cleaned_up, start_counter, wait_for_evals
from support.runs import assert_one_history

from populace.errors import StorageFault
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

    def mount(size: str, under: Path = tmp_path) -> Path:
        folder = Path(tempfile.mkdtemp(dir=under, prefix="disk-"))
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)
        folder.rmdir()


def fill(disk: Path) -> Callable[[], None]:
    """Fill the disk to its last byte; return what frees it again."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast.unlink


def read_only(disk: Path) -> Callable[[], None]:
    """Make the disk read-only; return what makes it writable again."""
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    return lambda: subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)


def flags(executor: str, *more: str) -> tuple[str, ...]:
    return ("--population", str(POPULATION), "--workers", "2", "--steps", str(STEPS),
            "--ready-steps", "4", "--executor", executor, "--quiet", *more)


def stopped_by(fault: Callable[[], Callable[[], None]], store: Path | str,
               args: tuple[str, ...], env: dict[str, str], cause: str,
               evals: Path | None = None) -> str:
    """Start the run, break its storage by `fault` once it trains, and return what the run
    wrote as it stopped, after checking that it stopped as a storage fault naming `cause`,
    with no member failed, and that once mended the same command resumes it to the end."""
    evals = evals or Path(store).parent / "evals"
    proc = start_counter(store, evals, *args, env=env)  # type: ignore[arg-type]
    with cleaned_up([proc]):
        wait_for_evals(proc, evals, 3)
        mend = fault()
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == STORAGE_FAILED, out
    assert cause in out, out
    db = open_store(store)
    assert db.events("failed") == [] and db.events("retry") == []
    assert all(m.status != "failed" and m.error is None for m in db.members())
    assert any(m.status != "done" for m in db.members()), "finished before the fault"
    db.close()
    mend()
    again = start_counter(store, evals, *args, env=env)  # type: ignore[arg-type]
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
    out = stopped_by(lambda: fill(disk), tmp_path / "s.db",
                     flags(executor, "--checkpoints", str(folder)),
                     {**ENV, "COUNTER_HIDE_ERRNO": "1"}, "No space left on device")
    assert f"checkpoint storage {folder}" in out, out
    assert "unexpected pos" not in out.split("storage failed:")[-1], out
    # no partial file: only the run's mark and its shard folders
    assert [p.name for p in folder.iterdir() if p.is_file()] == [".populace-run"]
    assert not any(p.is_file() for shard in folder.iterdir() if shard.is_dir()
                   for p in shard.iterdir() if not p.name.endswith(".ckpt"))


def test_a_read_only_checkpoint_disk_stops_the_run_and_the_same_command_resumes(
        tmp_path, small_disk):
    disk = small_disk("4m")
    folder = disk / "checkpoints"
    out = stopped_by(lambda: read_only(disk), tmp_path / "s.db",
                     flags("local", "--checkpoints", str(folder)), ENV,
                     "Read-only file system")
    assert f"checkpoint storage {folder}" in out, out


def test_a_full_store_disk_stops_the_run_and_the_same_command_resumes(tmp_path, small_disk):
    """The workers cannot give their leases back to a full store: the same command waits
    for them to expire (lease_seconds)."""
    disk = small_disk("8m")  # room for the store to grow until the test fills it
    store, lease = disk / "s.db", tmp_path / "lease.yaml"
    lease.write_text("lease_seconds: 2\n")
    out = stopped_by(lambda: fill(disk), store,
                     flags("local", "--checkpoints", str(tmp_path / "ck"), "--config",
                           str(lease)), ENV, "database or disk is full")
    assert f"store {store}" in out, out


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    own = OwnServer()
    yield own
    own.close()


def test_a_full_postgresql_disk_stops_the_run_and_the_same_command_resumes(
        tmp_path, small_disk, own_server):
    """The run's database sits in a tablespace on a tmpfs of its own (its WAL on the
    server's disk), so filling it makes the server answer 53100 DiskFull ("could not
    extend file"), as a full data disk does: exit 75 at once, not exit 2 after the
    store's retries."""
    # the server's user must reach it (pytest's tmp_path is root's alone); room for the
    # database's copy of template1
    disk = small_disk("32m", Path(own_server.data).parent)
    (disk / "ts").mkdir()
    shutil.chown(disk / "ts", "postgres", "postgres")
    with psycopg.connect(f"{own_server.base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE small LOCATION '{disk / 'ts'}'")
        conn.execute("CREATE DATABASE run TABLESPACE small")
    url, lease = f"{own_server.base}/run", tmp_path / "lease.yaml"
    lease.write_text("lease_seconds: 2\n")
    out = stopped_by(lambda: fill(disk), url,
                     flags("local", "--checkpoints", str(tmp_path / "ck"), "--config",
                           str(lease)), ENV, "could not extend file",
                     evals=tmp_path / "evals")
    out = " ".join(out.split())  # as the terminal's width wrapped it
    assert f"store {url}: DiskFull (53100): could not extend file" in out, out
    assert "No space left on device; no member was failed for it" in out, out


def test_a_read_only_postgresql_store_is_a_storage_fault(own_server):
    """A database that takes no writes (a standby, default_transaction_read_only): the
    storage's fault (25006), raised at once and not retried."""
    from populace.store.driver import StoreFault
    from populace.store.postgresql import PostgresDriver

    url = own_server.database("ro")
    with psycopg.connect(f"{own_server.base}/postgres", autocommit=True) as conn:
        conn.execute("ALTER DATABASE ro SET default_transaction_read_only = on")
    driver = PostgresDriver(url)
    try:
        with pytest.raises(StoreFault, match=rf"store {url}: ReadOnlySqlTransaction "
                                             r"\(25006\): .*no member was failed for it"):
            with driver.write() as cur:
                cur.execute("CREATE TABLE t (x integer)")
    finally:
        driver.close()


def test_a_failed_upload_is_the_storage_fault_not_the_members(tmp_path, monkeypatch):
    """An fsspec storage whose upload fails (a bucket gone, no permission, no network)."""
    from populace.checkpoints import open_storage
    from populace.checkpoints.remote import RemoteCheckpointStorage

    def refused(self, local, target):
        raise PermissionError(13, "Permission denied", target)

    monkeypatch.setattr(RemoteCheckpointStorage, "_upload", refused)
    storage = open_storage(f"memory://{tmp_path.name}/ck")
    with pytest.raises(StorageFault, match=rf"memory://{tmp_path.name}/ck failed: uploading "
                                           r"checkpoint .*Permission denied"):
        storage.write(lambda path: path.write_text("state"))
    assert [name for name, _ in storage.files()] == []


def test_a_store_locked_past_its_timeout_is_a_storage_fault(tmp_path):
    """Another process holding the store's file (a backup, a stray sqlite3 shell) for
    longer than the driver waits: the storage's fault, named, not the member's."""
    import sqlite3

    from populace.store.driver import StoreFault
    from populace.store.sqlite import SQLiteDriver

    path = tmp_path / "s.db"
    driver = SQLiteDriver(path, timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreFault, match=rf"store {path}: database is locked"):
            with driver.write() as cur:
                cur.execute("CREATE TABLE t (x)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        driver.close()
