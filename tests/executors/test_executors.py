"""The executor battery of populace.testing on every executor: each trains the counter
script once (module scope: one Ray start in all), then every check reads its store.

One worker at a time makes a run deterministic for its seed, whichever executor runs
it: those runs must be the same run. Two workers race for members, so those are held
to the invariants alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.paths import COUNTER
from support.processes import train_externally

import populace
from populace.script import load_script
from populace.store import Kind, open_store
from populace.testing import EXECUTOR_CHECKS, RunTrace, check_same_run, trace

# FIRE-PBT's sub-populations and evaluators, on a run long enough for evaluations to
# begin and stop (the counter's never succeed: tests/run/test_fire_run.py plants a success
# on every executor)
FIRE = {"exploit": "fire", "population": 8, "steps": 40}


def api(executor: str, workers: int = 1, **settings: object) -> Callable[[str], None]:
    """Train the counter through populace.run on `executor`."""

    def train(url: str) -> None:
        s = load_script(COUNTER)
        populace.run(s.trainable, s.space, store=url, script=COUNTER, progress=False,
                     **{**s.config, "executor": executor, "workers": workers, **settings})

    return train


def external(workers: int = 1, **settings: object) -> Callable[[str], None]:
    """`populace run --workers 0` creates the run and waits; `populace worker` processes,
    started beside it, train it."""
    flags = [f"--{k}={v}" for k, v in settings.items()]
    return lambda url: train_externally(COUNTER, url, workers, *flags)


# one worker each: the same run on every executor
DETERMINISTIC = {"inline": api("inline"), "local": api("local"), "ray": api("ray"),
                 "external": external()}
DETERMINISTIC_FIRE = {"inline-fire": api("inline", **FIRE), "local-fire": api("local", **FIRE),
                      "ray-fire": api("ray", **FIRE), "external-fire": external(**FIRE)}
EXECUTORS = {**DETERMINISTIC, "local-2-workers": api("local", 2),
             "external-2-workers": external(2), **DETERMINISTIC_FIRE,
             "local-2-workers-fire": api("local", 2, **FIRE),
             "external-2-workers-fire": external(2, **FIRE)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Callable[[str], str]:
    """The store of the run `name` trained, trained at the first call."""
    folder = tmp_path_factory.mktemp("executors")
    stores: dict[str, str] = {}

    def store(name: str) -> str:
        if name not in stores:
            url = str(folder / f"{name}.db")
            EXECUTORS[name](url)
            stores[name] = url
        return stores[name]

    return store


def trace_of(url: str) -> RunTrace:
    store = open_store(url)
    try:
        return trace(store)
    finally:
        store.close()


@pytest.mark.parametrize("check", EXECUTOR_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_executor_keeps_the_contract(trained, executor, check):
    store = open_store(trained(executor))
    try:
        check(store)
    finally:
        store.close()


@pytest.mark.parametrize("executor", [name for name in {**DETERMINISTIC, **DETERMINISTIC_FIRE}
                                      if not name.startswith("inline")])
def test_one_worker_trains_the_same_run_on_every_executor(trained, executor):
    inline = "inline-fire" if executor.endswith("-fire") else "inline"
    expected = trace_of(trained(inline))
    assert expected.events, "the run copies members: its decisions are compared too"
    check_same_run(expected, trace_of(trained(executor)), f"the run on {executor}")


@pytest.mark.parametrize("executor", [name for name in EXECUTORS if name.endswith("-fire")])
def test_fire_runs_evaluate_on_every_executor(trained, executor):
    """Not a vacuous FIRE run: evaluators began evaluations and ended some."""
    store = open_store(trained(executor))
    try:
        kinds = {e.kind for e in store.events()}
        subs = {m.sub for m in store.members()}
    finally:
        store.close()
    assert {Kind.EVALUATION, Kind.STOPPED} <= kinds and subs == {0, 1, 2}, (kinds, subs)
