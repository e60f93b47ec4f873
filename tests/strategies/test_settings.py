"""Every setting and strategy parameter is checked one way (populace.checks): bools
refused, numpy integers taken as ints, reals stored as floats; the optional `window`
of an exploit strategy and the ready rules are read in one place each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from populace.config import RunConfig
from populace.errors import ConfigError
from populace.strategies import (
    READY,
    EverySeconds,
    EverySteps,
    Noise,
    Perturb,
    PerturbOrResample,
    Snapshot,
    Truncation,
    TTest,
    make_ready,
    window_of,
)

RUN_INTS = {"population": 4, "steps": 10, "workers": 1, "seed": 3, "keep_checkpoints": 2,
            "burn_in": 1, "retries": 1, "ready_steps": 2}
RUN_FLOATS = {"lease_seconds": 30, "cpus_per_worker": 2, "gpus_per_worker": 1,
              "ready_seconds": 5}
STRATEGY_INTS = [(TTest, "window", 5), (EverySteps, "steps", 5)]
STRATEGY_FLOATS = [(Truncation, "fraction", Fraction(1, 4)), (TTest, "significance", 0.1),
                   (PerturbOrResample, "probability", 1), (Noise, "scale", 2),
                   (EverySeconds, "seconds", 60)]


@dataclass(frozen=True)
class Recent:
    """An exploit strategy of one's own that reads each member's last `window` scores."""

    window: int = 3

    def __call__(self, snapshot: Snapshot, member_id: int, rng: np.random.Generator) -> None:
        return None


def blind(snapshot: Snapshot, member_id: int, rng: np.random.Generator) -> None:
    """An exploit strategy that declares no window."""
    return None


@pytest.mark.parametrize("cls, name, value", STRATEGY_INTS)
def test_a_numpy_integer_is_an_int_for_every_strategy(cls, name, value):
    made = cls(**{name: np.int64(value)})
    assert getattr(made, name) == value and type(getattr(made, name)) is int


@pytest.mark.parametrize("cls, name, value", STRATEGY_INTS + STRATEGY_FLOATS)
def test_a_bool_is_refused_by_every_strategy_parameter(cls, name, value):
    with pytest.raises(ConfigError, match=f"{cls.__name__}: {name} must be .*, got {name}=True"):
        cls(**{name: True})


@pytest.mark.parametrize("cls, name, value", STRATEGY_FLOATS)
def test_every_real_strategy_parameter_is_stored_as_a_float(cls, name, value):
    made = cls(**{name: value})
    assert getattr(made, name) == float(value) and type(getattr(made, name)) is float


def test_truncation_stores_its_fraction_as_a_float():
    assert type(Truncation(np.float32(0.25)).fraction) is float
    assert Truncation(Fraction(1, 5)) == Truncation(0.2)


@pytest.mark.parametrize("name", sorted(RUN_INTS))
def test_a_bool_is_refused_by_every_integer_setting(name):
    with pytest.raises(ConfigError, match=f"^{name} must be an int .*, got True$"):
        RunConfig(**{name: True})


@pytest.mark.parametrize("name", sorted(RUN_FLOATS))
def test_a_bool_is_refused_by_every_number_setting(name):
    with pytest.raises(ConfigError, match=f"^{name} must be in .*, got True$"):
        RunConfig(**{name: True})


def test_numpy_integers_are_ints_in_a_run_config_and_its_stored_form():
    config = RunConfig(**{k: np.int64(v) for k, v in RUN_INTS.items()})
    assert all(type(getattr(config, k)) is int for k in RUN_INTS)
    assert json.loads(json.dumps(config.to_dict()))["population"] == 4


@pytest.mark.parametrize("name, value", sorted(RUN_FLOATS.items()))
def test_whole_numbers_of_seconds_and_devices_are_stored_as_floats(name, value):
    stored = getattr(RunConfig(**{name: value}), name)
    assert stored == value and type(stored) is float


@pytest.mark.parametrize("make, message", [
    (lambda: TTest(window=1), "TTest: window must be an int in [2, 1,000], got window=1"),
    (lambda: TTest(window=10**40), "got window=100000000000... (41 digits)"),
    (lambda: EverySteps(np.float64(2.0)), "EverySteps: steps must be an int >= 1, got steps=2.0"),
    (lambda: Noise(10**400), "Noise: scale must be a finite number > 0, got scale="),
    (lambda: RunConfig(population="3"), "population must be an int in [2, 10,000], got '3'"),
    (lambda: RunConfig(synch=1), "synch must be true or false, got 1"),
    (lambda: RunConfig(executor=None),
     "executor must be one of inline, local, ray, vectorized; got None"),
    (lambda: RunConfig(gpus_per_worker=-1), "gpus_per_worker must be in [0, 1,024], got -1"),
    (lambda: RunConfig(score=""), "score must be the name of a metric, got ''"),
])
def test_a_refusal_names_the_field_what_is_allowed_and_the_value(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("factors", [(True, 2.0), ("0.8", "1.2"), (0.8, np.nan)])
def test_each_factor_is_checked_as_a_number(factors):
    with pytest.raises(ConfigError, match="Perturb: factors must be a non-empty list"):
        Perturb(factors)


def test_numpy_factors_are_floats():
    assert Perturb(np.array([0.5, 2])).factors == (0.5, 2.0)


def test_the_ready_registry_builds_both_rules_by_name():
    assert set(READY) == {"steps", "seconds"}
    assert make_ready("steps", steps=10) == EverySteps(10)
    assert make_ready("seconds", seconds=np.int64(5)) == EverySeconds(5.0)
    with pytest.raises(ConfigError, match="ready 'steps' has no parameter 'seconds'"):
        make_ready("steps", seconds=5)


def test_a_run_config_builds_its_ready_rule_through_the_registry():
    assert RunConfig(steps=100).make_ready() == EverySteps(10)
    assert RunConfig(ready_steps=4).make_ready() == EverySteps(4)
    assert RunConfig(ready_seconds=2).make_ready() == EverySeconds(2.0)


def test_window_of_reads_a_declared_window_and_none_otherwise():
    assert window_of(TTest(window=7)) == 7
    assert window_of(Recent(window=np.int64(4))) == 4
    assert window_of(Recent(window=0)) is None
    assert window_of(Truncation()) is None
    assert window_of(blind) is None


def test_a_window_of_ones_own_is_bounded_like_ttests():
    with pytest.raises(ConfigError, match=r"Recent: window must be an int in \[0, 1,000\]"):
        window_of(Recent(window=5000))
    with pytest.raises(ConfigError, match="Recent: window must be an int"):
        RunConfig(exploit=Recent(window=True))
    assert RunConfig(exploit=Recent(window=5)).window() == 5
    assert RunConfig(exploit={"name": "ttest", "window": 6}).window() == 6
    assert RunConfig().window() == 0
