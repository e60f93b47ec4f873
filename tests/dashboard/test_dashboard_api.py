"""The dashboard's JSON API, in process (Starlette's TestClient), on SQLite and PostgreSQL:
what each view reads, and that a poll reads only what is newer than what the page has."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from support.dashboard import (
    awkward_run,
    copy_from,
    pb2_and_fire_runs,
    trained_run,
    two_goals_run,
)
from support.paths import EXAMPLES
from support.runs import run_script

from populace.dashboard.app import create_app
from populace.dashboard.data import Source
from populace.store import Kind, Store, open_store
from populace.testing.stores import train


def client(*urls: str) -> TestClient:
    return TestClient(create_app([Source(i, url) for i, url in enumerate(urls)]))


def get(c: TestClient, path: str) -> dict:
    r = c.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_runs_table_and_population_of_a_run(store_factory):
    store = trained_run(store_factory(), population=3, rounds=3)
    c = client(store.url)
    (run,) = get(c, "/api/runs")["runs"]
    assert run["state"] == "training" and run["population"] == 3
    assert run["best"] == 2 and run["best_score"] == pytest.approx(2.12)
    assert run["trained"] == 36 and run["progress"] == pytest.approx(36 / 300)
    assert run["executor"] == "local" and run["exploit"] == "truncation"
    assert run["hparams"] == ["lr"] and run["log_hparams"] == ["lr"]
    overview = get(c, "/api/runs/0/overview")
    assert [m["id"] for m in overview["members"]] == [0, 1, 2]
    assert overview["members"][0]["hparams"] == {"lr": 0.024}
    assert overview["members"][0]["parent"] == 1


def test_a_poll_reads_only_what_is_newer(store_factory):
    store = trained_run(store_factory(), population=2, rounds=2)
    c = client(store.url)
    first = get(c, "/api/runs/0/poll?results=0&events=0")
    assert len(first["results"]) == 4 and len(first["events"]) == 1
    last_result = first["results"][-1][0]
    last_event = first["events"][-1]["id"]
    idle = get(c, f"/api/runs/0/poll?results={last_result}&events={last_event}"
                  f"&since={first['updated']}")
    assert idle["results"] == [] and idle["events"] == [] and not idle["more"]
    train(store, 1, 12, 1.5, decide=copy_from(0, {"lr": 0.03}))
    new = get(c, f"/api/runs/0/poll?results={last_result}&events={last_event}"
                 f"&since={first['updated']}")
    assert [(r[1], r[2], r[3]) for r in new["results"]] == [(1, 12, 1.5)]
    assert [(e["kind"], e["member"], e["donor"]) for e in new["events"]] == [("wait", 1, 0)]
    assert 1 in {m["id"] for m in new["members"]}  # its row changed


def test_long_series_are_thinned_in_the_database(store_factory):
    store = store_factory()
    trained_run(store, population=2, rounds=1)
    for step in range(8, 404, 4):
        for m in (0, 1):
            train(store, m, step, step / 100)
    c = client(store.url)
    full = get(c, "/api/runs/0/poll?results=0&events=0")["results"]
    series = get(c, "/api/runs/0/series?points=100")  # 50 a member
    thin, table = series["results"], series["hparams"]
    assert len(table) == 2  # each member's one dict of hparams, sent once
    for m in (0, 1):
        own = [r for r in full if r[1] == m]
        kept = [r for r in thin if r[1] == m]
        assert 40 <= len(kept) <= 52
        for a, b in ((kept[0], own[0]), (kept[-1], own[-1])):
            assert a[:4] == b[:4] and table[a[4]] == b[4]


def test_the_lineage_names_each_copy_its_donor_and_hparams(store_factory):
    store = trained_run(store_factory(), population=3, rounds=3)
    c = client(store.url)
    lineage = get(c, "/api/runs/0/lineage/0")
    (copy,) = lineage["copies"]
    assert (copy["member"], copy["donor"], copy["step"]) == (0, 1, 8)
    assert copy["before"] == {"lr": 0.01} and copy["after"] == {"lr": 0.024}
    assert [s["member"] for s in lineage["stretches"]] == [1, 0]
    # the donor's results up to the copy, then the member's own
    assert [(p[3], p[0]) for p in lineage["points"]] == [(1, 4), (1, 8), (0, 12)]
    alone = get(c, "/api/runs/0/lineage/2")
    assert alone["copies"] == [] and [p[0] for p in alone["points"]] == [4, 8, 12]
    assert c.get("/api/runs/0/lineage/9").status_code == 404


def test_events_filter_by_kind_and_member(store_factory):
    store = trained_run(store_factory(), population=3, rounds=3)
    c = client(store.url)
    assert [e["kind"] for e in get(c, "/api/runs/0/events")["events"]] == ["exploit"]
    assert get(c, "/api/runs/0/events?kind=failed")["events"] == []
    assert len(get(c, "/api/runs/0/events?kind=exploit,failed&member=0")["events"]) == 1
    assert get(c, "/api/runs/0/events?member=2")["events"] == []


def test_two_runs_side_by_side(store_factory):
    a = trained_run(store_factory("a"), population=2, rounds=2)
    b = trained_run(store_factory("b"), population=3, rounds=3)
    c = client(a.url, b.url)
    runs = get(c, "/api/runs")["runs"]
    assert [r["population"] for r in runs] == [2, 3]
    curve_a, curve_b = get(c, "/api/runs/0/curve"), get(c, "/api/runs/1/curve")
    assert curve_a["steps"] == [4, 8] and curve_b["steps"] == [4, 8, 12]
    assert curve_b["best"] == pytest.approx([2.04, 2.08, 2.12])
    assert curve_b["mean"] == pytest.approx([1.04, 1.08, 1.12])


def test_the_pareto_front_over_time(store_factory):
    store = two_goals_run(store_factory())
    c = client(store.url)
    run = get(c, "/api/runs")["runs"][0]
    assert run["objectives"] == {"a": "max", "b": "max"}
    now = get(c, "/api/runs/0/front")
    assert now["steps"] == [4, 8] and now["step"] == 8
    assert {p["member"]: p["rank"] for p in now["points"]} == {0: 0, 1: 0, 2: 1}
    early = get(c, "/api/runs/0/front?step=4")
    assert {p["member"]: p["values"] for p in early["points"]}[0] == [1.0, 3.0]


def test_awkward_values_are_served_as_json(store_factory):
    store = awkward_run(store_factory())
    c = client(store.url)
    run = get(c, "/api/runs")["runs"][0]
    assert run["status"]["failed"] == 1
    members = {m["id"]: m for m in get(c, "/api/runs/0/overview")["members"]}
    assert members[2]["status"] == "failed" and "<script>" in members[2]["error"]
    r = c.get("/api/runs/0/poll?results=0&events=0")
    assert "NaN" not in r.text and "Infinity" not in r.text  # JSON has neither
    assert any(e["kind"] == "failed" for e in r.json()["events"])


def test_an_empty_run_a_missing_store_and_a_file_that_is_no_store(store_factory, tmp_path):
    from populace.testing.stores import run_record

    empty: Store = store_factory()
    empty.create(run_record("max", 2), [{"lr": 0.01}, {"lr": 0.02}])
    (tmp_path / "junk.db").write_text("not a database")
    c = client(empty.url, str(tmp_path / "later.db"), str(tmp_path / "junk.db"))
    runs = get(c, "/api/runs")["runs"]
    assert runs[0]["state"] == "training" and runs[0]["best"] is None
    assert runs[1]["state"] == "waiting" and not (tmp_path / "later.db").exists()
    assert runs[2]["state"] == "error" and "not a database" in runs[2]["note"]
    assert get(c, "/api/runs/0/series")["results"] == []
    assert get(c, "/api/runs/1/series")["results"] == []
    assert get(c, "/api/runs/0/lineage/0")["copies"] == []


def test_a_fire_runs_evaluations_and_why_they_stopped(tmp_path):
    """A finished FIRE-PBT run (the planted two-timescale toy, at the settings it was
    planted for): every evaluation its events
    hold is listed with its outcome, and the stops are tallied by reason."""
    db = tmp_path / "fire.db"
    run_script(EXAMPLES / "two_timescale.py", db, executor="inline", workers=1, synch=True,
               exploit={"name": "fire", "start": 6, "subpopulations": 2, "budget": 2,
                        "align": "score"})
    store = open_store(db)
    started = store.events(Kind.EVALUATION)
    stopped, succeeded = store.events(Kind.STOPPED), store.events(Kind.SUCCEEDED)
    assert started and stopped and succeeded
    state = get(client(f"sqlite:///{db}"), "/api/runs/0/strategy")["fire"]
    listed = state["evaluations"]
    assert [(e["evaluator"], e["step"], e["parent"]) for e in listed] == [
        (e.member, e.step, e.donor) for e in started]
    assert {e["outcome"] for e in listed} <= {"running", "stopped", "succeeded"}
    assert sum(e["outcome"] == "succeeded" for e in listed) == len(succeeded)
    assert sum(state["stop_reasons"].values()) == sum(e["outcome"] == "stopped" for e in listed)
    # the planted run's stops: a parent copied meanwhile, and evaluations the test rejected
    assert set(state["stop_reasons"]) == {"parent N changed",
                                          "not significant: p=N > N at N/N segments"}


def test_pb2_and_fire_state(store_factory):
    pb2, fire = store_factory("pb2"), store_factory("fire")
    pb2_and_fire_runs(pb2, fire)
    c = client(pb2.url, fire.url)
    assert get(c, "/api/runs")["runs"][0]["pb2"] is True
    segments = get(c, "/api/runs/0/strategy")["pb2"]
    assert [(s["member"], s["start"], s["step"]) for s in segments] == [(0, 4, 8)]
    state = get(c, "/api/runs/1/strategy")["fire"]
    assert state["subs"] == {"0": [4], "1": [0, 1], "2": [2, 3]}
    assert [e["id"] for e in state["evaluators"]] == [4]
