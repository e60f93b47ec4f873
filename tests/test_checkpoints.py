"""Tests for content-addressed checkpoint storage."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from populace.checkpoints import CheckpointDamaged, CheckpointRef, CheckpointStorage


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
    assert ref.key == f"{ref.sha256[:2]}/{ref.sha256}.ckpt"
    path = storage.verify(ref.key, ref.sha256)
    assert path == storage.path(ref) == storage.root / ref.key
    assert path.read_bytes() == data


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    first = storage.write(_saver(b"weights"))
    second = storage.write(_saver(b"weights"))
    assert first == second
    assert [p for p in _files(tmp_path) if p.is_file()] == [storage.path(first)]


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


def test_rewrite_repairs_a_truncated_file(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path)
    ref = storage.write(_saver(b"0123456789"))
    storage.path(ref).write_bytes(b"01234")
    assert storage.write(_saver(b"0123456789")) == ref
    assert storage.verify(ref.key, ref.sha256).read_bytes() == b"0123456789"


def test_save_that_raises_leaves_nothing(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path / "ckpt")

    def save(path: Path) -> None:
        path.write_bytes(b"half a checkpoint")
        (path.parent / "extra").write_bytes(b"junk")
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
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.ckpt\.npy"):
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


@pytest.mark.parametrize("key", ["/etc/passwd", "../ab/x.ckpt", "ab/" + "0" * 64 + ".ckpt/.."])
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
    assert len(set(refs)) == 1
    storage = CheckpointStorage(tmp_path)
    assert storage.verify(refs[0].key, refs[0].sha256).read_bytes() == data
    assert [p for p in _files(tmp_path) if p.is_file()] == [storage.path(refs[0])]
    assert not [p for p in _files(tmp_path) if p.name.startswith(".tmp-")]
