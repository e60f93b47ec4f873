"""Plain records that cross the store boundary, one per table row kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# a member still in the run: trained now or next, or waiting for its donor to catch up
TRAINING = ("ready", "running", "waiting")
# the events of exploit decisions: a copy made, a copy awaited, a copy that could not be made
DECISIONS = ("exploit", "wait", "dropped")


@dataclass(frozen=True)
class CheckpointRow:
    id: int
    member: int
    step: int
    key: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class MemberRow:
    """A member's row: the latest state the population knows of it."""

    id: int
    hparams: dict[str, Any]
    step: int
    score: float | None
    generation: int
    parent: int | None
    status: str  # ready | running | waiting | done | failed
    checkpoint: CheckpointRow | None
    error: str | None = None


@dataclass(frozen=True)
class Report:
    """What a worker hands in at the end of a segment."""

    member: int
    worker: str
    start: int  # the step the segment began at
    step: int
    score: float | None
    metrics: dict[str, float]
    hparams: dict[str, Any]
    key: str
    sha256: str
    bytes: int
    final: bool
    seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    """Exploit/explore outcome: copy `donor`'s checkpoint and continue with `hparams`."""

    donor: int
    hparams: dict[str, Any]
    strategy: str = ""


@dataclass(frozen=True)
class Outcome:
    """The store's answer to a report."""

    accepted: bool
    checkpoint: int | None = None  # id of the checkpoint row written for the report
    decision: Decision | None = None  # the reporter's exploit, carried out or awaited
    donor_checkpoint: CheckpointRow | None = None  # None with a decision: the member waits
    collect: list[str] = field(default_factory=list)  # checkpoint keys no one needs any more


@dataclass(frozen=True)
class Result:
    """A reported result; `hparams` were in force during the segment ending at `step`."""

    id: int
    member: int
    step: int
    score: float | None
    metrics: dict[str, float]
    hparams: dict[str, Any]
    seconds: float
    time: float
    start: int  # the step the segment began at: it trained steps (start, step]
    checkpoint: int | None = None  # the checkpoint row written with this result
    parent: int | None = None  # the checkpoint the segment started from (None: from scratch)


@dataclass(frozen=True)
class Event:
    """An exploit/explore event (kind 'exploit') or another member event (e.g. 'failed')."""

    id: int
    kind: str
    member: int
    donor: int | None
    step: int
    donor_step: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    strategy: str
    time: float
    detail: str | None = None
    # for 'exploit': the newest result row when the copy happened; the donor's results
    # up to it and the member's own after it make the lineage
    result: int | None = None
