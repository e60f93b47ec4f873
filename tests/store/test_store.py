"""The store battery of populace.testing on every backend, and what is particular to one.

`store_factory` (tests/conftest.py) is parametrized over the backends, so a new backend
runs every check by adding one name to conftest.BACKENDS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from populace.store import StoreError, open_store
from populace.testing import STORE_CHECKS
from populace.testing.stores import claim_exactly, train  # noqa: F401 - test_waiting's


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda check: check.__name__)
def test_every_backend_keeps_the_contract(store_factory, check):
    check(store_factory)


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 40, os.urandom(8192)])
def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path: Path, content: bytes):
    # SQLite only: what a garbage file is depends on the backend
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a populace store") as caught:
        open_store(path).exists()
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content  # left untouched
