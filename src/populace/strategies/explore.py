"""Explore: derive new hparams from (usually just copied) hparams.

An explore strategy is a callable `(hparams, space, rng) -> new hparams`. It
never mutates its input and always returns values inside the space's bounds
(Jaderberg et al. 2017, sections 3 and 4.1: perturb and resample).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from populace.space import ConfigError, Space


def _check_factors(owner: str, factors: Any) -> tuple[float, ...]:
    """`factors` as a tuple of floats, or ConfigError unless non-empty, finite and > 0."""
    allowed = "a non-empty list of finite numbers > 0"
    if isinstance(factors, (str, bytes)):
        raise ConfigError(f"{owner}: factors must be {allowed}, got factors={factors!r}")
    try:
        out = tuple(float(f) for f in factors)
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: factors must be {allowed}, got factors={factors!r}") from None
    if not out or not all(math.isfinite(f) and f > 0 for f in out):
        raise ConfigError(f"{owner}: factors must be {allowed}, got factors={factors!r}")
    return out


@dataclass(frozen=True)
class Perturb:
    """Perturb (paper, section 4.1): multiply each hparam by a factor drawn from `factors`.

    Each hparam draws its own factor; the paper uses (0.8, 1.2) for RL and MT
    and (0.5, 2.0) for GANs. Ints move at least one unit, choices move to a
    neighbouring option, constants stay.
    """

    factors: tuple[float, ...] = (0.8, 1.2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", _check_factors("Perturb", self.factors))

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]:
        """New hparams, each perturbed by an independently drawn factor."""
        return {
            name: dim.perturb(hparams[name], self.factors[rng.integers(len(self.factors))], rng)
            for name, dim in space.items()
        }


@dataclass(frozen=True)
class Resample:
    """Resample (paper, section 4.1): draw every hparam anew from the prior."""

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]:
        """New hparams sampled from the space, ignoring the old ones."""
        return space.sample(rng)


@dataclass(frozen=True)
class PerturbOrResample:
    """Perturb, or with `probability` resample, each hparam on its own (paper, section 4.1).

    This is the paper's RL explore: resampling lets an hparam escape a corner
    that multiplicative perturbation would only leave slowly.
    """

    probability: float = 0.25
    factors: tuple[float, ...] = (0.8, 1.2)

    def __post_init__(self) -> None:
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
            raise ConfigError(
                f"PerturbOrResample: probability must be in [0, 1], got probability={p!r}"
            )
        object.__setattr__(self, "factors", _check_factors("PerturbOrResample", self.factors))

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]:
        """New hparams, each resampled with `probability`, else perturbed."""
        out = {}
        for name, dim in space.items():
            if rng.random() < self.probability:
                out[name] = dim.sample(rng)
            else:
                factor = self.factors[rng.integers(len(self.factors))]
                out[name] = dim.perturb(hparams[name], factor, rng)
        return out
