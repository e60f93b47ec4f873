"""Stores an older populace wrote open with this one: upgraded in one transaction, said on
stderr, a SQLite store copied beside itself first; then status, report, replay, resume and
extending the steps work on them as on a run this populace started.

The stores are runs of tests/scripts/counter.py that the populace of each older schema
trained and stopped part way (tests/store/fixtures/write_old_runs.py): SQLite ones
committed under fixtures/old-runs/, PostgreSQL ones written at test time from `git archive`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import COUNTER, ROOT
from support.runs import assert_one_history

from populace.cli import main
from populace.store import StoreError, migrate, open_store
from populace.store.schema import SCHEMA_VERSION

FIXTURES = Path(__file__).parent / "fixtures"
WRITER = FIXTURES / "write_old_runs.py"
OLD = sorted(migrate.STEPS)  # every schema this populace upgrades: each has a fixture
INLINE = ["--executor", "inline", "--quiet"]
CLI = "from populace.cli import main; raise SystemExit(main())"  # `populace` of PYTHONPATH
# the old run as its populace left it: (status, step) of each member, and its events
LEFT = [("ready", 12), ("ready", 8), ("ready", 8), ("ready", 8)]
EVENTS = ["exploit", "exploit", "wait", "exploit", "exploit", "exploit"]


def _old_populace(version: int, into: Path) -> Path:
    """populace's src at the last commit that wrote `version`, or skip where git has no
    history (an unpacked release)."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import write_old_runs
    finally:
        sys.path.remove(str(FIXTURES))
    try:
        return write_old_runs.old_src(version, into)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"git cannot give populace {write_old_runs.OLD[version]}: {e.stderr!r}")


def _sqlite_run(version: int, tmp_path: Path) -> str:
    folder = tmp_path / f"v{version}"
    shutil.copytree(FIXTURES / "old-runs" / f"v{version}", folder)
    return str(folder / "run.db")


def _postgres_run(version: int, tmp_path: Path) -> str:
    from support.postgres import schema_url

    url = schema_url()
    _old_populace(version, tmp_path / "probe")  # skips where git cannot give it
    done = subprocess.run([sys.executable, str(WRITER), str(version), url], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def old_run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory: the stopped run an older populace of `version` left, on each backend."""
    monkeypatch.chdir(tmp_path)  # a PostgreSQL run's report and replay land here

    def make(version: int) -> str:
        if request.param == "sqlite":
            return _sqlite_run(version, tmp_path)
        return _postgres_run(version, tmp_path)

    return make


def _moved_script(store: str) -> None:
    """Point the run at counter.py where this checkout has it: the store names the script
    where the fixture was written (a workspace that is not this one)."""
    db = open_store(store)
    with db.driver.write() as cur:
        cur.execute("SELECT value FROM meta WHERE key = 'config'")
        config = json.loads(cur.fetchone()[0])
        assert Path(config["script"]).name == "counter.py"
        cur.execute("UPDATE meta SET value = ? WHERE key = 'config'",
                    (json.dumps({**config, "script": str(COUNTER)}),))
    db.close()


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(json.loads(conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]))


@pytest.mark.parametrize("version", OLD)
def test_an_old_run_is_upgraded_and_trains_on(old_run, version, tmp_path, capsys):
    store = old_run(version)
    capsys.readouterr()
    assert main(["status", store]) == 0
    said = capsys.readouterr().err
    assert "upgraded the store at" in said
    assert f"from schema {version} to {SCHEMA_VERSION}" in said
    assert ", ".join(migrate.added(version)) in said and "Upgrading populace" in said
    if not store.startswith("postgresql://"):
        kept = migrate.backup_path(Path(store), version)
        assert f"kept at {kept}" in said
        assert _version(kept) == version and _version(Path(store)) == SCHEMA_VERSION
    else:
        assert "can be undone" in said

    db = open_store(store)  # upgraded once: it opens as any store of this version
    assert [(m.status, m.step) for m in db.members()] == LEFT
    assert [e.kind for e in db.events()] == EVENTS
    db.close()
    assert main(["status", store, "--events"]) == 0
    assert "upgraded" not in capsys.readouterr().err

    assert main(["report", store]) == 0
    assert "report written to" in capsys.readouterr().out

    _moved_script(store)
    replay = tmp_path / "replay.db"
    assert main(["replay", store, "--out", str(replay), "--quiet"]) == 0
    # the best member's schedule, to the stop score the run had then: the same score
    assert "score: replay 10.65, PBT's best member 10.65" in capsys.readouterr().out
    assert [m.step for m in open_store(replay).members()] == [12]

    # resume: the same script to the end (the stop score that stopped it switched off)
    assert main(["run", str(COUNTER), "--store", store, "--stop-score", "off", *INLINE]) == 0
    db = open_store(store)
    assert_one_history(db, 4, 16)
    db.close()
    assert main(["run", str(COUNTER), "--store", store, "--stop-score", "off", "--steps", "24",
                 *INLINE]) == 0
    db = open_store(store)
    assert_one_history(db, 4, 24)
    assert db.meta("schema_version") == SCHEMA_VERSION
    db.close()


@pytest.mark.parametrize("version", OLD)
def test_each_upgrade_gives_the_columns_a_new_store_has(version, tmp_path):
    store = open_store(_sqlite_run(version, tmp_path))
    new = open_store(tmp_path / "new.db")
    new.create(store.config(), [{"x": 0.5}])
    for table in ("meta", "checkpoints", "members", "results", "events"):
        with store.driver.read() as cur, new.driver.read() as fresh:
            assert store.driver.columns(cur, table) == new.driver.columns(fresh, table), table
    assert _indexes_and_triggers(store) == _indexes_and_triggers(new)  # schema 6's
    # the upgraded store keeps revisions: a change goes above every row's
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET hparams = hparams WHERE id = 1")
        cur.execute("SELECT id FROM members ORDER BY revision DESC, id LIMIT 1")
        assert cur.fetchone()[0] == 1


def _indexes_and_triggers(store) -> list[tuple[str, str]]:
    with store.driver.read() as cur:
        cur.execute("SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger')"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY type, name")
        return [tuple(r) for r in cur.fetchall()]


def test_a_store_that_cannot_be_copied_is_not_upgraded(tmp_path, monkeypatch):
    store = Path(_sqlite_run(3, tmp_path))

    def full(path: Path, version: int) -> Path:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(migrate, "backup", full)
    with pytest.raises(StoreError, match=r"schema version 3.*No space left.*nothing was "
                                         r"changed.*run the same command again"):
        open_store(store)
    assert _version(store) == 3


def _populace(src: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The populace command of the code at `src`."""
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})


def _old_status(version: int, store: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return _populace(_old_populace(version, tmp_path / f"old{version}"), "status", store,
                     cwd=tmp_path)


def test_the_copy_of_a_sqlite_store_puts_it_back(tmp_path):
    """docs/faults.md's undo: the copy moved back in place opens with the old populace."""
    store = Path(_sqlite_run(3, tmp_path))
    open_store(store).close()
    refused = _old_status(3, str(store), tmp_path)  # upgraded: too new for populace 3
    assert refused.returncode != 0 and f"schema version {SCHEMA_VERSION}" in refused.stderr
    migrate.backup_path(store, 3).replace(store)
    done = _old_status(3, str(store), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout


@pytest.mark.parametrize("version", [3, SCHEMA_VERSION - 1])
def test_a_postgresql_upgrade_is_undone_by_its_statements(version, tmp_path, monkeypatch):
    """docs/faults.md's undo for PostgreSQL, which keeps no copy: `migrate.undo`."""
    monkeypatch.chdir(tmp_path)
    url = _postgres_run(version, tmp_path)
    store = open_store(url)
    assert store.meta("schema_version") == SCHEMA_VERSION
    with store.driver.write() as cur:
        for sql in migrate.undo(version):
            cur.execute(sql)
    store.close()
    done = _old_status(version, url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout
    again = _populace(ROOT / "src", "status", url, cwd=tmp_path)  # and upgrades again
    assert again.returncode == 0 and f"from schema {version} to" in again.stderr


EARLY_3 = "d2f40b3"  # the first commit that wrote schema 3, before runs marked their storage


def test_a_schema_3_run_from_before_storage_marks_trains_on(tmp_path):
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", EARLY_3, "src/populace"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"git cannot give populace {EARLY_3}")
    (tmp_path / "old").mkdir()
    subprocess.run(["tar", "-x", "-C", str(tmp_path / "old")], input=archive.stdout, check=True)
    shutil.copy(COUNTER, tmp_path / "counter.py")
    wrote = _populace(tmp_path / "old" / "src", "run", "counter.py", "--store", "run.db",
                      "--steps", "8", "--seed", "1", *INLINE, cwd=tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    store = str(tmp_path / "run.db")
    assert main(["status", store]) == 0 and main(["report", store]) == 0
    assert main(["run", str(tmp_path / "counter.py"), "--store", store, "--steps", "16",
                 *INLINE]) == 0
    db = open_store(store)
    assert_one_history(db, 4, 16)
