"""glibc's heap kept by a vectorized run, so each step reuses the memory the last one let go.

Every step of a batched model allocates and frees the same large tensors: gradients,
activations, dropout masks, tens of MB at hundreds of members. By default glibc hands
each back to the system at once (a tensor past its mmap threshold is unmapped; the
heap's top past its trim threshold is given back), and the next step faults every page
of it in again: 512 digits members faulted 2.2 million pages a run against 0.3 million
with the heap kept, and trained 8 to 9% slower in single runs (benchmarks/RESULTS.md,
"Large populations").

`kept()` turns both off for the run (mallopt: no mmap, no trim) and, after it, leaves
glibc where its own dynamic thresholds end up for large tensors (setting one turns the
dynamic adjustment off for the process): mmap from 32 MiB, trim past 64 MiB; and gives
back what it kept. The settings are the process's: runs that overlap in one process (in
threads, or one inside another) keep the heap until the last of them ends. Elsewhere
than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
NEVER = -1  # as a trim threshold: no trimming at all (mallopt(3))
MMAP_MAX = 65536  # glibc's default count of mmapped chunks
AFTER = ((M_MMAP_MAX, MMAP_MAX), (M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 64 * 2**20))

_lock = threading.Lock()
_holders = 0  # the blocks inside `kept()` now, in every thread


@contextmanager
def kept() -> Iterator[bool]:
    """glibc's heap kept while the block runs; yields whether it is (False: not glibc)."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    global _holders
    with _lock:
        if _holders == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, NEVER)
        _holders += 1
    try:
        yield True
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                for parameter, value in AFTER:
                    libc.mallopt(parameter, value)
                libc.malloc_trim(0)  # what the runs kept and no longer hold goes back


def _glibc() -> ctypes.CDLL | None:
    """This process's glibc, with mallopt and malloc_trim typed (None: not glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return libc
