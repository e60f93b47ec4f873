"""A new user's first scripts and commands, part 2: a script without the main guard,
messages that name what went wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
