"""`populace report`: a run's plots as PNG files and one self-contained HTML page.

The report reads the store alone, so it works on a finished run, on one that
is still going (a snapshot of now), and on one whose members all failed.
"""

from __future__ import annotations

import os
from pathlib import Path

from populace.report.data import RunView, gather
from populace.report.page import Plot, render
from populace.report.plots import (
    front_figure,
    hparams_figure,
    lineage_figure,
    save,
    score_figure,
)
from populace.store import StoreError, beside, open_store, store_exists

__all__ = ["RunView", "default_out", "gather", "write_report"]

FIGURES = [
    ("score", "Score", score_figure,
     "Each member's score at every ready point; a triangle marks an exploit (the member "
     "then copies a donor's weights and hparams, and its line breaks). The wide grey line "
     "is the best member's lineage, across the members it descends from. Dashed: failed."),
    ("hparams", "Hparams", hparams_figure,
     "Each hparam a member trained with, over the steps it trained them. The wide grey "
     "line follows the best member's lineage: the schedule the run discovered."),
    ("lineage", "Lineage", lineage_figure,
     "The best member's ancestry: each bar is a stretch one member trained, each arrow a "
     "copy from the donor at the step it was copied, labelled with the hparams after "
     "explore."),
]


# a multi-objective run's own figure
FRONT = [
    ("front", "Pareto front", front_figure,
     "The members no other member dominates, at each ready step (from dark, early, to "
     "yellow, late), and the final front's members circled; with more than two "
     "objectives, the first two."),
]


def default_out(store: str | os.PathLike[str]) -> Path:
    """The report of the store `runs/x.db` goes to `runs/x.report/`."""
    return beside(store, ".report")


def write_report(store: str | os.PathLike[str], out: Path | None = None) -> Path:
    """Write `report.html` and one PNG per figure into `out`; return the HTML's path."""
    if not store_exists(store):
        raise StoreError(f"{store} does not exist")
    db = open_store(store)
    try:
        view = gather(db)
    finally:
        db.close()
    out = Path(out) if out is not None else default_out(store)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for name, title, draw, caption in FIGURES + (FRONT if view.objectives else []):
        png = save(draw(view), out / f"{name}.png")
        plots.append(Plot(name, title, caption, png.read_bytes()))
    html = out / "report.html"
    html.write_text(render(view, plots), encoding="utf-8")
    return html
