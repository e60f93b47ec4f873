"""Runs for the dashboard's tests, written straight into a store (no training): a run
with copies, with every kind of awkward value, and a multi-objective one."""

from __future__ import annotations

from typing import Any

from populace.store import Decision, Store
from populace.testing.stores import run_record, train

# strings a page must show as text: markup in an hparam's name, a metric's, an error
HOSTILE_HPARAM = '<img src=x onerror="window.pwned=1">'
HOSTILE_METRIC = "<script>window.pwned=2</script>"
HOSTILE_ERROR = "RuntimeError: <script>window.pwned=3</script> & more"


def copy_from(donor: int, hparams: dict[str, Any]):
    """A `decide` that makes the reporting member copy `donor`, exploring to `hparams`."""
    return lambda snapshot, member: Decision(donor, hparams, "test")


def trained_run(store: Store, population: int = 3, rounds: int = 3) -> Store:
    """`population` members of {"lr": ...}, each reporting `rounds` segments of 4 steps;
    at step 8 member 0 copies member 1 (lr 0.02 -> 0.024). Member i scores i + step / 100."""
    store.create(run_record("max", population), [{"lr": 0.01 * (i + 1)}
                                                 for i in range(population)])
    for r in range(1, rounds + 1):
        step = 4 * r
        for m in reversed(range(population)):  # the donor reaches step 8 first
            decide = copy_from(1, {"lr": 0.024}) if (m, step) == (0, 8) else None
            lr = 0.024 if m == 0 and step > 8 else 0.01 * (m + 1)
            train(store, m, step, m + step / 100, decide=decide, hparams={"lr": lr},
                  metrics={"score": m + step / 100, "loss": 1.0 / step})
    return store


def awkward_run(store: Store) -> Store:
    """Markup in an hparam's name, a metric's name and a failed member's error; a NaN
    metric; a member with no score; a member that failed."""
    space = {HOSTILE_HPARAM: {"type": "float", "low": 0.0, "high": 1.0, "log": False}}
    record = run_record("max", 3, space=space, score=HOSTILE_METRIC)
    store.create(record, [{HOSTILE_HPARAM: 0.1 * (i + 1)} for i in range(3)])
    for m in (0, 1):
        train(store, m, 4, 0.5 + m, hparams={HOSTILE_HPARAM: 0.1 * (m + 1)},
              metrics={HOSTILE_METRIC: 0.5 + m, "loss": float("nan")})
    train(store, 2, 4, None, hparams={HOSTILE_HPARAM: 0.3},
          metrics={HOSTILE_METRIC: None, "loss": float("inf")})
    from populace.testing.stores import claim_exactly

    claim_exactly(store, 2, "w")
    store.fail("w", 2, f"Traceback (most recent call last):\n  ...\n{HOSTILE_ERROR}\n")
    return store


def two_goals_run(store: Store) -> Store:
    """A multi-objective run (a: max, b: max) of 4 members over two rounds; members 0 and
    1 on the front at the end, 2 dominated, 3 with no result."""
    record = run_record("max", 4, objectives={"a": "max", "b": "max"})
    store.create(record, [{"lr": 0.01 * (i + 1)} for i in range(4)])
    values = {0: [(1.0, 3.0), (2.0, 4.0)], 1: [(3.0, 1.0), (4.0, 2.0)],
              2: [(0.5, 0.5), (1.0, 1.0)]}
    for r in range(2):
        for m, points in values.items():
            a, b = points[r]
            train(store, m, 4 * (r + 1), a, metrics={"a": a, "b": b})
    return store


def pb2_and_fire_runs(pb2: Store, fire: Store) -> None:
    """A PB2 run whose member 0 has trained two segments (one for the Gaussian process),
    and a FIRE-PBT run of two sub-populations and an evaluator, not started."""
    pb2.create(run_record("max", 2, explore={"name": "pb2"}), [{"lr": 0.01}, {"lr": 0.02}])
    for step in (4, 8):
        train(pb2, 0, step, step / 10)
    fire.create(run_record("max", 5), [{"lr": 0.01 * (i + 1)} for i in range(5)],
                groups=[1, 1, 2, 2, 0])
