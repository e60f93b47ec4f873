"""FIRE-PBT end to end: whole runs of the two-timescale toy (examples/two_timescale.py)
through the API, the CLI and a config file, on every executor (the vectorized one through
tests/scripts/vector_timescale.py).

The planted case: P2's parents X (lr 0.1, member 3) and Y, Z (lr 0.05)
start evaluations at step 60, where X's loss (0.202) is worse than Y's (0.146): X is the
slower-starting parent. Trained on with the child's lr 0.005, X's weights improve faster,
so FIRE ranks X first in P2 (truncation by score would rank it last), X's evaluator
beats the child and the child adopts it: P1's best lineage runs through X.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from support.paths import EXAMPLES, SCRIPTS
from support.processes import train_externally
from support.runs import assert_counter_curves, run_script

import populace
from populace.cli import main
from populace.lineage import lineage
from populace.script import load_script
from populace.store import Kind, Status, Store, open_store
from populace.strategies import Fire
from populace.testing import EXECUTOR_CHECKS

TOY = EXAMPLES / "two_timescale.py"
X, CHILD, EVALUATORS = 3, 0, (6, 7)
P1, P2 = (0, 1, 2), (3, 4, 5)
# evaluations start at step 60; the planted case is built for the defaults before issue 30's
# runs at 8 and 32 members: P1/P2/E = 3/3/2, the paper's fitness, budget 2
PLANTED = {"name": "fire", "start": 6, "subpopulations": 2, "evaluators": 0.25, "budget": 2,
           "align": "score"}
# two curve points a segment (its middle and its end), so a verdict's 7 within 4 segments
POINTED = {"name": "fire", "start": 1, "points": 2, "budget": 4}


def table(out: str) -> list[list[str]]:
    """The cells of each row of a table `status` printed."""
    return [[c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines()
            if line.startswith("│")]


def check_run(store: Store) -> None:
    """The run ended, its events are consistent, and every member's lineage is whole."""
    for m in store.members():  # only an evaluator may end idle
        assert m.status is not Status.IDLE or m.id in EVALUATORS, m
    for check in EXECUTOR_CHECKS:
        check(store)
    results = store.results()
    for m in store.members():
        path = lineage(m.checkpoint.id if m.checkpoint else None, results)
        # each segment of the lineage trains on from where the one before ended
        assert [r.start for r in path] == [0] + [r.step for r in path[:-1]], m.id
        assert not path or path[-1].step == m.step


def planted(store: Store) -> None:
    """FIRE picked the slower-starting parent X, and its weights reached P1."""
    evaluations = store.events(Kind.EVALUATION)
    assert evaluations and {e.member for e in evaluations} <= set(EVALUATORS)
    assert all(e.detail.endswith(f"hparams of child {CHILD} (P1)") for e in evaluations)
    assert store.events(Kind.SUCCEEDED)
    first = next(e for e in store.events(Kind.EXPLOIT) if e.member in P2)
    assert first.donor == X and first.strategy == "fire+keep"  # by score X would copy
    adopt = next(e for e in store.events(Kind.EXPLOIT) if e.strategy == "fire+adopt")
    assert adopt.member == CHILD and adopt.after == {"lr": 0.005}  # it keeps its hparams
    # every copy says why: the adopt its evaluator, the truncation its fitness against the
    # donor's, the evaluator's the weights and hparams it tests
    assert adopt.detail == (f"evaluator {adopt.donor} succeeded on its weights: takes them, "
                            "keeps its hparams")
    assert re.fullmatch(rf"bottom 25% of P2 by FIRE fitness: \S+ against member {X}'s \S+",
                        first.detail)
    for e in store.events(Kind.EXPLOIT):
        if e.strategy == "fire+evaluate":
            assert re.fullmatch(r"evaluator: trains parent \d+'s weights with child \d+'s "
                                r"hparams", e.detail), e
    assert all(e.detail for e in store.events(Kind.EXPLOIT)), "a copy without its reason"
    tested = [e for e in evaluations if e.member == adopt.donor and e.id < adopt.id][-1]
    assert tested.donor == X and tested.detail.startswith(f"parent {X} (P2)")
    child = next(m for m in store.members() if m.id == CHILD)
    assert X in {r.member for r in lineage(child.checkpoint.id, store.results())}


@pytest.mark.parametrize("synch", [True, False])
def test_fire_picks_the_slower_starting_parent(tmp_path, synch):
    result = run_script(TOY, tmp_path / "fire.db", executor="inline", workers=1, synch=synch,
                        exploit=PLANTED)
    store = open_store(tmp_path / "fire.db")
    check_run(store)
    planted(store)
    assert result.score < 0.011  # the adopted weights: v gone, u at the floor of lr 0.005


def test_burn_in_holds_back_the_members_never_an_idle_evaluator(tmp_path):
    run_script(TOY, tmp_path / "burn.db", executor="inline", workers=1, synch=True,
               exploit={"name": "fire", "start": 1}, burn_in=60)
    store = open_store(tmp_path / "burn.db")
    check_run(store)
    # an evaluator's step is its last evaluation's (0 while idle): the burn-in never holds
    # it back, and it starts at the first ready point, where P1's best has the two curve
    # points a child needs (4 a segment: the default points)
    assert min(e.donor_step for e in store.events(Kind.EVALUATION)) == 10
    copies = [e for e in store.events(Kind.EXPLOIT) if e.member not in EVALUATORS]
    assert copies and min(e.step for e in copies) >= 60


def test_plain_pbt_on_the_toy_ranks_by_score_and_copies_the_faster_start(tmp_path):
    run_script(TOY, tmp_path / "pbt.db", executor="inline", workers=1, synch=True,
               exploit={"name": "truncation", "fraction": 0.25}, burn_in=60)
    store = open_store(tmp_path / "pbt.db")
    # X (lr 0.1) is the worst of the eight by loss at every ready point: it copies a lower lr
    assert any(e.member == X and e.donor != X for e in store.events(Kind.EXPLOIT))


def through_the_cli(script: Path, db: Path, workers: int, **settings: object) -> None:
    """A run of `script` with `settings` in its config file on the external executor."""
    config = db.with_suffix(".yaml")
    config.write_text(json.dumps(settings))  # YAML reads JSON
    train_externally(script, str(db), workers, "--executor", "local", "--config", str(config))


@pytest.mark.parametrize(("executor", "workers"), [("local", 1), ("local", 2), ("ray", 1),
                                                   ("external", 1), ("external", 2)])
def test_the_planted_evaluation_succeeds_on_every_executor(tmp_path, executor, workers):
    """A success moves the evaluator's weights to the child through the executor's own
    checkpoints: synchronous, every executor makes the inline run's choice."""
    db = tmp_path / f"{executor}.db"
    if executor == "external":
        through_the_cli(TOY, db, workers, exploit=PLANTED, synch=True)
    else:
        run_script(TOY, db, executor=executor, workers=workers, synch=True, exploit=PLANTED)
    store = open_store(db)
    check_run(store)
    planted(store)


def test_the_planted_evaluation_succeeds_on_the_vectorized_executor(tmp_path):
    """The toy's members in one batched model (tests/scripts/vector_timescale.py): an
    evaluator's weights reach the child inside the batch, as through a checkpoint."""
    pytest.importorskip("torch")
    result = run_script(SCRIPTS / "vector_timescale.py", tmp_path / "vectorized.db",
                        synch=True, exploit=PLANTED)
    store = open_store(tmp_path / "vectorized.db")
    check_run(store)
    planted(store)
    assert result.score < 0.011  # the toy's physics: the inline run's bound


def test_asynchronous_evaluations_succeed_and_their_children_adopt_on_two_workers(tmp_path):
    """Two workers race, so which evaluator wins first (and which member of P1 is the child
    later) varies: every adopt takes the weights of an evaluator whose success stood when
    the child copied (an evaluator trains on after its success until the adopt, so the
    copied step may lie past it).

    The race can also leave a run without an adopt: an evaluator that runs ahead of its
    child is judged on the child's points so far, and may be stopped before a success. With
    one worker's checkpoint writes slowed by up to 0.1 s, 9 runs in 20 had a single adopt
    on this machine (most have two), and one CI run had none; so up to three runs, each
    checked whole, and at least one must adopt."""
    for attempt in range(3):
        db = tmp_path / f"local{attempt}.db"
        run_script(TOY, db, executor="local", workers=2, exploit=PLANTED)
        store = open_store(db)
        check_run(store)
        assert {m.sub for m in store.members()} == {0, 1, 2}
        events = store.events()
        adopts = [e for e in events if e.kind == Kind.EXPLOIT and e.strategy == "fire+adopt"]
        if adopts:
            break
    assert adopts, "three asynchronous runs without an adopt"
    results = store.results()
    wrote = {r.checkpoint: r for r in results if r.checkpoint is not None}
    trained_on = 0
    for adopt in adopts:
        # the evaluator's last word before the copy: its success
        last = [e for e in events if e.id < adopt.id and e.member == adopt.donor and e.kind
                in (Kind.EVALUATION, Kind.SUCCEEDED, Kind.STOPPED)][-1]
        assert adopt.member in P1 and last.kind == Kind.SUCCEEDED, (adopt, last)
        assert last.step <= adopt.donor_step
        # the child trains on from a checkpoint its evaluator wrote at the copied step
        after = [r for r in results if r.member == adopt.member and r.start == adopt.donor_step
                 and r.id > adopt.result]
        if after:  # none where the adopt came at the run's end
            source = wrote[after[0].parent]
            assert (source.member, source.step) == (adopt.donor, adopt.donor_step), adopt
            trained_on += 1
    assert trained_on


@pytest.mark.parametrize("executor", ["inline", "local", "ray", "external"])
def test_a_training_function_trains_evaluators_like_any_member(tmp_path, executor):
    """The function API: an evaluator's function restores the parent's checkpoint under the
    child's hparams, as a copy does, on every executor."""
    pytest.importorskip("torch")
    db = tmp_path / "fn.db"
    settings = {"population": 8, "steps": 60, "synch": True, "exploit": {"name": "fire"}}
    if executor == "external":
        through_the_cli(SCRIPTS / "regression_fn.py", db, 2, **settings)
    else:
        run_script(SCRIPTS / "regression_fn.py", db, executor=executor, workers=2, **settings)
    store = open_store(db)
    for check in EXECUTOR_CHECKS:
        check(store)
    evaluations = store.events(Kind.EVALUATION)
    assert evaluations
    for e in evaluations:  # the evaluator's next segment ran with the child's hparams
        after = [r for r in store.results(e.member) if r.start == e.donor_step]
        assert after and after[0].hparams == e.after


@pytest.mark.parametrize("population, sizes", [(8, (3, 3)), (16, (3, 3, 3, 3)),
                                               (32, (6, 6, 6, 6))])
def test_fire_at_its_defaults_runs_at_8_to_32_members(tmp_path, population, sizes):
    """Issue 30: `exploit: fire` with no parameters lays out the populations users run on
    one machine as measured (a quarter evaluators), and its evaluations start."""
    db = tmp_path / "fire.db"
    run_script(SCRIPTS / "counter.py", db, population=population, steps=40, synch=True,
               executor="inline", workers=1, exploit={"name": "fire"})
    store = open_store(db)
    expected = [k for k, size in enumerate(sizes, start=1) for _ in range(size)]
    assert [m.sub for m in sorted(store.members(), key=lambda m: m.id)] == (
        expected + [0] * (population // 4))
    assert store.events(Kind.EVALUATION)
    for check in EXECUTOR_CHECKS:
        check(store)


def test_fire_from_the_cli_and_a_config_file(tmp_path):
    db = tmp_path / "cli.db"
    assert main(["run", str(TOY), "--store", str(db), "--quiet", "--executor", "inline",
                 "--exploit", "fire", "--synch"]) == 0
    store = open_store(db)
    assert store.config().run["exploit"] == {"name": "fire"}  # the defaults: start 1
    check_run(store)
    assert store.events(Kind.EVALUATION)
    config = tmp_path / "fire.yaml"
    config.write_text("exploit: {name: fire, start: 6, significance: 0.01, subpopulations: 2,"
                      " evaluators: 0.25, budget: 2, align: score}\nsynch: true\n")
    db = tmp_path / "config.db"
    assert main(["run", str(TOY), "--store", str(db), "--quiet", "--executor", "inline",
                 "--config", str(config)]) == 0
    store = open_store(db)
    assert store.config().run["exploit"]["start"] == 6
    check_run(store)
    planted(store)


def test_fire_from_the_api_as_an_object(tmp_path):
    s = load_script(TOY)
    planted_settings = {k: v for k, v in PLANTED.items() if k != "name"}
    populace.run(s.trainable, s.space, store=tmp_path / "api.db", initial=s.initial,
                 progress=False, **{**s.config, "exploit": Fire(**planted_settings),
                                    "synch": True,
                                    "executor": "inline", "workers": 1})
    store = open_store(tmp_path / "api.db")
    check_run(store)
    planted(store)


def test_a_run_without_initial_hparams_starts_from_fires_space_filling_draw(tmp_path):
    s = load_script(TOY)
    fire = Fire(subpopulations=3, evaluators=0.25)
    populace.run(s.trainable, s.space, store=tmp_path / "drawn.db", progress=False,
                 **{**s.config, "population": 9, "steps": 20, "seed": 11, "exploit": fire})
    first = {r.member: r.hparams for r in open_store(tmp_path / "drawn.db").results()
             if r.start == 0}
    expected = fire.initial(populace.Space(s.space), 9, np.random.default_rng(11))
    assert fire.layout(9).sizes == (3, 2, 2)  # members 0 to 6; evaluators 7 and 8
    assert [first[m] for m in range(7)] == expected[:7]
    assert all(first[m] == expected[m] for m in first)  # an evaluator's, if it trained


def test_status_shows_sub_populations_evaluators_and_their_events(tmp_path, capsys):
    db = tmp_path / "status.db"
    run_script(TOY, db, executor="inline", workers=1, synch=True, exploit=PLANTED)
    capsys.readouterr()
    assert main(["status", str(db)]) == 0
    out = capsys.readouterr().out
    rows = {cells[0]: cells[1] for cells in table(out) if cells[0].isdigit()}  # -> sub
    assert rows == {"0": "P1", "1": "P1", "2": "P1", "3": "P2", "4": "P2", "5": "P2",
                    "6": "E", "7": "E"}
    assert "evaluates" in out
    assert main(["status", str(db), "--json"]) == 0
    members = json.loads(capsys.readouterr().out)
    assert [(m["sub"], m["role"]) for m in members][5:] == [
        (2, "member"), (0, "evaluator"), (0, "evaluator")]
    for m in members[6:]:  # an evaluator tests parent -> child, or idles
        assert m["evaluation"] is None or {"parent", "child", "state"} <= set(m["evaluation"])
    assert main(["status", str(db), "--events", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    details = {e["kind"]: e["detail"] for e in events}
    assert details["evaluation"].startswith("parent ") and "(P2) with the hparams of child 0" \
        in details["evaluation"]
    # the last success: all of 9 aligned points better (4 a segment decide within 2)
    assert details["succeeded"] == "p=0.002, best-score difference 0.67 over 9 points"
    assert any(e["kind"] == "stopped" and e["detail"] == "adopted by child 0" for e in events)


def test_status_shows_idle_evaluators_before_they_start(tmp_path, capsys):
    s = load_script(TOY)
    db = tmp_path / "idle.db"
    populace.run(s.trainable, s.space, store=db, initial=s.initial, progress=False,
                 **{**s.config, "exploit": PLANTED, "executor": "inline", "workers": 1,
                    "steps": 10})
    capsys.readouterr()
    assert main(["status", str(db)]) == 0
    evaluators = [cells for cells in table(capsys.readouterr().out) if cells[0] in ("6", "7")]
    # one segment, no decision at the last step: they never left idle, never a step
    assert [line[1:3] for line in evaluators] == [["E", "0"], ["E", "0"]]
    assert all("idle" in line and "-" in line for line in evaluators)


def test_the_progress_line_counts_idle_evaluators(tmp_path):
    """Idle evaluators never reach the last step: the line says why the bar stops short."""
    from populace.display import Display

    s = load_script(TOY)
    db = tmp_path / "line.db"
    populace.run(s.trainable, s.space, store=db, initial=s.initial, progress=False,
                 **{**s.config, "exploit": PLANTED, "steps": 10})
    display = Display(str(db), 80)
    display._update(open_store(db).progress())
    assert display._progress.tasks[0].fields["summary"] == (
        "members 8 | running 0 | done 6 | idle 2 | best 0.5485 | exploits 0")


@pytest.mark.parametrize("executor", ["inline", "local"])
@pytest.mark.parametrize("script", ["counter.py", "counter_fn.py"])
def test_each_segment_records_fires_points_into_the_curves(tmp_path, executor, script):
    """`points`: a Trainable's worker evaluates, and a training function's report is
    taken, in the middle of each segment too, on either executor; evaluations decide."""
    if script == "counter_fn.py":
        pytest.importorskip("torch")
    db = tmp_path / "points.db"
    run_script(SCRIPTS / script, db, population=8, steps=40, executor=executor,
               workers=2 if executor == "local" else 1, exploit=POINTED)
    store = open_store(db)
    for check in EXECUTOR_CHECKS:
        check(store)
    assert_counter_curves(store, every=2)
    assert store.events(Kind.EVALUATION)


def test_a_nan_score_inside_a_segment_fails_it_and_the_retry_records_its_points(tmp_path,
                                                                              monkeypatch):
    """A curve point is checked as a segment's end is: each member's first score after
    training, at the mark inside its first segment (2 steps in), is NaN once; the segment
    fails there, and its retry records the point. An evaluator's first segment is its
    first evaluation's, from its parent's step."""
    (tmp_path / "once").mkdir()
    monkeypatch.setenv("COUNTER_NAN_ONCE", str(tmp_path / "once"))
    db = tmp_path / "nan.db"
    run_script(SCRIPTS / "counter.py", db, population=8, steps=40, executor="inline",
               workers=1, retries=1, exploit=POINTED)
    store = open_store(db)
    retries = store.events("retry")
    assert sorted(e.member for e in retries) == list(range(8))
    assert all(e.detail.startswith(f"score is nan at step {e.step + 2} ") for e in retries)
    members = sum(Fire(**{k: v for k, v in POINTED.items() if k != "name"}).layout(8).sizes)
    assert {e.member for e in retries if e.step == 0} == set(range(members))  # P1 and P2
    assert store.events("failed") == []
    assert_counter_curves(store, every=2)
