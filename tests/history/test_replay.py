"""Replay: one member retrains from scratch on the schedule PBT discovered."""

from __future__ import annotations

import shutil

import pytest
from support.paths import SCRIPTS, TOY

import populace
from populace.cli import main
from populace.replay import replay
from populace.report import write_report
from populace.results import result_of
from populace.script import load_script
from populace.segment import member_seed
from populace.store import RunRecord, open_store
from populace.strategies import space_to_dict

toy = load_script(TOY)


class ScriptlessToy(toy.trainable):
    """The toy, defined in an importable module rather than run from a script."""


def test_replay_follows_the_schedule_step_by_step(tmp_path, capsys):
    store = tmp_path / "toy.db"
    assert main(["run", str(TOY), "--store", str(store), "--quiet"]) == 0
    done = replay(store, progress=False)
    assert done.store == tmp_path / "toy.replay.db"
    entries = done.schedule
    assert len(entries) > 1, "the toy's best lineage changes hparams"
    replayed = open_store(done.store)
    (member,) = replayed.members()
    assert (member.step, member.status) == (200, "done")
    assert replayed.events("exploit") == []

    def in_force(step):
        return [e for e in entries if e["step"] <= step][-1]["hparams"]

    results = replayed.results()
    # segments are cut at every schedule change, and each trained with the entry in force
    assert {e["step"] for e in entries} <= {r.start for r in results}
    for r in results:
        assert r.hparams == in_force(r.start)
    # the toy is deterministic: the schedule alone gives back PBT's best score
    assert done.score == pytest.approx(done.pbt_score, abs=1e-9)


def test_replay_cli_prints_both_scores_and_the_replay_is_a_run_like_any_other(tmp_path, capsys):
    store = tmp_path / "toy.db"
    assert main(["run", str(TOY), "--store", str(store), "--quiet"]) == 0
    out = tmp_path / "again.db"
    assert main(["replay", str(store), "--out", str(out), "--quiet"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "score: replay 1.197, PBT's best member 1.197" in printed
    assert main(["status", str(out), "--json"]) == 0
    page = write_report(out)
    assert page.is_file()


def test_replay_of_a_moved_run_takes_its_script_where_it_is_now(tmp_path, capsys):
    shutil.copy(TOY, tmp_path / "toy.py")
    store = tmp_path / "toy.db"
    assert main(["run", str(tmp_path / "toy.py"), "--store", str(store), "--quiet"]) == 0
    (tmp_path / "toy.py").rename(tmp_path / "moved.py")  # the script is elsewhere now
    capsys.readouterr()
    assert main(["replay", str(store), "--quiet"]) == 2
    assert "give its path here with --script" in capsys.readouterr().err
    assert main(["replay", str(store), "--script", str(tmp_path / "moved.py"), "--quiet"]) == 0
    assert "score: replay 1.197, PBT's best member 1.197" in " ".join(
        capsys.readouterr().out.split())


def test_replay_of_a_run_without_a_script_imports_its_trainable(tmp_path):
    result = populace.run(ScriptlessToy, toy.space, store=tmp_path / "t.db", initial=toy.initial,
                          progress=False, population=2, steps=40, ready_steps=4,
                          explore="resample", executor="inline")
    done = replay(tmp_path / "t.db", progress=False)
    assert done.pbt_score == result.score
    assert done.score == pytest.approx(result.score, abs=1e-9)


def test_replay_of_a_missing_store_is_refused(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nothing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()


def test_a_training_function_follows_a_replayed_schedule(tmp_path):
    """The function API's loop gets each schedule entry in force, in its optimizer too."""
    script = SCRIPTS / "regression_fn.py"
    s = load_script(script)
    schedule = [{"step": 0, "hparams": {"lr": 0.01, "momentum": 0.0}},
                {"step": 6, "hparams": {"lr": 0.2, "momentum": 0.5}},
                {"step": 14, "hparams": {"lr": 0.05, "momentum": 0.9}}]
    populace.run(s.trainable, s.space, store=tmp_path / "fn.db", script=script, progress=False,
                 initial=[schedule[0]["hparams"]], population=1, exploit="none",
                 schedule=schedule, steps=20, ready_steps=4, score="loss", mode="min",
                 executor="inline")

    def in_force(step):
        return [e for e in schedule if e["step"] <= step][-1]["hparams"]

    results = open_store(tmp_path / "fn.db").results()
    assert {0, 6, 14} <= {r.start for r in results}  # segments are cut at each change
    for r in results:
        assert r.hparams == in_force(r.start)
        assert r.metrics["lr"] == pytest.approx(in_force(r.start)["lr"])  # what SGD used


def test_replay_of_a_run_without_results_is_refused(tmp_path, capsys):
    script = SCRIPTS / "counter.py"
    s = load_script(script)
    store = open_store(tmp_path / "empty.db")
    from populace.config import RunConfig

    store.create(RunRecord(run=RunConfig(**s.config).to_dict(), space=space_to_dict(s.space),
                           checkpoints=str(tmp_path / "c"), script=str(script),
                           trainable="x:y"), [{"x": 0.5}] * 4)
    assert main(["replay", str(tmp_path / "empty.db")]) == 2
    assert "no member of the run" in capsys.readouterr().err


class Seeded(toy.trainable):
    """The toy, scored by the seed its member was built with: a replay shows its seed."""

    def build(self, hparams, seed):
        super().build(hparams, seed)
        self.seed = seed

    def evaluate(self):
        return (self.seed % 10007) / 10007


def test_replay_trains_with_the_run_seed_unless_given_another(tmp_path, capsys):
    populace.run(Seeded, toy.space, store=tmp_path / "s.db", initial=toy.initial,
                 progress=False, population=2, steps=8, ready_steps=4, seed=3,
                 executor="inline")
    same = replay(tmp_path / "s.db", progress=False)
    assert main(["replay", str(tmp_path / "s.db"), "--out", str(tmp_path / "other.db"),
                 "--seed", "11", "--quiet"]) == 0
    for store, seed in ((same.store, 3), (tmp_path / "other.db", 11)):
        db = open_store(store)
        try:
            assert db.config().run["seed"] == seed
            (member,) = db.members()
        finally:
            db.close()
        assert member.score == (member_seed(seed, 0) % 10007) / 10007


def test_replay_of_a_chosen_member_follows_its_own_schedule(tmp_path, capsys):
    store = tmp_path / "toy.db"
    assert main(["run", str(TOY), "--store", str(store), "--quiet"]) == 0
    db = open_store(store)
    best = result_of(db).best.id
    other = 1 - best
    expected = [{"step": e.step, "hparams": e.hparams} for e in result_of(db, other).schedule]
    db.close()
    capsys.readouterr()
    out = tmp_path / "other.db"
    assert main(["replay", str(store), "--member", str(other), "--out", str(out),
                 "--quiet"]) == 0
    assert f"PBT's member {other}" in capsys.readouterr().out
    assert replay(store, tmp_path / "again.db", progress=False, member=other).schedule == \
        expected
    assert main(["replay", str(store), "--member", "7", "--quiet"]) == 2
    assert "has members 0 to 1, not 7" in capsys.readouterr().err
