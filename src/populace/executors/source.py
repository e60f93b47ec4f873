"""Where a worker finds the trainable and its space: a script path or the objects."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from populace.config import RunConfig
from populace.errors import ConfigError
from populace.function import FunctionWorker
from populace.function import preflight as function_preflight
from populace.script import load_script
from populace.space import Space
from populace.store import RunRecord, Store
from populace.strategies import space_from_dict, space_to_dict
from populace.worker import TrainableWorker, Worker, timed_out
from populace.worker import preflight as trainable_preflight

if TYPE_CHECKING:
    from populace.vectorized.run import VectorizedWorker


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


def check_matches(record: RunRecord, trainable: Any, space: Space) -> None:
    """ConfigError naming what differs when `trainable` and `space` are not those the run
    was started with (a script edited since): its members would fail one by one."""
    problems = []
    name, stored = getattr(trainable, "__qualname__", repr(trainable)), record.trainable
    if name != stored.partition(":")[2]:
        problems.append(f"its trainable is {name}, the run's is {stored.partition(':')[2]}")
    now = json.loads(json.dumps(space_to_dict(space)))
    then = record.space
    for label, names in (("hparams added", [n for n in now if n not in then]),
                         ("hparams removed", [n for n in then if n not in now])):
        if names:
            problems.append(f"{label}: {', '.join(names)}")
    problems += [f"hparam {n!r} was {json.dumps(then[n])}, is now {json.dumps(now[n])}"
                 for n in now if n in then and now[n] != then[n]]
    if problems:
        raise ConfigError(
            f"the script does not match the run it would resume ({'; '.join(problems)}): "
            "put the script back as it was, or start a new run (another --store, or "
            "--overwrite to delete this one)")


def vectorized(trainable: Any) -> bool:
    """Whether `trainable` is a `populace.vectorized.VectorizedTrainable`, which trains as a
    whole population (never one unless its module is loaded: this imports no torch)."""
    module = sys.modules.get("populace.vectorized.trainable")
    return (module is not None and inspect.isclass(trainable)
            and issubclass(trainable, module.VectorizedTrainable))


def work(store: Store, source: TrainableSource,
         started: Callable[[], None] | None = None,
         end: Callable[[], NoReturn] = timed_out) -> int:
    """Run one worker on `store` until the run is done; return the segments it trained.

    `started` is called once the trainable is imported and the worker built, just before
    its first claim (the local executor's workers wait there for each other). `end` ends
    the process after a segment timed out (`populace worker` starts itself again).
    """
    trainable, space = source.load()
    check_matches(store.config(), trainable, space)
    worker: Worker | VectorizedWorker
    if vectorized(trainable):  # it trains every member it holds at once
        from populace.vectorized.run import VectorizedWorker  # torch, for this one only

        worker = VectorizedWorker(store, trainable, space)
    elif isinstance(trainable, type):  # a class: a Trainable
        worker = TrainableWorker(store, trainable, space)
    else:
        worker = FunctionWorker(store, trainable, space)
    if started is not None:
        started()
    if isinstance(worker, Worker):
        return worker.run(end)
    return worker.run()  # vectorized: it refuses a segment_timeout


def preflight(trainable: Any, hparams: dict[str, Any], config: RunConfig) -> None:
    """Try one member the way the run will train it, before anything is written: a
    `Trainable` built, evaluated and saved, a `VectorizedTrainable` as a population of
    one, a training function up to its first report)."""
    if vectorized(trainable):
        from populace.vectorized.run import preflight as vectorized_preflight

        vectorized_preflight(trainable, hparams, config)
    elif isinstance(trainable, type):  # a class: a Trainable
        trainable_preflight(trainable, hparams, config)
    else:
        function_preflight(trainable, hparams, config)
