"""The cost of populace's checkpoint files per ready cycle: write, verify, delete.

At every ready point a worker hands the trainable's `save` to
`LocalCheckpointStorage.write` (temp file, fsync, sha256, rename into the content-addressed
layout), before a load it calls `verify` (sha256 of the file), and it deletes the
checkpoints the store collects. This times the three, in that order, against a directory
on the local disk (the temp dir's file system, or `--root`), starting from an empty root,
with a state of `--bytes` (1 MB by default) whose header changes every write so every
checkpoint is new, as in a run.

    .venv/bin/python benchmarks/checkpoint_write.py --writes 300
    .venv/bin/python benchmarks/checkpoint_write.py --root memory://bench   # an fsspec URL

    # another version of the local backend, e.g. the one before a change (it imports
    # populace.checkpoints.base as installed); or a checkpoints.py from before the split:
    git show HEAD:src/populace/checkpoints/local.py > /tmp/local_before.py
    .venv/bin/python benchmarks/checkpoint_write.py --implementation /tmp/local_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from populace.checkpoints import open_storage


def load(implementation: str | None) -> Callable[[str], Any]:
    """populace's open_storage, or the local storage class of another version: a
    checkpoints/local.py, or a checkpoints.py from before the backends were split."""
    if implementation is None:
        return open_storage
    spec = importlib.util.spec_from_file_location("checkpoints_under_test", implementation)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return getattr(module, "LocalCheckpointStorage", None) or module.CheckpointStorage


def measure(opener: Callable[[str], Any], root: str, writes: int,
            size: int) -> dict[str, list[float]]:
    """Milliseconds per write, verify (fetch for a URL) and delete, in a worker's order.

    As in a run with the default keep_checkpoints=2: each cycle writes a new checkpoint,
    loads (verifies) the previous one, as a worker does when it claims another member,
    and deletes the one before that, as collection does.
    """
    storage = opener(root)
    state = bytearray(size)
    times: dict[str, list[float]] = {"write": [], "verify": [], "delete": [], "cycle": []}
    refs = []
    for i in range(writes):
        struct.pack_into("<q", state, 0, i)

        def save(path: Path) -> None:
            with open(path, "wb") as f:
                f.write(state)

        started = time.perf_counter()
        refs.append(storage.write(save))
        wrote = time.perf_counter()
        if len(refs) >= 2:
            if getattr(storage, "is_local", True):  # before fsspec support: always local
                storage.verify(refs[-2].key, refs[-2].sha256)
            else:
                storage.fetch(refs[-2].key, refs[-2].sha256)
        verified = time.perf_counter()
        if len(refs) >= 3:
            storage.delete(refs.pop(0).key)
        deleted = time.perf_counter()
        times["write"].append((wrote - started) * 1000)
        times["verify"].append((verified - wrote) * 1000)
        times["delete"].append((deleted - verified) * 1000)
        times["cycle"].append((deleted - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--root", help="checkpoint root (a path or fsspec URL); default: a "
                        "fresh temp dir")
    parser.add_argument("--implementation", help="a checkpoints.py file to time instead")
    args = parser.parse_args()
    opener = load(args.implementation)
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as folder:
        root = args.root or str(Path(folder) / "checkpoints")
        # warm-up (imports, page cache) in another folder: the timed run starts from an
        # empty root, as a run does, and creates its shard folders as it goes
        measure(opener, root + "-warm-up", 10, args.bytes)
        times = measure(opener, root, args.writes, args.bytes)
    print(f"{args.writes} checkpoints of {args.bytes} bytes under {args.root or 'a temp dir'}, "
          f"{args.implementation or 'populace.checkpoints'}")
    print("| operation | median ms | p95 ms | mean ms |")
    print("|---|---|---|---|")
    for name, ms in times.items():
        ms = sorted(ms)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        print(f"| {name} | {statistics.median(ms):.3f} | {p95:.3f} | "
              f"{statistics.fmean(ms):.3f} |")


if __name__ == "__main__":
    main()
