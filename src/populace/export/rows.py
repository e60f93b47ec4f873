"""What the logs say about a run's rows, in words and numbers both tools share."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from populace.checks import is_real
from populace.lineage import lineage
from populace.store import Event, Kind, MemberRow, Result


def numbers(hparams: Mapping[str, Any]) -> dict[str, float]:
    """The hparams that plot as curves (a Choice of strings does not)."""
    return {k: float(v) for k, v in hparams.items() if is_real(v)}


def said(event: Event) -> str:
    """One line for an event: a copy with its donor and hparams before and after, an explore
    in place with its hparams."""
    if event.kind == Kind.EXPLOIT:
        return (f"step {event.step}: copied member {event.donor} (at its step "
                f"{event.donor_step}) by {event.strategy}; hparams {json.dumps(event.before)}"
                f" -> {json.dumps(event.after)}")
    if event.kind == Kind.EXPLORE:
        return (f"step {event.step}: explored its own hparams by {event.strategy}; hparams "
                f"{json.dumps(event.before)} -> {json.dumps(event.after)}")
    detail = f": {event.detail}" if event.detail else ""
    donor = f" (donor {event.donor})" if event.donor is not None else ""
    return f"step {event.step}: {event.kind}{donor}{detail}"


def ancestry(member: MemberRow, results: Sequence[Result]) -> str:
    """Whose training the member's weights went through: `0 [0-40] > 3 [40-100]`."""
    path = lineage(member.checkpoint.id if member.checkpoint else None, results)
    spans: list[list[int]] = []  # [member, first step, last step]
    for r in path:
        if spans and spans[-1][0] == r.member and spans[-1][2] == r.start:
            spans[-1][2] = r.step
        else:
            spans.append([r.member, r.start, r.step])
    return " > ".join(f"{m} [{a}-{b}]" for m, a, b in spans)
