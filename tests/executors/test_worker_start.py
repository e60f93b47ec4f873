"""The local executor's workers start from a fork server that imported the run's script
while the main process loaded it: no worker imports it again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.paths import COUNTER

from populace.cli import main
from populace.store import open_store

SCRIPT = '''
import os

from populace import Float, Trainable

with open(os.environ["IMPORTS"], "a") as imports:  # this process imported the script
    imports.write(f"{os.getpid()}\\n")

space = {"x": Float(0.0, 1.0)}
config = {"population": 4, "steps": 2, "ready_steps": 1}


class Probe(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        with open(os.environ["BUILDS"], "a") as builds:  # this process trains a member
            builds.write(f"{os.getpid()}\\n")

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


@pytest.mark.skipif(sys.platform == "win32", reason="no fork server on Windows")
def test_workers_start_with_the_script_imported(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    imports, builds = tmp_path / "imports", tmp_path / "builds"
    done = subprocess.run(
        [sys.executable, "-m", "populace.cli", "run", str(script), "--store",
         str(tmp_path / "p.db"), "--workers", "2", "--quiet"],
        env={**os.environ, "IMPORTS": str(imports), "BUILDS": str(builds)},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    importers = set(imports.read_text().split())
    trainers = set(builds.read_text().split())
    # the main process (which also builds a member to check the script) and the fork
    # server imported it; the two workers, forked from the server, did not
    assert len(importers) == 2 and len(trainers - importers) == 2


def test_workers_see_the_environment_of_their_run(tmp_path, monkeypatch):
    """A worker forked from a server started by an earlier run of this process has the
    environment of the run that starts it, not of the one that started the server."""
    run = ["run", str(COUNTER), "--workers", "2", "--quiet", "--steps", "4"]
    assert main([*run, "--store", str(tmp_path / "a.db")]) == 0
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0")  # every member raises in step
    assert main([*run, "--store", str(tmp_path / "b.db")]) == 1
    statuses = {m.status for m in open_store(tmp_path / "b.db").members()}
    assert statuses == {"failed"}
