"""The report's figures readable where a run ends: the score axis fitted to the scores
members end at, and lineage labels that cover no bar and stay inside the steps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from populace.report import gather
from populace.report.plots import lineage_figure, score_figure
from populace.store import Decision, Report, open_store
from populace.testing.stores import run_record


def _report(member: int, start: int, step: int, score: float, hparams: dict) -> Report:
    sha = hashlib.sha256(f"{member}:{step}".encode()).hexdigest()
    return Report(member, "w", start, step, score, {"score": score}, hparams,
                  f"{sha}.ckpt", sha, 10, final=step == 100, seconds=0.1)


@pytest.fixture
def rising(tmp_path) -> Path:
    """Two members whose score rises from about 0.3 to about 0.97 over 100 steps; at
    step 98, two steps from the end, member 1 copies member 0 and ends best."""
    path = tmp_path / "rising.db"
    store = open_store(path)
    store.create(run_record(population=2), [{"lr": 0.001}, {"lr": 0.002}])
    copied = {"lr": 0.00123456}
    for member, start, step, score, decide in [
        (0, 0, 49, 0.30, None), (1, 0, 49, 0.35, None), (0, 49, 98, 0.97, None),
        (1, 49, 98, 0.96, lambda snapshot, m: Decision(0, copied, "truncation")),
        (0, 98, 100, 0.975, None), (1, 98, 100, 0.98, None),
    ]:
        row = store.claim("w", 60)
        assert (row.id, row.step) == (member, start)
        store.report(_report(member, start, step, score, row.hparams), decide, 5)
    store.close()
    return path


def test_the_score_axis_fits_the_scores_members_end_at(rising):
    ax = score_figure(gather(open_store(rising))).axes[0]
    low, high = ax.get_ylim()
    assert 0.9 < low < 0.96 and 0.98 < high < 1.0  # 0.96 to 0.98 fill the axis


def test_lineage_labels_cover_no_bar_and_stay_inside_the_steps(rising):
    view = gather(open_store(rising))
    assert [(e.member, e.donor, e.donor_step) for e in view.ancestry] == [(1, 0, 98)]
    fig = lineage_figure(view)
    canvas = FigureCanvasAgg(fig)  # the canvas `save` draws the PNG with
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    bars = [line for line in ax.get_lines() if line.get_linewidth() == 5]
    labels = [t for t in ax.texts if t.get_text()]
    assert bars and labels
    for label in labels:
        box = label.get_bbox_patch().get_window_extent(renderer)
        assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1  # not past the last step
        for bar in bars:
            (x0, y), (x1, _) = ax.transData.transform(bar.get_xydata()[[0, -1]])
            half = bar.get_linewidth() * fig.dpi / 72 / 2
            assert (box.x1 < x0 or box.x0 > x1 or box.y0 > y + half or box.y1 < y - half), \
                f"{label.get_text()!r} covers a bar"
