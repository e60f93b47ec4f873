"""A member's lineage and the hparam schedule it followed, from stored rows alone.

When member m exploits donor d, m's weights are d's as of that moment: the
history of m's weights is d's history up to the copy, then m's own. Walking
exploit events backwards gives that history; each result in it carries the
hparams in force during its segment, which is the discovered schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from populace.store.records import Event, Result


@dataclass(frozen=True)
class ScheduleEntry:
    """From `step` on (until the next entry), the lineage trained with `hparams`."""

    step: int
    hparams: dict[str, Any]
    member: int


def lineage(member: int, results: Sequence[Result], events: Sequence[Event]) -> list[Result]:
    """The results along `member`'s lineage, oldest first."""
    exploits: dict[int, list[Event]] = {}
    for e in events:
        if e.kind in ("exploit", "recover"):
            exploits.setdefault(e.member, []).append(e)
    by_member: dict[int, list[Result]] = {}
    for r in results:
        by_member.setdefault(r.member, []).append(r)

    pieces: list[list[Result]] = []
    # results of m with id < upper and step <= top belong to the lineage: the copied state
    # is m's as of `upper` (an exploit) or an earlier checkpoint at step `top` (a recover)
    m, upper, top = member, None, None
    while True:
        copy = None
        for e in reversed(exploits.get(m, [])):
            if upper is None or (e.result is not None and e.result < upper):
                copy = e
                break
        lower = copy.result if copy is not None else None
        pieces.append([
            r for r in by_member.get(m, [])
            if (upper is None or r.id < upper) and (lower is None or r.id > lower)
            and (top is None or r.step <= top)
        ])
        if copy is None or copy.donor is None:
            break
        m, upper, top = copy.donor, copy.result, copy.donor_step
    return [r for piece in reversed(pieces) for r in piece]


def schedule(path: Sequence[Result]) -> list[ScheduleEntry]:
    """Compress a lineage's results into the steps where its hparams changed."""
    entries: list[ScheduleEntry] = []
    for r in path:
        if not entries or entries[-1].hparams != r.hparams:
            entries.append(ScheduleEntry(r.start, r.hparams, r.member))
    return entries
