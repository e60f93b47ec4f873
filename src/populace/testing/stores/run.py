"""Store checks of the run itself: created once, read back, and told apart from what is
not a populace store (another program's tables, another schema version)."""

from __future__ import annotations

import json

from populace.store import SCHEMA_VERSION, StoreError
from populace.store.migrate import OLDEST
from populace.testing.stores._kit import (
    Stores,
    equal,
    holds,
    raises,
    run_record,
    store_check,
)


@store_check
def check_store_create_and_read_back(stores: Stores) -> None:
    """A run is created in one go and every connection reads it back as written."""
    store = stores.open()
    holds(not store.exists())
    hparams = [{"lr": 0.1, "layers": 2}, {"lr": 0.2, "layers": 3}, {"lr": 0.3, "layers": 4}]
    config = run_record("min", population=3)
    store.create(config, hparams)

    again = stores.open()  # a second connection sees the committed run
    for s in (store, again):
        holds(s.exists())
        equal(s.config(), config)
        members = s.members()
        equal([m.id for m in members], [0, 1, 2])
        equal([m.hparams for m in members], hparams)
        for m in members:
            equal((m.step, m.score, m.status, m.checkpoint), (0, None, "ready", None))
            equal((m.generation, m.parent, m.error), (0, None, None))
        holds(s.results() == [] and s.events() == [] and s.checkpoints() == [])
    holds(again.snapshot().maximize is False)


@store_check
def check_store_creating_twice_is_refused_and_changes_nothing(stores: Stores) -> None:
    """A second create would mix two runs in one store: refused, the first left whole."""
    store = stores.new(population=3)
    with raises(StoreError, match="already holds a run"):
        store.create(run_record("min", population=5), [{"lr": 1.0}] * 5)
    equal(store.config(), run_record("max", population=3))
    equal(len(store.members()), 3)


@store_check
def check_store_a_fresh_store_holds_no_run(stores: Stores) -> None:
    """An empty store is no run: reading one says so instead of inventing a config."""
    store = stores.open()
    holds(not store.exists())
    with raises(StoreError, match="not a populace store"):
        store.config()
    with raises(StoreError, match="not a populace store"):
        store.members()


@store_check
def check_store_another_programs_database_is_not_a_store(stores: Stores) -> None:
    """Someone else's tables are never taken for a run (nor written over)."""
    store = stores.open()
    with store.driver.write() as cur:
        cur.execute(f"CREATE TABLE notes (id {store.driver.types['id']}, body TEXT)")
        cur.execute("INSERT INTO notes (body) VALUES ('mine')")
    store = stores.open()
    holds(not store.exists())
    for read in (store.config, store.members, store.results, store.events, store.progress):
        with raises(StoreError, match="not a populace store"):
            read()


@store_check
def check_store_another_programs_meta_table_is_not_a_store(stores: Stores) -> None:
    """Even a table named like the store's own is not a run without its contents."""
    store = stores.open()
    with store.driver.write() as cur:
        cur.execute("CREATE TABLE meta (name TEXT, data TEXT)")
    store = stores.open()
    holds(not store.exists())
    with raises(StoreError, match="not a populace store"):
        store.config()


@store_check
def check_store_another_schema_is_refused_naming_both_versions(stores: Stores) -> None:
    """A store of another schema version is refused with both versions and what to do: a
    newer one, or one older than any this populace upgrades (`populace.store.migrate`)."""
    for other, advice in ((SCHEMA_VERSION + 1, "upgrade populace"),
                          (OLDEST - 1, "the populace that started it")):
        store = stores.new(name=f"schema{other}")
        with store.driver.write() as cur:
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                        (json.dumps(other),))
        store = stores.open(f"schema{other}")
        expected = rf"schema version {other}.*version {SCHEMA_VERSION}.*{advice}"
        with raises(StoreError, match=expected):
            store.exists()
        with raises(StoreError, match=expected):
            store.config()
        with raises(StoreError, match=expected):
            store.members()
