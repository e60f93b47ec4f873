"""What several commands print: a Pareto front, the events, numbers and metrics."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from populace.results import RunResult
from populace.store import Event, Kind, Status


def number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def metrics_line(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {number(v)}" for k, v in metrics.items())


def front_table(result: RunResult) -> Table:
    """A multi-objective run's Pareto front: each member on it, its objectives, hparams."""
    names = list(result.objectives or {})
    table = Table(title=f"Pareto front: {len(result.front)} member(s) no other dominates ("
                        + ", ".join(f"{n} {m}" for n, m in (result.objectives or {}).items())
                        + ")")
    for column in ("member", "step", *names, "hparams"):
        table.add_column(column)
    for m in result.front:
        values = [f"{v:.6g}" if v is not None else "-" for v in (m.objectives or [])]
        table.add_row(str(m.id), str(m.step), *values, json.dumps(m.hparams))
    return table


def print_best(result: RunResult, console: Console) -> None:
    """The best member's score, metrics and hparams (and the front, when there is one)."""
    if result.objectives:
        console.print(front_table(result))
    tied = [m.id for m in result.members if m.id != result.best.id and m.score is not None
            and m.score == result.score and m.status != Status.FAILED]
    console.print(f"best member {result.best.id} at step {result.best.step}: "
                  f"{metrics_line(result.metrics)}")
    if tied and not result.objectives:
        console.print(f"tied on its score with member(s) {', '.join(map(str, tied))}: a tie "
                      "goes to the lowest member id")
    console.print(f"its hparams: {json.dumps(result.hparams)}")


def print_events(events: list[Event], as_json: bool, console: Console) -> None:
    """The decisions: who copied whom at which step, hparams before and after; who waited
    for a donor to catch up, and which decision was dropped and why. One line an event
    at the terminal's width (JSON: every field in full)."""
    if as_json:
        print(json.dumps([{"kind": e.kind, "member": e.member, "donor": e.donor,
                           "step": e.step, "donor_step": e.donor_step, "before": e.before,
                           "after": e.after, "strategy": e.strategy, "detail": e.detail,
                           "time": e.time} for e in events], indent=2))
        return
    decisions = sum(e.kind in (Kind.EXPLOIT, Kind.EXPLORE) for e in events)
    width = len(str(max((e.step for e in events), default=0)))
    lines = [f"{decisions} exploit/explore events, {len(events) - decisions} others "
             "(--json: each in full)", *(event_line(e, width) for e in events)]
    for line in lines:
        console.print(line, overflow="ellipsis", no_wrap=True, highlight=False, markup=False,
                      crop=True)


def event_line(e: Event, width: int = 0) -> str:
    """One event as a line: step, member, kind, then what it says (the hparams that
    changed, rounded; an error's last line)."""
    said = {
        Kind.EXPLOIT: f"copies {e.donor} (step {e.donor_step}): {changes(e.before, e.after)}",
        Kind.EXPLORE: changes(e.before, e.after),
    }.get(e.kind, "")
    detail = last_line(e.detail)
    text = "; ".join(part for part in (said, detail) if part)
    return f"step {e.step:>{width}}  member {e.member:>3}  {e.kind:<8} {text}"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """`lr 0.01 -> 0.012, layers 2 -> 3`: the hparams whose value changed, rounded."""
    before, after = before or {}, after or {}
    moved = [f"{k} {short(before.get(k))} -> {short(v)}" for k, v in after.items()
             if before.get(k) != v]
    return ", ".join(moved) or "hparams unchanged"


def short(value: Any) -> str:
    """A hparam's value to 3 significant digits (others as they are)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def last_line(text: str | None) -> str:
    """The last non-empty line of a detail (a traceback's is its error)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
