"""A new user's first scripts and commands, part 2: a script without the main guard,
messages that name what went wrong."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from support.paths import COUNTER

from populace.cli import main
from populace.cli.tables import event_line, print_events
from populace.display import PIPE_WIDTH
from populace.store import Event, Kind, open_store

SCRIPT = '''
import populace
from populace import Float, Trainable

space = {"x": Float(0.0, 1.0)}


class Probe(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0

    def apply(self, hparams):
        pass

    def step(self):
        self.total += 1

    def evaluate(self):
        return self.total

    def save(self, path):
        path.write_text(str(self.total))

    def load(self, path):
        self.total = float(path.read_text())

'''
CALL = ('result = populace.run(Probe, space, store="p.db", progress=False, population=2, '
        'steps=2, ready_steps=1, workers=2)\nprint("trained", result.score)\n')


def _python(folder: Path, code: str) -> subprocess.CompletedProcess[str]:
    (folder / "mine.py").write_text(code)
    return subprocess.run([sys.executable, "mine.py"], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def test_a_script_without_the_main_guard_is_told_once_what_to_do(tmp_path):
    done = _python(tmp_path, SCRIPT + CALL)
    assert done.returncode == 1
    assert done.stderr.count("ConfigError: populace.run is called at the top level of "
                             "mine.py (line 27)") == 1
    assert "if __name__ == \"__main__\":" in done.stderr and "executor='inline'" in done.stderr
    assert "bootstrapping" not in done.stderr and "WorkersDied" not in done.stderr
    assert not (tmp_path / "p.db").exists()  # refused before anything was written


def test_a_guarded_script_trains_on_the_local_executor(tmp_path):
    guarded = "if __name__ == \"__main__\":\n" + "".join(
        f"    {line}\n" for line in CALL.splitlines())
    done = _python(tmp_path, SCRIPT + guarded)
    assert done.returncode == 0, done.stderr
    assert "trained 2.0" in done.stdout


def test_status_events_gives_one_line_an_event_at_the_terminals_width(tmp_path, monkeypatch,
                                                                      capsys):
    store = tmp_path / "run.db"
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.9")  # some members fail: tracebacks
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--population", "8", "--steps", "12", "--ready-steps", "2"]) == 0
    events = open_store(store).events()
    assert {"exploit", "failed"} <= {e.kind for e in events}
    capsys.readouterr()
    assert main(["status", str(store), "--events"]) == 0
    lines = capsys.readouterr().out.splitlines()  # a pipe's width: PIPE_WIDTH
    assert len(lines) == 1 + len(events) and all(len(line) <= PIPE_WIDTH for line in lines)
    copy = next(e for e in events if e.kind == "exploit")
    assert (f"member {copy.member:>3}  exploit  copies {copy.donor} (step {copy.donor_step}): "
            f"x {copy.before['x']:.3g} -> {copy.after['x']:.3g}") in lines[1 + events.index(copy)]
    failed = next(e for e in events if e.kind == "failed")
    assert "RuntimeError: x=" in lines[1 + events.index(failed)]
    narrow = Console(width=50, file=io.StringIO())  # a terminal 50 columns wide
    print_events(events, False, narrow)
    shown = narrow.file.getvalue().splitlines()
    assert len(shown) == 1 + len(events) and max(map(len, shown)) == 50


def test_an_events_line_names_only_the_hparams_that_changed():
    copy = Event(1, Kind.EXPLOIT, 3, 1, 40, 40, {"lr": 0.0123456789, "layers": 2},
                 {"lr": 0.0148148148, "layers": 2}, "truncation", 0.0)
    assert event_line(copy) == ("step 40  member   3  exploit  copies 1 (step 40): "
                                "lr 0.0123 -> 0.0148")


def _cli_script(tmp_path: Path, evaluate: str) -> int:
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT.replace("return self.total", f"return {evaluate}", 1))
    return main(["run", str(script), "--store", str(tmp_path / "p.db"), "--executor",
                 "inline", "--quiet", "--population", "3", "--steps", "2"])


def test_a_score_given_as_text_is_refused(tmp_path, capsys):
    assert _cli_script(tmp_path, '"0.974"') == 2
    assert "got score='0.974' (text): return float('0.974')" in capsys.readouterr().err
    assert not (tmp_path / "p.db").exists()


def test_members_tied_on_the_best_score_are_named_with_the_tie_break(tmp_path, capsys):
    assert _cli_script(tmp_path, "1.0") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "best member 0 at step 2" in out
    assert "tied on its score with member(s) 1, 2: a tie goes to the lowest member id" in out


def test_a_folder_given_as_the_store_is_named_a_folder(tmp_path, capsys):
    for argv in (["run", str(COUNTER), "--store", str(tmp_path)], ["status", str(tmp_path)],
                 ["result", str(tmp_path)]):
        assert main(argv) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"got '{tmp_path}' (a folder): name a file in it, such as '{tmp_path}/run.db'" in err


def test_status_json_into_a_closed_pipe_ends_quietly(tmp_path):
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "4"]) == 0
    reader = subprocess.Popen([sys.executable, "-m", "populace.cli", "status", str(store),
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # as `| head -1` does once it has its line
    assert reader.wait(timeout=60) == 141
    assert reader.stderr.read() == b""  # no BrokenPipeError traceback


def test_a_store_deleted_by_hand_names_the_checkpoints_left_behind(tmp_path, capsys):
    store = tmp_path / "run.db"
    run = ["run", str(COUNTER), "--store", str(store), "--executor", "inline", "--quiet",
           "--steps", "4"]
    assert main(run) == 0
    store.unlink()  # to start over, as a new user does
    capsys.readouterr()
    assert main(run) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"hold another run's checkpoints (its store deleted by hand?): delete that " \
           f"folder (rm -r {tmp_path / 'run.checkpoints'})" in err
    assert not store.exists()  # refused before anything was written
