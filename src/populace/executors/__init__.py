"""Executors run workers: `inline` in this process, `local` in a pool of processes,
`ray` as tasks on a Ray cluster, or none here while `populace worker` processes train;
`vectorized` trains a `populace.vectorized.VectorizedTrainable`'s whole population as one
batched model in this process (such a trainable trains no other way)."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from populace.config import RunConfig
from populace.executors.external import run_external
from populace.executors.inline import run_inline
from populace.executors.local import WorkersDied, run_local
from populace.executors.ray import run_ray
from populace.executors.source import TrainableSource, check_matches, source_of, work
from populace.store import Store

__all__ = ["TrainableSource", "WorkersDied", "check_matches", "execute", "run_external",
           "run_inline", "run_local", "run_ray", "source_of", "work"]


def execute(store: Store, source: TrainableSource, config: RunConfig) -> None:
    """Train the run in `store` with the executor `config` names, until it is done."""
    trainable, space = source.load()  # a script run here was imported already: no cost
    if config.executor == "vectorized" or _vectorized(trainable):
        from populace.vectorized import run_vectorized  # torch, for this executor only

        check_matches(store.config(), trainable, space)
        run_vectorized(store, trainable, space)
        return
    workers = min(config.workers, config.population)
    if workers == 0:
        run_external(store)
    elif config.executor == "inline":
        run_inline(store, source)
    elif config.executor == "ray":
        run_ray(store, source, workers, config.ray_address, config.cpus_per_worker,
                config.gpus_per_worker)
    else:
        run_local(store, source, workers, config.gpus_per_worker)


def _vectorized(trainable: Any) -> bool:
    """Whether `trainable` is a VectorizedTrainable (never one unless its module is loaded:
    this costs no torch import)."""
    module = sys.modules.get("populace.vectorized.trainable")
    return (module is not None and inspect.isclass(trainable)
            and issubclass(trainable, module.VectorizedTrainable))
