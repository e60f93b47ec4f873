"""What a person sees: live progress of a run and the table of its population."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from populace.mode import Mode
from populace.store import MemberRow, Role, Status, open_store

POLL = 0.5  # seconds between two looks at the store
PIPE_WIDTH = 160  # columns when writing to a file or pipe, where rich would assume 80
# seconds between two progress lines in a log (output that is not a terminal): often
# while a run starts, then once a minute, so a day's log stays readable
LOG_PACE = ((60.0, 10.0), (float("inf"), 60.0))  # (until this many seconds in, every)
SHOWN = 20  # members a run's closing table shows: the best, where the population is larger


def console(stderr: bool = False, quiet: bool = False) -> Console:
    """A console as wide as the terminal, or wide enough for a table in a log file."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, quiet=quiet,
                   width=None if stream.isatty() else PIPE_WIDTH)


class Display:
    """A progress bar of steps done, with members, best score and exploits, read from the store.

    It polls the store from a thread with its own connection, so it shows the
    same thing whichever executor trains, and costs the workers nothing. Where the
    output is not a terminal (nohup, Slurm, CI, docker logs) a bar would show nothing
    until the run ends: there it writes plain lines with a timestamp instead, at the
    pace of LOG_PACE and at once when a member fails.
    """

    def __init__(self, url: str, total_steps: int, console: Console | None = None):
        self._url, self._total = url, total_steps
        self._console = console if console is not None else Console()
        self._log = not self._console.is_terminal and not self._console.quiet
        self._started = time.monotonic()
        self._logged: float | None = None  # when the last line was written: none yet
        self._failed = 0
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
                    self._update(store.progress(), last=True)
                    return
        finally:
            store.close()

    def _update(self, p: dict, last: bool = False) -> None:
        status = p["status"]
        best = "-" if p["best"] is None else f"{p['best']:.4g}"
        running, failed = status.get(Status.RUNNING, 0), status.get(Status.FAILED, 0)
        if not p["steps"] and not running and not status.get(Status.DONE):
            # worker processes import the script (torch: seconds) before the first claim
            parts = [f"members {sum(status.values())}", "waiting for the workers to start"]
        else:
            parts = [f"members {sum(status.values())}", f"running {running}",
                     f"done {status.get(Status.DONE, 0)}"]
            if failed:
                parts.append(f"[red]failed {failed}[/]")
            if status.get(Status.IDLE):  # FIRE-PBT's evaluators with no parent to test now
                parts.append(f"idle {status[Status.IDLE]}")
            parts += [f"best {best}", f"exploits {p['exploits']}"]
            if p["explores"]:  # exploit "own": each member explores in place
                parts.append(f"explores {p['explores']}")
        self._progress.update(self._task, completed=p["steps"], summary=" | ".join(parts))
        if not self._log:
            return
        now = time.monotonic()
        pace = next(every for until, every in LOG_PACE if now - self._started < until)
        if (self._logged is None or last or failed != self._failed
                or now - self._logged >= pace):
            self._failed, self._logged = failed, now
            self._line(p["steps"], Text.from_markup(" | ".join(parts)).plain, now - self._started)

    def _line(self, steps: int, summary: str, elapsed: float) -> None:
        """One progress line for a log: a timestamp and plain words, no terminal codes."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        share = f" ({steps / self._total:.0%})" if self._total else ""
        self._console.print(f"{stamp} PBT {steps:,}/{self._total:,} steps{share} | {summary} "
                            f"| {elapsed:.0f} s", markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> Display:
        if not self._log:
            self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self._log:
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


def best_shown(members: Sequence[MemberRow], mode: Mode | str,
               limit: int = SHOWN) -> list[MemberRow]:
    """The members a run's closing table shows: all of them up to `limit`, else the
    `limit` best by score, best first (a member with no score yet last): a table of
    thousands of rows would scroll the run's news off the screen, and cost seconds."""
    if len(members) <= limit:
        return list(members)
    sign = Mode(mode).sign
    return sorted(members, key=lambda m: (m.score is None, -sign * (m.score or 0.0), m.id)
                  )[:limit]


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
