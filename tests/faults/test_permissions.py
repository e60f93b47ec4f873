"""Files are private to their owner, and a checkpoint directory populace cannot write to is
refused before anything is written."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import COUNTER

import populace
from populace.script import load_script
from populace.store import open_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: only populace's own modes can keep files private."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_store_and_checkpoints_are_readable_by_the_owner_only(tmp_path, open_umask):
    s = load_script(COUNTER)
    populace.run(s.trainable, s.space, store=tmp_path / "p.db", script=COUNTER, progress=False,
                 **{**s.config, "executor": "inline"})
    store = open_store(tmp_path / "p.db")
    store.members()  # an open connection: SQLite's WAL and shared-memory files exist now
    files = [tmp_path / f"p.db{suffix}" for suffix in ("", "-wal", "-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    root = Path(store.config().checkpoints)
    checkpoints = [p for p in root.rglob("*") if p.is_file()]
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert checkpoints and len(folders) > 1
    assert {str(p): mode(p) for p in checkpoints} == {str(p): 0o600 for p in checkpoints}
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    store.close()


# -- a checkpoint directory without write permission ---------------------------------------
#
# root writes anywhere, whatever the mode bits say. Run as root, the command runs as the
# user `nobody` where it can reach the interpreter and the tree, else as root without the
# capabilities that bypass permission checks (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): either
# way the kernel enforces the folder's mode bits on it.

_NO_DAC = "-dac_override,-dac_read_search"


def _unprivileged_prefixes() -> list[list[str]]:
    if os.geteuid() != 0:
        return [[]]
    if shutil.which("setpriv") is None:
        return []
    prefixes = []
    try:
        nobody = pwd.getpwnam("nobody")
        prefixes.append(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                         "--clear-groups"])
    except KeyError:
        pass
    prefixes.append(["setpriv", f"--inh-caps={_NO_DAC}", f"--bounding-set={_NO_DAC}"])
    return prefixes


PROBE = """
import sys, populace
try:
    open(sys.argv[1] + "/probe", "w")
except PermissionError:
    print("refused")
"""


@pytest.fixture(scope="module")
def unprivileged() -> list[str]:
    """A command prefix under which permission bits hold (empty when not root)."""
    base = Path(tempfile.mkdtemp(prefix="populace-probe-"))
    try:
        base.chmod(0o777)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        for prefix in _unprivileged_prefixes():
            try:
                done = subprocess.run([*prefix, sys.executable, "-c", PROBE, str(locked)],
                                      cwd=base, capture_output=True, text=True, timeout=60,
                                      env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            except OSError:
                continue
            # it imports populace (interpreter and tree readable) and is refused the write
            if done.returncode == 0 and done.stdout.strip() == "refused":
                return prefix
    finally:
        shutil.rmtree(base, ignore_errors=True)
    pytest.skip("no way to run as a user that permission bits apply to (root without setpriv, "
                "or neither `nobody` nor a capability-less root can run the interpreter)")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder any user may write to (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="populace-perm-"))
    base.chmod(0o777)
    try:
        yield base
    finally:
        for folder in (p for p in base.rglob("*") if p.is_dir()):
            folder.chmod(0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize("missing", [False, True], ids=["read-only", "cannot-be-created"])
def test_a_checkpoint_directory_without_write_permission_is_refused_and_nothing_is_written(
        unprivileged, shared_dir, missing):
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # the directory itself is read-only, or it does not exist and cannot be created
    checkpoints = locked / "checkpoints" if missing else locked
    store = shared_dir / "run.db"
    done = subprocess.run(
        [*unprivileged, sys.executable, "-m", "populace.cli", "run", str(COUNTER),
         "--store", str(store), "--checkpoints", str(checkpoints), "--executor", "inline",
         "--quiet"],
        cwd=shared_dir, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "500"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert str(checkpoints) in out and "not writable" in out, out
    # nothing half-written: no store (nor its journal), no checkpoint file or temp folder
    assert sorted(p.name for p in shared_dir.iterdir()) == ["locked"], out
    assert list(locked.iterdir()) == []
