"""The exploit and explore contract, checked on varied populations and spaces.

A worker calls an exploit strategy inside the store's report transaction and an
explore strategy on the donor's hparams (`populace.strategies.protocols`). What it
relies on, for a built-in or a user's own strategy alike, is checked here: the
call is pure and deterministic for its random generator; an exploit names no
donor but another member with a valid score; an explore proposes a new dict of
the space's hparams, each inside its dimension. `check_exploit(strategy)` and
`check_explore(strategy)` run every check; `EXPLOIT_CHECKS` and `EXPLORE_CHECKS`
list them for a test to parametrize over.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any, NoReturn

import numpy as np

from populace.errors import ConfigError
from populace.snapshot import Snapshot
from populace.space import Choice, Constant, Float, Int, Space
from populace.strategies import (
    Exploit,
    Explore,
    Keep,
    Noise,
    Perturb,
    PerturbOrResample,
    Resample,
)
from populace.testing._fail import fail, name_of, short

SEEDS = range(3)  # each decision is checked with generators of these seeds
WALK = 50  # explores in a row, each from the last one's proposal


@dataclass(frozen=True)
class _Population:
    """A snapshot to decide on, and what it is, for a failure's message."""

    label: str
    snapshot: Snapshot


def _population(label: str, scores: Sequence[float], window: int, *,
                ids: Sequence[int] | None = None, steps: Sequence[int] | None = None,
                maximize: bool = True) -> _Population:
    """A snapshot as a store builds it: a member without a score has never reported (step 0,
    no recent scores, no trail); the others' recent scores and trails end at their score."""
    n = len(scores)
    score = np.asarray(scores, dtype=np.float64)
    scored = np.isfinite(score)
    at = np.asarray(steps if steps is not None else [8] * n, dtype=np.int64)
    at = np.where(scored, at, 0)
    # scores a little apart from each other, whatever their size
    noise = np.random.default_rng(n).normal(0.0, 0.01, (n, max(window, 4)))
    noise *= np.maximum(1.0, np.abs(np.nan_to_num(score)))[:, None]
    recent: list[list[float]] = []
    trails: list[list[list[float]]] = []
    for i in range(n):
        if not scored[i]:
            recent.append([])
            trails.append([])
            continue
        # some members have just reported their first score, the others a full window
        kept = window if i % 3 else min(window, 1 + i % 2)
        recent.append([float(score[i] + e) for e in noise[i, : kept - 1]] + [float(score[i])])
        points = min(len(noise[i]), 1 + int(at[i]) // 4)
        trails.append([[float(at[i] - 4 * (points - 1 - k)), float(score[i] - noise[i, k])]
                       for k in range(points - 1)] + [[float(at[i]), float(score[i])]])
    return _Population(label, Snapshot(
        ids=np.asarray(ids if ids is not None else range(100, 100 + n), dtype=np.int64),
        steps=at, scores=score, maximize=maximize,
        hparams=[{"lr": 0.01 * (i + 1), "optimizer": "adam" if i % 2 else "sgd"}
                 for i in range(n)],
        recent=recent if window else (), trails=trails,
    ))


def _populations(window: int) -> dict[str, list[_Population]]:
    """The populations each exploit check decides on, by size."""
    nan = float("nan")
    ten = np.random.default_rng(10).permutation(10) / 10
    many = np.random.default_rng(200).normal(0.0, 1.0, 200)
    many[::9] = nan
    return {
        "small": [
            _population("one member", [0.5], window),
            _population("one member without a score", [nan], window),
            _population("two members", [0.3, 0.7], window),
            _population("two members, minimizing", [0.3, 0.7], window, maximize=False),
            _population("two members, one without a score", [nan, 0.4], window),
            _population("two tied members", [0.5, 0.5], window),
        ],
        "varied": [
            _population("ten members", ten, window),
            _population("ten members, minimizing", ten, window, maximize=False),
            _population("ten members, ids out of order", ten, window,
                        ids=[17, 3, 42, 8, 99, 1, 64, 23, 5, 70]),
            _population("ties", [0.5] * 6 + [0.2, 0.9], window),
            _population("six without a score", [nan] * 6 + [1.0, 2.0, 3.0, 4.0], window),
            _population("one with a score", [nan, nan, 0.3], window),
            _population("spread over steps", [0.1, 0.5, 0.3, 0.9, 0.7, nan, 0.2, 0.6],
                        window, steps=[4, 8, 12, 16, 20, 0, 28, 32]),
            _population("extreme scores", [-1e12, 1e12, 0.0, -0.0, 1e-12, -5.0], window,
                        maximize=False),
        ],
        "all without a score": [
            _population("two without a score", [nan, nan], window),
            _population("six without a score", [nan] * 6, window),
        ],
        "many": [_population("200 members, every ninth without a score", many, window)],
    }


def _window(strategy: Exploit) -> int:
    """The recent scores the store would keep for `strategy` (its `window`, else none)."""
    window = getattr(strategy, "window", 0)
    return window if isinstance(window, int) and window > 0 else 0


def _cases(strategy: Exploit, *sizes: str) -> Iterator[_Population]:
    groups = _populations(_window(strategy))
    for size in sizes:
        yield from groups[size]


def _inputs(population: _Population, member: int, seed: int) -> str:
    s = population.snapshot
    recent = f", recent windows of {short([len(r) for r in s.recent])} scores" if s.recent else ""
    return (f"member {member} of the population {population.label!r} (ids {short(s.ids)}, "
            f"steps {short(s.steps)}, scores {short(s.scores)}, maximize={s.maximize}{recent}), "
            f"rng = numpy.random.default_rng({seed})")


def _decide(strategy: Exploit, population: _Population, member: int, seed: int,
            check: Callable[..., Any], snapshot: Snapshot | None = None) -> int | None:
    """The donor `strategy` picks, failing `check` unless it is None or another member."""
    s = population.snapshot if snapshot is None else snapshot

    def bad(problem: str) -> NoReturn:
        fail(f"exploit {name_of(strategy)}", check, problem, _inputs(population, member, seed))

    try:
        donor = strategy(s, member, np.random.default_rng(seed))
    except Exception as e:
        bad(f"it raised {type(e).__name__}: {e}")
    if donor is None:
        return None
    if not isinstance(donor, Integral) or isinstance(donor, bool):
        bad(f"it returned {donor!r}; a donor is a member id (an int) or None")
    if int(donor) == member:
        bad(f"it named the member itself ({member}) as its donor")
    if int(donor) not in s.ids:
        bad(f"it named {donor!r}, which is no member of the snapshot")
    return int(donor)


def _each_decision(strategy: Exploit, check: Callable[..., Any], *sizes: str,
                   seeds: Sequence[int] = SEEDS) -> Iterator[tuple[_Population, int, int]]:
    for population in _cases(strategy, *sizes):
        for member in population.snapshot.ids.tolist():
            for seed in seeds:
                yield population, member, seed


def _differences(before: Snapshot, after: Snapshot) -> list[str]:
    """The fields of `after` that are not what they were in `before` (a deep copy)."""
    changed = []
    for f in fields(Snapshot):
        old, new = getattr(before, f.name), getattr(after, f.name)
        if isinstance(old, np.ndarray):
            same = (isinstance(new, np.ndarray) and old.dtype == new.dtype
                    and np.array_equal(old, new, equal_nan=True))
        else:
            same = old == new
        if not same:
            changed.append(f.name)
    return changed


def check_exploit_pure(strategy: Exploit) -> None:
    """The snapshot is every worker's shared view: an exploit must leave it as it was."""
    for population in _cases(strategy, "small", "varied", "all without a score", "many"):
        snapshot = population.snapshot
        before = copy.deepcopy(snapshot)
        for member in snapshot.ids.tolist()[:20]:
            _decide(strategy, population, member, 0, check_exploit_pure)
            changed = _differences(before, snapshot)
            if changed:
                fail(f"exploit {name_of(strategy)}", check_exploit_pure,
                     f"it changed the snapshot's {', '.join(changed)}",
                     _inputs(_Population(population.label, before), member, 0))


def check_exploit_deterministic(strategy: Exploit) -> None:
    """A run is reproduced from its seed: the same snapshot and seed must give the same
    donor (randomness comes from `rng` alone)."""
    for population, member, seed in _each_decision(strategy, check_exploit_deterministic,
                                                   "small", "varied"):
        first = _decide(strategy, population, member, seed, check_exploit_deterministic,
                        copy.deepcopy(population.snapshot))
        again = _decide(strategy, population, member, seed, check_exploit_deterministic,
                        copy.deepcopy(population.snapshot))
        if first != again:
            fail(f"exploit {name_of(strategy)}", check_exploit_deterministic,
                 f"it returned {first} and then {again}", _inputs(population, member, seed))


def check_exploit_donor_is_another_member(strategy: Exploit) -> None:
    """The worker copies the donor's checkpoint: it must be another member of the run."""
    for population, member, seed in _each_decision(
            strategy, check_exploit_donor_is_another_member, "varied"):
        _decide(strategy, population, member, seed, check_exploit_donor_is_another_member)


def _donors_scored(strategy: Exploit, check: Callable[..., Any], *sizes: str,
                   seeds: Sequence[int] = SEEDS) -> None:
    """Fail `check` if a decision on populations of `sizes` names a donor without a score."""
    for population, member, seed in _each_decision(strategy, check, *sizes, seeds=seeds):
        s = population.snapshot
        donor = _decide(strategy, population, member, seed, check)
        if donor is not None and not np.isfinite(s.scores[s.index(donor)]):
            fail(f"exploit {name_of(strategy)}", check,
                 f"it named member {donor} as the donor, which has no valid score (NaN): it "
                 "has not reported, or its score was not finite", _inputs(population, member,
                                                                           seed))


def check_exploit_nan_never_donates(strategy: Exploit) -> None:
    """A member without a valid score has nothing worth copying: it never donates."""
    _donors_scored(strategy, check_exploit_nan_never_donates, "varied")


def check_exploit_population_of_two(strategy: Exploit) -> None:
    """The smallest populations (two members; one, once the others are done) still decide:
    the donor is the other member or None."""
    _donors_scored(strategy, check_exploit_population_of_two, "small")


def check_exploit_many_members(strategy: Exploit) -> None:
    """A large population decides as a small one does, each member on its own."""
    _donors_scored(strategy, check_exploit_many_members, "many", seeds=SEEDS[:1])


def check_exploit_all_nan(strategy: Exploit) -> None:
    """At a run's start no member has a score: no one can donate, so no one copies."""
    for population, member, seed in _each_decision(strategy, check_exploit_all_nan,
                                                   "all without a score"):
        donor = _decide(strategy, population, member, seed, check_exploit_all_nan)
        if donor is not None:
            fail(f"exploit {name_of(strategy)}", check_exploit_all_nan,
                 f"it named member {donor} as the donor, but no member has a score",
                 _inputs(population, member, seed))


EXPLOIT_CHECKS: tuple[Callable[[Exploit], None], ...] = (
    check_exploit_pure,
    check_exploit_deterministic,
    check_exploit_donor_is_another_member,
    check_exploit_nan_never_donates,
    check_exploit_population_of_two,
    check_exploit_many_members,
    check_exploit_all_nan,
)


def check_exploit(strategy: Exploit) -> None:
    """Run every exploit check on `strategy`: AssertionError names the first that fails."""
    for check in EXPLOIT_CHECKS:
        check(strategy)


# explore


SPACES: tuple[tuple[str, Space], ...] = (
    ("every kind of dimension", Space({
        "lr": Float(1e-4, 1e-1, log=True),
        "batch": Int(16, 256),
        "layers": Int(1, 64, log=True),
        "dropout": Float(0.0, 0.5),
        "optimizer": Choice(["sgd", "momentum", "adam"]),
        "epochs": 10,
    })),
    ("negative and narrow ranges", Space({
        "shift": Float(-5.0, -1.0),
        "offset": Int(-3, 3),
        "flag": Int(0, 1),
        "narrow": Float(0.5, 0.5000001),
        "wide": Float(1e-8, 1e8, log=True),
    })),
    ("choices and constants of every type", Space({
        "width": Choice([1, 2, 4, 8]),
        "bias": Choice([True, False]),
        "mixed": Choice([None, "a", 0.5]),
        "only": Choice(["one"]),
        "name": Constant("adam"),
        "nothing": Constant(None),
        "on": Constant(True),
    })),
    ("hparams with rules of their own", Space({
        "h": Float(0.0, 1.0, explore=Noise(0.5)),
        "batch": Int(16, 256, explore=Noise(40.0)),
        "optimizer": Choice(["sgd", "momentum", "adam"], explore=PerturbOrResample(0.3)),
        "layers": Int(1, 8, explore=Keep()),
        "lr": Float(1e-4, 1e-1, log=True, explore=Perturb((0.5, 2.0))),
        "momentum": Float(0.0, 1.0, explore=Resample()),
    })),
    ("one hparam", Space({"x": Float(0.0, 1.0)})),
)


def _end(space: Space, last: bool) -> dict[str, Any]:
    """Every hparam at its lowest (or highest) value: where clipping is tested."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, (Float, Int)):
            out[name] = dim.high if last else dim.low
        elif isinstance(dim, Choice):
            out[name] = dim.options[-1 if last else 0]
        elif isinstance(dim, Constant):
            out[name] = dim.value
        else:  # a dimension of another kind: its prior is all that is known of it
            out[name] = dim.sample(np.random.default_rng(int(last)))
    return out


def _starts(space: Space | None) -> Iterator[tuple[str, Space, dict[str, Any]]]:
    """(label, space, hparams) to explore from: drawn from the prior, and at either end."""
    for label, s in SPACES if space is None else (("the space given", space),):
        for seed in SEEDS:
            yield f"{label}, drawn with seed {seed}", s, s.sample(np.random.default_rng(seed))
        yield f"{label}, every hparam at its low end", s, _end(s, last=False)
        yield f"{label}, every hparam at its high end", s, _end(s, last=True)


def _explore_inputs(label: str, space: Space, hparams: Mapping[str, Any], seed: int) -> str:
    return (f"hparams {dict(hparams)!r} ({label}), space {space!r}, "
            f"rng = numpy.random.default_rng({seed})")


def _propose(strategy: Explore, label: str, space: Space, hparams: Mapping[str, Any],
             seed: int, check: Callable[..., Any]) -> Any:
    try:
        return strategy(hparams, space, np.random.default_rng(seed))
    except Exception as e:
        fail(f"explore {name_of(strategy)}", check, f"it raised {type(e).__name__}: {e}",
             _explore_inputs(label, space, hparams, seed))


def check_explore_pure(strategy: Explore, space: Space | None = None) -> None:
    """The hparams explored are the donor's, still in its row: explore must not change
    them (nor the space)."""
    for label, s, hparams in _starts(space):
        before, space_before = copy.deepcopy(hparams), copy.deepcopy(s)
        for seed in SEEDS:
            _propose(strategy, label, s, hparams, seed, check_explore_pure)
            changed = [k for k in before if k not in hparams or hparams[k] != before[k]]
            changed += [k for k in hparams if k not in before]
            if changed or s != space_before:
                problem = (f"it changed the hparams it was given ({', '.join(changed)}): "
                           f"{dict(hparams)!r}" if changed else "it changed the space")
                fail(f"explore {name_of(strategy)}", check_explore_pure, problem,
                     _explore_inputs(label, space_before, before, seed))


def check_explore_deterministic(strategy: Explore, space: Space | None = None) -> None:
    """A run is reproduced from its seed: the same hparams and seed give the same proposal."""
    for label, s, hparams in _starts(space):
        for seed in SEEDS:
            first = _propose(strategy, label, s, copy.deepcopy(hparams), seed,
                             check_explore_deterministic)
            again = _propose(strategy, label, s, copy.deepcopy(hparams), seed,
                             check_explore_deterministic)
            if first != again:
                fail(f"explore {name_of(strategy)}", check_explore_deterministic,
                     f"it proposed {first!r} and then {again!r}",
                     _explore_inputs(label, s, hparams, seed))


def _check_proposal(strategy: Explore, label: str, space: Space, hparams: Mapping[str, Any],
                    seed: int, new: Any, check: Callable[..., Any]) -> None:
    """Fail `check` unless `new` is a new dict of exactly the space's hparams, each valid."""
    what, inputs = f"explore {name_of(strategy)}", _explore_inputs(label, space, hparams, seed)
    if not isinstance(new, dict):
        fail(what, check, f"it returned {new!r}, not a dict", inputs)
    if new is hparams:
        fail(what, check, "it returned the dict it was given; it must return a new one", inputs)
    if set(new) != set(space):
        missing, extra = sorted(set(space) - set(new)), sorted(set(new) - set(space))
        fail(what, check, f"it proposed {new!r}: the space's hparams are {list(space)} "
             f"(missing {missing}, not in the space {extra})", inputs)
    try:
        space.validate(new)
    except ConfigError as e:
        fail(what, check, f"it proposed {new!r}, outside the space: {e}", inputs)


def check_explore_in_space(strategy: Explore, space: Space | None = None) -> None:
    """Every proposal, and every one explored again from it, lies inside the space: the
    worker would refuse it, and the member could not train."""
    for label, s, hparams in _starts(space):
        for seed in SEEDS:
            h = hparams
            for k in range(WALK):
                new = _propose(strategy, f"{label}, explored {k} times", s, h, seed,
                               check_explore_in_space)
                _check_proposal(strategy, f"{label}, explored {k} times", s, h, seed, new,
                                check_explore_in_space)
                h = new


def check_explore_returns_new_dict(strategy: Explore, space: Space | None = None) -> None:
    """The worker stores the proposal as the member's hparams: a new dict with exactly the
    space's names, never the donor's dict itself."""
    for label, s, hparams in _starts(space):
        for seed in SEEDS:
            new = _propose(strategy, label, s, hparams, seed, check_explore_returns_new_dict)
            _check_proposal(strategy, label, s, hparams, seed, new,
                            check_explore_returns_new_dict)


EXPLORE_CHECKS: tuple[Callable[[Explore, Space | None], None], ...] = (
    check_explore_pure,
    check_explore_deterministic,
    check_explore_in_space,
    check_explore_returns_new_dict,
)


def check_explore(strategy: Explore, space: Space | None = None) -> None:
    """Run every explore check on `strategy`, on `space` alone when one is given (a
    strategy made for one space), else on spaces of every dimension type."""
    for check in EXPLORE_CHECKS:
        check(strategy, space)
