"""Multi-objective PBT: the ranking is NSGA-II's, exploit uses it, and a run gives its front."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from support.paths import SCRIPTS

import populace
from populace import pareto
from populace.cli import main
from populace.config import RunConfig
from populace.errors import ConfigError
from populace.report import write_report
from populace.results import load_result
from populace.script import load_script
from populace.snapshot import Snapshot
from populace.store import Decision, open_store
from populace.strategies import Tournament, Truncation
from populace.testing.stores import run_record
from populace.testing.stores._kit import train

TWO_GOALS = SCRIPTS / "two_goals.py"


def brute_fronts(points: np.ndarray) -> list[int]:
    """Non-domination ranks by peeling: the rows no remaining row dominates, again and again."""
    n = len(points)
    valid = [not np.isnan(p).any() for p in points]
    rank = [-1] * n
    left = {i for i in range(n) if valid[i]}
    level = 0
    while left:
        front = {i for i in left if not any(
            all(points[j] >= points[i]) and any(points[j] > points[i]) for j in left)}
        for i in front:
            rank[i] = level
        left -= front
        level += 1
    return [r if valid[i] else level for i, r in enumerate(rank)]


def brute_crowding(points: np.ndarray, rank: list[int]) -> list[float]:
    """Deb et al.'s crowding distance, written out: per front and objective, the gap between
    each row's neighbours in sorted order over the front's range; the ends infinite."""
    out = [0.0] * len(points)
    for level in set(rank):
        rows = [i for i in range(len(points)) if rank[i] == level]
        if any(np.isnan(points[i]).any() for i in rows):
            continue
        for k in range(points.shape[1]):
            order = sorted(rows, key=lambda i: points[i, k])  # stable, as the code's
            lo, hi = points[order[0], k], points[order[-1], k]
            out[order[0]] = out[order[-1]] = math.inf
            for before, i, after in zip(order, order[1:], order[2:], strict=False):
                if hi > lo:
                    out[i] += (points[after, k] - points[before, k]) / (hi - lo)
    return out


values = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3), st.just(math.nan))


@settings(max_examples=200, deadline=None)
@given(arrays(float, st.tuples(st.integers(1, 12), st.integers(2, 3)), elements=values))
def test_the_ranking_matches_a_brute_force_pareto_ranking(points):
    rank = pareto.fronts(points)
    assert rank.tolist() == brute_fronts(points)
    distance = pareto.crowding(points, rank)
    expected = brute_crowding(points, brute_fronts(points))
    np.testing.assert_allclose(distance, expected, rtol=1e-9, atol=1e-12)
    order = pareto.ranking(points, np.arange(len(points)))
    # fronts in order, and within a front the least crowded first, then by id
    keys = [(rank[i], -distance[i], i) for i in order]
    assert keys == sorted(keys)
    assert sorted(order.tolist()) == list(range(len(points)))


def snapshot(points) -> Snapshot:
    points = np.asarray(points, dtype=float)
    n = len(points)
    return Snapshot(ids=np.arange(n), steps=np.full(n, 8), scores=points[:, 0],
                    hparams=[{}] * n, objectives=points)


def test_truncation_copies_onto_the_front():
    # rows 0-2 on the front, 3 dominated by 1, 4 dominated by everyone
    s = snapshot([[3, 0], [2, 2], [0, 3], [1, 1], [-1, -1]])
    assert Truncation(0.2)(s, 4, np.random.default_rng(0)) in (0, 2)  # the least crowded
    assert Truncation(0.2)(s, 1, np.random.default_rng(0)) is None
    # by score alone row 0 would be best and row 2 worst: the front keeps both
    assert Truncation(0.4)(s, 2, np.random.default_rng(0)) is None


def test_tournament_copies_only_a_rival_on_a_better_front():
    s = snapshot([[3, 0], [0, 3], [-1, -1]])
    for seed in range(10):
        rng = np.random.default_rng(seed)
        assert Tournament()(s, 0, rng) is None  # 1 and 0 do not dominate each other
        assert Tournament()(s, 2, np.random.default_rng(seed)) in (0, 1)


@pytest.mark.parametrize("objectives, match", [
    ({"a": "max"}, "objectives must be a mapping of two or more"),
    ({"a": "max", "b": "up"}, r"objectives\['b'\] must be one of max, min"),
    (["a", "b"], "objectives must be a mapping"),
])
def test_bad_objectives_are_refused(objectives, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(objectives=objectives)


def test_objectives_refuse_the_ttest_and_set_the_score():
    with pytest.raises(ConfigError, match="exploit ttest compares one score"):
        RunConfig(objectives={"a": "max", "b": "min"}, exploit="ttest")
    config = RunConfig(objectives={"b": "min", "a": "max"})
    assert (config.score, config.mode) == ("b", "min")


def test_a_multi_objective_run_gives_its_front(tmp_path, capsys):
    script = load_script(TWO_GOALS)
    store = tmp_path / "mo.db"
    populace.run(script.trainable, script.space, store=store, script=TWO_GOALS,
                 progress=False, **script.config)
    result = load_result(store)
    members = result.members
    points = np.array([m.objectives for m in members], dtype=float)
    on = [i for i, r in enumerate(brute_fronts(points)) if r == 0]
    assert [m.id for m in result.front] == [members[i].id for i in on]
    assert result.best.id in {m.id for m in result.front}
    # dominated members copied members on better fronts
    db = open_store(store)
    exploits = db.events("exploit")
    assert exploits
    assert db.snapshot().objectives.shape == (6, 2)
    # status and result show the front
    capsys.readouterr()
    assert main(["result", str(store)]) == 0
    assert "Pareto front: " in capsys.readouterr().out
    assert main(["result", str(store), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert [f["member"] for f in front] == [m.id for m in result.front]
    assert set(front[0]["objectives"]) == {"a", "b"}
    assert main(["status", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows if r["front"]] == [m.id for m in result.front]


def test_objectives_from_the_cli(tmp_path, capsys):
    store = tmp_path / "cli.db"
    assert main(["run", str(TWO_GOALS), "--store", str(store), "--quiet",
                 "--objectives", "a:max,b:min"]) == 0
    assert open_store(store).config().run["objectives"] == {"a": "max", "b": "min"}
    assert "Pareto front: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", str(TWO_GOALS), "--store", str(tmp_path / "x.db"), "--objectives", "a"])


def test_the_report_shows_the_front_over_steps_and_the_final_front(tmp_path):
    script = load_script(TWO_GOALS)
    store = tmp_path / "mo.db"
    populace.run(script.trainable, script.space, store=store, script=TWO_GOALS,
                 progress=False, **script.config)
    html = write_report(store, tmp_path / "out").read_text()
    assert (tmp_path / "out" / "front.png").stat().st_size > 0
    assert '<h2 id="front">Pareto front</h2>' in html
    table = html[html.index('<table id="front">'):]
    table = table[:table.index("</table>")]
    result = load_result(store)
    assert table.count("<tr>") == len(result.front) + 1  # the head, then each member
    for m in result.front:
        assert f"<td class=num>{m.id}</td>" in table


def test_a_run_with_one_score_has_no_front(tmp_path):
    store = tmp_path / "one.db"
    script = load_script(TWO_GOALS)
    config = {k: v for k, v in script.config.items() if k != "objectives"}
    populace.run(script.trainable, script.space, store=store, script=TWO_GOALS,
                 progress=False, **{**config, "score": "a"})
    result = load_result(store)
    assert result.front == [] and "front" not in result.to_dict()
    assert open_store(store).snapshot().objectives is None
    html = write_report(store, tmp_path / "out").read_text()
    assert "Pareto front" not in html and not (tmp_path / "out" / "front.png").exists()


def waiting_run(store_factory):
    """Three members ranked by (a max, b max); member 1 waits for member 0, 2 steps behind."""
    store = store_factory("mo")
    store.create(run_record(population=3, objectives={"a": "max", "b": "max"}),
                 [{"lr": 0.01 * (i + 1)} for i in range(3)])
    copy = lambda snapshot, member: Decision(0, {"lr": 0.5}, "test")  # noqa: E731
    train(store, 0, 2, 5.0, metrics={"a": 5.0, "b": 5.0})
    train(store, 1, 4, 1.0, metrics={"a": 1.0, "b": 1.0}, decide=copy)
    assert store.members()[1].status == "waiting"
    return store


def test_a_wait_is_carried_out_when_the_donor_is_not_dominated(store_factory):
    store = waiting_run(store_factory)
    # worse than the member in a (the score), better in b: by one score it would be dropped
    train(store, 0, 4, 0.5, metrics={"a": 0.5, "b": 9.0})
    member = store.members()[1]
    assert (member.status, member.parent, member.objectives) == ("ready", 0, [0.5, 9.0])
    assert store.events("dropped") == []


def test_a_wait_is_dropped_when_the_member_dominates_the_donor_at_its_step(store_factory):
    store = waiting_run(store_factory)
    train(store, 0, 4, 0.5, metrics={"a": 0.5, "b": 0.5})
    member = store.members()[1]
    assert (member.status, member.parent, member.objectives) == ("ready", None, [1.0, 1.0])
    (dropped,) = store.events("dropped")
    assert "no longer scores better" in dropped.detail


def test_members_at_other_steps_are_ranked_by_their_score_at_the_deciders_step():
    """(accuracy max, params min, oriented: -params). Member 1 is ahead and beats member 0
    only by training longer: at member 0's step it was worse. Member 2 is behind and is
    credited member 0's progress since member 2's step. The score (the first objective) is
    aligned as in a one-score run; the size stands as it is: training does not move it."""
    snapshot = Snapshot(
        ids=np.array([0, 1, 2]), steps=np.array([8, 16, 4]), scores=np.array([0.6, 0.8, 0.5]),
        hparams=[{}] * 3, trails=[[[4, 0.45], [8, 0.6]], [[8, 0.55], [16, 0.8]], [[4, 0.5]]],
        objectives=np.array([[0.6, -10.0], [0.8, -10.0], [0.5, -5.0]]))
    assert snapshot.better(1, 0), "as they stand, the member ahead dominates"
    aligned = snapshot.aligned(0)
    np.testing.assert_allclose(aligned.objectives, [[0.6, -10.0], [0.55, -10.0], [0.65, -5.0]])
    np.testing.assert_allclose(aligned.scores, [0.6, 0.55, 0.65])
    assert not aligned.better(1, 0) and aligned.better(0, 1)
    assert aligned.ranking()[-1] == 1, "at member 0's step, member 1 is the worst"


def test_a_decision_at_the_store_ranks_a_member_ahead_by_its_score_at_the_deciders_step(
        store_factory):
    """(a max, b min). Member 1 reports at step 2 while member 0 is at step 4, where it
    is better in both; at step 2 member 0's a was 0.1, so member 1 is not dominated."""
    store = store_factory("mo-trail")
    store.create(run_record(population=2, objectives={"a": "max", "b": "min"}),
                 [{"lr": 0.01}, {"lr": 0.02}])
    seen = []

    def decide(snapshot, member):
        seen.append(snapshot.aligned(member))
        return None

    train(store, 0, 2, 0.1, metrics={"a": 0.1, "b": 3.0})
    train(store, 0, 4, 0.9, metrics={"a": 0.9, "b": 1.0})
    train(store, 1, 2, 0.5, metrics={"a": 0.5, "b": 2.0}, decide=decide)
    (aligned,) = seen
    assert aligned.objectives.tolist() == [[0.1, -1.0], [0.5, -2.0]]
    assert not aligned.better(0, 1), "member 0 led only by its two steps more"
