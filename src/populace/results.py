"""A finished run's outcome, read from its store alone: the best member, its checkpoint
and the hparam schedule of its lineage."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from populace import pareto
from populace.lineage import ScheduleEntry, lineage, schedule
from populace.mode import Mode
from populace.snapshot import Snapshot
from populace.store import MemberRow, Status, Store, StoreError, open_store, store_exists
from populace.store.driver import safe_url


class RunFailed(RuntimeError):
    """Every member of the run failed; their tracebacks are in the store."""


@dataclass(frozen=True)
class RunResult:
    """A finished run: its best member, that member's checkpoint and hparam schedule."""

    best: MemberRow
    checkpoint: Path | str | None  # its file: a path, or the URL in remote checkpoint storage
    schedule: list[ScheduleEntry]
    members: list[MemberRow]
    metrics: dict[str, float]  # everything the best member's last evaluation returned
    store: str = ""  # the run's store, where `dataframe` reads every result
    stopped: str | None = None  # why the run stopped early (stop_score, time_budget)
    # a multi-objective run: its Pareto front, the members no other member dominates (by
    # id; `best` is the least crowded of them); empty in a run with one score
    front: list[MemberRow] = field(default_factory=list)
    objectives: dict[str, Mode] | None = None  # the run's objectives and their directions

    @property
    def hparams(self) -> dict[str, Any]:
        return self.best.hparams

    @property
    def score(self) -> float | None:
        return self.best.score

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data: the best member, its checkpoint and schedule."""
        return {"member": self.best.id, "step": self.best.step, "score": self.score,
                "metrics": self.metrics, "hparams": self.hparams,
                "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "schedule": [{"step": e.step, "hparams": e.hparams, "member": e.member}
                             for e in self.schedule],
                **({"front": [{"member": m.id, "step": m.step, "hparams": m.hparams,
                               "objectives": dict(zip(self.objectives, m.objectives or [],
                                                      strict=False))} for m in self.front]}
                   if self.objectives else {})}

    def dataframe(self) -> Any:
        """Every result of the run, one row per segment (a pandas DataFrame, as Optuna's
        `trials_dataframe`): member, start, step, score, each metric and each hparam in
        force, seconds, time. Needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError("RunResult.dataframe needs pandas: pip install pandas"
                                      ) from e
        store = open_store(self.store)
        try:
            results = store.results()
        finally:
            store.close()
        rows = [{"member": r.member, "start": r.start, "step": r.step, "score": r.score,
                 **{f"metric_{k}": v for k, v in r.metrics.items()},
                 **{f"hparam_{k}": v for k, v in r.hparams.items()},
                 "seconds": r.seconds, "time": r.time} for r in results]
        return pd.DataFrame(rows)


def load_result(store: str | os.PathLike[str]) -> RunResult:
    """The result of the run in `store`, read without resuming it (finished or not)."""
    if not store_exists(store):
        raise StoreError(f"{safe_url(os.fspath(store))} does not exist")
    db = open_store(store)
    try:
        return result_of(db)
    finally:
        db.close()


def result_of(store: Store, member: int | None = None) -> RunResult:
    """The best member of the run in `store` (or `member`), from the store alone."""
    members = store.members()
    if member is not None:
        if not 0 <= member < len(members):
            raise StoreError(f"the run in {safe_url(store.url)} has members 0 to "
                             f"{len(members) - 1}, not {member}")
        return _result(store, members[member], members)
    live = [m for m in members if m.status != Status.FAILED]
    if not live:
        where = safe_url(store.url)
        raise RunFailed(f"every member of the run in {where} failed: once the cause is "
                        f"fixed, `populace retry {where}` makes them train again from their "
                        "checkpoints and the same command resumes the run (a `populace run` "
                        "of an edited script retries them itself; a run that never trained "
                        "a segment starts again with new settings); the first error:\n"
                        f"{members[0].error if members else ''}")
    config = store.config()
    snapshot = Snapshot(
        ids=np.array([m.id for m in live]), steps=np.array([m.step for m in live]),
        scores=np.array([np.nan if m.score is None else m.score for m in live], dtype=float),
        hparams=[m.hparams for m in live], maximize=config.mode.maximize,
        objectives=None if config.objectives is None else pareto.oriented(
            [m.objectives for m in live], config.objectives.values()),
    )
    front = []
    if snapshot.objectives is not None:
        on = (pareto.fronts(snapshot.objectives) == 0) & snapshot.valid()
        front = [m for m, first in zip(live, on, strict=True) if first]
    return _result(store, live[int(snapshot.ranking()[0])], members, front)


def _result(store: Store, best: MemberRow, members: list[MemberRow],
            front: list[MemberRow] | None = None) -> RunResult:
    """`best`'s result: its checkpoint, and the schedule of its lineage."""
    path = lineage(best.checkpoint.id if best.checkpoint else None, store.results())
    checkpoint = None
    if best.checkpoint is not None:
        root = store.config().checkpoints
        checkpoint = (f"{root.rstrip('/')}/{best.checkpoint.key}" if "://" in root
                      else Path(root) / best.checkpoint.key)
    return RunResult(best, checkpoint, schedule(path), members,
                     path[-1].metrics if path else {}, store.url, store.meta("stopped"),
                     front or [], store.config().objectives)
