"""The hparam search space: what each hparam may be, its prior, and how it moves.

A `Space` maps each hparam name to a dimension (`Float`, `Int`, `Choice`,
`Constant`). Every dimension can draw from its prior (`sample`, used for the
initial population and for resample), move by a factor (`perturb`, PBT's
explore step, Jaderberg et al. 2017, sections 3 and 4.1) or by an added
amount (`shift`, the noise of the paper's toy example, Fig. 2), and check a
value (`validate`). Values come back as plain Python types so they encode as
JSON.

A dimension may carry its own explore rule (`Float(0, 1, explore=Noise(0.1))`,
rules in `populace.strategies.explore`), which the run's explore strategy
uses for that hparam instead of its own. This module knows a rule only by
its `mutate` method: the strategies, which import this module, write and
read rules in a stored space (`populace.strategies.space_to_dict`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Protocol

import numpy as np

from populace.errors import ConfigError


def _is_real(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _scalar(x: Any, field: str) -> str | int | float | bool | None:
    """`x` as a plain JSON scalar (numpy scalars unwrapped), or ConfigError."""
    if isinstance(x, np.generic):
        x = x.item()
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if isinstance(x, float) and math.isfinite(x):
        return x
    raise ConfigError(f"{field} must be a str, int, finite float, bool or None, got {x!r}")


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps bools apart from numbers (True == 1 in Python)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


class Hparams(dict):
    """A member's hparams, handed to the user's code: a name that is not among them
    (a typo in `apply`) raises KeyError naming those there are."""

    def __missing__(self, name: str) -> Any:
        raise KeyError(f"no hparam {name!r}; the space has {', '.join(map(repr, self))}")


class OwnRule(Protocol):
    """A dimension's own explore rule, such as `populace.strategies.Noise(0.1)`."""

    def mutate(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """`value`'s new value, inside `dimension`'s bounds."""


class Dimension(ABC):
    """One hparam's allowed values, prior and perturbation rule."""

    # the dimension's own explore rule; None: the run's explore strategy decides
    explore: OwnRule | None = None

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """A value drawn from the prior."""

    @abstractmethod
    def quantile(self, q: float) -> Any:
        """The prior's value at quantile `q` in [0, 1): what `Space.latin` draws in each
        stratum (`sample` draws one at a uniform q, in its own way)."""

    @abstractmethod
    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        """`value` times `factor` (> 1 away from 0, < 1 towards it), kept inside the bounds."""

    @abstractmethod
    def shift(self, value: Any, delta: float, rng: np.random.Generator) -> Any:
        """`value` moved by `delta` (additive noise), kept inside the bounds."""

    @abstractmethod
    def validate(self, value: Any) -> None:
        """Raise ConfigError when `value` is not allowed."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description of its values and prior, read back by
        `dimension_from_dict` (its own rule is the strategies' to describe)."""


def _check_rule(rule: Any) -> None:
    """ConfigError unless `rule` is None or an explore rule object (it has `mutate`)."""
    if rule is None:
        return
    if isinstance(rule, type):
        raise ConfigError(
            f"explore must be a rule object, got the class {rule.__name__}; "
            f"call it, e.g. {rule.__name__}(...)"
        )
    if not callable(getattr(rule, "mutate", None)):
        raise ConfigError(
            "explore must be a rule with a mutate(dimension, value, rng) method, such as "
            f"Perturb((0.5, 2.0)), Noise(0.1), PerturbOrResample(0.5) or Keep(); got {rule!r}"
        )


def _check_bounds(kind: str, low: Any, high: Any, log: bool) -> None:
    for bound, x in (("low", low), ("high", high)):
        if kind == "Int" and not _is_int(x):
            raise ConfigError(f"Int: {bound} must be an int, got {bound}={x!r}")
        if not _is_real(x) or not math.isfinite(x):
            raise ConfigError(f"{kind}: {bound} must be a finite number, got {bound}={x!r}")
    if not low < high:
        raise ConfigError(f"{kind}: low must be < high, got low={low}, high={high}")
    if not isinstance(log, bool):
        raise ConfigError(f"{kind}: log must be True or False, got log={log!r}")
    if log and low <= 0:
        raise ConfigError(f"{kind}: log=True needs low > 0, got low={low}")


@dataclass(frozen=True)
class Float(Dimension):
    """A real hparam in [low, high]; `log=True` samples uniformly in log space (e.g. lr)."""

    low: float
    high: float
    log: bool = False
    explore: OwnRule | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_bounds("Float", self.low, self.high, self.log)
        _check_rule(self.explore)
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def sample(self, rng: np.random.Generator) -> float:
        """A value drawn uniformly (in log space when `log`)."""
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.uniform(self.low, self.high)
        return self._clip(x)

    def quantile(self, q: float) -> float:
        """The value a fraction `q` of the way up the range (in log space when `log`)."""
        if self.log:
            x = math.exp(math.log(self.low) + q * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + q * (self.high - self.low)
        return self._clip(x)

    def perturb(self, value: float, factor: float, rng: np.random.Generator) -> float:
        """`value * factor`, clipped to [low, high]."""
        return self._clip(value * factor)

    def shift(self, value: float, delta: float, rng: np.random.Generator) -> float:
        """`value + delta`, clipped to [low, high] (so 0 can move, unlike with perturb)."""
        return self._clip(value + delta)

    def validate(self, value: Any) -> None:
        """Raise ConfigError unless `value` is a number in [low, high]."""
        if not _is_real(value):
            raise ConfigError(f"value must be a number, got {value!r}")
        if not self.low <= value <= self.high:
            raise ConfigError(f"value must be in [{self.low}, {self.high}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}

    def _clip(self, x: float) -> float:
        return float(min(max(x, self.low), self.high))


@dataclass(frozen=True)
class Int(Dimension):
    """An integer hparam in [low, high], both inclusive (e.g. batch size, unroll length)."""

    low: int
    high: int
    log: bool = False
    explore: OwnRule | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_bounds("Int", self.low, self.high, self.log)
        _check_rule(self.explore)
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))

    def sample(self, rng: np.random.Generator) -> int:
        """A value drawn uniformly; with `log`, uniformly in log space and rounded."""
        if not self.log:
            return int(rng.integers(self.low, self.high, endpoint=True))
        # widen by half a unit each side so the end values get their full share
        x = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
        return self._clip(round(x))

    def quantile(self, q: float) -> int:
        """The value at quantile `q` of `sample`'s prior: each of the high - low + 1 values
        holds an equal share of [0, 1); with `log`, the widened log range as `sample`."""
        if not self.log:
            return self._clip(self.low + math.floor(q * (self.high - self.low + 1)))
        low, high = math.log(self.low - 0.5), math.log(self.high + 0.5)
        return self._clip(round(math.exp(low + q * (high - low))))

    def perturb(self, value: int, factor: float, rng: np.random.Generator) -> int:
        """`round(value * factor)`, at least one unit the way the product moves, clipped.

        Like a Float, a negative value grows away from 0 with a factor > 1; 0
        itself goes up with a factor > 1 and down with one < 1.
        """
        x = round(value * factor)
        # without this, small values (0, 1, 2 with factor 1.2) would never move
        up = (factor > 1) == (value >= 0)
        if factor != 1:
            x = max(x, value + 1) if up else min(x, value - 1)
        return self._clip(x)

    def shift(self, value: int, delta: float, rng: np.random.Generator) -> int:
        """`round(value + delta)`, at least one unit in the direction of `delta`, clipped."""
        return self._clip(value + _whole_steps(delta))

    def validate(self, value: Any) -> None:
        """Raise ConfigError unless `value` is an int in [low, high]."""
        if not _is_int(value):
            raise ConfigError(f"value must be an int, got {value!r}")
        if not self.low <= value <= self.high:
            raise ConfigError(f"value must be in [{self.low}, {self.high}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}

    def _clip(self, x: int) -> int:
        return int(min(max(x, self.low), self.high))


@dataclass(frozen=True)
class Choice(Dimension):
    """One of ordered categories; perturb steps to a neighbour, so order them meaningfully."""

    options: Sequence[Any]  # given as any sequence (a list, as in a config file); kept a tuple
    explore: OwnRule | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_rule(self.explore)
        raw = self.options
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
            raise ConfigError(f"Choice: options must be a list of values, got {raw!r}")
        options = tuple(_scalar(x, "Choice: each option") for x in raw)
        if not options:
            raise ConfigError("Choice: options must not be empty, got ()")
        for i, x in enumerate(options):
            if any(_same(x, y) for y in options[:i]):
                raise ConfigError(f"Choice: options must be distinct, got {x!r} twice in {options}")
        object.__setattr__(self, "options", options)

    def sample(self, rng: np.random.Generator) -> Any:
        """An option drawn uniformly."""
        return self.options[int(rng.integers(len(self.options)))]

    def quantile(self, q: float) -> Any:
        """The option whose equal share of [0, 1) holds `q`."""
        return self.options[min(math.floor(q * len(self.options)), len(self.options) - 1)]

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        """The next option when factor > 1, the previous when < 1, staying at the ends."""
        i = self._index(value)
        if factor > 1:
            i = min(i + 1, len(self.options) - 1)
        elif factor < 1:
            i = max(i - 1, 0)
        return self.options[i]

    def shift(self, value: Any, delta: float, rng: np.random.Generator) -> Any:
        """The option `delta` positions away (rounded, at least one), staying at the ends."""
        i = self._index(value) + _whole_steps(delta)
        return self.options[min(max(i, 0), len(self.options) - 1)]

    def validate(self, value: Any) -> None:
        """Raise ConfigError unless `value` is one of the options."""
        self._index(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"type": "choice", "options": list(self.options)}

    def _index(self, value: Any) -> int:
        for i, x in enumerate(self.options):
            if _same(x, value):
                return i
        raise ConfigError(f"value must be one of {list(self.options)}, got {value!r}")


@dataclass(frozen=True)
class Constant(Dimension):
    """A fixed hparam, recorded with the others but never changed (e.g. epochs)."""

    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _scalar(self.value, "Constant: value"))

    def sample(self, rng: np.random.Generator) -> Any:
        """The constant."""
        return self.value

    def quantile(self, q: float) -> Any:
        """The constant."""
        return self.value

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        """The constant, unchanged."""
        return self.value

    def shift(self, value: Any, delta: float, rng: np.random.Generator) -> Any:
        """The constant, unchanged."""
        return self.value

    def validate(self, value: Any) -> None:
        """Raise ConfigError unless `value` is the constant."""
        if not _same(value, self.value):
            raise ConfigError(f"value must be the constant {self.value!r}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"type": "constant", "value": self.value}


def _whole_steps(delta: float) -> int:
    """`round(delta)`, but at least one step in delta's direction: a small noise still moves
    a discrete hparam, as perturb moves an Int at least one unit."""
    steps = round(delta)
    if delta > 0:
        return max(steps, 1)
    if delta < 0:
        return min(steps, -1)
    return 0


_TYPES: dict[str, type[Float] | type[Int] | type[Choice] | type[Constant]] = {
    "float": Float,
    "int": Int,
    "choice": Choice,
    "constant": Constant,
}


def dimension_from_dict(d: Mapping[str, Any]) -> Dimension:
    """The dimension described by `d` (the output of `to_dict`, or a config file entry)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"dimension must be a mapping with a 'type', got {d!r}")
    params = dict(d)
    kind = params.pop("type", None)
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ConfigError(f"dimension type must be one of {', '.join(_TYPES)}; got {kind!r}")
    cls = _TYPES[kind]
    allowed = [f.name for f in fields(cls)]
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"dimension type {kind!r} has no field {key!r}; allowed: {', '.join(allowed)}"
            )
    try:
        return cls(**params)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"dimension type {kind!r}: {e}") from None


def _named(name: str, e: ConfigError) -> ConfigError:
    return ConfigError(f"hparam {name!r}: {e}")


class Space(Mapping[str, Dimension]):
    """The hparams of a run: name -> dimension; a plain value becomes a `Constant`."""

    def __init__(self, dims: Mapping[str, Dimension | Any]) -> None:
        if not isinstance(dims, Mapping):
            raise ConfigError(f"space must be a mapping of hparam name to dimension, got {dims!r}")
        if not dims:
            raise ConfigError("space must have at least one hparam, got {}")
        self._dims: dict[str, Dimension] = {}
        for name, dim in dims.items():
            if not isinstance(name, str):
                raise ConfigError(f"hparam names must be strings, got {name!r}")
            if not isinstance(dim, Dimension):
                try:
                    dim = Constant(dim)
                except ConfigError as e:
                    raise _named(name, e) from None
            self._dims[name] = dim

    @property
    def names(self) -> tuple[str, ...]:
        """The hparam names, in declaration order."""
        return tuple(self._dims)

    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def __repr__(self) -> str:
        return f"Space({self._dims!r})"

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One hparam setting drawn from the prior (initial population, resample)."""
        return {name: dim.sample(rng) for name, dim in self._dims.items()}

    def latin(self, rng: np.random.Generator, sizes: Sequence[int]) -> list[dict[str, Any]]:
        """sum(`sizes`) hparam settings, space-filling over the prior, for groups of `sizes`
        members (group 1's first): each group, too, spans the prior.

        Each dimension's prior is cut into one stratum of equal probability per setting,
        and each stratum gets one draw (a Latin hypercube). The strata, lowest first, are
        dealt in rounds, one to each group with room left, in a fresh random order every
        round, so a group of m gets one draw from about each m-th of the prior, where m
        independent draws (`sample`) may all land low. Dimensions are dealt independently;
        a group's settings pair their values at random."""
        n = sum(sizes)
        columns = {name: self._dealt(dim, rng, sizes, n) for name, dim in self._dims.items()}
        return [{name: column[i] for name, column in columns.items()} for i in range(n)]

    @staticmethod
    def _dealt(dim: Dimension, rng: np.random.Generator, sizes: Sequence[int],
               n: int) -> list[Any]:
        """One dimension's values for `Space.latin`, group by group."""
        room = list(sizes)
        dealt: list[list[int]] = [[] for _ in sizes]
        stratum = 0
        while stratum < n:
            for group in rng.permutation([g for g, left in enumerate(room) if left > 0]):
                dealt[group].append(stratum)
                room[group] -= 1
                stratum += 1
        order = [s for strata in dealt for s in rng.permutation(strata)]
        return [dim.quantile((s + rng.random()) / n) for s in order]

    def normalize(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """`hparams` checked against the space, with numpy scalars made plain Python values."""
        self.validate(hparams)
        return {name: _scalar(hparams[name], f"hparam {name!r}") for name in self._dims}

    def validate(self, hparams: Mapping[str, Any]) -> None:
        """Raise ConfigError, naming the hparam, unless `hparams` fits this space exactly."""
        allowed = ", ".join(self._dims)
        for name in self._dims:
            if name not in hparams:
                raise ConfigError(f"hparam {name!r} is missing; the space has {allowed}")
        for name in hparams:
            if name not in self._dims:
                raise ConfigError(f"hparam {name!r} is not in the space; it has {allowed}")
        for name, dim in self._dims.items():
            try:
                dim.validate(hparams[name])
            except ConfigError as e:
                raise _named(name, e) from None
