"""PB2 explore: inside the bounds, led by the data, deterministic, and kept by a real run."""

from __future__ import annotations

import importlib.util
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import COUNTER, EXAMPLES

import populace
from populace.cli import main
from populace.errors import ConfigError
from populace.script import load_script
from populace.snapshot import Segment, Snapshot
from populace.space import Choice, Float, Int, Space
from populace.strategies import PB2, Keep, Perturb, make_explore, segments_of
from populace.testing import (
    check_explore_deterministic,
    check_explore_pure,
    check_explore_returns_new_dict,
)

MOVING = EXAMPLES / "moving_optimum.py"


def population(space: Space, members: int, segments: int, seed: int,
               gain=None) -> Snapshot:
    """A population whose members each trained `segments` segments of 4 steps, with hparams
    drawn from `space`; a segment's improvement is `gain(hparams)` (default: random)."""
    rng = np.random.default_rng(seed)
    rows, hparams = [], []
    for _ in range(members):
        score, mine = 0.0, []
        for k in range(segments):
            h = space.sample(rng)
            after = score + 4 * (gain(h) if gain else rng.normal())
            mine.append(Segment(4 * k, 4 * k + 4, score, after, h))
            score = after
        rows.append(mine)
        hparams.append(mine[-1].hparams)
    return Snapshot(ids=np.arange(members), steps=np.full(members, 4 * segments),
                    scores=np.array([r[-1].score for r in rows]), hparams=hparams,
                    segments=rows)


@dataclass(frozen=True)
class WithPopulation:
    """PB2 called as the worker calls it, on a population drawn from the space it is given:
    the contract checks then reach its model, not only its no-data draw."""

    pb2: PB2

    def __call__(self, hparams: Mapping[str, Any], space: Space,
                 rng: np.random.Generator) -> dict[str, Any]:
        return self.pb2(hparams, space, rng, snapshot=population(space, 3, 3, seed=7),
                        member=0, donor=1)


@pytest.mark.parametrize("check", [check_explore_pure, check_explore_deterministic,
                                   check_explore_returns_new_dict],
                         ids=lambda c: c.__name__)
def test_pb2_keeps_the_explore_contract_with_data(check):
    check(WithPopulation(PB2()), None)


SPACE = Space({"lr": Float(1e-4, 1e-1, log=True), "x": Float(-2.0, 3.0), "n": Int(1, 64, log=True),
               "opt": Choice(["sgd", "adam", "rmsprop"]), "epochs": 10})


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), members=st.integers(2, 6),
       segments=st.integers(1, 6), scale=st.sampled_from([1e-9, 1.0, 1e9]))
def test_pb2_proposals_stay_inside_the_bounds(seed, members, segments, scale):
    snap = population(SPACE, members, segments, seed)
    snap = Snapshot(ids=snap.ids, steps=snap.steps, scores=snap.scores * scale,
                    hparams=snap.hparams,
                    segments=[[s._replace(before=s.before * scale, score=s.score * scale)
                               for s in m] for m in snap.segments])
    new = PB2()(snap.hparams[1], SPACE, np.random.default_rng(seed), snapshot=snap,
                member=0, donor=1)
    SPACE.validate(new)
    assert set(new) == set(SPACE)
    assert new["epochs"] == 10


def test_pb2_is_deterministic_for_a_seed():
    snap = population(SPACE, 4, 5, seed=3)

    def propose(seed):
        return PB2()(snap.hparams[2], SPACE, np.random.default_rng(seed), snapshot=snap,
                     member=0, donor=2)

    assert propose(11) == propose(11)
    assert len({str(propose(seed)) for seed in range(4)}) > 1  # the seed does matter


def test_pb2_fits_the_newest_segments_only_when_a_large_population_has_many(monkeypatch):
    """40 members x 16 segments are 640 points: a fit of them would hold the store's write
    lock for seconds; the GP gets the newest 256 (MAX_DATA) instead."""
    from populace.strategies import gp
    from populace.strategies.pb2 import MAX_DATA

    seen = []
    propose = gp.propose

    def spy(X, y, context, pending, rng):
        seen.append(X)
        return propose(X, y, context, pending, rng)

    monkeypatch.setattr(gp, "propose", spy)
    snap = population(SPACE, 40, 16, seed=5)
    PB2()(snap.hparams[2], SPACE, np.random.default_rng(0), snapshot=snap, member=0, donor=2)
    (X,) = seen
    assert MAX_DATA == 256 and X.shape[0] == 256
    # the newest: every segment from step 40 on (6 starts x 40 members = 240), then 16 of
    # those from step 36; the time column scales starts 36..60 and the donor's step 64
    times = np.sort(np.unique(np.round(X[:, 0], 6)))
    assert np.allclose(times, (np.arange(36, 61, 4) - 36) / (64 - 36))
    assert np.sum(np.isclose(X[:, 0], 0.0)) == 16


PLANTED = np.array([0.8, 0.2])  # where the improvement per step is highest


def gain(h: Mapping[str, Any]) -> float:
    return 1.0 - float(np.sum((np.array([h["a"], h["b"]]) - PLANTED) ** 2)) * 4


def pbt(explore, seed: int, rounds: int = 12) -> float:
    """A small PBT on the planted surface: 4 members, each round the worst copies the best
    and explores; the distance of the population's mean hparams to the optimum at the end."""
    space = Space({"a": Float(0.0, 1.0), "b": Float(0.0, 1.0)})
    rng = np.random.default_rng(seed)
    hparams = [space.sample(rng) for _ in range(4)]
    scores, segments = [0.0] * 4, [[] for _ in range(4)]
    for k in range(rounds):
        for i in range(4):
            after = scores[i] + 4 * gain(hparams[i])
            segments[i] = [*segments[i], Segment(4 * k, 4 * k + 4, scores[i], after,
                                                 hparams[i])][-16:]
            scores[i] = after
        worst, best = int(np.argmin(scores)), int(np.argmax(scores))
        snap = Snapshot(ids=np.arange(4), steps=np.full(4, 4 * k + 4), scores=np.array(scores),
                        hparams=list(hparams), segments=[list(s) for s in segments])
        if isinstance(explore, PB2):
            new = explore(hparams[best], space, rng, snapshot=snap, member=worst, donor=best)
        else:
            new = explore(hparams[best], space, rng)
        hparams[worst], scores[worst] = new, scores[best]
    mean = np.mean([[h["a"], h["b"]] for h in hparams], axis=0)
    return float(np.linalg.norm(mean - PLANTED))


def test_pb2_moves_toward_a_planted_optimum_faster_than_perturb():
    seeds = range(5)
    pb2 = [pbt(PB2(), s) for s in seeds]
    perturb = [pbt(Perturb(), s) for s in seeds]
    assert statistics.median(pb2) < statistics.median(perturb), (pb2, perturb)
    assert sum(a < b for a, b in zip(pb2, perturb, strict=True)) >= 4, (pb2, perturb)


def mixed(best: str) -> Snapshot:
    space = Space({"opt": Choice(["sgd", "adam", "rmsprop"]), "x": Float(0.0, 1.0)})
    return population(space, 4, 10, seed=5,
                      gain=lambda h: (1.0 if h["opt"] == best else 0.0) + 0.1 * h["x"])


@pytest.mark.parametrize("best", ["adam", "rmsprop"])
def test_pb2_mix_picks_the_category_the_data_favour(best):
    space = Space({"opt": Choice(["sgd", "adam", "rmsprop"]), "x": Float(0.0, 1.0)})
    snap = mixed(best)
    picks = [PB2()(snap.hparams[0], space, np.random.default_rng(seed), snapshot=snap,
                   member=1, donor=0)["opt"] for seed in range(40)]
    # EXP3 is cautious (it keeps exploring), but a uniform pick gives a third
    assert picks.count(best) > 0.5 * len(picks), picks
    # without data it has nothing to go on: every option about as often
    blind = [PB2()(snap.hparams[0], space, np.random.default_rng(seed))["opt"]
             for seed in range(40)]
    assert blind.count(best) < 0.5 * len(blind)


def test_pb2_honours_a_dimensions_own_rule_and_constants():
    space = Space({"x": Float(0.0, 1.0), "fixed": Float(0.0, 1.0, explore=Keep()),
                   "epochs": 10})
    snap = population(space, 3, 4, seed=1)
    for seed in range(5):
        new = PB2()(snap.hparams[0], space, np.random.default_rng(seed), snapshot=snap,
                    member=1, donor=0)
        assert new["fixed"] == snap.hparams[0]["fixed"]
        assert new["epochs"] == 10


def test_pb2_is_a_runs_explore_not_a_dimensions_rule():
    with pytest.raises(ConfigError, match="explore must be a rule with a mutate"):
        Float(0.0, 1.0, explore=PB2())


def test_pb2_minimizing_follows_falling_scores():
    """In mode min an improvement is a fall: the model must want the setting that fell."""
    space = Space({"opt": Choice(["sgd", "adam"])})
    snap = population(space, 4, 10, seed=2, gain=lambda h: -1.0 if h["opt"] == "adam" else 0.0)
    low = Snapshot(ids=snap.ids, steps=snap.steps, scores=snap.scores, hparams=snap.hparams,
                   segments=snap.segments, maximize=False)
    picks = [PB2()(low.hparams[0], space, np.random.default_rng(s), snapshot=low, member=1,
                   donor=0)["opt"] for s in range(30)]
    assert picks.count("adam") > 0.6 * len(picks), picks


@pytest.mark.parametrize("bad", [0, 101, 2.5, "16"])
def test_pb2_refuses_a_bad_segments_window(bad):
    with pytest.raises(ConfigError, match="PB2: segments must be an int in \\[1, 100\\]"):
        make_explore("pb2", segments=bad)


def test_pb2_without_scikit_learn_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'populace\[pb2\]'"):
        PB2()


@pytest.mark.parametrize("synch", [False, True])
def test_a_pb2_run_keeps_each_members_segments_with_the_hparams_in_force(tmp_path, synch):
    script = load_script(COUNTER)
    populace.run(script.trainable, script.space, store=tmp_path / "p.db", script=COUNTER,
                 progress=False, **{**script.config, "steps": 40, "executor": "inline",
                                    "workers": 1, "synch": synch,
                                    "explore": {"name": "pb2", "segments": 3}})
    store = populace.store.open_store(tmp_path / "p.db")
    assert store.config().segments == 3
    snap = store.snapshot()
    results = store.results()
    assert all(1 <= len(s) <= 3 for s in snap.segments)
    for member, segments in zip(snap.ids.tolist(), snap.segments, strict=True):
        for s in segments:
            # the result it came from, and the score its weights had where it started
            assert any(r.member == member and (r.start, r.step, r.score, r.hparams)
                       == (s.start, s.step, s.score, s.hparams) for r in results)
            assert any(r.step == s.start and math.isclose(r.score, s.before) for r in results)
    exploits = store.events("exploit")
    assert exploits and all(e.strategy == "truncation+pb2" for e in exploits)
    # a run whose explore reads no segments keeps none
    populace.run(script.trainable, script.space, store=tmp_path / "q.db", script=COUNTER,
                 progress=False, **{**script.config, "executor": "inline", "workers": 1})
    plain = populace.store.open_store(tmp_path / "q.db")
    assert plain.config().segments == 0 and plain.snapshot().segments == ()


def test_pb2_runs_from_the_cli(tmp_path, capsys):
    store = tmp_path / "m.db"
    assert main(["run", str(MOVING), "--store", str(store), "--quiet", "--explore", "pb2",
                 "--population", "4", "--steps", "40"]) == 0
    db = populace.store.open_store(store)
    assert db.config().run["explore"]["name"] == "pb2"
    assert db.config().segments == segments_of(PB2()) == 16
    assert db.events("exploit")
    assert [m.step for m in db.members()] == [40] * 4



def test_the_gp_kernel_is_variance_times_rbf_times_a_time_decay_plus_noise():
    """PB2's one-piece kernel computes scikit-learn's product of a constant, an RBF over
    every column but time and a Matern 1/2 over time, plus white noise; its gradient is
    that of the log marginal likelihood's parameters (checked by finite differences)."""
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern

    from populace.strategies.gp import TimeVarying

    rng = np.random.default_rng(4)
    X, Y = rng.random((9, 4)), rng.random((5, 4))
    kernel = TimeVarying(variance=1.7, length_scale=0.3, time_scale=4.0, noise=0.02)
    signal = (ConstantKernel(1.7) * RBF(0.3))(X[:, 1:], Y[:, 1:]) * Matern(4.0, nu=0.5)(
        X[:, :1], Y[:, :1])
    assert np.allclose(kernel(X, Y), signal)
    square = (ConstantKernel(1.7) * RBF(0.3))(X[:, 1:]) * Matern(4.0, nu=0.5)(X[:, :1])
    assert np.allclose(kernel(X), square + 0.02 * np.eye(9))
    assert np.allclose(kernel.diag(X), np.diag(kernel(X)))
    K, gradient = kernel(X, eval_gradient=True)
    assert np.allclose(K, kernel(X)) and gradient.shape == (9, 9, 4)
    for i, theta in enumerate(kernel.theta):  # theta: log parameters, in gradient order
        shifted = kernel.theta.copy()
        shifted[i] = theta + 1e-6
        moved = kernel.clone_with_theta(shifted)
        assert np.allclose((moved(X) - K) / 1e-6, gradient[..., i], atol=1e-4)
    with pytest.raises(ValueError, match="gradient"):
        kernel(X, Y, eval_gradient=True)
