"""Tests for content-addressed checkpoint storage."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from populace.checkpoints import (
    CheckpointDamaged,
    CheckpointRef,
    CheckpointStorage,
    RemoteCheckpointStorage,
)


def _saver(data: bytes):
    """Return a save function that writes data, as a user's torch.save would."""

    def save(path: Path) -> None:
        path.write_bytes(data)

    return save


def _files(root: Path) -> list[Path]:
    """Every file and dir under root, so leftovers cannot hide."""
    return sorted(root.rglob("*")) if root.exists() else []


def test_round_trip(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")
    data = os.urandom(3 * (1 << 20) + 17)  # spans several hash chunks
    ref = storage.write(_saver(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.bytes == len(data)
    assert re.fullmatch(f"{ref.sha256[:2]}/{ref.sha256}-[0-9a-f]{{12}}\\.ckpt", ref.key)
    path = storage.verify(ref.key, ref.sha256)
    assert path == storage.path(ref) == storage.root / ref.key
    assert path.read_bytes() == data


def test_same_content_written_twice_is_two_files(tmp_path: Path) -> None:
    """A shared file could be deleted with one row while another row, or a write not yet
    recorded, still needs it: every write is a file of its own."""
    storage = CheckpointStorage(tmp_path)
    first = storage.write(_saver(b"weights"))
    second = storage.write(_saver(b"weights"))
    assert first.sha256 == second.sha256 and first.key != second.key
    files = sorted(p for p in _files(tmp_path) if p.is_file())
    assert files == sorted([storage.path(first), storage.path(second)])
    storage.delete(first.key)
    assert storage.verify(second.key, second.sha256).read_bytes() == b"weights"


def test_different_content_gets_different_keys(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    a = storage.write(_saver(b"a"))
    b = storage.write(_saver(b"b"))
    assert a.key != b.key
    assert storage.verify(a.key, a.sha256).read_bytes() == b"a"
    assert storage.verify(b.key, b.sha256).read_bytes() == b"b"


def test_empty_file_is_a_valid_checkpoint(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b""))
    assert ref.bytes == 0
    assert storage.verify(ref.key, ref.sha256).read_bytes() == b""


def test_truncated_file_is_damaged(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"0123456789"))
    storage.path(ref).write_bytes(b"01234")
    with pytest.raises(CheckpointDamaged) as err:
        storage.verify(ref.key, ref.sha256)
    message = str(err.value)
    assert ref.key in message and ref.sha256 in message
    assert "5 bytes" in message


def test_flipped_byte_is_damaged(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"0123456789"))
    storage.path(ref).write_bytes(b"0123456780")
    with pytest.raises(CheckpointDamaged) as err:
        storage.verify(ref.key, ref.sha256)
    message = str(err.value)
    assert ref.key in message and ref.sha256 in message
    assert hashlib.sha256(b"0123456780").hexdigest() in message


def test_deleted_file_is_damaged(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"weights"))
    storage.path(ref).unlink()
    with pytest.raises(CheckpointDamaged, match="missing") as err:
        storage.verify(ref.key, ref.sha256)
    assert ref.key in str(err.value) and ref.sha256 in str(err.value)


def test_the_same_bytes_after_a_damaged_file_are_a_new_intact_file(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"0123456789"))
    storage.path(ref).write_bytes(b"01234")
    again = storage.write(_saver(b"0123456789"))
    assert again.key != ref.key
    assert storage.verify(again.key, again.sha256).read_bytes() == b"0123456789"
    with pytest.raises(CheckpointDamaged, match="damaged"):
        storage.verify(ref.key, ref.sha256)


def test_save_that_raises_leaves_nothing(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")

    def save(path: Path) -> None:
        path.write_bytes(b"half a checkpoint")
        Path(f"{path}.part").write_bytes(b"junk")  # what a library's own temp file looks like
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.write(save)
    assert _files(storage.root) == []


def test_save_that_writes_nothing_raises(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="must write one file"):
        storage.write(lambda path: None)
    assert _files(storage.root) == []


def test_save_that_writes_elsewhere_names_what_it_wrote(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")
    # numpy.save appends ".npy" to names that lack it: the error should make that obvious.
    with pytest.raises(FileNotFoundError, match=r"\.ckpt\.npy'\] instead"):
        storage.write(lambda path: Path(f"{path}.npy").write_bytes(b"x"))
    assert _files(storage.root) == []


def test_permissions(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")
    assert not storage.root.exists()  # created lazily
    ref = storage.write(_saver(b"weights"))
    path = storage.path(ref)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(storage.root.stat().st_mode) == 0o700


def test_delete_is_idempotent(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"weights"))
    storage.delete(ref.key)
    assert not storage.path(ref).exists()
    storage.delete(ref.key)
    with pytest.raises(CheckpointDamaged):
        storage.verify(ref.key, ref.sha256)


@pytest.mark.parametrize("key", ["/etc/passwd", "../ab/x.ckpt", "ab/" + "0" * 64 + ".ckpt",
                                 "ab/" + "0" * 64 + "-" + "0" * 12 + ".ckpt/.."])
def test_keys_outside_the_layout_are_refused(tmp_path: Path, key: str) -> None:
    storage = CheckpointStorage(tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint key"):
        storage.delete(key)


def _write_concurrently(root: str, data: bytes, barrier, results) -> None:
    """Child process: wait for the others, then write the same bytes."""
    storage = CheckpointStorage(root)
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
    storage = CheckpointStorage(tmp_path)
    assert all(storage.verify(r.key, r.sha256).read_bytes() == data for r in refs)
    assert sorted(p for p in _files(tmp_path) if p.is_file()) == sorted(
        storage.path(r) for r in refs)
    assert not [p for p in _files(tmp_path) if p.name.startswith(".tmp-")]


def _write_from_threads(storage: CheckpointStorage, data: bytes, n: int) -> list[CheckpointRef]:
    """n threads write the same bytes at once; every ref they get back."""
    barrier, refs, errors = threading.Barrier(n), [], []

    def write() -> None:
        barrier.wait()
        try:
            refs.append(storage.write(_saver(data)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    return refs


def test_concurrent_threads_of_identical_content(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    data = os.urandom(2 << 20)
    refs = _write_from_threads(storage, data, 8)
    assert len({r.key for r in refs}) == 8
    assert all(storage.verify(r.key, r.sha256).read_bytes() == data for r in refs)
    assert len([p for p in _files(tmp_path) if p.is_file()]) == 8


def test_no_temp_files_are_left_behind(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    refs = [storage.write(_saver(bytes([i]) * 1000)) for i in range(20)]
    refs.append(storage.write(_saver(b"\x00" * 1000)))  # the same bytes again
    files = [p for p in _files(tmp_path) if p.is_file()]
    assert sorted(files) == sorted({storage.path(r) for r in refs})
    assert not [p for p in _files(tmp_path) if p.name.startswith(".tmp-")]


def test_shard_folders_are_made_once(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")
    ref = storage.write(_saver(b"weights"))
    shards = sorted(p.name for p in storage.root.iterdir())
    assert shards == [f"{i:02x}" for i in range(256)]
    # a shard folder that went missing (removed by hand) is made again when needed
    storage.path(ref).unlink()
    storage.path(ref).parent.rmdir()
    again = CheckpointStorage(tmp_path / "ckpt").write(_saver(b"weights"))
    assert Path(again.key).parent == Path(ref.key).parent
    assert storage.verify(again.key, again.sha256).read_bytes() == b"weights"


def test_file_url_is_local(tmp_path: Path) -> None:
    storage = CheckpointStorage(f"file://{tmp_path}/ckpt")
    assert type(storage) is CheckpointStorage
    assert storage.root == tmp_path / "ckpt"
    ref = storage.write(_saver(b"weights"))
    assert (tmp_path / "ckpt" / ref.key).read_bytes() == b"weights"
    assert storage.fetch(ref.key, ref.sha256) == storage.path(ref)
    assert storage.location(ref) == str(tmp_path / "ckpt" / ref.key)


def test_options_are_refused_for_a_local_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="only apply to a URL"):
        CheckpointStorage(tmp_path, anon=True)


# -- remote storage (fsspec) ---------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh memory:// root; memory file systems are shared by the whole process."""
    import fsspec

    url = f"memory://populace-test-{uuid.uuid4().hex}/ckpt"
    yield url
    fs = fsspec.filesystem("memory")
    root = url[len("memory://"):].split("/")[0]
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def _objects(storage: RemoteCheckpointStorage) -> list[str]:
    """Every stored object under the storage's root, relative to it."""
    if not storage.fs.exists(storage.base):
        return []
    found = storage.fs.find(storage.base)
    return sorted(p.split(storage.base.lstrip("/") + "/", 1)[1] for p in found)


@pytest.fixture(params=["memory", "file", "object-store"])
def remote(request, memory_url: str, tmp_path: Path) -> RemoteCheckpointStorage:
    """Remote storage three ways: memory://, the generic fsspec path on a real disk
    (temp name, then move), and an object store's single put (on memory://)."""
    if request.param == "file":
        return RemoteCheckpointStorage(f"file://{tmp_path}/remote", cache_dir=tmp_path / "cache")
    storage = CheckpointStorage(memory_url, cache_dir=tmp_path / "cache")
    assert isinstance(storage, RemoteCheckpointStorage)
    storage.object_store = request.param == "object-store"
    return storage


def test_remote_round_trip(remote: RemoteCheckpointStorage) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    ref = remote.write(_saver(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.bytes == len(data)
    assert _objects(remote) == [ref.key]  # no temporary object left
    assert remote.location(ref) == f"{remote.url}/{ref.key}"
    assert remote.fs.cat_file(f"{remote.base}/{ref.key}") == data
    assert remote.fetch(ref.key, ref.sha256).read_bytes() == data
    assert remote.verify(ref.key, ref.sha256).read_bytes() == data


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


def test_remote_damaged_and_missing_are_detected(remote: RemoteCheckpointStorage,
                                                 tmp_path: Path) -> None:
    ref = remote.write(_saver(b"0123456789"))
    reader = RemoteCheckpointStorage(remote.url, cache_dir=tmp_path / "reader")
    remote.fs.pipe_file(f"{remote.base}/{ref.key}", b"01234")
    with pytest.raises(CheckpointDamaged) as err:
        reader.fetch(ref.key, ref.sha256)
    assert ref.key in str(err.value) and ref.sha256 in str(err.value)
    assert "5 bytes" in str(err.value) and remote.url in str(err.value)
    remote.fs.pipe_file(f"{remote.base}/{ref.key}", b"0123456780")
    with pytest.raises(CheckpointDamaged, match=hashlib.sha256(b"0123456780").hexdigest()):
        reader.verify(ref.key, ref.sha256)
    remote.fs.rm_file(f"{remote.base}/{ref.key}")
    with pytest.raises(CheckpointDamaged, match="missing"):
        reader.fetch(ref.key, ref.sha256)
    assert not [p for p in (tmp_path / "reader").rglob("*") if p.is_file()]  # no bad bytes kept


def test_remote_same_content_written_twice_is_two_objects(
        remote: RemoteCheckpointStorage) -> None:
    first = remote.write(_saver(b"weights"))
    second = remote.write(_saver(b"weights"))
    assert sorted(_objects(remote)) == sorted([first.key, second.key])
    remote.delete(first.key)
    assert remote.fetch(second.key, second.sha256).read_bytes() == b"weights"


def test_remote_save_that_writes_nothing_raises(remote: RemoteCheckpointStorage) -> None:
    with pytest.raises(FileNotFoundError, match="must write one file"):
        remote.write(lambda path: None)
    with pytest.raises(FileNotFoundError, match=r"\.ckpt\.npy'\] instead"):
        remote.write(lambda path: Path(f"{path}.npy").write_bytes(b"x"))

    def save(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        remote.write(save)
    assert _objects(remote) == []
    assert not [p for p in remote._cache_dir().iterdir()]  # staging cleaned up


def test_remote_concurrent_threads_of_identical_content(
        remote: RemoteCheckpointStorage) -> None:
    data = os.urandom(1 << 20)
    refs = _write_from_threads(remote, data, 8)
    assert sorted(_objects(remote)) == sorted(r.key for r in refs) and len(set(refs)) == 8
    assert all(remote.fetch(r.key, r.sha256).read_bytes() == data for r in refs)


def test_remote_cache_keeps_the_newest_copies(memory_url: str, tmp_path: Path) -> None:
    storage = CheckpointStorage(memory_url, cache_dir=tmp_path, cache_files=2)
    refs = [storage.write(_saver(bytes([i]))) for i in range(4)]
    cached = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in cached) == sorted(Path(r.key).name for r in refs[2:])
    assert storage.fetch(refs[0].key, refs[0].sha256).read_bytes() == bytes([0])
    storage.delete(refs[0].key)
    storage.delete(refs[0].key)  # idempotent
    with pytest.raises(CheckpointDamaged, match="missing"):
        storage.fetch(refs[0].key, refs[0].sha256)


def test_remote_has_no_local_path(memory_url: str) -> None:
    storage = CheckpointStorage(memory_url)
    with pytest.raises(ValueError, match="remote: use fetch"):
        storage.path("ab/" + "0" * 64 + "-" + "0" * 12 + ".ckpt")
    with pytest.raises(ValueError, match="not a checkpoint key"):
        storage.fetch("../etc/passwd", "0" * 64)
    with pytest.raises(ValueError, match="not a checkpoint key"):
        storage.delete("/etc/passwd")


def test_storages_pickle(memory_url: str, tmp_path: Path) -> None:
    import pickle

    local = CheckpointStorage(tmp_path)
    ref = local.write(_saver(b"weights"))
    copy = pickle.loads(pickle.dumps(local))
    assert type(copy) is CheckpointStorage and copy.root == local.root
    assert copy.verify(ref.key, ref.sha256).read_bytes() == b"weights"
    remote = CheckpointStorage(memory_url, cache_dir=tmp_path / "cache", cache_files=3)
    ref = remote.write(_saver(b"weights"))
    copy = pickle.loads(pickle.dumps(remote))
    assert type(copy) is RemoteCheckpointStorage and copy.url == remote.url
    assert copy._cache_files == 3
    assert copy.fetch(ref.key, ref.sha256).read_bytes() == b"weights"


def test_remote_cache_goes_with_the_storage(memory_url: str, tmp_path: Path) -> None:
    import gc

    storage = CheckpointStorage(memory_url, cache_dir=tmp_path)
    storage.write(_saver(b"weights"))
    assert any(tmp_path.iterdir())
    del storage
    gc.collect()
    assert not any(tmp_path.iterdir())
