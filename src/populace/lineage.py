"""A member's lineage and the hparam schedule it followed, from stored results alone.

Every result names the checkpoint it wrote and the checkpoint its segment
started from. When member m exploits donor d, m's next segment starts from
d's checkpoint; when a damaged checkpoint sends m back, from an earlier one.
Following those links back from m's checkpoint gives the history of m's
weights, whoever trained them; each result carries the hparams in force
during its segment, which is the discovered schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from populace.store.records import Result


@dataclass(frozen=True)
class ScheduleEntry:
    """From `step` on (until the next entry), the lineage trained with `hparams`."""

    step: int
    hparams: dict[str, Any]
    member: int


def lineage(checkpoint: int | None, results: Sequence[Result]) -> list[Result]:
    """The results that trained `checkpoint` (a member's current state), oldest first.

    None (a member that has not reported, or went back to scratch) has none.
    """
    wrote = {r.checkpoint: r for r in results if r.checkpoint is not None}
    path = []
    while checkpoint is not None and checkpoint in wrote:
        path.append(wrote[checkpoint])
        checkpoint = path[-1].parent
    return path[::-1]


def schedule(path: Sequence[Result]) -> list[ScheduleEntry]:
    """Compress a lineage's results into the steps where its hparams changed."""
    entries: list[ScheduleEntry] = []
    for r in path:
        if not entries or entries[-1].hparams != r.hparams:
            entries.append(ScheduleEntry(r.start, r.hparams, r.member))
    return entries
