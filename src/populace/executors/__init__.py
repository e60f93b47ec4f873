"""Executors run workers: `inline` in this process, `local` in a pool of processes,
`ray` as tasks on a Ray cluster, or none here while `populace worker` processes train;
`vectorized` trains a `populace.vectorized.VectorizedTrainable`'s whole population as one
batched model in this process (such a trainable trains no other way)."""

from __future__ import annotations

from populace.config import RunConfig
from populace.errors import ConfigError
from populace.executors.external import run_external
from populace.executors.inline import run_inline
from populace.executors.local import WorkersDied, run_local
from populace.executors.ray import run_ray
from populace.executors.source import (
    TrainableSource,
    check_matches,
    preflight,
    source_of,
    vectorized,
    work,
)
from populace.store import Store

__all__ = ["TrainableSource", "WorkersDied", "check_matches", "execute", "preflight",
           "run_external", "run_inline", "run_local", "run_ray", "source_of", "work"]


def execute(store: Store, source: TrainableSource, config: RunConfig) -> None:
    """Train the run in `store` with the executor `config` names, until it is done."""
    trainable = source.load()[0]  # a script run here was imported already: no cost
    if config.executor == "vectorized" or vectorized(trainable):
        if not vectorized(trainable):
            name = getattr(trainable, "__qualname__", repr(trainable))
            raise ConfigError(f"executor 'vectorized' trains a VectorizedTrainable "
                              f"(populace.vectorized), got {name}: train it with executor "
                              "local, inline or ray")
        if config.segment_timeout is not None:
            raise ConfigError("segment_timeout stops a segment by ending its worker process: "
                              "a VectorizedTrainable trains in this process, which cannot "
                              "end itself; leave segment_timeout off")
        work(store, source)  # one worker in this process, holding every member
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
