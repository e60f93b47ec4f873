"""What several commands print: a Pareto front, the events, numbers and metrics."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from populace.results import RunResult
from populace.store import Event, Kind


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
    console.print(f"best member {result.best.id} at step {result.best.step}: "
                  f"{metrics_line(result.metrics)}")
    console.print(f"its hparams: {json.dumps(result.hparams)}")


def print_events(events: list[Event], as_json: bool, console: Console) -> None:
    """The decisions: who copied whom at which step, hparams before and after; who waited
    for a donor to catch up, and which decision was dropped and why."""
    rows = [{"kind": e.kind, "member": e.member, "donor": e.donor, "step": e.step,
             "donor_step": e.donor_step, "before": e.before, "after": e.after,
             "strategy": e.strategy, "detail": e.detail, "time": e.time}
            for e in events]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    decisions = sum(r["kind"] in (Kind.EXPLOIT, Kind.EXPLORE) for r in rows)
    table = Table(title=f"{decisions} exploit/explore events, {len(rows) - decisions} others")
    for name in ("kind", "member", "donor", "step", "donor step", "strategy", "before",
                 "after", "detail"):
        table.add_column(name)
    for r in rows:
        table.add_row(str(r["kind"]), str(r["member"]), str(r["donor"]), str(r["step"]),
                      str(r["donor_step"]), str(r["strategy"]), json.dumps(r["before"]),
                      json.dumps(r["after"]), str(r["detail"] or ""))
    console.print(table)
