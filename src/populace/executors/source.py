"""Where a worker finds the trainable and its space: a script path or the objects."""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from populace.errors import ConfigError
from populace.function import FunctionWorker
from populace.script import load_script
from populace.space import Space
from populace.store import RunRecord, Store
from populace.strategies import space_from_dict
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


def source_of(record: RunRecord, script: str | os.PathLike[str] | None = None
              ) -> TrainableSource:
    """Where a worker that joins a stored run finds its trainable: `script` (this
    machine's copy), the script the run was started with, or the importable
    trainable and the stored space."""
    path = script or record.script
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"the run's script {str(path)!r} is not on this machine: "
                              "give its path here with --script")
        return TrainableSource(script=Path(path))
    module, _, qualname = record.trainable.partition(":")
    try:
        trainable: Any = importlib.import_module(module)
        for name in qualname.split("."):
            trainable = getattr(trainable, name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"the run's trainable {record.trainable!r} cannot be imported here ({e}); "
            "make its module importable, or give a script with --script"
        ) from e
    return TrainableSource(trainable=trainable, space=space_from_dict(record.space))


def work(store: Store, source: TrainableSource,
         started: Callable[[], None] | None = None) -> int:
    """Run one worker on `store` until the run is done; return the segments it trained.

    `started` is called once the trainable is imported and the worker built, just before
    its first claim (the local executor's workers wait there for each other).
    """
    trainable, space = source.load()
    kind = Worker if inspect.isclass(trainable) else FunctionWorker
    worker = kind(store, trainable, space)
    if started is not None:
        started()
    return worker.run()
