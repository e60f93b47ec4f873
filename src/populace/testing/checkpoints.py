"""The checkpoint storage contract, checked on a fresh storage of any kind.

Workers write a member's checkpoint, record its key and hash in the store, and
load it later, perhaps on another machine (`populace.checkpoints`). What they
rely on is checked here, for a local folder or any fsspec URL alike: a write
returns a key of its own, even for bytes stored before; damage is found, never
loaded; a failed write leaves nothing; deletes may be repeated; concurrent
writers lose nothing; a copy of the storage (another process) reads what this
one wrote; the run's mark is kept. `check_storage(factory)` runs every check on
fresh storages from `factory`; `STORAGE_CHECKS` lists them for a test to
parametrize over.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from populace.checkpoints import CheckpointDamaged, StorageMissing
from populace.testing._media import (
    Checking,
    StorageFactory,
    cached,
    leftovers,
    other,
    put,
    saver,
    stored,
)

BIG = 3 * (1 << 20) + 17  # bytes of a checkpoint that spans several hash chunks
BAD_KEYS = ("/etc/passwd", "../ab/x.ckpt", "ab/" + "0" * 64 + ".ckpt",
            "ab/" + "0" * 64 + "-" + "0" * 12 + ".ckpt/..")


def check_storage_round_trip(factory: StorageFactory) -> None:
    """What a write returns (hash, size, key) finds the same bytes again, and nothing else
    is left in the storage."""
    c = Checking(factory, check_storage_round_trip)
    data = os.urandom(BIG)
    c.did(f"write {BIG} random bytes, then read them back")
    ref = c.write(data)
    c.expect(ref.sha256 == hashlib.sha256(data).hexdigest() and ref.bytes == len(data),
             lambda: f"the ref {ref} does not hold the bytes' sha256 and size")
    key = f"{ref.sha256[:2]}/{ref.sha256}-[0-9a-f]{{12}}\\.ckpt"
    c.expect(re.fullmatch(key, ref.key) is not None,
             lambda: f"the key {ref.key!r} is not '<2 hex>/<sha256>-<12 hex>.ckpt'")
    c.expect(c.read(ref) == data, lambda: "the bytes read back are not those written")
    c.expect(stored(c.storage) == [ref.key],
             lambda: f"the storage holds {stored(c.storage)}, not just {ref.key}")
    c.expect(c.storage.location(ref) == f"{c.storage.url}/{ref.key}"
             or c.storage.location(ref) == str(Path(c.storage.url) / ref.key),
             lambda: f"location {c.storage.location(ref)!r} is not the key under the root")


def check_storage_same_bytes_twice(factory: StorageFactory) -> None:
    """Two writes of the same bytes are two checkpoints: deleting one (collection) never
    takes the other, nor a write not yet recorded in the store."""
    c = Checking(factory, check_storage_same_bytes_twice)
    c.did("write b'weights' twice, delete the first")
    first, second = c.write(b"weights"), c.write(b"weights")
    c.expect(first.sha256 == second.sha256 and first.key != second.key,
             lambda: f"the writes gave {first} and {second}: the same hash, two keys expected")
    c.expect(stored(c.storage) == sorted([first.key, second.key]),
             lambda: f"the storage holds {stored(c.storage)}")
    c.storage.delete(first.key)
    c.expect(c.read(second) == b"weights", lambda: "the second copy lost its bytes")
    c.expect(c.read(second, other(c.storage)) == b"weights",
             lambda: "another process cannot read the second copy")


def check_storage_different_bytes(factory: StorageFactory) -> None:
    """Different bytes get different keys and each reads back as written."""
    c = Checking(factory, check_storage_different_bytes)
    c.did("write b'a' and b'b'")
    a, b = c.write(b"a"), c.write(b"b")
    c.expect(a.key != b.key, lambda: f"both got the key {a.key}")
    c.expect(c.read(a) == b"a" and c.read(b) == b"b", lambda: "the bytes came back mixed")


def check_storage_empty_checkpoint(factory: StorageFactory) -> None:
    """A save that writes an empty file is a checkpoint like any other."""
    c = Checking(factory, check_storage_empty_checkpoint)
    c.did("write b''")
    ref = c.write(b"")
    c.expect(ref.bytes == 0 and c.read(ref) == b"", lambda: f"got {ref} back")


def check_storage_damage_is_found(factory: StorageFactory) -> None:
    """Truncated, changed or missing bytes raise CheckpointDamaged naming the key, both
    hashes and where it is, in any process: a member never loads bad weights."""
    c = Checking(factory, check_storage_damage_is_found)
    ref = c.write(b"0123456789")
    where = c.storage.location(ref)
    for damaged, words in ((b"01234", ["5 bytes"]),
                           (b"0123456780", [hashlib.sha256(b"0123456780").hexdigest()]),
                           (None, ["missing"])):
        c.did(f"write b'0123456789', then replace its file with {damaged!r} (None: remove "
              "it) and read it in another process")
        put(c.storage, ref.key, damaged)
        reader = other(c.storage)
        for read in (reader.fetch, reader.verify, other(c.storage).verify):
            c.raises(CheckpointDamaged, [ref.key, ref.sha256, where, *words],
                     functools.partial(read, ref.key, ref.sha256))
        if cached(reader):
            c.fail(f"bad bytes stay in the reader's cache: {cached(reader)}")


def check_storage_rewrite_after_damage(factory: StorageFactory) -> None:
    """The same bytes written after a checkpoint was damaged are a new, intact checkpoint,
    and the damaged one stays damaged."""
    c = Checking(factory, check_storage_rewrite_after_damage)
    c.did("write b'0123456789', truncate its file, write the same bytes again")
    ref = c.write(b"0123456789")
    put(c.storage, ref.key, b"01234")
    again = c.write(b"0123456789")
    c.expect(again.key != ref.key, lambda: "the new write reused the damaged key")
    c.expect(c.read(again) == b"0123456789", lambda: "the new write reads back wrong")
    c.raises(CheckpointDamaged, ["damaged"],
             lambda: other(c.storage).verify(ref.key, ref.sha256))


def check_storage_failed_save_leaves_nothing(factory: StorageFactory) -> None:
    """A save that raises (a full disk) passes its error on and leaves no file behind, nor
    the files a library writes beside the one it was given."""
    c = Checking(factory, check_storage_failed_save_leaves_nothing)

    def save(path: Path) -> None:
        path.write_bytes(b"half a checkpoint")
        Path(f"{path}.part").write_bytes(b"junk")  # what a library's own temp file looks like
        raise OSError("disk full")

    c.did("write with a save that writes half a file and a '.part' beside it, then raises")
    c.raises(OSError, ["disk full"], lambda: c.storage.write(save))
    c.expect(leftovers(c.storage) == [], lambda: f"it left {leftovers(c.storage)}")


def check_storage_save_must_write_its_file(factory: StorageFactory) -> None:
    """A save that writes no file, or another one (numpy.save adds ".npy"), is refused
    naming what it wrote, and leaves nothing behind."""
    c = Checking(factory, check_storage_save_must_write_its_file)
    c.did("write with a save that writes nothing")
    c.raises(FileNotFoundError, ["must write one file"], lambda: c.storage.write(lambda p: None))
    c.did("write with a save that writes the path given + '.npy'")

    def elsewhere(path: Path) -> None:
        Path(f"{path}.npy").write_bytes(b"x")

    message = c.raises(FileNotFoundError, ["must write one file"],
                       lambda: c.storage.write(elsewhere))
    c.expect(re.search(r"\.ckpt\.npy'\] instead", message) is not None,
             lambda: f"it must name the file written instead; it said {message!r}")
    c.expect(leftovers(c.storage) == [], lambda: f"it left {leftovers(c.storage)}")


def check_storage_delete_is_idempotent(factory: StorageFactory) -> None:
    """Collection may be retried: deleting a deleted checkpoint is fine, and reading it is
    CheckpointDamaged."""
    c = Checking(factory, check_storage_delete_is_idempotent)
    c.did("write b'weights', delete it twice, read it")
    ref = c.write(b"weights")
    c.storage.delete(ref.key)
    c.expect(stored(c.storage) == [], lambda: f"after delete it holds {stored(c.storage)}")
    c.storage.delete(ref.key)
    c.raises(CheckpointDamaged, ["missing"], lambda: c.storage.verify(ref.key, ref.sha256))
    c.raises(CheckpointDamaged, ["missing"], lambda: c.storage.fetch(ref.key, ref.sha256))


def check_storage_refuses_bad_keys(factory: StorageFactory) -> None:
    """Keys come from the store: anything else (absolute paths, '..') never reaches the
    file system."""
    c = Checking(factory, check_storage_refuses_bad_keys)
    for key in BAD_KEYS:
        for name in ("delete", "fetch", "verify", "location", "remove"):
            c.did(f"{name}({key!r})")
            method = getattr(c.storage, name)
            args = (key,) if name in ("delete", "location", "remove") else (key, "0" * 64)
            c.raises(ValueError, ["not a checkpoint key"], functools.partial(method, *args))


def check_storage_concurrent_writers(factory: StorageFactory, threads: int = 8) -> None:
    """Writers of the same bytes at once (threads of one worker, or members that reached the
    same state) each get a checkpoint of their own, intact."""
    c = Checking(factory, check_storage_concurrent_writers)
    c.did(f"{threads} threads write the same 1 MiB at once")
    data = os.urandom(1 << 20)
    barrier, refs, errors = threading.Barrier(threads), [], []

    def write() -> None:
        barrier.wait()
        try:
            refs.append(c.storage.write(saver(data)))
        except BaseException as error:
            errors.append(error)

    started = [threading.Thread(target=write) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout=60)
    c.expect(not errors, lambda: f"writes raised {errors!r}")
    c.expect(len({r.key for r in refs}) == threads,
             lambda: f"{threads} writes gave {len({r.key for r in refs})} keys")
    c.expect(stored(c.storage) == sorted(r.key for r in refs),
             lambda: f"the storage holds {stored(c.storage)}")
    c.expect(all(c.read(r) == data for r in refs), lambda: "a copy reads back wrong")


def check_storage_no_temp_files(factory: StorageFactory) -> None:
    """After many writes the storage holds exactly the checkpoints: no staged or temporary
    file is left."""
    c = Checking(factory, check_storage_no_temp_files)
    c.did("write 20 checkpoints of 1000 bytes, then the first one's bytes again")
    refs = [c.write(bytes([i]) * 1000) for i in range(20)]
    refs.append(c.write(b"\x00" * 1000))
    c.expect(stored(c.storage) == sorted(r.key for r in refs),
             lambda: f"the storage holds {stored(c.storage)}, not the 21 checkpoints")
    names = sorted(name for name, _ in c.storage.files())
    c.expect(names == sorted(r.key for r in refs), lambda: f"files() lists {names}")


def check_storage_pickles(factory: StorageFactory) -> None:
    """A storage travels to worker processes pickled: the copy is of the same kind and
    reads what the original wrote, and the original reads what the copy wrote."""
    c = Checking(factory, check_storage_pickles)
    c.did("write b'weights', pickle the storage, read with the copy and write with it")
    ref = c.write(b"weights")
    copy = other(c.storage)
    c.expect(type(copy) is type(c.storage) and copy.url == c.storage.url,
             lambda: f"the copy is {type(copy).__name__}({copy.url!r})")
    c.expect(c.read(ref, copy) == b"weights", lambda: "the copy reads other bytes")
    back = c.write(b"written by the copy", copy)
    c.expect(c.read(back) == b"written by the copy", lambda: "the original reads other bytes")


def check_storage_mark(factory: StorageFactory) -> None:
    """The run's mark tells a storage that is not there (a folder not mounted) from one
    whose checkpoints all broke, and another run's storage from this one's; it names the
    store that trains there (`own`), replaced whole, leaving no file behind."""
    c = Checking(factory, check_storage_mark)
    c.did("check('run-a') on a fresh storage")
    c.raises(StorageMissing, ["not there"], lambda: c.storage.check("run-a"))
    c.did("mark('run-a'), then check it here and in another process, mark it again")
    c.storage.mark("run-a")
    c.storage.check("run-a")
    other(c.storage).check("run-a")
    c.storage.mark("run-a")
    c.did("mark('run-a'), then check('run-b') and mark('run-b')")
    c.raises(StorageMissing, ["another run", "run-a"], lambda: c.storage.check("run-b"))
    c.raises(StorageMissing, ["another run", "run-a"], lambda: c.storage.mark("run-b"))
    c.did("own('run-a', 'store y'), then owner('run-a') here and in another process")
    c.storage.own("run-a", "store y")
    owners = c.storage.owner("run-a"), other(c.storage).owner("run-a")
    c.expect(owners == ("store y", "store y"), lambda: f"owner() gives {owners}")
    c.raises(StorageMissing, ["another run", "run-a"], lambda: c.storage.own("run-b", "z"))
    ref = c.write(b"weights")
    names = [name for name, _ in c.storage.files()]
    c.expect(names == [ref.key], lambda: f"files() lists {names}: the mark is no checkpoint")


def check_storage_files_and_remove(factory: StorageFactory) -> None:
    """`files` lists each checkpoint and each temp file a killed write left, with a time;
    `remove` deletes what it names: collecting orphans needs nothing else."""
    c = Checking(factory, check_storage_files_and_remove)
    leftover = ".tmp-" + "0" * 24 + ".ckpt"
    c.did(f"write two checkpoints, put a leftover {leftover} in the root, remove two names")
    a, b = c.write(b"a"), c.write(b"b")
    put(c.storage, leftover, b"half")
    found = dict(c.storage.files())
    c.expect(sorted(found) == sorted([a.key, b.key, leftover]), lambda: f"files() lists "
             f"{sorted(found)}")
    c.expect(all(isinstance(t, float) and math.isfinite(t) for t in found.values()),
             lambda: f"files() gives times {list(found.values())}")
    c.storage.remove(leftover)
    c.storage.remove(a.key)
    c.storage.remove(a.key)
    names = sorted(name for name, _ in c.storage.files())
    c.expect(names == [b.key], lambda: f"after remove files() lists {names}")
    c.expect(c.read(b) == b"b", lambda: "the checkpoint not removed reads back wrong")


STORAGE_CHECKS: tuple[Callable[[StorageFactory], None], ...] = (
    check_storage_round_trip,
    check_storage_same_bytes_twice,
    check_storage_different_bytes,
    check_storage_empty_checkpoint,
    check_storage_damage_is_found,
    check_storage_rewrite_after_damage,
    check_storage_failed_save_leaves_nothing,
    check_storage_save_must_write_its_file,
    check_storage_delete_is_idempotent,
    check_storage_refuses_bad_keys,
    check_storage_concurrent_writers,
    check_storage_no_temp_files,
    check_storage_pickles,
    check_storage_mark,
    check_storage_files_and_remove,
)


def check_storage(factory: StorageFactory) -> None:
    """Run every storage check, each on a fresh storage from `factory` (a local folder or an
    fsspec URL of your own: `lambda: open_storage(new_url())`)."""
    for check in STORAGE_CHECKS:
        check(factory)
