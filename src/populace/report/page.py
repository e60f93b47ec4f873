"""The report's HTML page: one self-contained file that opens offline.

Plots are embedded as PNG data URIs and the style is inline; a Content
Security Policy forbids loading anything else, so a page that renders here
renders anywhere. A few lines of script record, on load, how many images the
browser decoded (`body[data-rendered]`), so a headless browser can prove it.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from populace.report.data import RunView, stop_reasons

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; } .note { color: #a33; } pre { font-size: 0.8em; }
figcaption { color: #555; font-size: 0.9em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, rendered = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) rendered++;
  }
  document.body.dataset.images = images.length;
  document.body.dataset.rendered = rendered;
});
"""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


@dataclass(frozen=True)
class Plot:
    """A figure as the page shows it."""

    name: str  # also the PNG file's stem
    title: str
    caption: str
    png: bytes


def render(view: RunView, plots: Sequence[Plot]) -> str:
    """The whole page as one string."""
    s = view.summary
    title = f"populace report: {s.store}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{escape(title)}</title><style>{STYLE}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<h2>Summary</h2>", _summary(view),
    ]
    for p in plots:
        data = base64.b64encode(p.png).decode("ascii")
        parts += [
            f'<h2 id="{escape(p.name)}">{escape(p.title)}</h2>',
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(p.title)}">',
            f"<figcaption>{escape(p.caption)}</figcaption></figure>",
        ]
    if view.objectives:
        parts += ["<h2>Pareto front</h2>", _front(view)]
    parts += ["<h2>Schedule of the best member</h2>", _schedule(view)]
    if view.fire:
        parts += ["<h2>FIRE-PBT: sub-populations and evaluations</h2>", _fire(view)]
    if view.failures:
        parts += ["<h2>Failed members</h2>", _failures(view)]
    if view.dropped:
        parts += ["<h2>Dropped exploits</h2>", _dropped(view)]
    parts += ["<h2>Members</h2>", _members(view), "</body></html>"]
    return "\n".join(parts)


def _summary(view: RunView) -> str:
    s = view.summary
    best = ("—" if s.best is None else f"member {s.best}")
    rows = [
        ("state", "in progress" if s.running else "finished"),
        ("population", s.population),
        ("steps", f"{s.steps} per member; {s.trained} of {s.steps * s.population} trained"),
        ("members", ", ".join(f"{n} {status}" for status, n in sorted(s.status.items()))),
        ("results", s.results),
        ("exploits", s.exploits),
        *([("explores in place", s.explores)] if s.explores else []),
        ("best member", best),
        ("best score", _fmt(s.best_score)),
        ("best checkpoint", s.best_checkpoint or "—"),
        ("score", f"{s.score} ({s.mode})"),
        ("wall time", "—" if s.wall_seconds is None else _duration(s.wall_seconds)),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S")),
    ]
    body = "".join(f'<tr data-key="{escape(k.replace(" ", "-"))}"><th>{escape(k)}</th>'
                   f"<td>{escape(str(v))}</td></tr>" for k, v in rows)
    note = f'<p class="note">{escape(s.note)}</p>' if s.note else ""
    return f'<table id="summary">{body}</table>{note}'


def _schedule(view: RunView) -> str:
    if not view.schedule:
        return f'<p class="note">{escape(view.summary.note or "no schedule yet")}</p>'
    names = view.hparams
    head = "".join(f"<th>{escape(n)}</th>" for n in ["from step", "member", *names])
    rows = "".join(
        "<tr>" + _cell(e.step) + _cell(e.member)
        + "".join(_cell(e.hparams.get(n)) for n in names) + "</tr>"
        for e in view.schedule
    )
    return (f'<p>The hparams in force along the lineage of member {view.summary.best}, '
            "from each step on until the next row.</p>"
            f'<table id="schedule"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')


def _fire(view: RunView) -> str:
    """Who is in which sub-population, and every evaluation with how it ended."""
    subs = Counter(m.sub for m in view.members)
    sizes = ", ".join(f"P{k} {n}" for k, n in sorted(subs.items()) if k)
    found = view.evaluations
    ended = Counter(e.outcome for e in found)
    reasons = "; ".join(f"{why} {n}" for why, n in stop_reasons(found).most_common())
    rows = "".join(
        "<tr>" + _cell(e.evaluator) + _cell(e.step) + f"<td>{escape(e.what)}</td>"
        + _cell(e.end) + f"<td>{escape(e.outcome)}</td><td>{escape(e.why)}</td></tr>"
        for e in found)
    return (f'<p id="fire-sizes">Sub-populations {escape(sizes)}; evaluators {subs.get(0, 0)}. '
            f"Evaluations: {len(found)} begun, {ended['succeeded']} succeeded, "
            f"{ended['stopped']} stopped, {ended['running']} running or cut short by the "
            f"run's end.</p>"
            + (f'<p id="fire-reasons">Stopped because: {escape(reasons)}.</p>' if reasons
               else "")
            + '<table id="evaluations"><thead><tr><th>evaluator</th><th>from step</th>'
            "<th>evaluates</th><th>to step</th><th>outcome</th><th>why</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _failures(view: RunView) -> str:
    rows = "".join(
        f"<tr>{_cell(f.member)}{_cell(f.step)}<td>{escape(f.message)}"
        f"<details><summary>traceback</summary><pre>{escape(f.error)}</pre></details></td></tr>"
        for f in view.failures
    )
    return ('<table id="failures"><thead><tr><th>member</th><th>step</th><th>error</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _dropped(view: RunView) -> str:
    rows = "".join(f"<tr>{_cell(e.member)}{_cell(e.donor)}{_cell(e.step)}"
                   f"<td>{escape(e.detail or '')}</td></tr>" for e in view.dropped)
    return ("<p>Exploits decided but not carried out; each member decided again at once.</p>"
            '<table id="dropped"><thead><tr><th>member</th><th>donor</th><th>step</th>'
            f"<th>why</th></tr></thead><tbody>{rows}</tbody></table>")


def _members(view: RunView) -> str:
    fire = ["sub-population"] if view.fire else []
    head = "".join(f"<th>{escape(n)}</th>" for n in
                   ["member", *fire, "status", "step", "score", "generation", "parent",
                    *view.hparams])
    rows = "".join(
        "<tr>" + _cell(m.id) + ("" if not fire else _cell(f"P{m.sub}" if m.sub else "evaluator"))
        + "".join(_cell(x) for x in (m.status, m.step, m.score, m.generation, m.parent))
        + "".join(_cell(m.hparams.get(n)) for n in view.hparams) + "</tr>"
        for m in view.members
    )
    return f'<table id="members"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _front(view: RunView) -> str:
    """The final front: each member on it, its value of each objective, its hparams."""
    names = list(view.objectives or {})
    head = "".join(f"<th>{escape(n)}</th>" for n in
                   ["member", "step", *(f"{n} ({view.objectives[n]})" for n in names
                                        if view.objectives), *view.hparams])
    rows = "".join(
        "<tr>" + _cell(m.id) + _cell(m.step)
        + "".join(_cell(v) for v in (m.objectives or [None] * len(names)))
        + "".join(_cell(m.hparams.get(n)) for n in view.hparams) + "</tr>"
        for m in view.front)
    return f'<table id="front"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _cell(x: Any) -> str:
    numeric = isinstance(x, int | float) and not isinstance(x, bool)
    return f'<td{" class=num" if numeric else ""}>{escape(_fmt(x))}</td>'


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
