"""Run one worker in this process: the simplest executor, for debugging and tests."""

from __future__ import annotations

from populace.executors.source import TrainableSource, work
from populace.store import Store


def run_inline(store: Store, source: TrainableSource) -> None:
    work(store, source)
