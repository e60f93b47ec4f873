"""The same `populace run` again after a fix: it trains the run as the script now says,
without a `populace retry` or a store deleted by hand."""

from __future__ import annotations

from pathlib import Path

from populace.cli import main
from populace.store import open_store

SCRIPT = '''
from populace import Float, Trainable

space = {{"{name}": Float(0.0, 1.0)}}
config = {{"population": {population}, "steps": 4, "ready_steps": 2, "score": "acc"}}
BROKEN = {broken}
FAIL_FROM = {fail_from}  # the step from which step() raises


class Probe(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        self.apply(hparams)

    def apply(self, hparams):
        self.hparams = hparams

    def step(self):
        if BROKEN or self.current_step >= FAIL_FROM:
            raise RuntimeError("a bug in step")
        self.total += self.hparams["x"]  # a KeyError while the space spells it otherwise

    def evaluate(self):
        return {{"acc": self.total}}

    def save(self, path):
        path.write_text(str(self.total))

    def load(self, path):
        self.total = float(path.read_text())
'''


def _write(path: Path, *, name: str = "x", population: int = 2, broken: bool = False,
           fail_from: int = 99) -> Path:
    path.write_text(SCRIPT.format(name=name, population=population, broken=broken,
                                  fail_from=fail_from))
    return path


def _run(script: Path, store: Path) -> int:
    return main(["run", str(script), "--store", str(store), "--executor", "inline", "--quiet"])


def _members(store: Path) -> list[tuple[str, int]]:
    db = open_store(store)
    try:
        return [(m.status, m.step) for m in db.members()]
    finally:
        db.close()


def test_a_typo_in_the_space_fixed_reruns_with_the_scripts_config(tmp_path, capsys):
    script, store = tmp_path / "probe.py", tmp_path / "p.db"
    assert _run(_write(script, name="xx"), store) == 1  # every member fails in step
    _write(script)  # the typo mended: the run never trained, so it starts again
    assert _run(script, store) == 0
    assert "it starts again as given now" in capsys.readouterr().err
    assert _members(store) == [("done", 4)] * 2  # the script's population and steps
    assert open_store(store).config().run["score"] == "acc"


def test_a_setting_fixed_in_the_scripts_config_is_taken_by_a_rerun(tmp_path):
    script, store = tmp_path / "probe.py", tmp_path / "p.db"
    assert _run(_write(script, broken=True), store) == 1
    _write(script, population=3)  # the bug mended, and the config changed with it
    assert _run(script, store) == 0
    assert _members(store) == [("done", 4)] * 3


def test_members_that_failed_train_again_when_the_script_was_edited(tmp_path, capsys):
    script, store = tmp_path / "probe.py", tmp_path / "p.db"
    assert _run(_write(script, fail_from=2), store) == 1  # a segment trained, then a bug
    assert _members(store) == [("failed", 2)] * 2
    capsys.readouterr()
    _write(script)  # the fix
    assert _run(script, store) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "the script changed since member(s) 0, 1 failed: they train again" in err
    assert _members(store) == [("done", 4)] * 2


def test_a_rerun_of_an_unchanged_script_says_first_what_to_run(tmp_path, capsys):
    script, store = tmp_path / "probe.py", tmp_path / "p.db"
    assert _run(_write(script, fail_from=2), store) == 1
    capsys.readouterr()
    assert _run(script, store) == 1  # nothing edited: the members stay failed
    err = " ".join(capsys.readouterr().err.split())
    said, _, error = err.partition("the first error:")
    assert said.startswith("run failed: every member of the run")
    assert f"`populace retry sqlite:///{store}` makes them train again" in said
    assert "RuntimeError: a bug in step" in error
