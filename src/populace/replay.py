"""Replay: train one member from scratch on the hparam schedule a PBT run discovered.

The paper's claim is that PBT finds a schedule, not just a setting: replaying
the best lineage's schedule alone, with no population and no exploit, should
train a comparable model. The replay is a run of its own, in its own store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import populace.api
from populace.executors.source import source_of
from populace.results import result_of
from populace.store import StoreError, beside, open_store, store_exists


@dataclass(frozen=True)
class Replay:
    """The replayed member's result beside the PBT run's best member."""

    store: Path
    score: float | None
    pbt_score: float | None
    schedule: list[dict[str, Any]]
    metrics: dict[str, float]


def default_replay_store(store: str | os.PathLike[str]) -> Path:
    """`runs/x.db` replays into `runs/x.replay.db`."""
    return beside(store, ".replay.db")


def replay(store: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
           progress: bool = True, seed: int | None = None,
           member: int | None = None, script: str | os.PathLike[str] | None = None) -> Replay:
    """Replay the best lineage's schedule of the run in `store` into the store `out`.

    The replay trains with the run's seed unless `seed` is given: replays under several
    seeds show how much of the best member's score the schedule itself accounts for,
    and how much its luck (the best member is picked on its score, so it was lucky).
    `member` replays that member's lineage instead of the best one's. `script` is the
    run's script where it is now, for a run moved or copied away from where it started.
    """
    if not store_exists(store):
        raise StoreError(f"{os.fspath(store)} does not exist")
    source = open_store(store)
    try:
        config = source.config()
        best = result_of(source, member)
    finally:
        source.close()
    trainable, space = source_of(config, script).load()
    schedule: list[dict[str, Any]] = [{"step": e.step, "hparams": e.hparams}
                                      for e in best.schedule]
    if not schedule:
        raise StoreError(f"no member of the run in {os.fspath(store)} has reported yet: "
                         "there is no schedule to replay")
    settings = {k: v for k, v in config.run.items()
                if k not in ("population", "exploit", "workers", "executor", "schedule",
                             "tensorboard", "mlflow")}  # the run's logs are not the replay's
    if seed is not None:
        settings["seed"] = seed
    out = Path(out) if out is not None else default_replay_store(store)
    result = populace.api.run(
        trainable, space, store=out, initial=[schedule[0]["hparams"]], progress=progress,
        script=script or config.script, population=1, exploit="none", executor="inline",
        schedule=schedule, **settings,
    )
    return Replay(out, result.score, best.score, schedule, result.metrics)
