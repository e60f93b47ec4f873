"""What a new user reaches for in the first hour: the version, the best member's
checkpoint and schedule as data, the results as a table, clear command-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import COUNTER, TOY

import populace
from populace.cli import main
from populace.store import open_store


@pytest.fixture
def finished(tmp_path) -> Path:
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "8"]) == 0
    return store


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"populace {populace.__version__}"


def test_an_unknown_flag_is_named_with_its_commands_usage(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "x.py", "--store", "x.db", "--bogus"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "usage: populace run" in err and "unrecognized arguments: --bogus" in err


def test_a_folder_given_as_the_script_is_named_a_folder(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--store", str(tmp_path / "x.db")]) == 2
    assert "(a folder): name the .py file" in capsys.readouterr().err


def test_the_run_prints_the_best_members_checkpoint(tmp_path, capsys):
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    best = populace.load_result(store)
    assert f"its checkpoint: {best.checkpoint}" in out
    assert Path(best.checkpoint).is_file()


def test_result_gives_the_best_member_its_checkpoint_and_schedule_as_json(finished, capsys):
    capsys.readouterr()
    assert main(["result", str(finished), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    best = populace.load_result(finished)
    assert data["member"] == best.best.id and data["score"] == best.score
    assert data["checkpoint"] == str(best.checkpoint) and Path(data["checkpoint"]).is_file()
    assert data["schedule"] == [{"step": e.step, "hparams": e.hparams, "member": e.member}
                                for e in best.schedule]
    assert data["schedule"][0]["step"] == 0
    assert main(["result", str(finished)]) == 0
    assert "its schedule" in capsys.readouterr().out


def test_status_heads_the_score_by_its_metric_and_says_what_gen_is(finished, capsys):
    capsys.readouterr()
    assert main(["status", str(finished)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "total (max)" in out  # the counter's score is its metric "total", maximized
    assert "gen: copies along the lineage; parent: last donor" in out


def test_the_progress_line_says_the_workers_are_starting_until_one_trains(finished):
    """Worker processes import the script (torch takes seconds) before the first claim:
    "running 0" then would read as a run that hangs."""
    from populace.display import Display

    display = Display(str(finished), 32)

    def summary(explores: int = 0, **status: int) -> str:
        display._update({"status": status, "steps": 0 if "running" not in status else 4,
                         "best": None, "exploits": 0, "explores": explores})
        return display._progress.tasks[0].fields["summary"]

    assert summary(ready=4) == "members 4 | waiting for the workers to start"
    assert summary(ready=3, running=1) == "members 4 | running 1 | done 0 | best - | exploits 0"
    assert summary(explores=2, ready=3, running=1).endswith("exploits 0 | explores 2")


def test_status_json_gives_each_members_checkpoint(finished, capsys):
    capsys.readouterr()
    assert main(["status", str(finished), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    members = open_store(finished).members()
    for row, member in zip(rows, members, strict=True):
        assert row["checkpoint"].endswith(member.checkpoint.key)
        assert Path(row["checkpoint"]).is_file()


def test_load_result_reads_a_run_without_resuming_it(finished):
    results = len(open_store(finished).results())
    result = populace.load_result(finished)
    assert result.best.step == 8 and result.score is not None
    assert len(open_store(finished).results()) == results
    with pytest.raises(populace.store.StoreError, match="does not exist"):
        populace.load_result(finished.with_name("none.db"))


def test_the_results_as_a_dataframe(finished):
    frame = populace.load_result(finished).dataframe()
    results = open_store(finished).results()
    assert len(frame) == len(results)
    assert {"member", "start", "step", "score", "metric_total", "hparam_x"} <= set(frame)
    assert list(frame["score"]) == [r.score for r in results]
    assert list(frame["hparam_x"]) == [r.hparams["x"] for r in results]


def test_status_events_lists_every_kind(tmp_path, monkeypatch, capsys):
    store = tmp_path / "run.db"
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "4", "--exploit", "none"]) == 0
    capsys.readouterr()
    assert main(["status", str(store), "--events", "--json"]) == 0
    kinds = {row["kind"] for row in json.loads(capsys.readouterr().out)}
    assert "failed" in kinds


SCRIPT = '''
from populace import Float, Trainable
{extra}
space = {{"x": Float(0.0, 1.0)}}
config = {{"population": 2, "steps": 4, "ready_steps": 2}}


class Probe(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        self.apply(hparams)

    def apply(self, hparams):
        self.x = hparams[{key!r}]

    def step(self):
        self.total += self.x

    def evaluate(self):
        return {evaluate}

    def save(self, path):
        {save}

    def load(self, path):
        self.total = float(path.read_text())
'''


def _script(tmp_path: Path, *, extra: str = "", key: str = "x", evaluate: str = "self.total",
            save: str = "path.write_text(str(self.total))") -> Path:
    path = tmp_path / "probe.py"
    path.write_text(SCRIPT.format(extra=extra, key=key, evaluate=evaluate, save=save))
    return path


def _cli_run(script: Path, tmp_path: Path, *flags: str) -> int:
    return main(["run", str(script), "--store", str(tmp_path / "p.db"), "--executor",
                 "inline", "--quiet", *flags])


def test_a_bad_dimension_in_a_script_names_its_line(tmp_path, capsys):
    script = tmp_path / "bad.py"
    script.write_text('from populace import Float\nspace = {\n    "lr": Float(1.0, 0.0),\n}\n')
    assert _cli_run(script, tmp_path) == 2
    err = capsys.readouterr().err
    assert 'bad.py, line 3 ("lr": Float(1.0, 0.0),): Float: low must be < high' in err


def test_noise_without_a_scale_names_the_flag(tmp_path, capsys):
    assert _cli_run(_script(tmp_path), tmp_path, "--explore", "noise") == 2
    assert "--explore noise needs --noise-scale" in capsys.readouterr().err


@pytest.mark.parametrize("evaluate, words", [
    ("None", "evaluate returned None: it must return the score"),
    ('{"accuracy": self.total}', "set score='accuracy' (--score) to rank by it"),
    ('{"score": "high"}', "got score='high'"),
])
def test_what_evaluate_returns_is_checked_before_the_run(tmp_path, capsys, evaluate, words):
    assert _cli_run(_script(tmp_path, evaluate=evaluate), tmp_path) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "p.db").exists()  # refused before anything was written


def test_a_save_that_writes_nothing_is_refused_before_the_run(tmp_path, capsys):
    assert _cli_run(_script(tmp_path, save="pass"), tmp_path) == 2
    assert "Probe.save(path) wrote nothing at the path" in capsys.readouterr().err
    assert not (tmp_path / "p.db").exists()


def test_a_typo_in_an_hparam_name_names_the_hparams_there_are(tmp_path):
    # the user's own bug: its traceback, whose last line names the hparams there are
    with pytest.raises(KeyError, match="no hparam 'xx'; the space has 'x'"):
        _cli_run(_script(tmp_path, key="xx"), tmp_path)


def test_settings_that_keep_every_member_from_exploiting_are_named(tmp_path, capsys):
    assert _cli_run(_script(tmp_path), tmp_path, "--burn-in", "10") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no member will ever exploit (burn_in=10 is not below steps=4)" in err
    assert _cli_run(_script(tmp_path), tmp_path, "--overwrite", "--exploit", "none",
                    "--burn-in", "10") == 0
    assert "ever exploit" not in capsys.readouterr().err


def test_a_score_name_for_a_number_is_said_to_be_unused(tmp_path, capsys):
    assert _cli_run(_script(tmp_path), tmp_path, "--score", "loss") == 0
    assert "score='loss' is not used: evaluate returns a number" in capsys.readouterr().err


def test_the_scripts_folder_is_importable(tmp_path):
    (tmp_path / "mydata.py").write_text("X_HIGH = 1.0\n")
    script = _script(tmp_path, extra="from mydata import X_HIGH")
    assert _cli_run(script, tmp_path) == 0


def test_a_loaded_scripts_trainable_runs_in_worker_processes(tmp_path):
    """load_script then populace.run, as the docs do, on the local executor."""
    from populace.script import load_script

    s = load_script(_script(tmp_path))
    result = populace.run(s.trainable, s.space, store=tmp_path / "l.db", progress=False,
                          workers=2, **s.config)
    assert [m.status for m in result.members] == ["done", "done"]


def test_a_class_from_stdin_is_refused_with_the_fix_unless_inline(tmp_path):
    body = SCRIPT.format(extra="", key="x", evaluate="self.total",
                         save="path.write_text(str(self.total))")
    store = str(tmp_path / "s.db")
    code = ("import populace\n" + body +
            f"populace.run(Probe, space, store={store!r}, progress=False, population=2, "
            "steps=4, ready_steps=2, executor=EXECUTOR)\nprint('trained')\n")
    done = subprocess.run([sys.executable, "-"], input=code.replace("EXECUTOR", "'local'"),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "defined in a notebook or on stdin" in done.stderr
    assert "executor='inline'" in done.stderr and not (tmp_path / "s.db").exists()
    done = subprocess.run([sys.executable, "-"], input=code.replace("EXECUTOR", "'inline'"),
                          capture_output=True, text=True)
    assert done.returncode == 0 and "trained" in done.stdout


def test_a_training_function_gets_one_torch_thread(tmp_path):
    torch = pytest.importorskip("torch")
    threads = []

    def train(member):
        threads.append(torch.get_num_threads())
        model = torch.nn.Linear(1, 1)
        member.register({"model": model}, ignore=("x",))
        while member.training:
            member.report(score=member.hparams["x"])

    populace.run(train, {"x": populace.Float(0.0, 1.0)}, store=tmp_path / "f.db",
                 executor="inline", progress=False, population=2, steps=2, ready_steps=1)
    assert threads and set(threads) == {1}


class Logged(populace.Trainable):
    """Records the member and step populace says it trains, at every step."""

    seen: list[tuple[int | None, int]] = []

    def build(self, hparams, seed):
        self.total = 0.0

    def apply(self, hparams):
        pass

    def step(self):
        self.total += 1
        Logged.seen.append((self.member_id, self.current_step))

    def evaluate(self):
        return self.total

    def save(self, path):
        path.write_text(str(self.total))

    def load(self, path):
        self.total = float(path.read_text())


def test_a_trainable_knows_its_member_and_step(tmp_path):
    Logged.seen.clear()
    populace.run(Logged, {"x": populace.Float(0.0, 1.0)}, store=tmp_path / "l.db",
                 executor="inline", progress=False, population=2, steps=6, ready_steps=3,
                 exploit="none")
    # current_step is the step before each step() call: 0..5 for each member
    assert sorted(Logged.seen) == [(m, s) for m in (0, 1) for s in range(6)]


def test_a_resume_says_which_members_are_leased_and_for_how_long(finished, capsys):
    db = open_store(finished)
    db.extend(12)
    assert db.claim("gone-worker", 2.0).id == 0  # a worker killed while training it
    db.close()
    capsys.readouterr()
    assert main(["run", str(COUNTER), "--store", str(finished), "--executor", "inline",
                 "--quiet", "--steps", "12"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "member(s) 0 are leased by other workers" in err and "within 2 s" in err
    assert [m.step for m in open_store(finished).members()] == [12] * 4


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_a_run_stops_once_a_member_reaches_stop_score(tmp_path, capsys, executor):
    store = tmp_path / "s.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", executor,
                 "--workers", "2", "--quiet", "--steps", "400", "--stop-score", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "stopped early: a member scored" in out and "reaching stop_score=3" in out
    result = populace.load_result(store)
    assert result.score >= 3 and "stop_score" in result.stopped
    assert max(m.step for m in result.members) < 400  # far from the end: it stopped


def test_a_run_stops_when_its_time_budget_is_spent_and_resumes_with_more(tmp_path,
                                                                         monkeypatch):
    store = tmp_path / "t.db"
    monkeypatch.setenv("COUNTER_SLEEP", "0.02")
    flags = ["run", str(COUNTER), "--store", str(store), "--executor", "inline", "--quiet",
             "--steps", "100000"]
    assert main([*flags, "--time-budget", "1"]) == 0
    first = populace.load_result(store)
    assert "time_budget of 1 s spent" in first.stopped
    trained = sum(m.step for m in first.members)
    assert 0 < trained < 4 * 100000
    time.sleep(1.5)  # the time between run commands does not count
    assert main([*flags, "--time-budget", "3"]) == 0  # more time: it trains on
    again = populace.load_result(store)
    assert "time_budget of 3 s spent" in again.stopped
    assert sum(m.step for m in again.members) > trained


def test_ttest_takes_its_window_and_significance_from_flags(tmp_path):
    store = tmp_path / "t.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "8", "--exploit", "ttest", "--window", "3",
                 "--significance", "0.1"]) == 0
    run = open_store(store).config().run
    assert run["exploit"] == {"name": "ttest", "window": 3, "significance": 0.1}


@pytest.mark.parametrize("key, words", [
    ("fraction", "fraction is a parameter of exploit 'truncation'"),
    ("noise_scale", "scale is a parameter of explore 'noise'"),
    ("ready", "(ready_steps or ready_seconds)"),
])
def test_a_config_file_key_that_is_a_strategy_parameter_says_where_it_goes(tmp_path, capsys,
                                                                            key, words):
    config = tmp_path / "c.yaml"
    config.write_text(f"{key}: 1\n")
    assert main(["run", str(COUNTER), "--store", str(tmp_path / "c.db"), "--config",
                 str(config)]) == 2
    err = capsys.readouterr().err
    assert words in err and "schedule" not in err


def test_an_initial_of_another_size_says_how_to_mend_it(tmp_path, capsys):
    assert main(["run", str(TOY), "--store", str(tmp_path / "t.db"), "--population", "4"]) == 2
    assert "leave initial out (a script's `initial` list too)" in " ".join(
        capsys.readouterr().err.split())


def test_a_plain_resume_keeps_a_run_grown_past_the_scripts_steps(tmp_path):
    store = tmp_path / "g.db"
    run = ["run", str(COUNTER), "--store", str(store), "--executor", "inline", "--quiet"]
    assert main([*run, "--steps", "24"]) == 0  # the counter's script says 20
    assert main(run) == 0  # the README's plain resume: the stored 24 steps stand
    assert [m.step for m in open_store(store).members()] == [24] * 4


def test_a_run_with_failed_members_says_so_even_quietly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    assert _cli_run(COUNTER, tmp_path, "--exploit", "none", "--steps", "4") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "member(s) failed" in err and "populace retry" in err


def test_a_config_files_noise_without_a_scale_names_the_parameter(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("explore: {name: noise}\n")
    assert _cli_run(_script(tmp_path), tmp_path, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert "explore 'noise': needs the parameter(s) scale" in err and "--noise-scale" not in err


def test_a_script_with_a_training_function_is_told_to_name_it(tmp_path, capsys):
    script = tmp_path / "fn.py"
    script.write_text("from populace import Float\nspace = {'x': Float(0, 1)}\n"
                      "def train(member):\n    pass\n")
    assert _cli_run(script, tmp_path) == 2
    assert "add `trainable = train`" in capsys.readouterr().err


def test_abbreviated_flags_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(COUNTER), "--store", str(tmp_path / "a.db"), "--step", "5"])
    assert "unrecognized arguments: --step 5" in capsys.readouterr().err


def test_a_save_through_numpy_is_told_where_its_file_went(tmp_path, capsys):
    script = _script(tmp_path, extra="import numpy as np",
                     save="np.save(str(path), np.array([self.total]))")
    assert _cli_run(script, tmp_path) == 2
    assert "it wrote probe.ckpt.npy instead" in " ".join(capsys.readouterr().err.split())


def test_a_replay_says_nothing_of_a_score_setting_nobody_gave(tmp_path, capsys):
    store = tmp_path / "toy.db"
    assert main(["run", str(TOY), "--store", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["replay", str(store), "--quiet"]) == 0
    assert "is not used" not in capsys.readouterr().err



def test_a_stop_setting_turns_off_on_a_resume(tmp_path, capsys):
    store = tmp_path / "o.db"
    run = ["run", str(COUNTER), "--store", str(store), "--executor", "inline", "--quiet",
           "--steps", "40"]
    assert main([*run, "--stop-score", "3"]) == 0
    assert populace.load_result(store).stopped
    assert main([*run, "--stop-score", "off"]) == 0  # trains on to the end
    result = populace.load_result(store)
    assert result.stopped is None and [m.step for m in result.members] == [40] * 4
    assert open_store(store).config().run["stop_score"] is None
    with pytest.raises(SystemExit):
        main([*run, "--stop-score", "high"])
    assert "a number or off, got 'high'" in capsys.readouterr().err


def test_result_says_when_the_run_is_not_finished(finished, capsys):
    db = open_store(finished)
    db.extend(12)  # its members have steps left again
    db.close()
    capsys.readouterr()
    assert main(["result", str(finished)]) == 0
    assert "the run is not finished: 4 member(s) still to train" in capsys.readouterr().out


def test_a_large_populations_closing_table_shows_the_best_members_and_says_where_the_rest_are(
        tmp_path, capsys):
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--population", "24", "--steps", "2", "--ready-steps", "1"]) == 0
    out = capsys.readouterr().out
    members = open_store(store).members()
    rows = [line.split("│")[1].strip() for line in out.splitlines()
            if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    best = sorted(members, key=lambda m: (-m.score, m.id))[:20]
    assert [int(r) for r in rows] == [m.id for m in best]
    assert f"the best 20 of 24 members: `populace status {store}` lists every one" in out
    assert main(["status", str(store)]) == 0  # which does
    listed = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert len(listed) == 24


def test_the_closing_table_ranks_by_the_runs_mode_and_puts_members_without_a_score_last():
    from populace.display import best_shown
    from populace.store import MemberRow, Status

    def member(i: int, score: float | None) -> MemberRow:
        return MemberRow(id=i, step=1, hparams={}, score=score, generation=0, parent=None,
                         status=Status.READY, checkpoint=None)

    members = [member(0, 0.5), member(1, None), member(2, 0.1), member(3, 0.9)]
    assert [m.id for m in best_shown(members, "min", limit=3)] == [2, 0, 3]
    assert [m.id for m in best_shown(members, "max", limit=3)] == [3, 0, 2]
    assert [m.id for m in best_shown(members, "max", limit=4)] == [0, 1, 2, 3]  # all: as given


def test_a_run_without_progress_polls_and_renders_nothing(tmp_path, monkeypatch, capsys):
    """Neither a display thread polling the store nor the closing table: what nobody sees
    costs a large population's run time beside its training."""
    import populace.api

    def refused(*args, **kwargs):
        raise AssertionError("a quiet run started its display or rendered its table")

    monkeypatch.setattr(populace.api, "members_table", refused)
    monkeypatch.setattr(populace.api, "Display", refused)
    assert main(["run", str(COUNTER), "--store", str(tmp_path / "q.db"), "--executor",
                 "inline", "--quiet", "--population", "24", "--steps", "2"]) == 0
    assert "│" not in capsys.readouterr().out
