"""glibc's heap kept by a vectorized run: a step's large tensors reuse the memory the last
step let go instead of faulting fresh pages in, and after the run large ones go back to
the system again."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
from pathlib import Path

import pytest
import torch
from support.paths import SCRIPTS

import populace
from populace.vectorized import heap

sys.path.insert(0, str(SCRIPTS))
import vector_counter  # noqa: E402

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's; elsewhere kept() does nothing")

# a 96 MiB tensor: past glibc's largest thresholds, set or dynamic (mmap from 32 MiB, trim
# past 64 MiB), so outside kept() it is given back whatever ran in this process before
MB = 96


def fresh_faults() -> float:
    """Nearly the minor faults a fresh 96 MiB mapping takes: one a 4 KiB page, or one a
    2 MiB page where transparent huge pages are always on (RHEL's default)."""
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        thp = ""
    return 0.9 * MB * 2**20 / (2**21 if "[always]" in thp else 4096)


FRESH = fresh_faults()


def faults_churning(times: int = 8) -> list[int]:
    """Minor page faults each time a 96 MiB tensor is made, written and freed, as a
    training step makes and frees its gradients."""
    faults = []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(MB * 2**20 // 4)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def resident_mb() -> float:
    """This process's resident memory."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_kept_heap_reuses_the_pages_a_freed_tensor_held_and_gives_them_back_after():
    given_back = faults_churning()
    with heap.kept() as kept:
        assert kept
        reused = faults_churning()
        held = resident_mb()
    released = resident_mb()
    assert min(given_back) > FRESH, "each 96 MiB tensor faults its pages in afresh"
    # once the heap has grown to hold one (the first time or two), it serves every later one
    assert max(reused[3:]) < 0.05 * FRESH, reused
    # what the run kept and no longer holds is given back as it ends (that glibc's own
    # settings come back is the next test's: a tensor freed below a small allocation that
    # pins the heap's top, one run in ten here, is served from the heap again after the
    # run, resident, whatever the settings, so faults after cannot tell)
    assert held - released > 0.9 * MB, (held, released)


def test_the_heap_stays_kept_until_the_last_of_overlapping_runs_ends():
    # two vectorized runs in one process (threads, a run inside another): the first to
    # end must not give the heap back under the other
    with heap.kept():
        with heap.kept():
            pass
        still = faults_churning()
        held = resident_mb()
    released = resident_mb()
    assert max(still[3:]) < 0.05 * FRESH, still
    assert held - released > 0.9 * MB, "once the last one ends, the heap is given back"


def test_runs_in_two_threads_set_the_heap_once_and_give_it_back_once(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, parameter, value):
            calls.append(("mallopt", parameter, value))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(heap, "_glibc", Libc)
    first_in, second_out = threading.Event(), threading.Event()
    seen_by_first = []  # the calls made while the first run still held the heap

    def first():
        with heap.kept():
            first_in.set()
            second_out.wait(10)
            seen_by_first.extend(calls)

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with heap.kept():
        pass
    second_out.set()
    thread.join(10)
    assert seen_by_first == [("mallopt", heap.M_MMAP_MAX, 0),
                             ("mallopt", heap.M_TRIM_THRESHOLD, heap.NEVER)]
    assert calls[2:] == [("mallopt", *setting) for setting in heap.AFTER] + [("trim", 0)]


def test_a_vectorized_run_trains_with_the_heap_kept(tmp_path, monkeypatch):
    entered = []
    kept = heap.kept

    def watched():
        entered.append(True)
        return kept()

    monkeypatch.setattr(heap, "kept", watched)
    populace.run(vector_counter.VectorCounter, vector_counter.space, store=tmp_path / "r.db",
                 progress=False, **vector_counter.config)
    assert entered == [True]
