"""SIGTERM stops a worker even when the KeyboardInterrupt it raises is lost.

Seen in CI: `populace worker` ignored a SIGTERM that landed while numpy.random was
first imported (the import swallowed the exception) and trained on. Here a step
loses the exception the same way, on purpose.
"""

from __future__ import annotations

import contextlib
import signal

import pytest
from support.paths import SCRIPTS

import populace
from populace import Float, Trainable, stopping
from populace.store import open_store

STEPS: list[int] = []


@pytest.fixture
def unmarked(monkeypatch):
    """No stop marked and Python's own handlers, as in a fresh interpreter; the test's
    handlers put back after it."""
    monkeypatch.setattr(stopping, "_asked", False)
    monkeypatch.setattr(stopping, "_signal", stopping._signal)
    previous = {signum: signal.getsignal(signum) for signum in stopping.HANDLED}
    for signum in stopping.SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.fixture
def sigterm(unmarked):
    """This process's SIGTERM as a worker's."""
    stopping.stop_on_signals()
    STEPS.clear()


def _lost(signum: signal.Signals = signal.SIGTERM) -> None:
    """A stop whose KeyboardInterrupt is swallowed, as an extension's import does."""
    with contextlib.suppress(KeyboardInterrupt):
        signal.raise_signal(signum)


class StoppedOnce(Trainable):
    def build(self, hparams, seed):
        self.total = 0

    def apply(self, hparams):
        pass

    def step(self):
        STEPS.append(self.total)
        if self.total == 0:
            _lost()
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
            _lost()
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


def test_a_lost_ctrl_c_stops_at_the_next_check_and_is_forgotten_after(unmarked):
    before = signal.getsignal(signal.SIGINT)
    with stopping.stopped_by_signals():
        _lost(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
        assert stopping.exit_status() == 130
        with pytest.raises(KeyboardInterrupt):  # a second press raises too, as Python's own
            signal.raise_signal(signal.SIGINT)
    stopping.check()  # a run started again in this Python (a notebook's cell) trains
    assert signal.getsignal(signal.SIGINT) is before


def test_a_cluster_runs_head_stops_on_a_lost_ctrl_c(tmp_path, unmarked, monkeypatch):
    """Seen in the suite: `populace run --workers 0` lost the SIGINT sent as it created
    the run, and waited for workers for ever. Its wait now checks the mark each poll."""
    from populace.executors import external

    polls = []

    def poll(seconds: float) -> None:
        polls.append(seconds)
        assert len(polls) < 5, "the head waited on after Ctrl-C"
        if len(polls) == 1:
            _lost(signal.SIGINT)

    monkeypatch.setattr(external.time, "sleep", poll)
    with pytest.raises(KeyboardInterrupt):
        populace.run(StoppedOnce, {"x": Float(0.0, 1.0)}, store=tmp_path / "r.db",
                     population=2, steps=8, ready_steps=4, workers=0, progress=False)
    assert len(polls) == 1


@pytest.mark.parametrize("workers", ["0", "1"])
def test_populace_run_stops_on_a_ctrl_c_lost_before_it_trains(tmp_path, unmarked,
                                                              monkeypatch, workers):
    """Through the CLI, the press lost before the run's own handlers are set (while it
    tidies its checkpoint folder): the command marks stops from its start, and both a
    cluster run's head and the local executor's parent check the mark as they wait."""
    from populace import api
    from populace.cli import main
    from populace.executors import external

    tidy = api._collect

    def lost_then_tidy(*args):
        _lost(signal.SIGINT)
        tidy(*args)

    def poll(seconds: float) -> None:
        raise AssertionError("the head waited for workers after Ctrl-C")

    monkeypatch.setattr(api, "_collect", lost_then_tidy)
    monkeypatch.setattr(external.time, "sleep", poll)
    store = tmp_path / "r.db"
    handlers = {signum: signal.getsignal(signum) for signum in stopping.HANDLED}
    assert main(["run", str(SCRIPTS / "counter.py"), "--store", str(store), "--workers",
                 workers, "--executor", "local", "--quiet"]) == 130
    assert "done" not in {m.status for m in open_store(store).members()}
    # the command leaves this Python as it found it: its handlers, and no stop marked
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    stopping.check()


def test_a_run_inside_another_stop_scope_keeps_the_outer_mark(unmarked):
    """`populace run` holds the handlers for the whole command and the run its own inside:
    a stop lost before the run still stands after it, until the command returns."""
    with stopping.stopped_by_signals():
        _lost(signal.SIGINT)
        with stopping.stopped_by_signals():
            pass
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
    stopping.check()


def test_a_press_while_the_handlers_go_back_leaves_neither_them_nor_the_mark(unmarked):
    """A second Ctrl-C as a run returns meets the handlers it returns to, not the run's."""
    before = {signum: signal.getsignal(signum) for signum in stopping.HANDLED}
    put_back = signal.signal
    pressed = []

    def pressing(signum, handler):
        if not pressed and handler is before[signum]:  # the first handler going back
            pressed.append(signum)
            signal.raise_signal(signal.SIGINT)
        return put_back(signum, handler)

    try:
        with pytest.raises(KeyboardInterrupt):  # the press, raised by the handler put back
            with stopping.stopped_by_signals():
                signal.signal = pressing
    finally:
        signal.signal = put_back
    assert pressed
    assert {signum: signal.getsignal(signum) for signum in before} == before
    stopping.check()
