"""What a report shows, gathered from a store alone (no plotting, no HTML).

Reading everything once, here, keeps the figures and the page pure functions
of one `RunView`, and keeps a report of a run that is still going consistent:
events are read before results, so every exploit's triggering result is known.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from populace.lineage import ScheduleEntry, lineage, schedule
from populace.mode import Mode
from populace.results import RunFailed, RunResult, result_of
from populace.store import TRAINING, Event, Kind, MemberRow, Result, Store


@dataclass(frozen=True)
class Failure:
    """A failed member and the traceback it failed with."""

    member: int
    step: int
    error: str

    @property
    def message(self) -> str:
        """The exception line of the traceback (its last non-empty line)."""
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no error recorded)"


@dataclass(frozen=True)
class Evaluation:
    """One FIRE-PBT evaluation: an evaluator training a parent's weights with a child's
    hparams, from its start to its end (None: still running, or the run ended first)."""

    evaluator: int
    step: int  # the evaluator's step when it began
    parent: int | None
    what: str  # "parent 3 (P2) with the hparams of child 0 (P1)"
    end: int | None = None  # the step it ended at
    outcome: str = "running"  # running, succeeded, stopped
    why: str = ""  # the stop's reason, or the success's test


@dataclass(frozen=True)
class Summary:
    store: str
    population: int
    steps: int  # the steps each member trains in the full run
    trained: int  # steps the members are at, summed
    status: dict[str, int]  # members by status
    results: int
    exploits: int
    explores: int  # hparams explored in place (exploit "own"), no copy
    best: int | None  # None when no member has a score yet, or every member failed
    best_score: float | None
    best_checkpoint: str | None  # its checkpoint file: a path, or a URL in remote storage
    score: str  # the metric exploit ranks by
    mode: Mode
    wall_seconds: float | None  # from the run's creation to its latest result
    note: str | None  # why there is no best member, when there is none

    @property
    def running(self) -> bool:
        return any(self.status.get(s) for s in TRAINING)


@dataclass(frozen=True)
class RunView:
    """Everything the report draws, read from one store."""

    summary: Summary
    members: list[MemberRow]
    results: dict[int, list[Result]]  # each member's own results, in the order stored
    exploits: list[Event]
    exploit_scores: dict[int, float | None]  # exploit event id -> the member's score then
    triggers: set[int]  # ids of each copier's own last result before its copy
    lineage: list[Result]  # the best member's lineage, oldest first (empty without a best)
    ancestry: list[Event]  # the exploits along that lineage, oldest first
    schedule: list[ScheduleEntry]
    failures: list[Failure]
    dropped: list[Event]  # exploit decisions that could not be carried out, with why
    space: dict[str, dict[str, Any]]
    hparams: list[str]  # hparam names, in the order of the space
    # a multi-objective run: its objectives and directions, and its final Pareto front
    objectives: dict[str, str] | None = None
    front: list[MemberRow] = field(default_factory=list)
    # FIRE-PBT: every evaluation, oldest first (empty for every other run)
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def fire(self) -> bool:
        """Whether the run has sub-populations and evaluators (FIRE-PBT)."""
        return any(m.sub != 1 for m in self.members)


def gather(store: Store) -> RunView:
    """Read the run in `store` into a `RunView`; works on a run that is still going."""
    config = store.config()
    run = config.run
    result, note = _best(store)
    best = None if result is None else result.best
    members = store.members()
    events = store.events()
    results = store.results()
    exploits = [e for e in events if e.kind == Kind.EXPLOIT]
    by_id = {r.id: r for r in results}
    per_member: dict[int, list[Result]] = {m.id: [] for m in members}
    for r in results:
        per_member.setdefault(r.member, []).append(r)
    path = lineage(best.checkpoint.id if best.checkpoint else None, results) if best else []
    created = store.meta("created")
    summary = Summary(
        store=store.url, population=len(members), steps=run["steps"],
        trained=sum(m.step for m in members), status=dict(Counter(m.status for m in members)),
        results=len(results), exploits=len(exploits),
        explores=sum(e.kind == Kind.EXPLORE for e in events),
        best=None if best is None else best.id, best_score=None if best is None else best.score,
        best_checkpoint=None if result is None or result.checkpoint is None
        else str(result.checkpoint),
        score=str(run.get("score")), mode=Mode(run["mode"]),
        wall_seconds=max(r.time for r in results) - created if results and created else None,
        note=note,
    )
    space = config.space
    names = list(space) + sorted({k for r in results for k in r.hparams} - set(space))
    # an event's result is the newest row when the copy happened, maybe another member's:
    # the copier's own score then is its last result up to that row
    own = {e.id: max((r.id for r in per_member.get(e.member, ())
                      if e.result is not None and r.id <= e.result), default=None)
           for e in exploits}
    return RunView(
        summary=summary, members=members, results=per_member, exploits=exploits,
        exploit_scores={e.id: by_id[i].score if (i := own[e.id]) is not None and i in by_id
                        else None for e in exploits},
        triggers={r for r in own.values() if r is not None},
        lineage=path,
        ancestry=ancestry(best.id, exploits) if best is not None else [],
        schedule=schedule(path),
        failures=[Failure(e.member, e.step, e.detail or "") for e in events
                  if e.kind == Kind.FAILED],
        dropped=[e for e in events if e.kind == Kind.DROPPED],
        space=space, hparams=names, objectives=run.get("objectives"),
        front=[] if result is None else result.front,
        evaluations=evaluations(events),
    )


def evaluations(events: list[Event]) -> list[Evaluation]:
    """Each evaluation from its events: begun (`evaluation`), succeeded, stopped. A
    success is followed by a stop (the child adopted its weights): it stays a success."""
    found: list[Evaluation] = []
    open_: dict[int, int] = {}  # evaluator -> index in `found` of its running evaluation
    for e in events:
        if e.kind == Kind.EVALUATION:
            open_[e.member] = len(found)
            found.append(Evaluation(e.member, e.step, e.donor, e.detail or ""))
        elif e.kind in (Kind.SUCCEEDED, Kind.STOPPED) and e.member in open_:
            i = open_[e.member]
            if found[i].outcome == "succeeded":  # the adopt that ends a success
                found[i] = replace(found[i], end=e.step, why=f"{found[i].why}; {e.detail}")
                del open_[e.member]
                continue
            found[i] = replace(found[i], end=e.step, outcome=str(e.kind), why=e.detail or "")
            if e.kind == Kind.STOPPED:
                del open_[e.member]
    return found


def stop_reasons(found: list[Evaluation]) -> Counter[str]:
    """How many evaluations stopped for each reason, its numbers left out ("child N
    changed"): which rule ends them, the first thing to read when FIRE-PBT decides little."""
    return Counter(re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", e.why.split(";")[0])
                   for e in found if e.outcome == "stopped")


def _best(store: Store) -> tuple[RunResult | None, str | None]:
    """The run's result by `result_of`, or None and the reason there is no best member."""
    try:
        result = result_of(store)
    except RunFailed:
        return None, "every member failed: no best member"
    if result.best.score is None:
        return None, "no member has a score yet"
    return result, None


def ancestry(member: int, exploits: list[Event]) -> list[Event]:
    """The exploits that made `member`'s weights, oldest first.

    The same walk as `populace.lineage.lineage`, over events instead of
    results: it still finds a copy whose member has not reported since.
    """
    by_member: dict[int, list[Event]] = {}
    for e in exploits:
        by_member.setdefault(e.member, []).append(e)
    chain: list[Event] = []
    upper = None  # only copies triggered by a result before `upper` made the weights
    while True:
        copy = next((e for e in reversed(by_member.get(member, []))
                     if upper is None or (e.result is not None and e.result < upper)), None)
        if copy is None or copy.donor is None:
            return chain[::-1]
        chain.append(copy)
        member, upper = copy.donor, copy.result
