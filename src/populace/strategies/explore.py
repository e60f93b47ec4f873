"""Explore: derive new hparams from (usually just copied) hparams.

An explore strategy is a callable `(hparams, space, rng) -> new hparams`. It
never mutates its input and always returns values inside the space's bounds
(Jaderberg et al. 2017, sections 3 and 4.1: perturb and resample).

The built-in strategies are `Rule`s: one rule applied to each hparam on its
own through `mutate(dimension, value, rng)`. A dimension may carry its own
rule (`Float(0, 1, explore=Noise(0.1))`), which then replaces the run's
strategy for that hparam only:

- `Perturb(factors)`: multiply by a random factor (Int: at least one unit;
  Choice: the neighbouring option; so the paper's GAN (0.5, 2.0) and MT
  (0.8, 1.2) factors are just parameters).
- `Resample()`: draw anew from the prior.
- `PerturbOrResample(probability, factors)`: resample with `probability`,
  else perturb.
- `Noise(scale)`: add N(0, scale) noise, the paper's toy example; it moves
  a value of 0, which no factor can (Int and Choice: see `Noise`).
- `Keep()`: never change the hparam.

Every rule keeps values inside the declared bounds; Constants never change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from populace.checks import number, refused, whole
from populace.errors import ConfigError
from populace.space import Dimension, Space
from populace.strategies.protocols import Explore

MAX_FACTORS = 64  # a perturb draws one of its factors: more than a handful is a mistake
# segments a member row keeps for a `Modelled` explore, hparams and all, rewritten at each
# report: a model of the population needs tens, not thousands
MAX_SEGMENTS = 100


def segments_of(explore: Explore) -> int | None:
    """How many recent segments per member `explore` reads (its `segments`, see
    `Modelled`); None: it reads none, and is called with the donor's hparams alone."""
    segments = getattr(explore, "segments", None)
    if segments is None:
        return None
    return whole(type(explore).__qualname__, "segments", segments, 1, MAX_SEGMENTS)


def _check_factors(owner: str, factors: Any) -> tuple[float, ...]:
    """`factors` as a tuple of floats, or ConfigError unless non-empty, finite and > 0."""
    allowed = f"a non-empty list of at most {MAX_FACTORS} finite numbers > 0"
    if isinstance(factors, (str, bytes)):  # iterable, but characters are no factors
        raise refused(owner, "factors", allowed, factors)
    if hasattr(factors, "__len__") and len(factors) > MAX_FACTORS:
        raise ConfigError(f"{owner}: factors must be {allowed}, got {len(factors)} factors")
    try:  # each factor checked as any number parameter is: bools and strings refused
        out = tuple(number(owner, "factor", f, low=0, open_low=True) for f in factors)
    except (TypeError, ConfigError):  # not iterable, or one factor is not a number > 0
        out = ()
    if not out:
        raise refused(owner, "factors", allowed, factors)
    return out


class Rule(ABC):
    """An explore strategy that moves each hparam on its own; a dimension may carry one.

    Subclass it (as a frozen dataclass) and write `mutate` to make your own
    per-hparam rule; `__call__` then makes it a whole explore strategy that
    defers to each dimension's own rule where one is declared.
    """

    @abstractmethod
    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """`value`'s new value, inside `dimension`'s bounds."""

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]:
        """New hparams: each moved by its dimension's own rule, or else by this one."""
        out = {}
        for name, dim in space.items():
            rule = self if dim.explore is None else dim.explore
            out[name] = rule.mutate(dim, hparams[name], rng)
        return out


def _factor(factors: tuple[float, ...], rng: np.random.Generator) -> float:
    return factors[rng.integers(len(factors))]


@dataclass(frozen=True)
class Perturb(Rule):
    """Perturb (paper, section 4.1): multiply each hparam by a factor drawn from `factors`.

    Each hparam draws its own factor; the paper uses (0.8, 1.2) for RL and MT
    and (0.5, 2.0) for GANs. Ints move at least one unit, choices move to a
    neighbouring option, constants stay. A value of 0 never moves: give such
    an hparam `Noise` or `PerturbOrResample` as its own rule.
    """

    factors: tuple[float, ...] = (0.8, 1.2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", _check_factors("Perturb", self.factors))

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """`value` times one of the factors, drawn uniformly."""
        return dimension.perturb(value, _factor(self.factors, rng), rng)


@dataclass(frozen=True)
class Resample(Rule):
    """Resample (paper, section 4.1): draw every hparam anew from the prior."""

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """A fresh draw from the dimension's prior, ignoring `value`."""
        return dimension.sample(rng)


@dataclass(frozen=True)
class PerturbOrResample(Rule):
    """Perturb, or with `probability` resample, each hparam on its own (paper, section 4.1).

    This is the paper's RL explore: resampling lets an hparam escape a corner
    that multiplicative perturbation would only leave slowly.
    """

    probability: float = 0.25
    factors: tuple[float, ...] = (0.8, 1.2)

    def __post_init__(self) -> None:
        probability = number("PerturbOrResample", "probability", self.probability, low=0, high=1)
        object.__setattr__(self, "probability", probability)
        object.__setattr__(self, "factors", _check_factors("PerturbOrResample", self.factors))

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """A draw from the prior with `probability`, else `value` perturbed."""
        if rng.random() < self.probability:
            return dimension.sample(rng)
        return dimension.perturb(value, _factor(self.factors, rng), rng)


@dataclass(frozen=True)
class Noise(Rule):
    """Add Gaussian noise N(0, scale) (paper, the toy example of Fig. 2).

    `scale` is the standard deviation in the hparam's own units. Float: the
    value plus the noise, clipped to the bounds, so an hparam at 0 can move
    (a factor never moves it). Int: rounded, and at least one unit in the
    noise's direction, clipped. Choice: moves that many positions (rounded,
    at least one) through the ordered options, stopping at the ends.
    Constant: unchanged. The noise is added as is on `log=True` dimensions
    too; `Perturb` is the usual rule there.
    """

    scale: float

    def __post_init__(self) -> None:
        scale = number("Noise", "scale", self.scale, low=0, open_low=True)
        object.__setattr__(self, "scale", scale)

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """`value` shifted by one draw of N(0, scale)."""
        return dimension.shift(value, float(rng.normal(0.0, self.scale)), rng)


@dataclass(frozen=True)
class Keep(Rule):
    """Never change the hparam: explore leaves it as copied (the rule "none").

    As a dimension's rule it fixes one hparam while the others explore; as
    the run's strategy it turns explore off, except for hparams with a rule
    of their own (the paper's "exploit only" ablation, Fig. 2).
    """

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """`value`, unchanged."""
        return value
