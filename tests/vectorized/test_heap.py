"""glibc's heap kept by a vectorized run: a step's large tensors reuse the memory the last
step let go instead of faulting fresh pages in, and after the run large ones go back to
the system again."""

from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch
from support.paths import SCRIPTS

import populace
from populace.vectorized import heap

sys.path.insert(0, str(SCRIPTS))
import vector_counter  # noqa: E402

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's; elsewhere kept() does nothing")

PAGES = 48 * 2**20 // 4096  # a 48 MiB tensor's pages: past any mmap threshold glibc takes


def faults_churning(times: int = 8) -> list[int]:
    """Minor page faults each time a 48 MiB tensor is made, written and freed, as a
    training step makes and frees its gradients."""
    faults = []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(48 * 2**20 // 4)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def test_a_kept_heap_reuses_the_pages_a_freed_tensor_held():
    given_back = faults_churning()
    with heap.kept() as kept:
        assert kept
        reused = faults_churning()
    after = faults_churning()
    assert min(given_back) > 0.9 * PAGES, "each 48 MiB tensor faults its pages in afresh"
    # once the heap has grown to hold one (the first time or two), it serves every later one
    assert max(reused[3:]) < 0.05 * PAGES, reused
    assert min(after) > 0.9 * PAGES, "after the run, a large tensor goes back to the system"


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
