"""Plain records that cross the store boundary, one per table row kind."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

from populace.mode import Mode


class _Word(str, Enum):
    """A word the store writes in its rows: compares, prints and encodes as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(_Word):
    """Where a member stands in the run."""

    READY = "ready"  # trained next, by whichever worker claims it
    RUNNING = "running"  # leased by a worker, which trains it now
    WAITING = "waiting"  # to copy a donor behind it, once the donor catches up
    DONE = "done"  # trained to the run's last step
    FAILED = "failed"  # raised more often than its retries allow; never a donor
    # a FIRE evaluator with no parent to test: never claimed nor a donor until one is free;
    # not training either (not in TRAINING), so it holds back no generation and no run end
    IDLE = "idle"


class Role(_Word):
    """What a member does in a FIRE-PBT run; fixed when the run is created."""

    MEMBER = "member"  # trains in its sub-population (every member of any other run)
    EVALUATOR = "evaluator"  # tests a parent's weights with a child's hparams


class Kind(_Word):
    """What an event records."""

    EXPLOIT = "exploit"  # a copy made: donor's checkpoint, explored hparams
    EXPLORE = "explore"  # no copy: the member kept its own state and explored its hparams
    WAIT = "wait"  # a copy awaited: the donor is behind the member
    DROPPED = "dropped"  # a copy that could not be made, with the reason
    TIMEOUT = "timeout"  # a segment did not report within segment_timeout: it was stopped
    RETRY = "retry"  # a segment raised; it is trained again from the checkpoint
    FAILED = "failed"  # a member failed for good
    RECOVER = "recover"  # sent back past a checkpoint whose file failed its hash
    REFUSED = "refused"  # a late report from a worker whose lease was lost
    # FIRE-PBT's evaluations, each with its detail in words
    EVALUATION = "evaluation"  # an evaluator started: donor the parent, after the hparams
    STOPPED = "stopped"  # an evaluation stopped, with the reason
    SUCCEEDED = "succeeded"  # an evaluation beat its child: the child adopts it next


class FailOutcome(_Word):
    """What became of a member whose segment raised (`Store.fail`)."""

    RETRY = "retry"  # it trains the segment again from its checkpoint
    FAILED = "failed"  # it stays failed, never a donor
    REPLACED = "replaced"  # the run's exploit and explore made it copy a healthy member
    LOST = "lost"  # the worker no longer held the lease: nothing changed


# a member still in the run: trained now or next, or waiting for its donor to catch up
TRAINING = (Status.READY, Status.RUNNING, Status.WAITING)
# the events of exploit decisions: a copy made, a copy awaited, a copy that could not be
# made, hparams explored in place
DECISIONS = (Kind.EXPLOIT, Kind.WAIT, Kind.DROPPED, Kind.EXPLORE)


@dataclass(frozen=True)
class RunRecord:
    """What a run stores once, at its creation: its settings and where its parts are.

    `run` is `RunConfig.to_dict()` (the layers above the store read it back with
    `RunConfig.from_dict`), `space` is `populace.strategies.space_to_dict(space)`.
    """

    run: dict[str, Any]
    space: dict[str, Any]
    checkpoints: str  # a folder, or an fsspec URL
    trainable: str  # "module:QualName" of the Trainable class or training function
    script: str | None = None  # the run script's absolute path, when started from one
    window: int = 0  # recent scores each member keeps for the exploit strategy
    segments: int = 0  # recent segments each member keeps for the explore strategy
    # curve points each member keeps for an exploit that reads curves (FIRE-PBT); 0: none,
    # and the snapshot carries none of FIRE's columns
    curve: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        return cls(**d)

    # the settings the store itself acts on, typed (the record is read once per store,
    # so the Modes are built once, not per claim or report)

    @cached_property
    def mode(self) -> Mode:
        """Which way the run's score improves."""
        return Mode(self.run["mode"])

    @cached_property
    def objectives(self) -> dict[str, Mode] | None:
        """A multi-objective run's objectives and their directions; None with one score."""
        named = self.run.get("objectives")
        return {name: Mode(mode) for name, mode in named.items()} if named else None

    @property
    def synch(self) -> bool:
        """Whether the whole generation is decided at once, when its last member reports."""
        return bool(self.run["synch"])

    @property
    def steps(self) -> int:
        """The step every member trains to."""
        return int(self.run["steps"])


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
    status: Status
    checkpoint: CheckpointRow | None
    error: str | None = None
    # a multi-objective run: its latest value of each objective, in the run's order
    objectives: list[float | None] | None = None
    # FIRE-PBT: its sub-population (1..n; 0: an evaluator), role, and an evaluator's
    # evaluation as the row keeps it (None while idle); every other run: 1, member, None
    sub: int = 1
    role: Role = Role.MEMBER
    evaluation: dict[str, Any] | None = None


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
    # scores within the segment, before its end, for a curve kept per member (FIRE-PBT's
    # `points`): (step, score) pairs, oldest first
    points: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Decision:
    """Exploit/explore outcome: copy `donor`'s checkpoint and continue with `hparams`
    (`donor` the member itself: keep its own checkpoint, continue with `hparams`).

    FIRE-PBT's decisions say more. `evaluation` is an evaluator's evaluation from now on
    (JSON; with a copy, the one it starts on its donor, the parent). `adopt`: the copy
    is an adopt, the member taking its donor's (an evaluator's) curve too and ending its
    evaluation. `reason` says why it copies, in the copy's event. `notes` are events
    about the member's evaluation, (kind, detail), stored with the decision. `donor`
    None: no copy and no explore, only the evaluation and the notes (an evaluation that
    succeeded, or stopped with no parent left: it idles).
    """

    donor: int | None
    hparams: dict[str, Any]
    strategy: str = ""
    evaluation: dict[str, Any] | None = None
    adopt: bool = False
    reason: str = ""
    notes: tuple[tuple[Kind, str], ...] = ()

    def pending(self) -> list[Any]:
        """What a waiting member keeps of the decision it waits to carry out (JSON); its
        notes were stored when it was made. A store written before `reason` keeps four."""
        return [self.hparams, self.strategy, self.evaluation, self.adopt, self.reason]


@dataclass(frozen=True)
class Outcome:
    """The store's answer to a report."""

    accepted: bool
    checkpoint: int | None = None  # id of the checkpoint row written for the report
    decision: Decision | None = None  # the reporter's exploit, carried out or awaited
    donor_checkpoint: CheckpointRow | None = None  # None with a decision: the member waits
    collect: list[str] = field(default_factory=list)  # checkpoint keys no one needs any more

    def own_state(self, member: int) -> bool:
        """Whether `member` goes on from the state it reported: no decision, or its hparams
        explored in place (it was its own donor)."""
        return self.accepted and (self.decision is None or self.decision.donor == member)


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
    kind: Kind
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
