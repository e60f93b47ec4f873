from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from populace.space import (
    Choice,
    ConfigError,
    Constant,
    Float,
    Int,
    Space,
    dimension_from_dict,
)
from populace.strategies import space_from_dict, space_to_dict

SEEDS = range(200)
FACTORS = st.floats(min_value=0.01, max_value=100.0)


# sampling


@pytest.mark.parametrize("log", [False, True])
def test_float_samples_are_python_floats_in_bounds(log):
    dim = Float(1e-4, 0.1, log=log)
    for seed in SEEDS:
        x = dim.sample(np.random.default_rng(seed))
        assert type(x) is float
        assert 1e-4 <= x <= 0.1


@pytest.mark.parametrize("log", [False, True])
def test_int_samples_are_python_ints_in_bounds_and_reach_both_ends(log):
    dim = Int(1, 8, log=log)
    seen = set()
    for seed in SEEDS:
        x = dim.sample(np.random.default_rng(seed))
        assert type(x) is int
        assert 1 <= x <= 8
        seen.add(x)
    assert seen == set(range(1, 9))


def test_choice_samples_every_option_and_keeps_its_type():
    dim = Choice(["sgd", 3, 0.5, True])
    seen = [dim.sample(np.random.default_rng(seed)) for seed in SEEDS]
    assert {repr(x) for x in seen} == {"'sgd'", "3", "0.5", "True"}


def test_float_log_sampling_is_uniform_in_log_space():
    dim = Float(1e-5, 1e-1, log=True)
    rng = np.random.default_rng(0)
    logs = np.log10([dim.sample(rng) for _ in range(4000)])
    assert abs(np.median(logs) - (-3.0)) < 0.1  # median near the geometric mean 1e-3
    counts, _ = np.histogram(logs, bins=4, range=(-5, -1))
    assert counts.min() > 0.85 * 1000  # each decade gets about a quarter


def test_float_linear_sampling_is_uniform():
    dim = Float(0.0, 1.0)
    rng = np.random.default_rng(0)
    xs = np.array([dim.sample(rng) for _ in range(4000)])
    assert abs(np.median(xs) - 0.5) < 0.03


def test_int_log_sampling_favours_small_values():
    dim = Int(1, 1000, log=True)
    rng = np.random.default_rng(0)
    xs = np.array([dim.sample(rng) for _ in range(4000)])
    assert 20 <= np.median(xs) <= 45  # geometric mean of [0.5, 1000.5] is about 22


def test_int_log_sampling_gives_the_end_values_their_full_share():
    dim = Int(10, 20, log=True)
    rng = np.random.default_rng(0)
    counts = np.bincount([dim.sample(rng) for _ in range(20000)], minlength=21)
    # in log space 20 covers [19.5, 20.5] like 19 covers [18.5, 19.5], about as much mass
    assert counts[20] > 0.8 * counts[19]
    assert counts[10] > 0.8 * counts[11]


def test_constant_samples_its_value():
    assert Constant(10).sample(np.random.default_rng(0)) == 10


# quantiles and space-filling draws (Space.latin, FIRE-PBT's initial sub-populations)


def test_quantile_maps_the_unit_interval_onto_the_prior():
    assert Float(1e-3, 1e1, log=True).quantile(0.0) == pytest.approx(1e-3)
    assert Float(1e-3, 1e1, log=True).quantile(0.5) == pytest.approx(0.1)
    assert Float(2.0, 4.0).quantile(0.25) == 2.5
    assert type(Float(2.0, 4.0).quantile(np.float64(0.25))) is float
    # every value of an Int or a Choice holds an equal share of [0, 1)
    assert [Int(1, 4).quantile(q) for q in (0.0, 0.24, 0.25, 0.5, 0.99)] == [1, 1, 2, 3, 4]
    assert [Choice(["a", "b"]).quantile(q) for q in (0.0, 0.49, 0.5, 0.999)] == list("aabb")
    assert Constant(10).quantile(0.7) == 10
    # log Int: sample's widened log range, so both ends get their share
    assert [Int(1, 8, log=True).quantile(q) for q in (0.0, 0.999)] == [1, 8]


def strata(values, dim, n):
    """Which of n equal-probability strata of `dim`'s log prior each value lies in."""
    low, high = math.log(dim.low), math.log(dim.high)
    return [math.floor((math.log(v) - low) / (high - low) * n) for v in values]


@pytest.mark.parametrize("sizes", [(3, 3, 3, 3), (4, 3), (6, 6), (5,)])
def test_latin_puts_one_draw_in_each_stratum_and_deals_each_group_across_the_prior(sizes):
    dim = Float(1e-3, 4.0, log=True)
    n, groups = sum(sizes), len(sizes)
    for seed in range(50):
        drawn = Space({"lr": dim, "epochs": 10}).latin(np.random.default_rng(seed), sizes)
        assert len(drawn) == n and all(h["epochs"] == 10 for h in drawn)
        found = strata([h["lr"] for h in drawn], dim, n)
        assert sorted(found) == list(range(n))  # a Latin hypercube
        start = 0
        for size in sizes:  # a group gets one stratum from each round of len(sizes)
            mine = sorted(found[start:start + size])
            assert [s // groups for s in mine] == list(range(size)), (seed, mine)
            start += size


def test_latin_gives_every_small_group_a_high_draw_where_independent_draws_do_not():
    """The failure it mends: four groups of three drawn independently from a log-uniform
    lr, some group has no draw in the top third of the prior in most seeds (1 - (19/27)^4
    chance); dealt from a Latin hypercube, never."""
    space = Space({"lr": Float(1e-3, 4.0, log=True)})
    top = 1e-3 * (4.0 / 1e-3) ** (2 / 3)
    lacking = {"latin": 0, "sample": 0}
    for seed in range(100):
        rng = np.random.default_rng(seed)
        for how, drawn in (("latin", space.latin(rng, (3, 3, 3, 3))),
                           ("sample", [space.sample(rng) for _ in range(12)])):
            groups = [drawn[i:i + 3] for i in range(0, 12, 3)]
            lacking[how] += any(max(h["lr"] for h in g) < top for g in groups)
    assert lacking["latin"] == 0
    assert lacking["sample"] > 50


def test_latin_is_valid_reproducible_and_pairs_dimensions_at_random():
    space = make_space()
    a = space.latin(np.random.default_rng(3), (4, 4))
    assert a == space.latin(np.random.default_rng(3), (4, 4))
    for hparams in a:
        space.validate(hparams)
        assert json.loads(json.dumps(hparams)) == hparams
    assert sorted(h["optimizer"] for h in a) == ["adam"] * 4 + ["sgd"] * 4
    # the lr's and the dropout's strata are not paired in order (independent dealing)
    order = [sorted(range(8), key=lambda i, k=k: a[i][k]) for k in ("lr", "dropout")]
    assert order[0] != order[1]


# perturb


@given(value=st.floats(min_value=-3.0, max_value=5.0), factor=FACTORS)
def test_float_perturb_stays_in_bounds(value, factor):
    dim = Float(-3.0, 5.0)
    x = dim.perturb(value, factor, np.random.default_rng(0))
    assert type(x) is float
    assert -3.0 <= x <= 5.0


def test_float_perturb_multiplies_then_clips():
    dim = Float(1e-4, 0.1, log=True)
    rng = np.random.default_rng(0)
    assert dim.perturb(0.01, 1.2, rng) == pytest.approx(0.012)
    assert dim.perturb(0.01, 0.8, rng) == pytest.approx(0.008)
    assert dim.perturb(0.09, 2.0, rng) == 0.1
    assert dim.perturb(1.5e-4, 0.5, rng) == 1e-4


@given(value=st.integers(min_value=-20, max_value=50), factor=FACTORS)
def test_int_perturb_stays_in_bounds_and_moves_at_least_one_unit(value, factor):
    dim = Int(-20, 50)
    x = dim.perturb(value, factor, np.random.default_rng(0))
    assert type(x) is int
    assert -20 <= x <= 50
    if factor == 1:
        assert x == value
    elif (factor > 1) == (value >= 0):  # the product moves up
        assert x >= min(value + 1, 50)
    else:
        assert x <= max(value - 1, -20)


def test_int_perturb_moves_negative_values_the_way_float_does():
    rng = np.random.default_rng(0)
    for factor in (1.2, 0.8):
        assert np.sign(Int(-20, 0).perturb(-10, factor, rng) + 10) == np.sign(
            Float(-20, 0).perturb(-10.0, factor, rng) + 10)
    assert Int(-20, 0).perturb(-10, 1.2, rng) == -12
    assert Int(-20, 0).perturb(-1, 0.8, rng) == 0


def test_int_perturb_rounds_and_moves_small_values():
    dim = Int(0, 1000)
    rng = np.random.default_rng(0)
    assert dim.perturb(100, 1.2, rng) == 120
    assert dim.perturb(100, 0.8, rng) == 80
    assert dim.perturb(0, 1.2, rng) == 1  # 0 * 1.2 would never leave 0
    assert dim.perturb(2, 1.2, rng) == 3
    assert dim.perturb(2, 0.8, rng) == 1
    assert dim.perturb(0, 0.8, rng) == 0  # at the bound
    assert dim.perturb(1000, 1.2, rng) == 1000
    assert dim.perturb(7, 1.0, rng) == 7


@given(index=st.integers(min_value=0, max_value=3), factor=FACTORS)
def test_choice_perturb_moves_to_a_neighbour(index, factor):
    options = ("a", "b", "c", "d")
    dim = Choice(options)
    x = dim.perturb(options[index], factor, np.random.default_rng(0))
    if factor > 1:
        assert x == options[min(index + 1, 3)]
    elif factor < 1:
        assert x == options[max(index - 1, 0)]
    else:
        assert x == options[index]


def test_choice_perturb_keeps_bools_apart_from_numbers():
    dim = Choice([1, True, 0, False])
    rng = np.random.default_rng(0)
    assert repr(dim.perturb(True, 1.2, rng)) == "0"
    assert repr(dim.perturb(False, 0.8, rng)) == "0"
    assert dim.perturb(1, 1.2, rng) is True


def test_constant_perturb_is_unchanged():
    assert Constant("adam").perturb("adam", 2.0, np.random.default_rng(0)) == "adam"


# validation of values


@pytest.mark.parametrize(
    "dim, value, words",
    [
        (Float(0.0, 1.0), 1.5, "[0.0, 1.0], got 1.5"),
        (Float(0.0, 1.0), float("nan"), "got nan"),
        (Float(0.0, 1.0), "0.5", "number, got '0.5'"),
        (Float(0.0, 1.0), True, "number, got True"),
        (Int(1, 4), 5, "[1, 4], got 5"),
        (Int(1, 4), 2.0, "int, got 2.0"),
        (Choice(["a", "b"]), "c", "one of ['a', 'b'], got 'c'"),
        (Choice([1, 2]), True, "got True"),
        (Constant(10), 11, "constant 10, got 11"),
    ],
)
def test_validate_rejects_bad_values(dim, value, words):
    with pytest.raises(ConfigError) as info:
        dim.validate(value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "dim, value",
    [(Float(0.0, 1.0), 1), (Float(0.0, 1.0), 0.0), (Int(1, 4), 4), (Choice([1, 2]), 2)],
)
def test_validate_accepts_good_values(dim, value):
    dim.validate(value)


# construction


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Float(0.1, 0.01), "low must be < high, got low=0.1, high=0.01"),
        (lambda: Float(1.0, 1.0), "low must be < high, got low=1.0, high=1.0"),
        (lambda: Float(0.0, 1.0, log=True), "log=True needs low > 0, got low=0.0"),
        (lambda: Float(-1.0, 1.0, log=True), "log=True needs low > 0, got low=-1.0"),
        (lambda: Float(0.0, math.inf), "high must be a finite number, got high=inf"),
        (lambda: Float(math.nan, 1.0), "low must be a finite number, got low=nan"),
        (lambda: Float("0", 1.0), "low must be a finite number, got low='0'"),
        (lambda: Float(0.0, 1.0, log="yes"), "log must be True or False, got log='yes'"),
        (lambda: Int(0.5, 4), "Int: low must be an int, got low=0.5"),
        (lambda: Int(1, 4.0), "Int: high must be an int, got high=4.0"),
        (lambda: Int(4, 1), "low must be < high, got low=4, high=1"),
        (lambda: Int(0, 10, log=True), "log=True needs low > 0, got low=0"),
        (lambda: Choice([]), "options must not be empty"),
        (lambda: Choice(["a", "b", "a"]), "distinct, got 'a' twice"),
        (lambda: Choice([1, 1.0]), "distinct, got 1.0 twice"),
        (lambda: Choice("abc"), "list of values, got 'abc'"),
        (lambda: Choice([[1, 2]]), "got [1, 2]"),
        (lambda: Choice([math.nan]), "got nan"),
        (lambda: Constant([64, 64]), "got [64, 64]"),
    ],
)
def test_bad_construction_raises_config_error_naming_the_value(make, words):
    with pytest.raises(ConfigError) as info:
        make()
    assert words in str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_choice_accepts_numpy_values_and_stores_python_ones():
    dim = Choice(np.array([1, 2, 3]))
    assert dim.options == (1, 2, 3)
    assert all(type(x) is int for x in dim.options)
    assert Choice([True, 1]).options == (True, 1)  # a bool is not the number 1


# Space


def make_space() -> Space:
    return Space(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "batch": Int(16, 256, log=True),
            "dropout": Float(0.0, 0.5),
            "optimizer": Choice(["sgd", "adam"]),
            "epochs": 10,
        }
    )


def test_plain_value_becomes_constant():
    space = make_space()
    assert space["epochs"] == Constant(10)


def test_space_is_a_mapping_in_declaration_order():
    space = make_space()
    assert space.names == ("lr", "batch", "dropout", "optimizer", "epochs")
    assert list(space) == list(space.names)
    assert len(space) == 5
    assert dict(space.items())["batch"] == Int(16, 256, log=True)
    assert "lr" in space


def test_space_sample_is_valid_and_json_encodable():
    space = make_space()
    for seed in SEEDS:
        hparams = space.sample(np.random.default_rng(seed))
        space.validate(hparams)
        assert json.loads(json.dumps(hparams)) == hparams


def test_space_sample_is_reproducible():
    space = make_space()
    a = space.sample(np.random.default_rng(7))
    b = space.sample(np.random.default_rng(7))
    assert a == b


@pytest.mark.parametrize(
    "change, words",
    [
        ({"lr": 0.5}, "hparam 'lr': value must be in [0.0001, 0.1], got 0.5"),
        ({"batch": 64.0}, "hparam 'batch': value must be an int, got 64.0"),
        ({"optimizer": "rmsprop"}, "hparam 'optimizer': value must be one of"),
        ({"epochs": 20}, "hparam 'epochs': value must be the constant 10, got 20"),
        ({"momentum": 0.9}, "hparam 'momentum' is not in the space"),
    ],
)
def test_space_validate_names_the_hparam(change, words):
    space = make_space()
    hparams = {**space.sample(np.random.default_rng(0)), **change}
    with pytest.raises(ConfigError) as info:
        space.validate(hparams)
    assert words in str(info.value)


def test_space_validate_reports_missing_hparam():
    space = make_space()
    hparams = space.sample(np.random.default_rng(0))
    del hparams["dropout"]
    with pytest.raises(ConfigError, match="hparam 'dropout' is missing"):
        space.validate(hparams)


def test_empty_space_is_rejected():
    with pytest.raises(ConfigError, match=r"space must have at least one hparam, got \{\}"):
        Space({})


def test_non_string_name_is_rejected():
    with pytest.raises(ConfigError, match="hparam names must be strings, got 3"):
        Space({3: Float(0.0, 1.0)})


def test_bad_plain_value_names_the_hparam():
    with pytest.raises(ConfigError, match=r"hparam 'layers': .*got \[64, 64\]"):
        Space({"layers": [64, 64]})


def test_to_dict_from_dict_round_trip_through_json():
    space = make_space()
    d = json.loads(json.dumps(space_to_dict(space)))
    again = space_from_dict(d)
    assert again == space
    assert again.names == space.names
    assert d["lr"] == {"type": "float", "low": 1e-4, "high": 0.1, "log": True}
    assert d["epochs"] == {"type": "constant", "value": 10}


def test_float_bounds_given_as_ints_round_trip_as_floats():
    dim = Float(0, 1)
    assert dim.to_dict() == {"type": "float", "low": 0.0, "high": 1.0, "log": False}
    assert dimension_from_dict(dim.to_dict()) == dim


@pytest.mark.parametrize(
    "d, words",
    [
        (
            {"type": "normal", "mean": 0},
            "type must be one of float, int, choice, constant; got 'normal'",
        ),
        ({"low": 0, "high": 1}, "type must be one of float, int, choice, constant; got None"),
        ({"type": "float", "low": 0, "hi": 1}, "no field 'hi'; allowed: low, high, log"),
        ({"type": "float", "low": 0}, "missing 1 required positional argument: 'high'"),
        ({"type": "int", "low": 0, "high": 1.5}, "high must be an int, got high=1.5"),
        ("float", "must be a mapping with a 'type', got 'float'"),
    ],
)
def test_from_dict_errors_name_the_hparam_and_the_problem(d, words):
    with pytest.raises(ConfigError) as info:
        space_from_dict({"lr": d})
    assert str(info.value).startswith("hparam 'lr': ")
    assert words in str(info.value)


# shift: additive moves (the Noise rule), and each dimension's own explore rule


@given(value=st.floats(min_value=-3.0, max_value=5.0), delta=st.floats(-100.0, 100.0))
def test_float_shift_adds_then_clips(value, delta):
    x = Float(-3.0, 5.0).shift(value, delta, np.random.default_rng(0))
    assert type(x) is float
    assert x == min(max(value + delta, -3.0), 5.0)


def test_float_shift_moves_zero_which_perturb_cannot():
    dim = Float(0.0, 1.0)
    rng = np.random.default_rng(0)
    assert dim.perturb(0.0, 1.2, rng) == 0.0  # the paper's toy trap: 0 * factor stays 0
    assert dim.shift(0.0, 0.05, rng) == 0.05
    assert dim.shift(0.0, -0.05, rng) == 0.0  # clipped at the bound, as in the paper


@given(value=st.integers(-20, 50), delta=st.floats(-100.0, 100.0))
def test_int_shift_rounds_moves_at_least_one_unit_and_stays_in_bounds(value, delta):
    x = Int(-20, 50).shift(value, delta, np.random.default_rng(0))
    assert type(x) is int
    assert -20 <= x <= 50
    if delta > 0:
        assert x == min(value + max(round(delta), 1), 50)
    elif delta < 0:
        assert x == max(value + min(round(delta), -1), -20)
    else:
        assert x == value


def test_int_shift_examples():
    dim = Int(0, 10)
    rng = np.random.default_rng(0)
    assert dim.shift(0, 0.1, rng) == 1  # a small noise still moves a discrete hparam
    assert dim.shift(5, -0.1, rng) == 4
    assert dim.shift(5, 2.4, rng) == 7
    assert dim.shift(5, -2.6, rng) == 2
    assert dim.shift(10, 3.0, rng) == 10
    assert dim.shift(5, 0.0, rng) == 5


@given(index=st.integers(0, 3), delta=st.floats(-10.0, 10.0))
def test_choice_shift_moves_through_the_ordered_options(index, delta):
    options = ("a", "b", "c", "d")
    x = Choice(options).shift(options[index], delta, np.random.default_rng(0))
    steps = 0 if delta == 0 else (max(round(delta), 1) if delta > 0 else min(round(delta), -1))
    assert x == options[min(max(index + steps, 0), 3)]


def test_constant_shift_is_unchanged():
    assert Constant(3).shift(3, 2.0, np.random.default_rng(0)) == 3


def test_dimensions_take_an_explore_rule_by_keyword():
    from populace.strategies import Keep, Noise, Perturb

    assert Float(0, 1, explore=Noise(0.1)).explore == Noise(0.1)
    assert Int(1, 8, explore=Keep()).explore == Keep()
    assert Choice(["a", "b"], explore=Perturb((0.5, 2.0))).explore == Perturb((0.5, 2.0))
    assert Float(0, 1).explore is None
    assert Constant(3).explore is None
    assert Float(0, 1) != Float(0, 1, explore=Keep())


@pytest.mark.parametrize(
    "rule, words",
    [
        ("noise", "explore must be a rule with a mutate(dimension, value, rng) method"),
        ({"name": "noise", "scale": 0.1}, "got {'name': 'noise', 'scale': 0.1}"),
        (lambda h, s, r: h, "explore must be a rule with a mutate"),
    ],
)
def test_an_explore_that_is_not_a_rule_is_refused(rule, words):
    with pytest.raises(ConfigError) as info:
        Float(0, 1, explore=rule)
    assert words in str(info.value)


def test_a_rule_class_instead_of_a_rule_says_to_call_it():
    from populace.strategies import Noise

    with pytest.raises(ConfigError, match=r"got the class Noise; call it, e.g. Noise\(...\)"):
        Int(0, 3, explore=Noise)


def test_rules_round_trip_through_to_dict_and_json():
    from populace.strategies import Keep, Noise, Perturb, PerturbOrResample, Resample

    space = Space({
        "h": Float(0, 1, explore=Noise(0.1)),
        "lr": Float(1e-4, 1e-1, log=True, explore=Perturb((0.5, 2.0))),
        "batch": Int(16, 256, explore=PerturbOrResample(0.5)),
        "layers": Int(1, 8, explore=Keep()),
        "optimizer": Choice(["sgd", "adam"], explore=Resample()),
        "momentum": Float(0.0, 0.99),
        "epochs": 10,
    })
    d = json.loads(json.dumps(space_to_dict(space)))
    assert d["h"] == {"type": "float", "low": 0.0, "high": 1.0, "log": False,
                      "explore": {"name": "noise", "scale": 0.1}}
    assert d["lr"]["explore"] == {"name": "perturb", "factors": [0.5, 2.0]}
    assert d["layers"]["explore"] == {"name": "keep"}
    assert d["momentum"] == {"type": "float", "low": 0.0, "high": 0.99, "log": False}
    again = space_from_dict(d)
    assert again == space
    assert again["lr"].explore == Perturb((0.5, 2.0))


def test_from_dict_takes_a_rule_by_name_alone():
    from populace.strategies import Keep

    assert space_from_dict({"n": {"type": "int", "low": 1, "high": 4, "explore": "keep"}})[
        "n"
    ] == Int(1, 4, explore=Keep())


def unchanged(hparams, space, rng):
    """An explore function of the whole-run shape: it is no per-hparam rule."""
    return dict(hparams)


@pytest.mark.parametrize(
    "d, words",
    [
        ({"type": "float", "low": 0, "high": 1, "explore": {"name": "jitter"}},
         "explore must be one of perturb, resample, perturb-or-resample, noise, keep; "
         "got 'jitter'"),
        # a run's explore that models the hparams together is not offered as a value's rule
        ({"type": "float", "low": 0, "high": 1, "explore": "pb2"},
         "explore must be one of perturb, resample, perturb-or-resample, noise, keep; "
         "got 'pb2'"),
        ({"type": "float", "low": 0, "high": 1, "explore": "noise"},
         "explore 'noise': "),
        ({"type": "float", "low": 0, "high": 1, "explore": {"name": "noise", "scale": -1}},
         "Noise: scale must be a finite number > 0, got scale=-1"),
        ({"type": "float", "low": 0, "high": 1, "explore": {"scale": 0.1}},
         "explore must be a rule name or a mapping with a 'name'"),
        ({"type": "float", "low": 0, "high": 1, "explore": 3}, "got explore=3"),
        ({"type": "constant", "value": 3, "explore": "keep"},
         "dimension type 'constant' has no field 'explore'; allowed: value"),
        ({"type": "float", "low": 0, "high": 1, "explore": f"{__name__}:unchanged"},
         "explore must be a rule with a mutate"),  # a whole-run explore, not a per-value rule
    ],
)
def test_a_bad_rule_in_a_stored_space_names_the_hparam(d, words):
    with pytest.raises(ConfigError) as info:
        space_from_dict({"lr": d})
    assert str(info.value).startswith("hparam 'lr': ")
    assert words in str(info.value)
