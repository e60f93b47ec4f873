"""SIGTERM stops a worker even when the KeyboardInterrupt it raises is lost.

Seen in CI: `populace worker` ignored a SIGTERM that landed while numpy.random was
first imported (the import swallowed the exception) and trained on. Here a step
loses the exception the same way, on purpose.
"""

from __future__ import annotations

import contextlib
import signal

import pytest

import populace
from populace import Float, Trainable, stopping
from populace.store import open_store

STEPS: list[int] = []


@pytest.fixture
def sigterm(monkeypatch):
    """This process's SIGTERM as a worker's, with the stop mark cleared after the test."""
    monkeypatch.setattr(stopping, "_asked", False)
    monkeypatch.setattr(stopping, "_signal", stopping._signal)  # put back after the test
    previous = {signum: signal.getsignal(signum) for signum in stopping.SIGNALS}
    stopping.stop_on_signals()
    STEPS.clear()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _stopped_and_lost() -> None:
    """A SIGTERM whose KeyboardInterrupt is swallowed, as an extension's import does."""
    with contextlib.suppress(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)


class StoppedOnce(Trainable):
    def build(self, hparams, seed):
        self.total = 0

    def apply(self, hparams):
        pass

    def step(self):
        STEPS.append(self.total)
        if self.total == 0:
            _stopped_and_lost()
        self.total += 1

    def evaluate(self):
        return float(self.total)

    def save(self, path):
        path.write_text(str(self.total))

    def load(self, path):
        self.total = int(path.read_text())


def stopped_once(member: populace.Member) -> None:
    state = {"total": 0}
    member.register({"state": _State(state)}, ignore=["x"])
    while member.training:
        STEPS.append(state["total"])
        if state["total"] == 0:
            _stopped_and_lost()
        state["total"] += 1
        member.report(float(state["total"]))


class _State:
    """The smallest object with a state dict, for the function API to checkpoint."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state.update(state)


@pytest.mark.parametrize("trainable", [StoppedOnce, stopped_once], ids=["class", "function"])
def test_a_lost_sigterm_stops_the_worker_after_the_step_and_gives_the_member_back(
        tmp_path, sigterm, trainable):
    with pytest.raises(KeyboardInterrupt):
        populace.run(trainable, {"x": Float(0.0, 1.0)}, store=tmp_path / "r.db",
                     population=2, steps=8, ready_steps=4, executor="inline", progress=False)
    # one step, not a segment or the run: the stop was noticed as the step ended
    assert STEPS == [0]
    members = open_store(tmp_path / "r.db").members()
    assert [(m.status, m.step) for m in members] == [("ready", 0), ("ready", 0)]
