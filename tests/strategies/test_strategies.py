from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from populace.errors import ConfigError
from populace.space import Choice, Float, Int, Space
from populace.strategies import (
    EXPLOIT,
    EXPLORE,
    PB2,
    EverySeconds,
    EverySteps,
    Fire,
    Keep,
    NoExploit,
    Noise,
    OwnState,
    Perturb,
    PerturbOrResample,
    Resample,
    Rule,
    Snapshot,
    Tournament,
    Truncation,
    TTest,
    describe,
    make_exploit,
    make_explore,
    space_from_dict,
    space_to_dict,
)
from populace.testing import (
    EXPLOIT_CHECKS,
    EXPLORE_CHECKS,
    check_exploit_donor_is_a_member,
    check_exploit_pure,
)


def rngs() -> list[np.random.Generator]:
    """Fresh generators, so no test depends on another's draws."""
    return [np.random.default_rng(seed) for seed in range(200)]


def snapshot(scores, maximize=True, ids=None) -> Snapshot:
    n = len(scores)
    ids = np.arange(100, 100 + n) if ids is None else np.asarray(ids)
    return Snapshot(
        ids=np.asarray(ids, dtype=np.int64),
        steps=np.zeros(n, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        hparams=[{} for _ in range(n)],
        maximize=maximize,
    )


def donors(strategy, snap: Snapshot) -> dict[int, set]:
    """For each member, every donor it got across rngs() (None = kept its own)."""
    return {int(m): {strategy(snap, int(m), rng) for rng in rngs()} for m in snap.ids}


# Truncation


SCORES = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0]  # ids 100..109


def test_truncation_bottom_two_copy_from_top_two_when_maximizing():
    got = donors(Truncation(0.2), snapshot(SCORES))
    worst, best = {109, 102}, {101, 105}  # scores 0.0, 0.1 and 0.9, 0.8
    for member, ds in got.items():
        if member in worst:
            assert ds == best  # always a top-2 donor, and both get picked
        else:
            assert ds == {None}


def test_truncation_roles_flip_when_minimizing():
    got = donors(Truncation(0.2), snapshot(SCORES, maximize=False))
    worst, best = {101, 105}, {109, 102}
    for member, ds in got.items():
        assert ds == (best if member in worst else {None})


@pytest.mark.parametrize(
    "n, fraction, k",
    [
        (10, 0.2, 2),
        (7, 0.2, 2),
        (5, 0.5, 2),
        (3, 0.5, 1),
        (30, 0.1, 3),
        (4, 0.2, 1),
        (25, 0.28, 7),
    ],  # 0.28 * 25 is 7.000000000000001 in floating point
)
def test_truncation_touches_exactly_k_members(n, fraction, k):
    snap = snapshot(np.random.default_rng(n).permutation(n).astype(float))
    got = donors(Truncation(fraction), snap)
    copying = {m for m, ds in got.items() if ds != {None}}
    order = [int(snap.ids[r]) for r in snap.ranking()]
    assert copying == set(order[-k:])
    for m in copying:
        assert got[m] <= set(order[:k]) and None not in got[m]


def test_truncation_two_members_worse_copies_better():
    snap = snapshot([1.0, 2.0])
    for rng in rngs():
        assert Truncation(0.2)(snap, 100, rng) == 101
        assert Truncation(0.2)(snap, 101, rng) is None


def test_truncation_nan_member_copies_and_never_donates():
    scores = [0.5, np.nan, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.9]
    got = donors(Truncation(0.2), snapshot(scores))
    assert got[101] == {109, 105}  # NaN ranks last, so it copies a top member
    assert got[102] == {109, 105}  # 0.1 is the worst valid score
    assert all(101 not in ds for ds in got.values())


def test_truncation_members_without_a_score_hold_the_bottom_places():
    # 4 of 10 have reported, k = ceil(0.2 * 10) = 2: the bottom two places belong to members
    # without a score, so none of the four copies yet (an asynchronous run's first reports
    # must not copy the population onto the first member that reported); each of those
    # without a score copies when it decides, from the top two
    scores = [np.nan] * 6 + [1.0, 2.0, 3.0, 4.0]
    got = donors(Truncation(0.2), snapshot(scores))
    copying = {m for m, ds in got.items() if ds != {None}}
    assert copying == {100, 101, 102, 103, 104, 105}
    for m in copying:
        assert got[m] == {109, 108}
    # once all but one have reported, the worst reported member takes the other bottom place
    got = donors(Truncation(0.2), snapshot([np.nan] + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    assert got[101] == {107, 106} and got[102] == {None}


def test_truncation_with_one_score_copies_that_member_into_each_member_without_one():
    got = donors(Truncation(0.5), snapshot([np.nan, np.nan, 0.3]))
    assert got == {100: {102}, 101: {102}, 102: {None}}


def test_truncation_unknown_member_raises_key_error():
    with pytest.raises(KeyError, match="member 7"):
        Truncation()(snapshot([1.0, 2.0]), 7, np.random.default_rng(0))


@given(
    scores=st.lists(st.one_of(st.floats(-10, 10), st.just(math.nan)), min_size=1, max_size=30),
    fraction=st.floats(min_value=0.01, max_value=0.5),
    seed=st.integers(0, 2**32 - 1),
    maximize=st.booleans(),
)
@settings(max_examples=200)
def test_truncation_donor_is_valid_other_member_and_not_worse(scores, fraction, seed, maximize):
    snap = snapshot(scores, maximize=maximize)
    rng = np.random.default_rng(seed)
    for m in snap.ids:
        d = Truncation(fraction)(snap, int(m), rng)
        if d is not None:
            assert d != m
            assert np.isfinite(snap.scores[snap.index(d)])
            assert not snap.better(snap.index(int(m)), snap.index(d))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 0.51, 1.0, math.nan, "0.2", True])
def test_truncation_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 0.5\], got fraction="):
        Truncation(fraction)


# Tournament and NoExploit


def test_tournament_loser_copies_winner_and_winner_keeps():
    for maximize, winner, loser in [(True, 101, 100), (False, 100, 101)]:
        snap = snapshot([1.0, 2.0], maximize=maximize)
        for rng in rngs():
            assert Tournament()(snap, loser, rng) == winner
            assert Tournament()(snap, winner, rng) is None


def test_tournament_tie_keeps_own():
    snap = snapshot([1.0, 1.0])
    assert {Tournament()(snap, 100, rng) for rng in rngs()} == {None}


def test_tournament_rival_is_any_other_member_never_itself():
    snap = snapshot([0.0, 1.0, 2.0, 3.0])  # the worst member loses to every rival
    assert {Tournament()(snap, 100, rng) for rng in rngs()} == {101, 102, 103}
    # the best never copies; the middle one copies only the better two
    assert {Tournament()(snap, 103, rng) for rng in rngs()} == {None}
    assert {Tournament()(snap, 101, rng) for rng in rngs()} == {None, 102, 103}


def test_tournament_nan_member_copies_and_never_donates():
    snap = snapshot([np.nan, 1.0])
    assert Tournament()(snap, 100, np.random.default_rng(0)) == 101
    assert Tournament()(snap, 101, np.random.default_rng(0)) is None
    assert Tournament()(snapshot([np.nan, np.nan]), 100, np.random.default_rng(0)) is None


def test_no_exploit_always_keeps_own():
    snap = snapshot(SCORES)
    assert all(ds == {None} for ds in donors(NoExploit(), snap).values())


# explore


SPACE = Space(
    {
        "lr": Float(1e-4, 1e-1, log=True),
        "batch": Int(16, 256),
        "dropout": Float(0.0, 0.5),
        "optimizer": Choice(["sgd", "momentum", "adam"]),
        "epochs": 10,
    }
)
HPARAMS = {"lr": 0.01, "batch": 100, "dropout": 0.25, "optimizer": "momentum", "epochs": 10}


# every registered strategy passes the contract battery (populace.testing)

# what a registered strategy without a default for a parameter is built with
REQUIRED = {"noise": {"scale": 0.1}}
# built-ins with parameters of note, checked beside their defaults
EXPLOIT_VARIANTS = {"truncation(0.5)": Truncation(0.5),
                    "fire(4 sub-populations)": Fire(subpopulations=4, budget=4, align="start")}
EXPLORE_VARIANTS = {"perturb(0.5, 2.0)": Perturb((0.5, 2.0)),
                    "perturb-or-resample(0.5, (0.5, 2.0))": PerturbOrResample(0.5, (0.5, 2.0))}


def built(name: str, make, variants: dict):
    """The strategy registered as `name`, built with its defaults (or a variant)."""
    if name in variants:
        return variants[name]
    try:
        return make(name, **REQUIRED.get(name, {}))
    except ConfigError as e:
        pytest.fail(f"{name!r} cannot be built with its defaults ({e}): give the parameters "
                    "it needs in REQUIRED")


@pytest.mark.parametrize("check", EXPLOIT_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", [*EXPLOIT, *EXPLOIT_VARIANTS])
def test_every_exploit_keeps_the_contract(name, check):
    check(built(name, make_exploit, EXPLOIT_VARIANTS))


class _SplitOnly(Fire):
    """A FIRE that breaks the contract only where its sub-populations are: on a snapshot
    that has them it adds a point to the member's curve."""

    def plan(self, snapshot, member_id, rng):
        if snapshot.groups is not None and snapshot.curves:
            snapshot.curves[snapshot.index(member_id)].append([0.0, 0.0])
        return super().plan(snapshot, member_id, rng)


@pytest.mark.parametrize("check", [check_exploit_pure, check_exploit_donor_is_a_member],
                         ids=lambda check: check.__name__)
def test_the_battery_reaches_an_exploits_own_sub_populations(check):
    """An exploit with a `layout` is checked on snapshots laid out by it, with curves and
    evaluations: a FIRE that misbehaves only there is caught (on plain populations it
    falls back to truncation and passes)."""
    if check is check_exploit_pure:
        with pytest.raises(AssertionError, match="changed the snapshot's curves"):
            check(_SplitOnly())
    else:  # its donor is always a member: it passes, and its plans reached the split path
        seen = []

        class Counted(Fire):
            def plan(self, snapshot, member_id, rng):
                found = super().plan(snapshot, member_id, rng)
                if snapshot.groups is not None and found is not None:
                    seen.append(found.move.value)
                return found

        check(Counted())
        assert {"copy", "evaluate", "adopt", "settle"} <= set(seen), seen


@pytest.mark.parametrize("check", EXPLORE_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", [*EXPLORE, *EXPLORE_VARIANTS])
def test_every_explore_keeps_the_contract(name, check):
    check(built(name, make_explore, EXPLORE_VARIANTS), None)


@pytest.mark.parametrize("name", [*EXPLORE, *EXPLORE_VARIANTS])
def test_every_explore_proposes_json_values(name):
    """A built-in proposes plain values, stored as they are (a strategy of your own may give
    numpy scalars: the worker makes them plain)."""
    explore = built(name, make_explore, EXPLORE_VARIANTS)
    for rng in rngs():
        new = explore(SPACE.sample(rng), SPACE, rng)
        assert json.loads(json.dumps(new)) == new


def perturbed_values(explore) -> dict[str, set]:
    seen: dict[str, set] = {name: set() for name in SPACE}
    for rng in rngs():
        for name, value in explore(HPARAMS, SPACE, rng).items():
            seen[name].add(round(value, 12) if isinstance(value, float) else value)
    return seen


PERTURBED = {
    "lr": {0.008, 0.012},
    "batch": {80, 120},
    "dropout": {0.2, 0.3},
    "optimizer": {"sgd", "adam"},
    "epochs": {10},
}


def test_perturb_multiplies_by_one_of_the_factors_independently_per_hparam():
    assert perturbed_values(Perturb()) == PERTURBED
    outcomes = {tuple(sorted(Perturb()(HPARAMS, SPACE, rng).items())) for rng in rngs()}
    assert len(outcomes) == 16  # 2 factors for each of the 4 changeable hparams


def test_perturb_or_resample_with_probability_zero_only_perturbs():
    assert perturbed_values(PerturbOrResample(0.0)) == PERTURBED


def test_perturb_or_resample_with_probability_one_resamples():
    assert_resampled(PerturbOrResample(1.0))


def test_resample_draws_from_the_prior():
    assert_resampled(Resample())


def assert_resampled(explore):
    news = [explore(HPARAMS, SPACE, rng) for rng in rngs()]
    lrs = np.log10([h["lr"] for h in news])
    assert abs(np.median(lrs) - (-2.5)) < 0.3  # log-uniform on [1e-4, 1e-1]
    assert len({h["batch"] for h in news}) > 100
    assert {h["optimizer"] for h in news} == {"sgd", "momentum", "adam"}
    assert all(h["epochs"] == 10 for h in news)
    assert not any(round(h["lr"], 12) in PERTURBED["lr"] for h in news)


def test_perturb_or_resample_mixes_both():
    news = [PerturbOrResample(0.5)(HPARAMS, SPACE, rng)["batch"] for rng in rngs()]
    perturbed = sum(b in PERTURBED["batch"] for b in news)
    assert 70 < perturbed < 140  # about half perturbed, plus a few resamples that land there


@pytest.mark.parametrize(
    "factors", [(), (0.8, -1.2), (0.0,), (math.inf,), (math.nan,), "0.8", ("a",), 1.2]
)
def test_perturb_rejects_bad_factors(factors):
    with pytest.raises(ConfigError,
                       match="factors must be a non-empty list of at most 64 finite numbers > 0"):
        Perturb(factors)
    with pytest.raises(ConfigError, match="PerturbOrResample: factors must be"):
        PerturbOrResample(0.25, factors)


@pytest.mark.parametrize("probability", [-0.1, 1.1, math.nan, "0.5", None])
def test_perturb_or_resample_rejects_bad_probability(probability):
    with pytest.raises(ConfigError, match=r"probability must be in \[0, 1\], got probability="):
        PerturbOrResample(probability)


def test_factors_given_as_list_become_a_tuple():
    assert Perturb([0.5, 2]).factors == (0.5, 2.0)


# ready


def test_every_steps():
    rule = EverySteps(100)
    assert not rule(99, 1e9)
    assert rule(100, 0.0)
    assert rule(150, 0.0)
    assert rule.segment_steps() == 100


def test_every_seconds():
    rule = EverySeconds(60)
    assert not rule(10**9, 59.9)
    assert rule(0, 60.0)
    assert rule.segment_steps() is None


@pytest.mark.parametrize("steps", [0, -1, 1.5, "10", True])
def test_every_steps_rejects_bad_steps(steps):
    with pytest.raises(ConfigError, match="steps must be an int >= 1, got steps="):
        EverySteps(steps)


@pytest.mark.parametrize("seconds", [0, -1.0, math.inf, math.nan, "60"])
def test_every_seconds_rejects_bad_seconds(seconds):
    with pytest.raises(ConfigError, match="seconds must be a finite number > 0, got seconds="):
        EverySeconds(seconds)


# registries


def test_registries_name_the_classes():
    assert EXPLOIT == {
        "truncation": Truncation, "tournament": Tournament, "ttest": TTest, "none": NoExploit,
        "own": OwnState, "fire": Fire,
    }
    assert EXPLORE == {
        "perturb": Perturb,
        "resample": Resample,
        "perturb-or-resample": PerturbOrResample,
        "noise": Noise,
        "keep": Keep,
        "pb2": PB2,
    }


def test_make_builds_with_params():
    assert make_exploit("truncation", fraction=0.25) == Truncation(0.25)
    assert make_exploit("none") == NoExploit()
    assert make_explore("perturb", factors=[0.5, 2.0]) == Perturb((0.5, 2.0))


def test_make_rejects_unknown_names():
    with pytest.raises(ConfigError) as info:
        make_exploit("foo")
    assert str(info.value) == (
        "exploit must be one of truncation, tournament, ttest, none, own, fire; got 'foo'. A "
        "strategy "
        "of your own is named by its import path, 'package.module:Name'")
    with pytest.raises(
        ConfigError,
        match="explore must be one of perturb, resample, perturb-or-resample, noise, keep, pb2; "
        "got 'mutate'",
    ):
        make_explore("mutate")


def test_make_rejects_unknown_params():
    with pytest.raises(
        ConfigError, match="exploit 'truncation' has no parameter 'frac'; allowed: fraction"
    ):
        make_exploit("truncation", frac=0.2)
    with pytest.raises(
        ConfigError, match="exploit 'tournament' has no parameter 'size'; it takes no parameters"
    ):
        make_exploit("tournament", size=3)
    with pytest.raises(ConfigError, match="explore 'perturb' has no parameter 'probability'"):
        make_explore("perturb", probability=0.5)


def test_make_passes_on_bad_param_values():
    with pytest.raises(ConfigError, match="fraction must be in"):
        make_exploit("truncation", fraction=0.9)


@pytest.mark.parametrize(
    "strategy",
    [Truncation(), Truncation(0.5), Tournament(), NoExploit()],
)
def test_describe_round_trips_exploit(strategy):
    d = json.loads(json.dumps(describe(strategy)))
    assert make_exploit(**d) == strategy


@pytest.mark.parametrize(
    "strategy",
    [Perturb(), Perturb((0.5, 2.0)), Resample(), PerturbOrResample(0.1, (0.9, 1.1))],
)
def test_describe_round_trips_explore(strategy):
    d = json.loads(json.dumps(describe(strategy)))
    assert make_explore(**d) == strategy


def test_describe_gives_lists_for_tuples():
    assert describe(PerturbOrResample()) == {
        "name": "perturb-or-resample",
        "probability": 0.25,
        "factors": [0.8, 1.2],
    }
    assert describe(Truncation()) == {"name": "truncation", "fraction": 0.2}


def test_a_ready_rule_described_is_no_exploit():
    d = describe(EverySteps(10))
    assert d == {"name": "populace.strategies.ready:EverySteps", "steps": 10}
    with pytest.raises(ConfigError, match=r"callable as exploit\(snapshot, member_id, rng\)"):
        make_exploit(**d)


# explore rules per hparam


def test_resample_draws_exactly_what_the_space_samples():
    """The per-hparam rewrite keeps every run's random draws as they were."""
    for seed in range(20):
        new = Resample()(HPARAMS, SPACE, np.random.default_rng(seed))
        assert new == SPACE.sample(np.random.default_rng(seed))


def test_noise_moves_a_zero_valued_hparam_that_perturb_cannot():
    """The paper's toy (Fig. 2): h = 0 must be able to grow, or PBT locks at Q = 0.39."""
    space = Space({"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)})
    h = {"h0": 1.0, "h1": 0.0}
    assert {Perturb()(h, space, rng)["h1"] for rng in rngs()} == {0.0}
    moved = [Noise(0.1)(h, space, rng)["h1"] for rng in rngs()]
    assert 70 < sum(x > 0 for x in moved) < 130  # about half the draws are positive
    assert all(0.0 <= x <= 1.0 for x in moved)


def test_a_dimension_rule_moves_zero_under_the_run_default_perturb():
    space = Space({"h": Float(0.0, 1.0, explore=Noise(0.1)), "lr": Float(1e-4, 1e-1, log=True)})
    news = [Perturb()({"h": 0.0, "lr": 0.01}, space, rng) for rng in rngs()]
    assert any(n["h"] > 0 for n in news)
    assert {round(n["lr"], 12) for n in news} == {0.008, 0.012}  # lr keeps the run default


def test_noise_on_a_float_is_gaussian_with_the_given_scale():
    dim = Float(-100.0, 100.0)
    rng = np.random.default_rng(0)
    moves = np.array([Noise(0.5).mutate(dim, 3.0, rng) - 3.0 for _ in range(4000)])
    assert abs(moves.mean()) < 0.03
    assert abs(moves.std() - 0.5) < 0.03


@given(
    value=st.floats(0.0, 1.0),
    scale=st.floats(min_value=1e-3, max_value=10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_noise_never_leaves_the_bounds(value, scale, seed):
    space = Space({
        "x": Float(0.0, 1.0), "n": Int(-3, 3), "c": Choice(["a", "b", "c"]), "k": 7,
    })
    rng = np.random.default_rng(seed)
    h = {"x": value, "n": 0, "c": "b", "k": 7}
    for _ in range(20):
        h = Noise(scale)(h, space, rng)
        space.validate(h)


def test_noise_on_int_and_choice_moves_at_least_one_step():
    space = Space({"n": Int(0, 100), "c": Choice(["a", "b", "c", "d", "e"])})
    news = [Noise(0.1)({"n": 50, "c": "c"}, space, rng) for rng in rngs()]
    assert {n["n"] for n in news} == {49, 51}  # a small noise is one unit, either way
    assert {n["c"] for n in news} == {"b", "d"}
    wide = [Noise(3.0)({"n": 50, "c": "c"}, space, rng) for rng in rngs()]
    assert 50 not in {n["n"] for n in wide} and len({n["n"] for n in wide}) > 6
    assert {n["c"] for n in wide} == {"a", "b", "d", "e"}  # clipped to the ends


@pytest.mark.parametrize("scale", [0, -0.1, math.inf, math.nan, "0.1", True, None])
def test_noise_rejects_bad_scale(scale):
    with pytest.raises(ConfigError, match="Noise: scale must be a finite number > 0, got scale="):
        Noise(scale)


def test_noise_needs_a_scale_by_name():
    with pytest.raises(ConfigError, match="explore 'noise': .*scale"):
        make_explore("noise")
    assert make_explore("noise", scale=0.2) == Noise(0.2)


@given(seed=st.integers(0, 2**32 - 1))
def test_keep_never_changes_anything(seed):
    rng = np.random.default_rng(seed)
    h = SPACE.sample(rng)
    assert Keep()(h, SPACE, rng) == h


def test_a_kept_dimension_stays_while_the_others_explore():
    space = Space({"n": Int(1, 8, explore=Keep()), "x": Float(0.0, 1.0)})
    for explore in (Perturb(), Resample(), PerturbOrResample(1.0), Noise(0.3)):
        news = [explore({"n": 3, "x": 0.5}, space, rng) for rng in rngs()]
        assert {n["n"] for n in news} == {3}
        assert len({n["x"] for n in news}) > 1


def test_a_dimension_perturb_uses_its_own_factors_and_the_others_the_run_default():
    """The paper's GAN factors (0.5, 2.0) on one hparam, its MT factors on the rest."""
    space = Space({
        "lr": Float(1e-4, 1e-1, log=True, explore=Perturb((0.5, 2.0))),
        "dropout": Float(0.0, 0.5),
        "batch": Int(16, 256),
    })
    h = {"lr": 0.01, "dropout": 0.25, "batch": 100}
    news = [Perturb((0.8, 1.2))(h, space, rng) for rng in rngs()]
    assert {round(n["lr"], 12) for n in news} == {0.005, 0.02}
    assert {round(n["dropout"], 12) for n in news} == {0.2, 0.3}
    assert {n["batch"] for n in news} == {80, 120}
    # under a resampling run, only lr still moves by its own factors
    news = [Resample()(h, space, rng) for rng in rngs()]
    assert {round(n["lr"], 12) for n in news} == {0.005, 0.02}
    assert len({n["dropout"] for n in news}) > 100


def test_a_dimension_resample_probability_overrides_the_run_default():
    space = Space({"x": Float(0.0, 1.0, explore=PerturbOrResample(1.0)), "y": Float(0.0, 1.0)})
    news = [Perturb()({"x": 0.5, "y": 0.5}, space, rng) for rng in rngs()]
    assert {round(n["y"], 12) for n in news} == {0.4, 0.6}
    assert len({n["x"] for n in news} - {0.4, 0.6}) > 100


def test_every_rule_keeps_repeated_explore_in_bounds():
    space = Space({
        "lr": Float(1e-4, 1e-1, log=True, explore=Perturb((0.5, 2.0))),
        "h": Float(0.0, 1.0, explore=Noise(0.5)),
        "batch": Int(16, 256, explore=Noise(40.0)),
        "opt": Choice(["sgd", "momentum", "adam"], explore=PerturbOrResample(0.3)),
        "layers": Int(1, 8, explore=Keep()),
        "epochs": 10,
    })
    for explore in (Perturb(), Resample(), Noise(1.0), Keep()):
        rng = np.random.default_rng(0)
        h = space.sample(rng)
        for _ in range(300):
            h = explore(h, space, rng)
            space.validate(h)


@pytest.mark.parametrize(
    "rule", [Perturb((0.5, 2.0)), Resample(), PerturbOrResample(0.1, (0.9, 1.1)), Noise(0.1),
             Keep()],
)
def test_describe_round_trips_rules(rule):
    d = json.loads(json.dumps(describe(rule)))
    assert make_explore(**d) == rule


# strategies of your own (module level, so they import back by name)


@dataclass(frozen=True)
class CopyWorst:
    """Not built in: every member copies the worst other member."""

    offset: int = 0

    def __call__(self, snapshot, member_id, rng):
        rows = [r for r in snapshot.ranking() if snapshot.ids[r] != member_id]
        return int(snapshot.ids[rows[-1]]) + self.offset


def halve(hparams, space, rng):
    """Not built in: halve every float hparam."""
    return {k: v / 2 if isinstance(v, float) else v for k, v in hparams.items()}


@dataclass(frozen=True)
class Step(Rule):
    """A per-hparam rule of one's own: add `by`, clipped."""

    by: float = 1.0

    def mutate(self, dimension, value, rng):
        return dimension.shift(value, self.by, rng)


class Plain:
    def __call__(self, snapshot, member_id, rng):
        return None


def test_make_builds_a_strategy_of_your_own_by_import_path():
    name = f"{__name__}:CopyWorst"
    assert make_exploit(name) == CopyWorst()
    assert make_exploit(name, offset=1) == CopyWorst(1)
    assert make_exploit(f"{__name__}.CopyWorst") == CopyWorst()  # dots alone work too
    assert make_explore(f"{__name__}:halve") is halve
    assert make_exploit("populace.strategies.exploit:Truncation", fraction=0.5) == Truncation(0.5)
    assert make_exploit(name)(snapshot([3.0, 1.0, 2.0]), 100, np.random.default_rng(0)) == 101


def test_describe_names_a_strategy_of_your_own_by_import_path():
    assert describe(CopyWorst(2)) == {"name": f"{__name__}:CopyWorst", "offset": 2}
    assert describe(halve) == {"name": f"{__name__}:halve"}
    for strategy, make in ((CopyWorst(2), make_exploit), (halve, make_explore),
                           (Step(0.5), make_explore)):
        d = json.loads(json.dumps(describe(strategy)))
        assert make(**d) == strategy


def test_a_rule_of_your_own_serves_per_hparam_and_round_trips_with_the_space():
    space = Space({"n": Int(0, 10, explore=Step(2.0)), "x": Float(0.0, 1.0)})
    assert Keep()({"n": 3, "x": 0.5}, space, np.random.default_rng(0)) == {"n": 5, "x": 0.5}
    d = json.loads(json.dumps(space_to_dict(space)))
    assert d["n"]["explore"] == {"name": f"{__name__}:Step", "by": 2.0}
    assert space_from_dict(d) == space


@pytest.mark.parametrize(
    "kind, name, params, words",
    [
        ("exploit", "no_such_module_xyz:Thing", {},
         "exploit 'no_such_module_xyz:Thing' cannot be imported: ModuleNotFoundError: "
         "No module named 'no_such_module_xyz'"),
        ("exploit", "populace.strategies:Nothing", {},
         "exploit 'populace.strategies:Nothing' cannot be imported: AttributeError: "),
        ("exploit", "populace.strategies:", {}, "must be a dotted path like"),
        ("exploit", f"{__name__}:CopyWorst", {"margin": 1},
         "has no parameter 'margin'; allowed: offset"),
        ("explore", f"{__name__}:halve", {"factor": 3},
         "is not a class, so it takes no parameters; got factor"),
        ("exploit", "populace.strategies.ready:EverySteps", {"steps": 4},
         "must be callable as exploit(snapshot, member_id, rng)"),
        ("explore", "populace.strategies.ready:EverySteps", {"steps": 4},
         "must be callable as explore(hparams, space, rng)"),
        ("exploit", f"{__name__}:SPACE", {}, "must be callable as exploit"),
        ("exploit", f"{__name__}:Plain", {"x": 1}, "exploit 'test_strategies:Plain': "),
    ],
)
def test_bad_import_paths_are_config_errors_naming_them(kind, name, params, words):
    make = make_exploit if kind == "exploit" else make_explore
    words = words.replace("test_strategies", __name__)
    with pytest.raises(ConfigError) as info:
        make(name, **params)
    assert words in str(info.value)


def _local():
    @dataclass(frozen=True)
    class Inner:
        def __call__(self, snapshot, member_id, rng):
            return None

    return Inner()


@pytest.mark.parametrize(
    "strategy, words",
    [
        (_local(), "must be defined at the top level of a module"),
        (lambda h, s, r: h, "must be defined at the top level of a module"),
        (Plain(), "must be a built-in strategy, a (frozen) dataclass instance or a function"),
        (CopyWorst, "must be an instance, got the class CopyWorst; call it"),
        (CopyWorst(offset=(1, {2})), "parameters are stored with the run, so they must be JSON"),
        (object(), "must be a built-in strategy"),
    ],
)
def test_describe_refuses_what_a_worker_could_not_rebuild(strategy, words):
    with pytest.raises(ConfigError) as info:
        describe(strategy)
    assert words in str(info.value)


# Snapshot.aligned: an asynchronous population compared at the deciding member's step


def spread(steps, scores, trails) -> Snapshot:
    n = len(steps)
    return Snapshot(ids=np.arange(n, dtype=np.int64), steps=np.asarray(steps, dtype=np.int64),
                    scores=np.asarray(scores, dtype=np.float64), hparams=[{}] * n,
                    trails=trails)


def test_a_member_ahead_counts_with_what_it_scored_at_the_deciders_step():
    # member 1 is 8 steps ahead: at step 4 it scored 0.2, below member 0's 0.3
    snap = spread([4, 12], [0.3, 0.9], [[[4, 0.3]], [[4, 0.2], [8, 0.5], [12, 0.9]]])
    aligned = snap.aligned(0)
    assert list(aligned.scores) == [0.3, 0.2]
    assert Truncation(0.5)(aligned, 0, np.random.default_rng(0)) is None
    assert Truncation(0.5)(snap, 0, np.random.default_rng(0)) == 1  # ranked by being ahead


def test_a_member_behind_is_credited_with_the_deciders_progress_since_its_step():
    # the decider went from 0.4 at step 4 to 0.6 at step 8; member 1, at step 4, has 0.5:
    # at the same step it beats the decider by 0.1
    snap = spread([8, 4], [0.6, 0.5], [[[4, 0.4], [8, 0.6]], [[4, 0.5]]])
    assert np.allclose(snap.aligned(0).scores, [0.6, 0.7])
    assert Truncation(0.5)(snap.aligned(0), 0, np.random.default_rng(0)) == 1


def test_alignment_keeps_a_generation_at_one_step_and_a_member_without_a_score():
    same = spread([4, 4], [0.3, 0.9], [[[4, 0.3]], [[4, 0.9]]])
    assert same.aligned(0) is same
    unscored = spread([0, 12], [np.nan, 0.9], [[], [[4, 0.2], [12, 0.9]]])
    assert unscored.aligned(0) is unscored  # it ranks last at any step: it copies
    assert spread([4, 12], [0.3, 0.9], ()).aligned(0).scores.tolist() == [0.3, 0.9]


def test_a_trail_that_does_not_reach_back_compares_at_its_oldest_point():
    snap = spread([4, 40, 8], [0.3, 0.9, 0.5],
                  [[[4, 0.3]], [[36, 0.8], [40, 0.9]], [[8, 0.5]]])
    aligned = snap.aligned(0)
    assert aligned.scores[1] == 0.8
    # a behind member for a decider whose trail does not reach back: its oldest point
    assert np.isclose(snap.aligned(2).scores[0], 0.3 + (0.5 - 0.5))


def test_alignment_takes_away_the_advantage_of_training_longer_and_gives_none():
    # member 1, ahead, fell from 0.8 at the decider's step to 0.5 now: it counts with 0.5;
    # member 2, behind, is not debited for the decider's own fall from 0.9 to 0.3
    snap = spread([8, 12, 4], [0.3, 0.5, 0.4],
                  [[[4, 0.9], [8, 0.3]], [[8, 0.8], [12, 0.5]], [[4, 0.4]]])
    assert np.allclose(snap.aligned(0).scores, [0.3, 0.5, 0.4])


def test_alignment_when_minimizing_credits_progress_downwards():
    snap = Snapshot(ids=np.arange(3), steps=np.array([8, 4, 12]),
                    scores=np.array([0.5, 0.6, 0.1]), hparams=[{}] * 3, maximize=False,
                    trails=[[[4, 0.8], [8, 0.5]], [[4, 0.6]], [[8, 0.4], [12, 0.1]]])
    # member 1 behind: 0.6 credited with the decider's fall in loss of 0.3; member 2 ahead:
    # its loss at step 8
    assert np.allclose(snap.aligned(0).scores, [0.5, 0.3, 0.4])


def test_truncation_lets_a_member_slow_to_report_hold_a_place_in_first_rankings_only():
    # member 3 has never reported; member 0 is the worst of those that have
    scores = [0.1, 0.5, 0.9, np.nan]
    first = Snapshot(ids=np.arange(4), steps=np.array([4, 4, 4, 0]), scores=np.array(scores),
                     hparams=[{}] * 4, trails=[[[4, 0.1]], [[4, 0.5]], [[4, 0.9]], []])
    assert Truncation(0.25)(first, 0, np.random.default_rng(0)) is None  # 3 holds the bottom
    later = replace(first, steps=np.array([8, 8, 8, 0]),
                    trails=[[[4, 0.05], [8, 0.1]], [[4, 0.3], [8, 0.5]], [[4, 0.5], [8, 0.9]], []])
    assert Truncation(0.25)(later, 0, np.random.default_rng(0)) == 2  # no longer
