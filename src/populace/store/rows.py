"""What the store's two halves write alike: an event row, the one INSERT every recorded
change of a member goes through (a retry, a failure, an exploit), and scores and
objectives in the form rows keep them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from populace.mode import Mode
from populace.store.driver import Cursor
from populace.store.records import Decision, Kind


def finite(score: float | None) -> float | None:
    """A score as the store keeps it: None when missing or not finite (NaN, inf)."""
    return score if score is not None and math.isfinite(score) else None


def stored_objectives(names: Mapping[str, Mode] | None,
                      metrics: Mapping[str, Any] | None) -> str | None:
    """The run's objectives (`names`) as `metrics` gave them, as rows keep them (JSON; a
    missing or non-finite one None), or None in a run with one score."""
    if names is None or metrics is None:
        return None
    values = [metrics.get(name) for name in names]
    return json.dumps([finite(float(v)) if isinstance(v, (int, float)) else None
                       for v in values])


def record_event(cur: Cursor, kind: Kind, member: int, step: int, now: float, *,
                 decision: Decision | None = None, donor: int | None = None,
                 donor_step: int | None = None, before: Mapping[str, Any] | None = None,
                 after: Mapping[str, Any] | None = None, detail: str | None = None,
                 result: int | None = None, strategy: str = "") -> None:
    """Record an event of `member` at `step`; an exploit decision's own gives its donor,
    new hparams and strategy (`decision`), other events name what they need."""
    if decision is not None:
        donor, after, strategy = decision.donor, decision.hparams, decision.strategy
        donor = None if donor == member else donor  # an explore in place copies no one
    cur.execute(
        "INSERT INTO events (kind, member, donor, step, donor_step, before, after,"
        " strategy, detail, result, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, member, donor, step, donor_step,
         None if before is None else json.dumps(before),
         None if after is None else json.dumps(after), strategy, detail, result, now),
    )
