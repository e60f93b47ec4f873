"""The report of a FIRE-PBT run: who is in which sub-population, and each evaluation
from its start to how it ended, read back from the page's tables."""

from __future__ import annotations

from collections import Counter

import pytest
from support.paths import EXAMPLES
from support.runs import run_script
from support.tables import Tables

from populace.report import gather, write_report
from populace.report.data import Evaluation, evaluations, stop_reasons
from populace.store import Event, Kind, open_store


@pytest.fixture(scope="module")
def fire_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("fire") / "run.db"
    run_script(EXAMPLES / "two_timescale.py", store, exploit="fire")
    return store


def event(kind: Kind, member: int, step: int, detail: str, donor: int | None = None) -> Event:
    return Event(id=0, kind=kind, member=member, donor=donor, step=step, donor_step=None,
                 before=None, after=None, strategy="fire", time=0.0, detail=detail)


def test_evaluations_pair_each_start_with_its_end_and_a_success_with_its_adopt():
    found = evaluations([
        event(Kind.EVALUATION, 6, 0, "parent 3 (P2) with the hparams of child 0 (P1)", 3),
        event(Kind.EVALUATION, 7, 0, "parent 4 (P2) with the hparams of child 0 (P1)", 4),
        event(Kind.EXPLOIT, 1, 10, "", 2),
        event(Kind.STOPPED, 6, 20, "child 0 changed"),
        event(Kind.SUCCEEDED, 7, 30, "p=0.0078 over 7 points"),
        event(Kind.STOPPED, 7, 30, "adopted by child 0", 0),
        event(Kind.EVALUATION, 6, 20, "parent 5 (P2) with the hparams of child 1 (P1)", 5),
    ])
    assert found == [
        Evaluation(6, 0, 3, "parent 3 (P2) with the hparams of child 0 (P1)", 20, "stopped",
                   "child 0 changed"),
        Evaluation(7, 0, 4, "parent 4 (P2) with the hparams of child 0 (P1)", 30, "succeeded",
                   "p=0.0078 over 7 points; adopted by child 0"),
        Evaluation(6, 20, 5, "parent 5 (P2) with the hparams of child 1 (P1)"),
    ]
    assert stop_reasons(found) == Counter({"child N changed": 1})


def test_the_report_of_a_fire_run_shows_sub_populations_and_every_evaluation(fire_run,
                                                                             tmp_path):
    html = write_report(fire_run, tmp_path).read_text()
    tables = Tables(html).tables
    db = open_store(fire_run)
    members, events = db.members(), db.events()
    db.close()
    subs = {row[0]: row[1] for row in tables["members"][1:]}
    assert subs == {str(m.id): f"P{m.sub}" if m.sub else "evaluator" for m in members}
    assert "evaluator" in subs.values() and "P2" in subs.values()
    rows = tables["evaluations"][1:]
    begun = [e for e in events if e.kind == Kind.EVALUATION]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(e.member, e.step) for e in begun]
    outcomes = Counter(r[4] for r in rows)
    assert outcomes["succeeded"] == sum(e.kind == Kind.SUCCEEDED for e in events)
    assert outcomes["stopped"] == sum(e.kind == Kind.STOPPED and "adopted" not in e.detail
                                      for e in events)
    assert f"{len(begun)} begun, {outcomes['succeeded']} succeeded" in html


def test_a_plain_pbt_report_has_no_fire_section(tmp_path):
    store = tmp_path / "run.db"
    run_script(EXAMPLES / "two_timescale.py", store)
    view = gather(open_store(store))
    html = write_report(store, tmp_path / "out").read_text()
    assert not view.fire and view.evaluations == []
    assert "evaluations" not in Tables(html).tables and "sub-population" not in html
