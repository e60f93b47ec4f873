"""End to end: real runs on both executors, through the API and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.paths import COUNTER, ROOT, SCRIPTS, TOY
from support.runs import run_script

import populace
from populace.cli import main
from populace.script import load_script
from populace.store import open_store

SLOW_TOY = SCRIPTS / "slow_toy.py"
EXECUTORS = ["inline", "local"]


def unique_results(store_path: Path) -> None:
    """No (member, step) result is stored twice and every member's steps only grow."""
    store = open_store(store_path)
    results = store.results()
    store.close()
    seen = set()
    for r in results:
        assert (r.member, r.step, json.dumps(r.hparams, sort_keys=True)) not in seen
        seen.add((r.member, r.step, json.dumps(r.hparams, sort_keys=True)))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_toy_run_finishes_with_exploits_and_a_schedule(tmp_path, executor):
    # two processes must overlap to copy each other: the local run's toy steps take time
    script = TOY if executor == "inline" else SLOW_TOY
    result = run_script(script, tmp_path / "toy.db", executor=executor, workers=2)
    store = open_store(tmp_path / "toy.db")
    members = store.members()
    assert [m.step for m in members] == [200, 200]
    assert all(m.status == "done" for m in members)
    assert len(store.events("exploit")) > 0
    # grid search is capped at 0.39; two workers drift apart and skip steps by copying a
    # donor ahead of them, so the bound is looser than the toy test's one-worker runs
    assert result.score > 0.9
    assert result.schedule[0].step == 0
    assert result.checkpoint is not None and result.checkpoint.is_file()
    # the schedule ends with the hparams the best member trained its last segment with
    assert result.schedule[-1].hparams == result.best.hparams


def test_local_workers_start_training_together(tmp_path, monkeypatch):
    """A worker process slow to start (importing torch, say) finds members left to train:
    the first one waits for it instead of training the whole population alone."""
    load_script(COUNTER)  # imported here first, so that only worker processes are slow
    (tmp_path / "slow").mkdir()
    (tmp_path / "pids").mkdir()
    monkeypatch.setenv("COUNTER_SLOW_START", str(tmp_path / "slow"))
    monkeypatch.setenv("COUNTER_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("COUNTER_SLEEP", "0.005")  # the run alone takes well under 2 s
    run_script(COUNTER, tmp_path / "c.db", executor="local", workers=2)
    workers = {p.name for p in (tmp_path / "pids").iterdir()} - {str(os.getpid())}
    assert len(workers) == 2  # both worker processes built members


@pytest.mark.parametrize("executor", EXECUTORS)
def test_population_larger_than_workers(tmp_path, executor):
    run_script(COUNTER, tmp_path / "c.db", executor=executor, workers=2, population=6)
    store = open_store(tmp_path / "c.db")
    assert [m.step for m in store.members()] == [20] * 6
    results = store.results()
    # every segment ends at a ready point, 4 steps after it began (or at the last step)
    assert all(r.step - r.start == 4 for r in results)
    if executor == "inline":  # one worker: 5 segments each, in turn
        assert len(results) == 6 * 5
    unique_results(tmp_path / "c.db")


def test_exploit_none_never_copies(tmp_path):
    result = run_script(TOY, tmp_path / "grid.db", exploit="none")
    store = open_store(tmp_path / "grid.db")
    assert store.events("exploit") == []
    assert result.score == pytest.approx(0.39, abs=0.01)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_exploit_own_explores_each_members_hparams_in_place(tmp_path, executor):
    """The paper's explore only: no member copies another, each one's hparams walk from
    ready point to ready point, and every score is the one those hparams train to."""
    from populace.export.rows import said

    toy = sys.modules[load_script(TOY).trainable.__module__]

    result = run_script(TOY, tmp_path / "own.db", exploit="own", executor=executor,
                        workers=2)
    store = open_store(tmp_path / "own.db")
    assert store.events("exploit") == []
    explores = store.events("explore")
    # every ready point but the last: 200 steps, ready every 4
    assert sorted((e.member, e.step) for e in explores) == [
        (m, s) for m in (0, 1) for s in range(4, 200, 4)]
    assert all(e.donor is None and e.strategy == "own+resample" for e in explores)
    assert said(explores[0]).startswith("step 4: explored its own hparams by own+resample")
    for member in (0, 1):
        results = store.results(member=member)
        assert len({json.dumps(r.hparams) for r in results}) > 40  # a walk, not one setting
        theta = np.array([0.9, 0.9])
        for r in results:  # each segment trained with the hparams it records
            h = np.array([r.hparams["h0"], r.hparams["h1"]])
            for _ in range(r.step - r.start):
                theta = theta + toy.LEARNING_RATE * (-2.0 * h * theta)
            assert r.score == pytest.approx(toy.q(theta), abs=1e-12)
    # the grid's cap is 0.39: resampling h walks both coordinates down
    assert result.score > 0.9


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failed_member_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch, executor):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    s = load_script(COUNTER)
    initial = [{"x": 0.1}, {"x": 0.2}, {"x": 0.9}, {"x": 0.3}]
    # no exploit: a copied x would inherit (or escape) the failure
    result = populace.run(s.trainable, s.space, store=tmp_path / "f.db", initial=initial,
                          script=COUNTER, progress=False, executor=executor, workers=2,
                          **{**s.config, "exploit": "none"})
    store = open_store(tmp_path / "f.db")
    members = store.members()
    assert [m.status for m in members] == ["done", "done", "failed", "done"]
    assert "x=0.9 is too large" in members[2].error
    assert "Traceback" in members[2].error
    assert [e.member for e in store.events("failed")] == [2]
    assert result.best.id == 3


def test_run_fails_only_when_every_member_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "-1")
    with pytest.raises(populace.RunFailed, match="too large"):
        run_script(COUNTER, tmp_path / "f.db", executor="inline")


def test_run_again_on_a_finished_store_resumes_without_new_work(tmp_path):
    first = run_script(TOY, tmp_path / "toy.db")
    n_results = len(open_store(tmp_path / "toy.db").results())
    again = run_script(TOY, tmp_path / "toy.db")
    assert again.best == first.best
    assert len(open_store(tmp_path / "toy.db").results()) == n_results


def test_resume_refuses_contradicting_settings(tmp_path):
    run_script(TOY, tmp_path / "toy.db")
    with pytest.raises(populace.ConfigError, match="population=2; got population=3"):
        run_script(TOY, tmp_path / "toy.db", population=3)


def _populace(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "populace.cli", *args], cwd=ROOT,
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _wait_for_results(store_path: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store_path.exists():
            try:
                if len(open_store(store_path).results()) >= n:
                    return
            except Exception:
                pass  # the store is still being created
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} results after {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_end(tmp_path, sig):
    store = tmp_path / "slow.db"
    args = ["run", str(COUNTER), "--store", str(store), "--population", "4", "--workers", "2",
            "--quiet"]
    env = {"COUNTER_SLEEP": "0.02"}
    if sig == signal.SIGKILL:
        # the killed workers' leases must expire before others reclaim their members
        config = tmp_path / "lease.yaml"
        config.write_text("lease_seconds: 1.0\n")
        args += ["--config", str(config)]
    proc = _populace(*args, env=env)
    _wait_for_results(store, 3)
    if sig == signal.SIGKILL:
        # the whole process group: the parent and its worker processes
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    done_before = len(open_store(store).results())
    assert done_before < 4 * 5, "the run finished before it was interrupted"
    resumed = _populace(*args, env=env)
    out = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, out
    members = open_store(store).members()
    assert [m.step for m in members] == [20] * 4
    assert all(m.status == "done" for m in members)
    unique_results(store)


def test_cli_status_json(tmp_path, capsys):
    assert main(["run", str(TOY), "--store", str(tmp_path / "t.db"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", str(tmp_path / "t.db"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [0, 1]
    for row in rows:
        assert {"id", "step", "score", "hparams", "generation", "parent", "status"} <= set(row)
        assert row["step"] == 200 and row["status"] == "done"
    assert main(["status", str(tmp_path / "t.db")]) == 0
    table = capsys.readouterr().out
    assert "member" in table and "done" in table and "h0" in table


def test_cli_settings_precedence(tmp_path):
    """Flags beat the config file, which beats the script's own defaults."""
    toml = tmp_path / "c.toml"
    toml.write_text('population = 3\nsteps = 12\n[exploit]\nname = "tournament"\n')
    assert main(["run", str(COUNTER), "--store", str(tmp_path / "c.db"), "--config", str(toml),
                 "--steps", "8", "--executor", "inline", "--quiet"]) == 0
    config = open_store(tmp_path / "c.db").config().run
    assert config["population"] == 3  # file over script (4)
    assert config["steps"] == 8  # flag over file (12)
    assert config["exploit"] == {"name": "tournament"}
    assert config["score"] == "total"  # script over default


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--population", "1"], "population must be >= 2, got 1"),
        (["--workers", "-1"], "workers must be >= 0, got -1"),
        (["--steps", "0"], "steps must be >= 1, got 0"),
        (["--fraction", "0.7"], "fraction"),
        (["--fraction", "0"], "fraction"),
        # the strategy flags reach FIRE-PBT too, checked as its parameters
        (["--exploit", "fire", "--significance", "0.7"], "Fire: significance"),
        (["--exploit", "fire", "--fraction", "0.6"], "Fire: fraction"),
        (["--explore", "perturb", "--factors", "0.8,-1"], "factors"),
        (["--factors", "a,b"], "factors must be numbers"),
        (["--exploit", "best"],
         "exploit must be one of truncation, tournament, ttest, none, own, fire; got 'best'"),
        (["--explore", "jitter"], "explore must be one of"),
        (["--mode", "maximise"], "mode must be one of max, min; got 'maximise'"),
        (["--ready-steps", "0"], "ready_steps must be >= 1, got 0"),
        (["--ready-seconds", "-2"], "ready_seconds must be in (0, 604,800], got -2.0"),
        (["--ready-steps", "2", "--ready-seconds", "2"], "not both"),
        (["--score", "accuracy"], "score 'accuracy' is not among the metrics"),
        (["--resample-probability", "1.5", "--explore", "perturb-or-resample"], "probability"),
    ],
)
def test_cli_refuses_bad_settings_and_writes_nothing(tmp_path, capsys, flags, message):
    store = tmp_path / "bad.db"
    code = main(["run", str(COUNTER), "--store", str(store), "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert message in " ".join(err.split())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("from populace import Float\nspace = {}\n", "must define one Trainable subclass"),
        ("import populace\nspace = {}\nclass T(populace.Trainable):\n"
         "    build=step=evaluate=save=load=apply=lambda *a: 0\n",
         "space must have at least one hparam"),
        ("from populace import Float\nspace = {'x': Float(1, 1)}\n", "low must be < high"),
        ("from populace import Float\nspace = {'x': Float(0, 1, log=True)}\n", "log"),
        ("from populace import Choice\nspace = {'x': Choice([])}\n", "Choice"),
    ],
)
def test_cli_refuses_bad_scripts(tmp_path, capsys, script, message):
    path = tmp_path / "bad_script.py"
    path.write_text(script)
    assert main(["run", str(path), "--store", str(tmp_path / "x.db"), "--quiet"]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "x.db").exists()


def test_cli_refuses_unknown_config_keys_and_non_stores(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("populaton: 4\n")
    assert main(["run", str(COUNTER), "--store", str(tmp_path / "x.db"), "--config", str(bad),
                 "--quiet"]) == 2
    assert "unknown setting 'populaton'" in capsys.readouterr().err
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all" * 100)
    assert main(["status", str(other)]) == 2
    assert main(["run", str(COUNTER), "--store", str(other), "--quiet"]) == 2


def test_cli_store_errors_are_clear_and_exit_2(tmp_path, capsys):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(["run", str(COUNTER), "--store", str(folder), "--quiet"]) == 2
    assert "(a folder): name a file" in " ".join(capsys.readouterr().err.split())
    assert main(["status", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["run", str(COUNTER), "--store", str(tmp_path / "c.db"), "--checkpoints",
                 str(a_file), "--quiet"]) == 2
    assert "checkpoints must be a folder" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists()


def test_numpy_values_in_initial_hparams_are_stored_as_plain_numbers(tmp_path):
    import numpy as np

    s = load_script(COUNTER)
    initial = [{"x": np.float64(0.1 * (i + 1))} for i in range(4)]
    populace.run(s.trainable, s.space, store=tmp_path / "n.db", initial=initial,
                 progress=False, **{**s.config, "executor": "inline", "steps": 4})
    assert [m.hparams["x"] for m in open_store(tmp_path / "n.db").members()][0] == 0.1
