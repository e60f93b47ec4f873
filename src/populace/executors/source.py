"""Where a worker finds the trainable and its space: a script path or the objects."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from populace.function import FunctionWorker
from populace.script import load_script
from populace.space import Space
from populace.store import Store
from populace.worker import Worker


@dataclass(frozen=True)
class TrainableSource:
    """A script path (re-imported in each worker process) or a picklable trainable and space.

    The trainable is a `Trainable` subclass or a training function (`populace.Member`).
    """

    script: Path | None = None
    trainable: Any = None
    space: Space | None = None

    def load(self) -> tuple[Any, Space]:
        if self.script is not None:
            script = load_script(self.script)
            return script.trainable, script.space
        assert self.trainable is not None and self.space is not None
        return self.trainable, self.space


def work(store: Store, source: TrainableSource) -> None:
    """Run one worker on `store` until the run is done."""
    trainable, space = source.load()
    kind = Worker if inspect.isclass(trainable) else FunctionWorker
    kind(store, trainable, space).run()
