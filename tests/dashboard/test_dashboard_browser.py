"""The dashboard end to end in a real browser (Playwright driving Debian's chromium),
against runs that are still training, on SQLite and on PostgreSQL: the page renders,
follows the run, and a hover on a copy in a lineage names the donor; the empty,
NaN-score and failed-member cases render, a multi-objective run shows its Pareto front,
and two runs compare side by side.

Set POPULACE_SCREENSHOTS to a folder to keep the screenshots the tests take.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.browser import playwright_browser
from support.dashboard import (
    HOSTILE_ERROR,
    HOSTILE_HPARAM,
    awkward_run,
    pb2_and_fire_runs,
    two_goals_run,
)
from support.paths import COUNTER, SCRIPTS

import populace.dashboard as dashboard
from populace.store import open_store
from populace.testing.stores import run_record


@pytest.fixture(scope="module")
def browser():
    with playwright_browser() as b:
        yield b


def shot(page, tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    keep = os.environ.get("POPULACE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    return out


def open_page(browser, url: str):
    """The page at `url`, its script errors collected in `page.errors`."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.goto(url)
    return page


def until(page, expression: str, timeout: float = 30) -> None:
    """Wait until `expression` is true in the page. (Playwright's wait_for_function
    evaluates a string inside the page, which the page's Content Security Policy, rightly,
    refuses; `evaluate` goes through the debugging protocol.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
        time.sleep(0.05)


def cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def training(store: str, tmp_path: Path, steps: int = 240, **env: str) -> subprocess.Popen:
    """`populace run` of the counter script in the background, serving its dashboard on
    a free port (`--dashboard 0`); slow enough to watch."""
    return subprocess.Popen(
        [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", store,
         "--population", "6", "--steps", str(steps), "--workers", "2", "--quiet",
         "--dashboard", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COUNTER_SLEEP": "0.02", **env})


def dashboard_url(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert found, line + proc.stderr.read()
    return found.group(0)


def hover_last_copy(page) -> str:
    """Hover the last diamond of the lineage chart (the copy into the member shown);
    the hover label's text."""
    diamonds = page.locator("#lineage-chart .scatterlayer .trace").last.locator("path.point")
    box = diamonds.last.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    label = page.locator("#lineage-chart .hoverlayer .hovertext")
    label.wait_for(timeout=5000)
    return label.text_content()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_run_that_is_training_renders_is_followed_and_explains_its_copies(
        browser, tmp_path, backend):
    if backend == "sqlite":
        store = str(tmp_path / "run.db")
    else:
        from support.postgres import schema_url

        store = schema_url()
    proc = training(store, tmp_path)
    try:
        url = dashboard_url(proc)
        page = open_page(browser, url)
        until(page, "document.querySelectorAll('#members-table tbody tr').length === 6"
                    " && document.body.dataset.charts === 'ready'")
        assert cells(page, "#runs-table")[0][2] == "training"
        # it follows the run: newer results arrive, the members' steps grow
        seen = int(page.evaluate("document.body.dataset.results || 0"))
        steps = max(int(r[2]) for r in cells(page, "#members-table"))
        until(page, f"Number(document.body.dataset.results) > {seen}", timeout=20)
        until(page, "Math.max(...[...document.querySelectorAll('#members-table tbody tr')]"
                    f".map(r => Number(r.cells[2].textContent))) > {steps}", timeout=20)
        # a member that copied another: its lineage, and a hover on the copy
        until(page, "[...document.querySelectorAll('#events-table tbody tr')]"
                    ".some(r => r.cells[1].textContent === 'exploit')")
        row = next(r for r in cells(page, "#events-table") if r[1] == "exploit")
        page.select_option("#lineage-member", row[2])
        until(page, "document.querySelectorAll('#copies-table tbody tr').length > 0",
              timeout=10)
        page.locator("#lineage").scroll_into_view_if_needed()
        time.sleep(0.3)  # the chart is redrawn as the lineage arrives
        last = cells(page, "#copies-table")[-1]  # step, member, donor, donor's step...
        assert last[1] == row[2]
        text = hover_last_copy(page)
        assert f"member {last[1]} copied donor {last[2]}" in text, text
        assert "before" in text and "after" in text
        assert f"copied donor {last[2]}" in page.text_content("#copy-detail")
        # the events, filtered by kind and by member
        page.select_option("#event-kind", "exploit")
        page.fill("#event-member", row[2])
        until(page, "[...document.querySelectorAll('#events-table tbody tr')].every(r =>"
                    f" r.cells[1].textContent === 'exploit' && r.cells[2].textContent === "
                    f"'{row[2]}')", timeout=10)
        shot(page, tmp_path, f"training-{backend}")
        assert page.errors == []
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_the_empty_nan_score_failed_and_awkward_cases_render(browser, tmp_path):
    empty = open_store(tmp_path / "empty.db")
    empty.create(run_record("max", 3), [{"lr": 0.01 * (i + 1)} for i in range(3)])
    empty.close()
    awkward_run(open_store(tmp_path / "awkward.db")).close()
    nan = tmp_path / "nan.db"
    subprocess.run([sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store",
                    str(nan), "--executor", "inline", "--quiet"], cwd=tmp_path, timeout=120,
                   env={**os.environ, "COUNTER_NAN_ABOVE": "0.5"}, capture_output=True)
    pb2_and_fire_runs(open_store(tmp_path / "pb2.db"), open_store(tmp_path / "fire.db"))
    stores = [tmp_path / "empty.db", tmp_path / "later.db", nan, tmp_path / "awkward.db",
              tmp_path / "pb2.db", tmp_path / "fire.db"]
    served = dashboard.start(stores, port=0, poll_seconds=0.5)
    try:
        page = open_page(browser, served.url)
        until(page, "document.body.dataset.charts === 'ready'")
        runs = cells(page, "#runs-table")
        assert [r[2] for r in runs] == ["training", "waiting", "finished", "training",
                                        "training", "training"]
        assert "no member has a score yet" in page.text_content("#population-note")
        assert len(cells(page, "#members-table")) == 3
        shot(page, tmp_path, "empty")

        page.evaluate("location.hash = 'run=2'")  # the NaN scores: members failed
        until(page, "document.body.dataset.charts === 'ready' && document"
                    ".querySelector('#run-name').textContent.includes('nan.db')")
        failed = [r for r in cells(page, "#members-table") if r[1] == "failed"]
        assert failed and all("score is nan" in r[-1] for r in failed), failed
        assert "failed" in page.text_content("#population-note")
        shot(page, tmp_path, "nan-score")

        page.evaluate("location.hash = 'run=3'")  # markup everywhere, shown as text
        until(page, "document.body.dataset.charts === 'ready' && document"
                    ".querySelector('#run-name').textContent.includes('awkward')")
        heads = page.eval_on_selector_all("#members-table thead th", "h => h.map(x => x"
                                          ".textContent)")
        assert HOSTILE_HPARAM in heads and any("<script>" in h for h in heads)
        errors = [r[-1] for r in cells(page, "#members-table")]
        assert HOSTILE_ERROR in errors
        # in a chart too: the hparam's name is its title, as text
        assert page.text_content("#hparam-chart-0 .gtitle") == HOSTILE_HPARAM
        assert page.evaluate("window.pwned") is None
        assert page.locator("img[src=x]").count() == 0 and page.locator("main script").count() == 0
        shot(page, tmp_path, "awkward")

        page.evaluate("location.hash = 'run=4'")  # PB2's data, then FIRE-PBT's state
        until(page, "document.body.dataset.charts === 'ready' && document"
                    ".querySelectorAll('#pb2-table tbody tr').length === 1")
        assert page.locator("#pb2").is_visible() and page.locator("#fire").is_hidden()
        assert cells(page, "#pb2-table")[0][:2] == ["0", "4 → 8"]
        page.evaluate("location.hash = 'run=5'")
        until(page, "document.body.dataset.charts === 'ready' && document"
                    ".querySelectorAll('#fire-subs tbody tr').length === 3")
        assert cells(page, "#fire-subs") == [["evaluators", "4"], ["1", "0, 1"],
                                             ["2", "2, 3"]]
        page.locator("#strategy").scroll_into_view_if_needed()
        shot(page, tmp_path, "fire")
        assert page.errors == []
    finally:
        served.stop()


def test_a_multi_objective_front_and_two_runs_side_by_side(browser, tmp_path):
    two_goals_run(open_store(tmp_path / "goals.db")).close()
    run = [sys.executable, "-m", "populace.cli", "run", str(SCRIPTS / "counter.py"),
           "--executor", "inline", "--quiet", "--seed", "3"]
    subprocess.run([*run, "--store", "pbt.db"], cwd=tmp_path, check=True, timeout=120,
                   capture_output=True)
    subprocess.run([*run, "--store", "random.db", "--exploit", "none"], cwd=tmp_path,
                   check=True, timeout=120, capture_output=True)
    served = dashboard.start([tmp_path / "pbt.db", tmp_path / "random.db",
                              tmp_path / "goals.db"], port=0)
    try:
        page = open_page(browser, served.url)
        until(page, "document.body.dataset.charts === 'ready'")
        names = page.eval_on_selector_all("#compare-chart .legendtext",
                                          "t => t.map(x => x.textContent)")
        assert any("pbt.db: best" in n for n in names), names
        assert any("random.db: best" in n for n in names), names
        assert page.locator("#compare-chart .scatterlayer .trace").count() == 4
        assert page.locator("#pareto").is_hidden()
        shot(page, tmp_path, "side-by-side")

        page.evaluate("location.hash = 'run=2'")
        until(page, "document.body.dataset.charts === 'ready' && "
                    "document.body.dataset.front === '2'")
        assert page.locator("#pareto").is_visible()
        # back to the first step: the front then
        page.fill("#front-step", "0")
        page.dispatch_event("#front-step", "input")
        until(page, "document.querySelector('#front-step-value').textContent === 'step 4'",
              timeout=10)
        page.locator("#pareto").scroll_into_view_if_needed()
        shot(page, tmp_path, "pareto")
        assert page.errors == []
    finally:
        served.stop()
