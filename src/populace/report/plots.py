"""The report's figures, one function each, drawn off screen.

They build `matplotlib.figure.Figure` objects directly (the Agg canvas, no
pyplot): no display is needed and no global figure state leaks between calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from populace import pareto
from populace.mode import Mode
from populace.report.data import RunView
from populace.store import Result, Status

WIDTH = 10.0  # inches, at 100 dpi: 1000 px, the page's width
LINEAGE: dict[str, Any] = dict(color="black", lw=6, alpha=0.25, solid_capstyle="round", zorder=1)


def score_figure(view: RunView) -> Figure:
    """Every member's score over steps, its exploits marked, the best lineage underneath."""
    fig = Figure(figsize=(WIDTH, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.set(title="score of every member over steps", xlabel="step",
           ylabel=f"score ({view.summary.score}, {view.summary.mode})")
    triggers = view.triggers
    for m in view.members:
        xs: list[float] = []
        ys: list[float] = []
        for r in view.results[m.id]:
            xs.append(r.step)
            ys.append(math.nan if r.score is None else r.score)
            if r.id in triggers:  # its weights are replaced: do not join across the copy
                xs.append(math.nan)
                ys.append(math.nan)
        if not any(math.isfinite(y) for y in ys):
            continue
        failed = m.status == Status.FAILED
        ax.plot(xs, ys, color=_colour(view, m.id), lw=1.3, ls="--" if failed else "-",
                marker="." if len(view.results[m.id]) < 3 else None, zorder=2,
                label=_label(view, f"member {m.id}" + (" (failed)" if failed else "")))
    marks = [(e, s) for e in view.exploits if (s := view.exploit_scores[e.id]) is not None]
    if marks:
        ax.scatter([e.step for e, _ in marks], [s for _, s in marks], marker="v", s=28,
                   c=[_colour(view, e.member) for e, _ in marks], edgecolors="black",
                   linewidths=0.6, zorder=4, label="exploit: the member copies a donor")
    if view.failures:  # on the step axis: a member may fail before it ever reports
        ax.scatter([f.step for f in view.failures], [0] * len(view.failures), marker="X",
                   s=70, c=[_colour(view, f.member) for f in view.failures],
                   edgecolors="black", transform=ax.get_xaxis_transform(), clip_on=False,
                   zorder=5, label="a member failed (dashed: its scores)")
    scored = [(r.step, r.score) for r in view.lineage if r.score is not None]
    if scored:
        ax.plot([x for x, _ in scored], [y for _, y in scored], **LINEAGE,
                label=f"best lineage (member {view.summary.best})")
    if not any(r.score is not None for rs in view.results.values() for r in rs):
        _empty(ax, view.summary.note or "no member has reported a score yet")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlim(0, view.summary.steps)
    if (fitted := score_limits(view)) is not None:
        ax.set_ylim(*fitted)
    ax.grid(alpha=0.3)
    return fig


def score_limits(view: RunView) -> tuple[float, float] | None:
    """The score axis fitted to the later half of the run's scores (from half the highest
    step reached on), padded: early scores, far below where members end (an accuracy
    rising from 0.3 to 0.98), would squeeze the members' last scores into one line."""
    scored = [(r.step, r.score) for rs in view.results.values() for r in rs
              if r.score is not None and math.isfinite(r.score)]
    if not scored:
        return None
    half = max(step for step, _ in scored) / 2
    later = [score for step, score in scored if step >= half]
    low, high = min(later), max(later)
    pad = (high - low) * 0.08 or abs(high) * 0.01 or 0.01
    return low - pad, high + pad


def hparams_figure(view: RunView) -> Figure:
    """Each hparam over steps for every member; the best lineage's is the discovered schedule."""
    names = [n for n in view.hparams if view.space.get(n, {}).get("type") != "constant"]
    fig = Figure(figsize=(WIDTH, 1.0 + 2.4 * max(1, len(names))), layout="constrained")
    axes = fig.subplots(max(1, len(names)), 1, sharex=True, squeeze=False)[:, 0]
    axes[0].set_title("hparams of every member over steps "
                      "(best lineage underneath: the discovered schedule)")
    axes[-1].set_xlabel("step")
    axes[-1].set_xlim(0, view.summary.steps)
    if not names:
        _empty(axes[0], "the space has no hparam that changes")
        return fig
    for name, ax in zip(names, axes, strict=True):
        dim = view.space.get(name, {})
        encode = _encoder(ax, dim, [r.hparams.get(name) for rs in view.results.values()
                                    for r in rs])
        for m in view.members:
            xs, ys = _held(view.results[m.id], name, encode)
            failed = m.status == Status.FAILED
            ax.plot(xs, ys, color=_colour(view, m.id), lw=1.2, zorder=2,
                    ls="--" if failed else "-",
                    label=_label(view, f"member {m.id}" + (" (failed)" if failed else "")))
        xs, ys = _held(view.lineage, name, encode)
        ax.plot(xs, ys, **LINEAGE, label=f"best lineage (member {view.summary.best}): "
                                         "the discovered schedule")
        if dim.get("log"):
            ax.set_yscale("log")
        ax.set_ylabel(name, parse_math=False)
        ax.grid(alpha=0.3)
        if not any(view.results.values()):
            _empty(ax, "no results yet")
    if axes[0].get_legend_handles_labels()[0]:  # the same colours on every axis: one legend
        axes[0].legend(loc="best", fontsize=8)
    return fig


def lineage_figure(view: RunView) -> Figure:
    """The best member's ancestry: who copied whom at which step, hparams after explore."""
    rows = sorted({r.member for r in view.lineage}
                  | {m for e in view.ancestry for m in (e.member, e.donor) if m is not None})
    # each row leaves room for a label of one line per hparam
    lines = max([len(e.after or {}) for e in view.ancestry] + [1])
    fig = Figure(figsize=(WIDTH, 2.2 + (0.5 + 0.14 * lines) * len(rows)),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.set(xlabel="step", xlim=(0, view.summary.steps))
    if view.summary.best is None:
        ax.set_title("lineage of the best member")
        _empty(ax, view.summary.note or "no best member")
        return fig
    ax.set_title(f"lineage of the best member {view.summary.best}: "
                 "who copied whom at which step, with the hparams after explore")
    y = {m: i for i, m in enumerate(rows)}
    for member, start, end in _pieces(view.lineage):
        ax.plot([start, end], [y[member]] * 2, color=_colour(view, member), lw=5,
                solid_capstyle="butt")
    for e in view.ancestry:
        assert e.donor is not None  # the ancestry's walk stops at a copy without a donor
        x = e.donor_step if e.donor_step is not None else e.step
        ax.annotate("", xy=(x, y[e.member]), xytext=(x, y[e.donor]),
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1))
        # above the member's bar, on the side of the arrow away from the run's end, so
        # the label covers neither the bar nor runs past the last step
        late = x > view.summary.steps / 2
        ax.annotate(_short(e.after or {}).replace(" ", "\n"), (x, y[e.member]),
                    xytext=(-6 if late else 6, 6), textcoords="offset points", fontsize=7,
                    va="bottom", ha="right" if late else "left", parse_math=False,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.8", alpha=0.9))
    if not view.ancestry:
        ax.text(0.5, 0.8, f"no exploit along this lineage: member {view.summary.best} "
                "trained on its own", transform=ax.transAxes, ha="center", color="dimgray")
    ax.set_yticks(range(len(rows)), [f"member {m}" for m in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at 100 dpi (the page shows it at its natural size)."""
    fig.savefig(path, format="png", dpi=100)
    return path


def front_figure(view: RunView) -> Figure:
    """A multi-objective run's Pareto front at each ready step, darker as it goes, and the
    final front's members labelled (the first two objectives, if there are more)."""
    names = list(view.objectives or {})[:2]
    modes = [(view.objectives or {})[n] for n in names]
    fig = Figure(figsize=(WIDTH, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set(title="Pareto front over steps", xlabel=f"{names[0]} ({modes[0]})",
           ylabel=f"{names[1]} ({modes[1]})")
    by_step: dict[int, list[list[float | None]]] = {}
    for results in view.results.values():
        for r in results:
            by_step.setdefault(r.step, []).append([r.metrics.get(n) for n in names])
    steps = sorted(by_step)
    cmap = colormaps["viridis"]
    signs = np.array([Mode(mode).sign for mode in modes])
    for i, step in enumerate(steps):
        points = pareto.oriented(by_step[step], modes)
        on = (pareto.fronts(points) == 0) & ~np.isnan(points).any(axis=1)
        front = points[on] * signs  # back in the metrics' own units
        front = front[np.argsort(front[:, 0])]
        if len(front):
            ax.plot(front[:, 0], front[:, 1], marker="o", ms=4, lw=1,
                    color=cmap(i / max(1, len(steps) - 1)),
                    label=f"step {step}" if i in (0, len(steps) - 1) else "_nolegend_")
    for m in view.front:
        values = (m.objectives or [])[:2]
        if len(values) == 2 and values[0] is not None and values[1] is not None:
            x, y = float(values[0]), float(values[1])
            ax.scatter([x], [y], s=90, facecolors="none", edgecolors="black", zorder=4)
            ax.annotate(f"member {m.id}", (x, y), textcoords="offset points", xytext=(6, 6))
    if not steps:
        _empty(ax, "no results yet")
    else:
        ax.legend(loc="best", fontsize=8)
    return fig


def _colour(view: RunView, member: int) -> Any:
    n = len(view.members)
    if n <= 10:
        return colormaps["tab10"](member % 10)
    return colormaps["viridis"](member / max(1, n - 1))


def _label(view: RunView, text: str) -> str:
    """A legend entry per member only while the legend stays readable."""
    return text if len(view.members) <= 12 else "_nolegend_"


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            color="dimgray", fontsize=12)


def _encoder(ax: Axes, dim: dict[str, Any], values: Sequence[Any]) -> Any:
    """Numbers plot as they are; a choice (or anything else) as its option's position."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in values if v is not None)
    if dim.get("type") != "choice" and numeric:
        return lambda v: math.nan if v is None else float(v)
    options = list(dim.get("options", []))
    options += [v for v in dict.fromkeys(values) if v is not None and v not in options]
    ax.set_yticks(range(len(options)), [str(o) for o in options], parse_math=False)
    return lambda v: math.nan if v not in options else float(options.index(v))


def _held(results: Sequence[Result], name: str, encode: Any) -> tuple[list, list]:
    """A step line: each result's hparam held over the steps (start, step] it trained."""
    xs: list[float] = []
    ys: list[float] = []
    for r in results:
        if xs and r.start != xs[-1]:  # a copy restarted from another step: break the line
            xs.append(math.nan)
            ys.append(math.nan)
        v = encode(r.hparams.get(name))
        xs += [r.start, r.step]
        ys += [v, v]
    return xs, ys


def _pieces(path: Sequence[Result]) -> list[tuple[int, int, int]]:
    """(member, first step, last step) of each stretch of the lineage one member trained."""
    pieces: list[tuple[int, int, int]] = []
    for r in path:
        if pieces and pieces[-1][0] == r.member:
            pieces[-1] = (r.member, pieces[-1][1], r.step)
        else:
            pieces.append((r.member, r.start, r.step))
    return pieces


def _short(hparams: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in hparams.items())
