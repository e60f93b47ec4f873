"""Run one worker in this process: the simplest executor, for debugging and tests."""

from __future__ import annotations

from populace.executors.source import TrainableSource
from populace.store import Store
from populace.worker import Worker


def run_inline(store: Store, source: TrainableSource) -> None:
    trainable, space = source.load()
    Worker(store, trainable, space).run()
