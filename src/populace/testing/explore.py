"""The explore contract, checked on spaces of every dimension type.

A worker calls an explore strategy on the donor's hparams
(`populace.strategies.protocols.Explore`) and stores what it proposes as the
member's. The call must be pure and deterministic for its random generator, and
propose a new dict of exactly the space's hparams, each inside its dimension (at
the bounds too, and explored again and again). `check_explore(strategy)` runs
every check; `EXPLORE_CHECKS` lists them for a test to parametrize over.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from populace.errors import ConfigError
from populace.space import Choice, Constant, Float, Int, Space
from populace.strategies import Explore, Keep, Noise, Perturb, PerturbOrResample, Resample
from populace.testing._fail import fail, name_of

SEEDS = range(3)  # each proposal is checked with generators of these seeds
WALK = 50  # explores in a row, each from the last one's proposal


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
