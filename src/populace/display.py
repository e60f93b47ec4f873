"""What a person sees: live progress of a run and the table of its population."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from populace.mode import Mode
from populace.store import MemberRow, Role, Status, open_store

POLL = 0.5  # seconds between two looks at the store
PIPE_WIDTH = 160  # columns when writing to a file or pipe, where rich would assume 80


def console(stderr: bool = False, quiet: bool = False) -> Console:
    """A console as wide as the terminal, or wide enough for a table in a log file."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, quiet=quiet,
                   width=None if stream.isatty() else PIPE_WIDTH)


class Display:
    """A progress bar of steps done, with members, best score and exploits, read from the store.

    It polls the store from a thread with its own connection, so it shows the
    same thing whichever executor trains, and costs the workers nothing.
    """

    def __init__(self, url: str, total_steps: int, console: Console | None = None):
        self._url = url
        self._progress = Progress(
            TextColumn("[bold]PBT"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TextColumn("{task.fields[summary]}"), TimeElapsedColumn(),
            console=console, transient=False,
        )
        self._task = self._progress.add_task("run", total=total_steps, summary="starting")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="populace-display")

    def _poll(self) -> None:
        store = open_store(self._url)
        try:
            while True:
                self._update(store.progress())
                if self._stop.wait(POLL):
                    self._update(store.progress())
                    return
        finally:
            store.close()

    def _update(self, p: dict) -> None:
        status = p["status"]
        best = "-" if p["best"] is None else f"{p['best']:.4g}"
        running = status.get(Status.RUNNING, 0)
        if not p["steps"] and not running and not status.get(Status.DONE):
            # worker processes import the script (torch: seconds) before the first claim
            summary = f"members {sum(status.values())} | waiting for the workers to start"
            self._progress.update(self._task, completed=0, summary=summary)
            return
        parts = [f"members {sum(status.values())}", f"running {running}",
                 f"done {status.get(Status.DONE, 0)}"]
        if status.get(Status.FAILED):
            parts.append(f"[red]failed {status[Status.FAILED]}[/]")
        if status.get(Status.IDLE):  # FIRE-PBT's evaluators with no parent to test now
            parts.append(f"idle {status[Status.IDLE]}")
        parts += [f"best {best}", f"exploits {p['exploits']}"]
        if p["explores"]:  # exploit "own": each member explores in place
            parts.append(f"explores {p['explores']}")
        self._progress.update(self._task, completed=p["steps"], summary=" | ".join(parts))

    def __enter__(self) -> Display:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._progress.stop()


def members_table(members: Sequence[MemberRow], title: str = "population", *,
                  score: str = "score", mode: Mode | str = Mode.MAX) -> Table:
    """One row per member: id, step, score (headed by the metric it is, and its mode),
    generation, parent, status, then each hparam, and, when a member failed, the last line
    of its error. A FIRE-PBT run adds each member's sub-population (P1, P2, ..., E for an
    evaluator) and what each evaluator tests (parent -> child, and whether it succeeded)."""
    fire = any(m.role == Role.EVALUATOR for m in members)
    table = Table(title=title, caption="gen: copies along the lineage; parent: last donor"
                  + ("; evaluates: parent -> child whose hparams it trains with" if fire
                     else ""))
    names = list(dict.fromkeys(k for m in members for k in m.hparams))
    errors = any(m.error for m in members)
    for name in ("member", *(["sub"] if fire else []), "step", f"{score} ({Mode(mode)})",
                 "gen", "parent", "status", *(["evaluates"] if fire else []), *names):
        table.add_column(name, justify="right")
    if errors:
        table.add_column("error", justify="left", overflow="fold")
    for m in members:
        table.add_row(
            str(m.id), *([_sub(m)] if fire else []), str(m.step),
            "-" if m.score is None else f"{m.score:.4g}",
            str(m.generation), "-" if m.parent is None else str(m.parent),
            str(m.status) if m.status != Status.FAILED else "[red]failed[/]",
            *([_evaluates(m)] if fire else []),
            *(_short(m.hparams.get(k, "-")) for k in names),
            *([_last_line(m.error)] if errors else []),
        )
    return table


def _sub(member: MemberRow) -> str:
    """A FIRE-PBT member's sub-population as status shows it: P1, P2, ..., or E."""
    return "E" if member.role == Role.EVALUATOR else f"P{member.sub}"


def _evaluates(member: MemberRow) -> str:
    """What an evaluator tests, `4->1` (parent 4's weights, child 1's hparams), marked
    when it succeeded; `-` for an idle evaluator or a member of a sub-population."""
    e = member.evaluation
    if e is None:
        return "-"
    return f"{e['parent']}->{e['child']}" + (" succeeded" if e["state"] == "succeeded" else "")


def _last_line(error: str | None) -> Text:
    """A traceback's last line, its exception, which says what went wrong."""
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return Text(lines[-1].strip() if lines else "")


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
