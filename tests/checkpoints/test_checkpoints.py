"""Content-addressed checkpoint storage: the storage battery of populace.testing on every
kind (a local folder, file:// and memory:// URLs, an object store's single put), then
what is particular to local and to remote storage."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from populace.checkpoints import (
    CheckpointDamaged,
    CheckpointRef,
    CheckpointStorage,
    LocalCheckpointStorage,
    RemoteCheckpointStorage,
    open_storage,
)
from populace.testing import STORAGE_CHECKS


def _saver(data: bytes):
    """Return a save function that writes data, as a user's torch.save would."""

    def save(path: Path) -> None:
        path.write_bytes(data)

    return save


def _files(root: Path) -> list[Path]:
    """Every file and dir under root, so leftovers cannot hide."""
    return sorted(root.rglob("*")) if root.exists() else []


def _drop_memory(url: str) -> None:
    """Remove a memory:// root: memory file systems are shared by the whole process."""
    import fsspec

    fs = fsspec.filesystem("memory")
    root = url[len("memory://"):].split("/")[0]
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


KINDS = ["local", "file-url", "memory", "fsspec-file", "object-store"]


@pytest.fixture(params=KINDS)
def storage_factory(request, tmp_path: Path) -> Iterator[Callable[[], CheckpointStorage]]:
    """A fresh, empty storage of one kind at each call. fsspec-file is the generic fsspec
    path on a real disk (a temp name, then a move); object-store a single put, on memory://."""
    kind, count, urls = request.param, itertools.count(), []

    def factory() -> CheckpointStorage:
        n = next(count)
        if kind == "local":
            return open_storage(tmp_path / f"ckpt{n}")
        if kind == "file-url":
            return open_storage(f"file://{tmp_path}/ckpt{n}")
        if kind == "fsspec-file":
            return RemoteCheckpointStorage(f"file://{tmp_path}/remote{n}",
                                           cache_dir=tmp_path / f"cache{n}")
        urls.append(f"memory://populace-test-{uuid.uuid4().hex}/ckpt")
        storage = open_storage(urls[-1], cache_dir=tmp_path / f"cache{n}")
        assert isinstance(storage, RemoteCheckpointStorage)
        storage.object_store = kind == "object-store"
        return storage

    yield factory
    for url in urls:
        _drop_memory(url)


@pytest.mark.parametrize("check", STORAGE_CHECKS, ids=lambda check: check.__name__)
def test_every_storage_keeps_the_contract(storage_factory, check) -> None:
    check(storage_factory)


# -- local storage -------------------------------------------------------------------------


def test_a_local_checkpoint_is_the_file_at_its_path(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "ckpt")
    ref = storage.write(_saver(b"weights"))
    path = storage.verify(ref.key, ref.sha256)
    assert path == storage.path(ref) == storage.root / ref.key
    assert path.read_bytes() == b"weights"


def test_permissions(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "ckpt")
    assert not storage.root.exists()  # created lazily
    ref = storage.write(_saver(b"weights"))
    path = storage.path(ref)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(storage.root.stat().st_mode) == 0o700


def _write_concurrently(root: str, data: bytes, barrier, results) -> None:
    """Child process: wait for the others, then write the same bytes."""
    storage = open_storage(root)
    barrier.wait()
    results.put(storage.write(_saver(data)))


def test_concurrent_writers_of_identical_content(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    data = os.urandom(4 << 20)
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [
        ctx.Process(target=_write_concurrently, args=(str(tmp_path), data, barrier, results))
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    refs = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert all(isinstance(r, CheckpointRef) for r in refs)
    assert len({r.key for r in refs}) == 4 and len({r.sha256 for r in refs}) == 1
    storage = open_storage(tmp_path)
    assert all(storage.verify(r.key, r.sha256).read_bytes() == data for r in refs)
    assert sorted(p for p in _files(tmp_path) if p.is_file()) == sorted(
        storage.path(r) for r in refs)
    assert not [p for p in _files(tmp_path) if p.name.startswith(".tmp-")]


def test_shard_folders_are_made_once(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "ckpt")
    ref = storage.write(_saver(b"weights"))
    shards = sorted(p.name for p in storage.root.iterdir())
    assert shards == [f"{i:02x}" for i in range(256)]
    # a shard folder that went missing (removed by hand) is made again when needed
    storage.path(ref).unlink()
    storage.path(ref).parent.rmdir()
    again = open_storage(tmp_path / "ckpt").write(_saver(b"weights"))
    assert Path(again.key).parent == Path(ref.key).parent
    assert storage.verify(again.key, again.sha256).read_bytes() == b"weights"


def test_file_url_is_local(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/ckpt")
    assert type(storage) is LocalCheckpointStorage
    assert storage.root == tmp_path / "ckpt"
    ref = storage.write(_saver(b"weights"))
    assert (tmp_path / "ckpt" / ref.key).read_bytes() == b"weights"
    assert storage.fetch(ref.key, ref.sha256) == storage.path(ref)
    assert storage.location(ref) == str(tmp_path / "ckpt" / ref.key)


def test_options_are_refused_for_a_local_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="only apply to a URL"):
        open_storage(tmp_path, anon=True)


# -- remote storage (fsspec) ---------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh memory:// root, removed after the test."""
    url = f"memory://populace-test-{uuid.uuid4().hex}/ckpt"
    yield url
    _drop_memory(url)


@pytest.fixture(params=["memory", "file", "object-store"])
def remote(request, memory_url: str, tmp_path: Path) -> RemoteCheckpointStorage:
    """Remote storage three ways: memory://, the generic fsspec path on a real disk
    (temp name, then move), and an object store's single put (on memory://)."""
    if request.param == "file":
        return RemoteCheckpointStorage(f"file://{tmp_path}/remote", cache_dir=tmp_path / "cache")
    storage = open_storage(memory_url, cache_dir=tmp_path / "cache")
    assert isinstance(storage, RemoteCheckpointStorage)
    storage.object_store = request.param == "object-store"
    return storage


def test_remote_fetch_downloads_and_checks(remote: RemoteCheckpointStorage,
                                           tmp_path: Path) -> None:
    ref = remote.write(_saver(b"weights"))
    # another machine: nothing cached, so it downloads
    other = RemoteCheckpointStorage(remote.url, cache_dir=tmp_path / "other")
    local = other.fetch(ref.key, ref.sha256)
    assert local.read_bytes() == b"weights"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.parent.stat().st_mode) == 0o700
    assert local.parent.parent == tmp_path / "other"
    # a local copy damaged after download is noticed and fetched again
    local.write_bytes(b"weightz")
    assert other.fetch(ref.key, ref.sha256).read_bytes() == b"weights"


def test_remote_cache_keeps_the_newest_copies(memory_url: str, tmp_path: Path) -> None:
    storage = open_storage(memory_url, cache_dir=tmp_path, cache_files=2)
    refs = [storage.write(_saver(bytes([i]))) for i in range(4)]
    cached = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in cached) == sorted(Path(r.key).name for r in refs[2:])
    assert storage.fetch(refs[0].key, refs[0].sha256).read_bytes() == bytes([0])
    storage.delete(refs[0].key)
    storage.delete(refs[0].key)  # idempotent
    with pytest.raises(CheckpointDamaged, match="missing"):
        storage.fetch(refs[0].key, refs[0].sha256)


def test_remote_has_no_local_path(memory_url: str) -> None:
    storage = open_storage(memory_url)
    with pytest.raises(ValueError, match="remote: use fetch"):
        storage.path("ab/" + "0" * 64 + "-" + "0" * 12 + ".ckpt")
    with pytest.raises(ValueError, match="not a checkpoint key"):
        storage.fetch("../etc/passwd", "0" * 64)
    with pytest.raises(ValueError, match="not a checkpoint key"):
        storage.delete("/etc/passwd")


def test_storages_pickle(memory_url: str, tmp_path: Path) -> None:
    import pickle

    local = open_storage(tmp_path)
    ref = local.write(_saver(b"weights"))
    copy = pickle.loads(pickle.dumps(local))
    assert type(copy) is LocalCheckpointStorage and copy.root == local.root
    assert copy.verify(ref.key, ref.sha256).read_bytes() == b"weights"
    remote = open_storage(memory_url, cache_dir=tmp_path / "cache", cache_files=3)
    ref = remote.write(_saver(b"weights"))
    copy = pickle.loads(pickle.dumps(remote))
    assert type(copy) is RemoteCheckpointStorage and copy.url == remote.url
    assert copy._cache_files == 3
    assert copy.fetch(ref.key, ref.sha256).read_bytes() == b"weights"


def test_remote_cache_goes_with_the_storage(memory_url: str, tmp_path: Path) -> None:
    import gc

    storage = open_storage(memory_url, cache_dir=tmp_path)
    storage.write(_saver(b"weights"))
    assert any(tmp_path.iterdir())
    del storage
    gc.collect()
    assert not any(tmp_path.iterdir())
