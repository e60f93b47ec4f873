"""Shared fixtures: stores of every backend, for the store battery (tests/store/) and
the tests that need a run in a store.

PostgreSQL is a real server (tests/support/postgres.py), each test in a schema of its own.

A new backend is tested by adding its name to BACKENDS and a branch in
`store_factory` that opens a fresh, empty store of that kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from populace.store import Store, open_store
from populace.testing.stores import run_record

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Open an empty store; the same `name` again opens a second connection to it."""
    opened: list[Store] = []
    urls: dict[str, str] = {}

    def factory(name: str = "run") -> Store:
        if request.param == "sqlite":
            store = open_store(tmp_path / f"{name}.db")
        elif request.param == "postgresql":
            from support.postgres import schema_url

            store = open_store(urls.setdefault(name, schema_url()))
        else:  # pragma: no cover - a backend named in BACKENDS without a branch here
            raise NotImplementedError(request.param)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def new_store(store_factory: Callable[..., Store]) -> Callable[..., Store]:
    """Create a run of `population` members, member i with {"lr": 0.01 * (i + 1)}."""

    def make(population: int = 4, mode: str = "max", name: str = "run") -> Store:
        store = store_factory(name)
        hparams = [{"lr": 0.01 * (i + 1)} for i in range(population)]
        store.create(run_record(mode, population), hparams)
        return store

    return make
