"""A finished run's outcome, read from its store alone: the best member, its checkpoint
and the hparam schedule of its lineage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from populace.lineage import ScheduleEntry, lineage, schedule
from populace.snapshot import Snapshot
from populace.store import MemberRow, Status, Store
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

    @property
    def hparams(self) -> dict[str, Any]:
        return self.best.hparams

    @property
    def score(self) -> float | None:
        return self.best.score


def result_of(store: Store) -> RunResult:
    """The best member of the run in `store`, from the store alone."""
    members = store.members()
    live = [m for m in members if m.status != Status.FAILED]
    if not live:
        where = safe_url(store.url)
        raise RunFailed(f"every member of the run in {where} failed; first error:\n"
                        f"{members[0].error if members else ''}\nOnce the cause is fixed, "
                        f"`populace retry {where}` makes them train again from their "
                        "checkpoints, and the same command resumes the run")
    snapshot = Snapshot(
        ids=np.array([m.id for m in live]), steps=np.array([m.step for m in live]),
        scores=np.array([np.nan if m.score is None else m.score for m in live], dtype=float),
        hparams=[m.hparams for m in live], maximize=store.config().run["mode"] == "max",
    )
    best = live[int(snapshot.ranking()[0])]
    path = lineage(best.checkpoint.id if best.checkpoint else None, store.results())
    checkpoint = None
    if best.checkpoint is not None:
        root = store.config().checkpoints
        checkpoint = (f"{root.rstrip('/')}/{best.checkpoint.key}" if "://" in root
                      else Path(root) / best.checkpoint.key)
    return RunResult(best, checkpoint, schedule(path), members,
                     path[-1].metrics if path else {})
