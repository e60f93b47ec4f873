"""FIRE-PBT through the store: a planted population driven by `Store.report` with a
`decide` built on `Fire.plan`, on every backend; and the schema 4 -> 5 upgrade.

The population (mode min, 7 members): P1 = {0, 1}, P2 = {2, 3, 4}, evaluators 5 and 6.
Member 0 is the child (P1's best). Evaluator 5, on parent 2's weights with the child's
hparams, halves its loss each segment: it beats the child from the same score, succeeds
after 7 points, and the child adopts it. Evaluator 6, on parent 3, hardly moves, so
parent 3 ranks below parent 2 by FIRE fitness and copies it: its evaluation stops with
"parent 3 changed", and evaluator 6 moves on to the free parent 4.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.paths import ROOT

from populace.snapshot import Snapshot
from populace.store import Event, Kind, Status, Store, StoreError, open_store
from populace.store.migrate import OLDEST, upgradable
from populace.store.schema import SCHEMA_VERSION
from populace.strategies import Fire, Keep, space_from_dict
from populace.strategies.fire import Evaluation, State
from populace.strategies.firedecide import fire_decide
from populace.testing.stores import report, run_record
from populace.testing.stores._kit import LR_SPACE

FIRE = Fire(points=1, budget=10, smoothing=1, align="score")  # the paper's fitness
EXPLOIT = {"name": "fire", "points": 1, "budget": 10, "smoothing": 1, "align": "score"}
GROUPS = [1, 1, 2, 2, 2, 0, 0]
CHILD, EVALUATORS = 0, (5, 6)
FIRST = {0: 1.0, 1: 1.2, 2: 1.5, 3: 1.4, 4: 1.45}  # each member's first loss
FIXTURES = Path(__file__).parent / "fixtures"
V4 = "2163e0e"  # the last populace commit that wrote schema 4


def loss(member: int, score: float | None) -> float:
    """The loss a member reports after a segment from `score`, its row's loss now."""
    if score is None:
        return FIRST[member]
    if member == 5:
        return score * 0.5  # parent 2's weights under the child's hparams: fast
    if member == 6:
        return score - 0.001  # parent 3's: slow, never reaching the child's start
    return score - (0.005 if member == CHILD else 0.0)


def decide() -> Any:
    return fire_decide(FIRE, Keep(), space_from_dict(LR_SPACE), seed=0, explore_name="keep")


def new_run(store: Store, synch: bool = False) -> Store:
    record = run_record("min", len(GROUPS), exploit=EXPLOIT, synch=synch)
    assert record.curve == FIRE.curve
    record = replace(record, run={**record.run, "steps": 1000})  # no donor finishes
    store.create(record, [{"lr": 0.01 * (i + 1)} for i in range(len(GROUPS))], GROUPS)
    return store


def drive(store: Store, segments: int, until: int = 10_000) -> None:
    """Train `segments` segments, each on the member furthest behind, as workers do."""
    decision = decide()
    for _ in range(segments):
        member = store.claim("w", 60.0)
        if member is None or member.step >= until:
            if member is not None:
                store.release("w", member.id)
            return
        step = member.step + 10
        store.report(report(member.id, "w", step, loss(member.id, member.score),
                            hparams=member.hparams), decision, keep=10)


def fire_events(store: Store) -> list[Event]:
    kinds = (Kind.EVALUATION, Kind.STOPPED, Kind.SUCCEEDED)
    return [e for e in store.events() if e.kind in kinds
            or (e.kind in (Kind.EXPLOIT, Kind.WAIT) and e.strategy.startswith("fire+")
                and e.member != 1)]  # member 1 copies the child in P1: ordinary PBT


def story(store: Store) -> list[tuple[str, int, int | None, str]]:
    """FIRE's events as (kind, member, donor, what): a copy's strategy, another's detail."""
    return [(str(e.kind), e.member, e.donor,
             e.strategy if e.kind == Kind.EXPLOIT else e.detail or e.strategy)
            for e in fire_events(store)]


def test_create_fixes_the_layout_and_evaluators_start_idle(store_factory):
    store = new_run(store_factory())
    members = store.members()
    assert [m.status for m in members] == ["ready"] * 5 + ["idle"] * 2
    snapshot = store.snapshot()
    assert snapshot.groups.tolist() == GROUPS
    assert snapshot.changes.tolist() == [0] * 7
    assert list(snapshot.curves) == [[]] * 7 and list(snapshot.evaluations) == [None] * 7
    # an idle evaluator is never handed to a worker
    claimed = {store.claim("w", 60.0).id for _ in range(5)}
    assert claimed == {0, 1, 2, 3, 4} and store.claim("w", 60.0) is None


@pytest.mark.parametrize("groups", [[1, 1], [1, 1, -1], [1, 1, 2.0], [True, 1, 1]])
def test_create_refuses_groups_that_are_not_one_int_per_member(store_factory, groups):
    store = store_factory()
    with pytest.raises(StoreError, match=r"groups must hold one int >= 0 per member \(3\)"):
        store.create(run_record("min", 3), [{"lr": 0.1}] * 3, groups)
    assert not store.exists()


def test_an_ordinary_run_reads_none_of_fires_columns(new_store):
    store = new_store(population=3)
    snapshot = store.snapshot()
    assert snapshot.groups is None and snapshot.changes is None
    assert snapshot.curves == () and snapshot.evaluations == () and snapshot.evaluated == ()


def test_the_evaluator_starts_succeeds_and_the_child_adopts(store_factory):
    store = new_run(store_factory())
    drive(store, 7)  # the first segment of 0..4, and 0's second: the child has 2 points
    assert story(store) == [
        ("exploit", 5, 2, "fire+evaluate"),
        ("evaluation", 5, 2, "parent 2 (P2) with the hparams of child 0 (P1)"),
        ("exploit", 6, 3, "fire+evaluate"),
        ("evaluation", 6, 3, "parent 3 (P2) with the hparams of child 0 (P1)"),
    ]
    five = store.members()[5]
    assert five.status == "ready" and five.hparams == store.members()[CHILD].hparams
    assert five.checkpoint.member == 2 and five.step == 10
    snapshot = store.snapshot()
    evaluation = Evaluation.from_dict(snapshot.evaluations[5])
    assert (evaluation.parent, evaluation.child, evaluation.state) == (2, 0, State.RUNNING)
    assert snapshot.curves[5] == [[10, 1.5]]  # its curve starts at the parent's score
    assert snapshot.evaluated[2] == 10 and snapshot.evaluated[3] == 10

    drive(store, 80, until=150)
    events = story(store)
    succeeded = events.index(("succeeded", 5, None,
                              "p=0.0078, best-score difference 0.96 over 7 points"))
    adopted = events.index(("exploit", CHILD, 5, "fire+adopt"))
    stopped = events.index(("stopped", 5, CHILD, "adopted by child 0"))
    assert succeeded < adopted < stopped
    child = store.members()[CHILD]
    assert child.hparams == {"lr": 0.01}  # an adopt keeps the child's own hparams
    assert (child.parent, child.generation) == (5, 2)  # 5 copied 2, then 0 copied 5
    after = store.snapshot()
    assert after.curves[CHILD][0] == [10, 1.5]  # the evaluator's curve came with its weights


def test_a_parent_that_changes_stops_its_evaluation_and_the_evaluator_moves_on(store_factory):
    store = new_run(store_factory())
    drive(store, 30)
    events = story(store)
    copy = events.index(("exploit", 3, 2, "fire+keep"))  # 3 ranks below 2 by fitness
    stop = events.index(("stopped", 6, None, "parent 3 changed"))
    moved = events.index(("evaluation", 6, 4, "parent 4 (P2) with the hparams of child 0 (P1)"))
    assert copy < stop < moved
    # the copy counted as a change of parent 3; 5's evaluation of parent 2 runs on
    snapshot = store.snapshot()
    assert snapshot.changes[3] >= 1
    five = Evaluation.from_dict(snapshot.evaluations[5])
    assert (five.parent, five.state) == (2, State.RUNNING)


def test_kill_and_reopen_loses_nothing(store_factory):
    store = new_run(store_factory("run"))
    drive(store, 40)
    before, events = store.snapshot(), store.events()
    store.close()
    again = store_factory("run")  # another connection, as a new process would open
    after = again.snapshot()
    for column in ("groups", "changes"):
        assert getattr(after, column).tolist() == getattr(before, column).tolist()
    for column in ("curves", "evaluated", "evaluations", "hparams"):
        assert list(getattr(after, column)) == list(getattr(before, column))
    assert again.events() == events
    drive(again, 60, until=150)  # and it trains on to the end from there
    assert any(e.kind == Kind.SUCCEEDED for e in again.events())


def test_a_synchronous_run_starts_and_judges_evaluations_by_generation(store_factory):
    store = new_run(store_factory(), synch=True)
    drive(store, 400, until=150)
    events = story(store)
    starts = [e for e in events if e[0] == "evaluation"]
    assert starts[:2] == [("evaluation", 5, 2, "parent 2 (P2) with the hparams of child 0 (P1)"),
                          ("evaluation", 6, 3, "parent 3 (P2) with the hparams of child 0 (P1)")]
    assert ("exploit", CHILD, 5, "fire+adopt") in events
    assert ("stopped", 6, None, "parent 3 changed") in events
    # a generation decides once: every member stands at one step when it ends
    steps = {m.step for m in store.members() if m.status in (Status.READY, Status.DONE)}
    assert len(steps) == 1


def test_fire_falls_back_to_truncation_on_a_plain_snapshot():
    snapshot = Snapshot(ids=np.arange(4), steps=np.full(4, 10), scores=np.array(
        [0.1, 0.9, 0.5, 0.7]), hparams=[{}] * 4)
    assert FIRE(snapshot, 0, np.random.default_rng(0)) in (1, 3)
    assert FIRE(snapshot, 1, np.random.default_rng(0)) is None


# -- the upgrade of a schema-4 store -----------------------------------------------------


def test_the_upgrade_steps_reach_this_schema():
    assert SCHEMA_VERSION == 6 and OLDEST == 3
    assert upgradable(5) and upgradable(4) and upgradable(3)
    assert not upgradable(2) and not upgradable(6)


def _check_upgraded(store: Store) -> None:
    """A store written by populace at schema 4 reads and trains on at schema 5."""
    assert store.meta("schema_version") == SCHEMA_VERSION
    members = store.members()
    assert [m.step for m in members] == [4, 4, 4]
    assert (members[1].parent, members[1].hparams) == (0, {"lr": 0.5})
    assert [e.kind for e in store.events()] == ["exploit"]
    snapshot = store.snapshot()  # an ordinary run: none of FIRE's columns
    assert snapshot.groups is None and snapshot.curves == ()
    with store.driver.read() as cur:
        cur.execute("SELECT sub, role, changes, curve, evaluated, evaluation FROM members"
                    " ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "member", 0, "[]", None, None)] * 3
    member = store.claim("w", 60.0)
    outcome = store.report(report(member.id, "w", 8, 0.7, hparams=member.hparams), None, 10)
    assert outcome.accepted


def test_a_schema_4_sqlite_store_is_upgraded_on_opening(tmp_path):
    path = tmp_path / "v4.db"
    shutil.copy(FIXTURES / "v4.db", path)
    store = open_store(path)
    _check_upgraded(store)
    store.close()
    again = open_store(path)  # once upgraded, it opens as any store of this version
    assert again.meta("schema_version") == SCHEMA_VERSION
    assert [m.step for m in again.members()] == [8, 4, 4]


def _old_populace(tmp_path: Path) -> Path:
    """populace's src at the last schema-4 commit, or skip where git cannot give it."""
    src = tmp_path / "v4src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", V4, "src/populace"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"git cannot give populace {V4} here: {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return src / "src"


def test_a_schema_4_postgresql_store_is_upgraded_on_opening(tmp_path):
    from support.postgres import schema_url

    url = schema_url()
    done = subprocess.run([sys.executable, str(FIXTURES / "write_v4_store.py"), url],
                          env={"PYTHONPATH": str(_old_populace(tmp_path)), "PATH": "/usr/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4"  # the old populace wrote it
    store = open_store(url)
    _check_upgraded(store)
    store.close()


def test_a_store_newer_than_this_populace_is_still_refused(tmp_path):
    path = tmp_path / "v4.db"
    shutil.copy(FIXTURES / "v4.db", path)
    store = open_store(path)
    with store.driver.write() as cur:
        cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}; this populace "
                                         f"reads version {SCHEMA_VERSION}"):
        open_store(path).members()



def test_fire_settings_a_run_reads_and_points_refused_without_a_segment_length():
    from populace.config import RunConfig
    from populace.errors import ConfigError

    # the default Fire is a run's as it is: 4 points a segment, its layout by the population
    config = RunConfig(population=8, steps=100, exploit={"name": "fire"})
    assert (config.curve(), config.groups(), config.points()) == (128, [1, 1, 1, 2, 2, 2, 0, 0], 4)
    assert RunConfig(population=16, steps=100, exploit={"name": "fire"}).groups() == [
        1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 0, 0, 0, 0]
    assert RunConfig(population=8, steps=100, exploit={"name": "fire", "points": 1,
                                                        "budget": 7}).points() == 1
    assert RunConfig(population=8, steps=100).groups() is None
    with pytest.raises(ConfigError, match="points=4 spreads curve points.*use ready_steps"):
        RunConfig(population=8, steps=100, ready_seconds=5.0,
                  exploit={"name": "fire", "points": 4, "budget": 2})
    RunConfig(population=8, steps=100, ready_seconds=5.0,
              exploit={"name": "fire", "points": 1, "budget": 7})
    with pytest.raises(ConfigError, match="needs population >= 5"):
        RunConfig(population=4, steps=100, exploit={"name": "fire", "points": 1, "budget": 8})


def test_an_evaluation_whose_parent_cannot_donate_leaves_the_evaluator_idle(store_factory):
    store = store_factory()
    record = run_record("min", len(GROUPS), exploit=EXPLOIT)  # 100 steps
    store.create(record, [{"lr": 0.01 * (i + 1)} for i in range(len(GROUPS))], GROUPS)
    drive(store, 200)  # the members reach the end: an evaluator's next parent has finished
    dropped = [e for e in store.events("dropped") if e.member in EVALUATORS]
    for e in dropped:
        assert e.strategy == "fire+evaluate" and "finished training" in e.detail
    rows = {m.id: m for m in store.members()}
    snapshot = store.snapshot()
    for evaluator in EVALUATORS:
        row = snapshot.index(evaluator)
        # never an old evaluation left behind on an idle evaluator
        assert rows[evaluator].status != Status.IDLE or snapshot.evaluations[row] is None
