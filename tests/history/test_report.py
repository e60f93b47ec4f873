"""`populace report` on real runs: the HTML page, opened in a real browser, and the PNGs."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from support import browser
from support.paths import COUNTER, TOY
from support.runs import run_script
from support.tables import Tables

import populace
from populace.lineage import lineage, schedule
from populace.report import gather, write_report
from populace.report.plots import hparams_figure
from populace.results import result_of
from populace.script import load_script
from populace.store import Decision, Report, StoreError, open_store
from populace.testing.stores import run_record
from populace.testing.stores._kit import LR_SPACE

FIGURES = ["score", "hparams", "lineage"]


def summary(html: str) -> dict[str, str]:
    return dict(Tables(html).tables["summary"])


def body(table: list[list[str]]) -> list[list[str]]:
    return [row for row in table if row and row[0] not in ("from step", "member")]


def assert_not_blank(png: Path) -> None:
    """A drawn figure: more than one colour, and many of them (lines, text, anti-aliasing)."""
    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01
    colours = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)
    assert len(colours) > 20, f"{png} has only {len(colours)} colours"


def check_report(html: Path) -> str:
    """Every figure is a PNG beside the page and embedded in it; the page loads nothing else."""
    text = html.read_text(encoding="utf-8")
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(uris) == len(FIGURES) == text.count("<img ")
    for name, uri in zip(FIGURES, uris, strict=True):
        png = html.parent / f"{name}.png"
        assert base64.b64decode(uri) == png.read_bytes()
        assert_not_blank(png)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    return text


def check_browser(html: Path) -> None:
    """Opened in headless chromium, every image of the page was decoded and drawn."""
    dom = browser.dump_dom(html)
    images = len(re.findall(r"<img\b", dom))
    assert images == len(FIGURES)
    rendered = re.search(r'data-rendered="(\d+)"', dom)
    assert rendered, "the page's load script did not run"
    assert int(rendered.group(1)) == images


# -- the runs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("toy") / "toy.db"
    run_script(TOY, store)
    return store


@pytest.fixture(scope="module")
def failed(tmp_path_factory) -> Path:
    """Counter members with x > 0.5 fail at their first step; the others finish."""
    store = tmp_path_factory.mktemp("failed") / "f.db"
    s = load_script(COUNTER)
    mp = pytest.MonkeyPatch()
    mp.setenv("COUNTER_FAIL_ABOVE", "0.5")
    try:
        populace.run(s.trainable, s.space, store=store, script=COUNTER, progress=False,
                     initial=[{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}],
                     **{**s.config, "exploit": "none", "executor": "inline"})
    finally:
        mp.undo()
    return store


def _report(member: int, start: int, step: int, score: float, hparams: dict) -> Report:
    sha = hashlib.sha256(f"{member}:{step}".encode()).hexdigest()
    return Report(member, "w", start, step, score, {"score": score}, hparams,
                  f"{sha}.ckpt", sha, 10, final=False, seconds=0.1)


@pytest.fixture
def in_progress(tmp_path) -> Path:
    """A run caught mid-way: one exploit, one member running and one ready at step 0.

    Built by hand through the store, as workers would, so it is frozen mid-run. Its
    space has a log-scaled float and a choice whose options need escaping in HTML.
    """
    path = tmp_path / "live.db"
    store = open_store(path)
    # "$\\relu$" would break matplotlib's mathtext, were user text parsed as math
    act = {"type": "choice", "options": ["<relu>", "a&b", "$\\relu$"]}
    store.create(run_record(population=4, space={**LR_SPACE, "act": act}),
                 [{"lr": 0.001 * (i + 1), "act": "<relu>"} for i in range(4)])
    copied = {"lr": 0.0015, "act": "a&b"}
    assert store.claim("w", 60).id == 0
    store.report(_report(0, 0, 4, 0.5, {"lr": 0.001, "act": "<relu>"}), None, 5)
    assert store.claim("w", 60).id == 1
    store.report(_report(1, 0, 4, 0.1, {"lr": 0.002, "act": "<relu>"}),
                 lambda snapshot, member=1: Decision(0, copied, "truncation") if member == 1
                 else None, 5)
    assert store.claim("other", 60).id == 2  # left running
    assert store.claim("w", 60).id == 3
    assert store.claim("w", 60, prefer=1).id == 1
    store.report(_report(1, 4, 8, 0.6, copied), None, 5)
    assert store.release("w", 3)  # back to ready, at step 0
    store.close()
    return path


# -- the tests --------------------------------------------------------------


def test_report_of_a_toy_run(toy, tmp_path):
    html = write_report(toy, tmp_path / "out")
    assert html == tmp_path / "out" / "report.html"
    text = check_report(html)
    store = open_store(toy)
    best = result_of(store).best
    s = summary(text)
    assert s["state"] == "finished"
    assert s["population"] == "2"
    assert int(s["exploits"]) == len(store.events("exploit")) > 0
    assert s["best member"] == f"member {best.id}"
    assert float(s["best score"]) == pytest.approx(best.score, rel=1e-5)
    assert s["best checkpoint"] == str(result_of(store).checkpoint)
    assert s["wall time"].endswith("s")
    expected = schedule(lineage(best.checkpoint.id, store.results()))
    rows = body(Tables(text).tables["schedule"])
    assert len(rows) == len(expected) > 1
    for row, entry in zip(rows, expected, strict=True):
        assert int(row[0]) == entry.step and int(row[1]) == entry.member
        assert [float(x) for x in row[2:]] == pytest.approx(
            [entry.hparams["h0"], entry.hparams["h1"]], rel=1e-5)
    assert "Failed members" not in text


def test_report_opens_in_a_real_browser(toy, tmp_path):
    html = write_report(toy, tmp_path / "out")
    check_browser(html)
    shot = browser.screenshot(html, tmp_path / "page.png")
    assert_not_blank(shot)


def test_report_goes_beside_the_store_by_default(toy):
    html = write_report(f"sqlite:///{toy}")
    assert html == toy.parent / "toy.report" / "report.html"
    assert sorted(p.name for p in html.parent.iterdir()) == sorted(
        ["report.html", *(f"{f}.png" for f in FIGURES)])


def test_report_of_a_run_with_failed_members(failed, tmp_path):
    html = write_report(failed, tmp_path / "out")
    text = check_report(html)
    check_browser(html)
    failures = body(Tables(text).tables["failures"])
    assert [row[:2] for row in failures] == [["2", "0"]]
    assert failures[0][2].startswith("RuntimeError: x=0.9 is too large")
    members = body(Tables(text).tables["members"])
    assert [row[1] for row in members] == ["done", "done", "failed", "done"]
    s = summary(text)
    assert s["best member"] == "member 3" and s["exploits"] == "0"


def test_report_of_a_run_in_progress(in_progress, tmp_path):
    html = write_report(in_progress, tmp_path / "out")
    text = check_report(html)
    check_browser(html)
    s = summary(text)
    assert s["state"] == "in progress"
    assert s["members"] == "3 ready, 1 running"
    assert s["exploits"] == "1" and s["results"] == "3"
    assert s["best member"] == "member 1"
    rows = body(Tables(text).tables["schedule"])
    assert [row[:2] for row in rows] == [["0", "0"], ["4", "1"]]
    assert [row[3] for row in rows] == ["<relu>", "a&b"]  # the text, once unescaped
    assert "&lt;relu&gt;" in text and "<relu>" not in text
    members = body(Tables(text).tables["members"])
    assert [(row[1], row[2], row[3]) for row in members][2:] == [
        ("running", "0", "—"), ("ready", "0", "—")]


@pytest.mark.parametrize("exploit", ["none", "own"])
def test_report_of_a_run_that_copies_nothing(tmp_path, exploit):
    """No exploit, or each member explores in place (exploit "own"): no ancestry, and the
    summary counts the explores in place, so "0 exploits" is not read as a run that did
    nothing."""
    store = tmp_path / f"{exploit}.db"
    run_script(TOY, store, exploit=exploit)
    text = check_report(write_report(store, tmp_path / "out"))
    s = summary(text)
    assert s["exploits"] == "0"
    explores = len(open_store(store).events("explore"))
    assert s.get("explores in place", "0") == str(explores) == ("98" if exploit == "own" else "0")
    schedule = body(Tables(text).tables["schedule"])
    # one member's own hparams; walked at each of its 49 ready points with "own"
    assert len(schedule) == (1 if exploit == "none" else 50)
    view = gather(open_store(store))
    assert view.ancestry == [] and {r.member for r in view.lineage} == {view.summary.best}


def test_report_before_any_score(tmp_path):
    path = tmp_path / "new.db"
    store = open_store(path)
    store.create(run_record(population=3), [{"lr": 0.01 * (i + 1)} for i in range(3)])
    store.claim("w", 60)
    store.close()
    html = write_report(path, tmp_path / "out")
    text = check_report(html)
    check_browser(html)
    s = summary(text)
    assert s["best member"] == "—" and s["best score"] == "—" and s["results"] == "0"
    assert "no member has a score yet" in text


def test_report_when_every_member_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "-1")
    store = tmp_path / "f.db"
    with pytest.raises(populace.RunFailed):
        run_script(COUNTER, store, executor="inline")
    text = check_report(write_report(store, tmp_path / "out"))
    assert "every member failed" in text
    assert len(body(Tables(text).tables["failures"])) == 4


def test_the_hparams_plot_has_a_legend(toy):
    fig = hparams_figure(gather(open_store(toy)))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    best = result_of(open_store(toy)).best.id
    assert labels == ["member 0", "member 1",
                      f"best lineage (member {best}): the discovered schedule"]


def test_log_scaled_hparams_get_a_log_axis(in_progress):
    fig = hparams_figure(gather(open_store(in_progress)))
    scales = {ax.get_ylabel(): ax.get_yscale() for ax in fig.axes}
    assert scales == {"lr": "log", "act": "linear"}


def test_a_missing_store_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        write_report(tmp_path / "nothing.db")
    assert list(tmp_path.iterdir()) == []
