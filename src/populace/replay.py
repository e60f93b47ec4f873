"""Replay: train one member from scratch on the hparam schedule a PBT run discovered.

The paper's claim is that PBT finds a schedule, not just a setting: replaying
the best lineage's schedule alone, with no population and no exploit, should
train a comparable model. The replay is a run of its own, in its own store.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import populace.api
from populace.script import load_script
from populace.space import ConfigError, Space
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
           progress: bool = True) -> Replay:
    """Replay the best lineage's schedule of the run in `store` into the store `out`."""
    if not store_exists(store):
        raise StoreError(f"{os.fspath(store)} does not exist")
    source = open_store(store)
    try:
        config = source.config()
        best = populace.api.result_of(source)
    finally:
        source.close()
    trainable, space = _trainable(config)
    schedule = [{"step": e.step, "hparams": e.hparams} for e in best.schedule]
    if not schedule:
        raise StoreError(f"no member of the run in {os.fspath(store)} has reported yet: "
                         "there is no schedule to replay")
    settings = {k: v for k, v in config["run"].items()
                if k not in ("population", "exploit", "workers", "executor", "schedule")}
    out = Path(out) if out is not None else default_replay_store(store)
    result = populace.api.run(
        trainable, space, store=out, initial=[schedule[0]["hparams"]], progress=progress,
        script=config["script"], population=1, exploit="none", executor="inline",
        schedule=schedule, **settings,
    )
    return Replay(out, result.score, best.score, schedule, result.metrics)


def _trainable(config: dict[str, Any]) -> tuple[Any, Space]:
    """The run's trainable and space: from its script, or by the trainable's import path."""
    if config["script"] is not None:
        script = load_script(config["script"])
        return script.trainable, script.space
    module, _, name = config["trainable"].partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"replay needs the run's trainable, {config['trainable']!r}, to be importable "
            f"(a run started from a script records the script instead): {e}"
        ) from e
    return found, Space.from_dict(config["space"])
