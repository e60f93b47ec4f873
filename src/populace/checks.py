"""One way to check a user's value: a run setting's (config) or a strategy parameter's.

Each check refuses a bool where a number belongs (True is an int to Python, never a
count or a fraction to a user), takes any integral type as an int and any real as a
float (numpy's scalars too: values computed with numpy are common in Python configs),
and returns the value coerced, which the caller stores, so the run's JSON config holds
plain ints and floats.

A message names the field, what is allowed and the value. A strategy's parameter names
its owner, and shows the value as it would be passed:
`Truncation: fraction must be in (0, 0.5], got fraction=0.7`. A run setting is named
alone, as its flag and config key are: `population must be >= 2, got 1`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from populace.errors import ConfigError


def is_whole(value: Any) -> bool:
    """An integer of any type, numpy's included, but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number of any type (ints too), numpy's included, but not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """`value` for a message: a number as written, a huge integer as its size, else repr."""
    if not is_real(value):
        return repr(value)
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}... ({len(text)} digits)"


def refused(owner: str | None, name: str, allowed: str, value: Any,
            sep: str = ",") -> ConfigError:
    """The error for `value` of `name`, which `allowed` describes (see the module's doc)."""
    if owner is None:
        return ConfigError(f"{name} must be {allowed}{sep} got {shown(value)}")
    return ConfigError(f"{owner}: {name} must be {allowed}{sep} got {name}={shown(value)}")


def whole(owner: str | None, name: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (no upper bound when `high` is None).

    A run setting's message names the bound it crosses, as the upper bounds of settings
    are typo guards (config.BOUNDS) a user rarely has in mind; a strategy parameter's
    names its whole range.
    """
    span = f">= {low:,}" if high is None else f"in [{low:,}, {high:,}]"
    if not is_whole(value):
        raise refused(owner, name, f"an int {span}", value)
    if value < low or (high is not None and value > high):
        if owner is not None:
            raise refused(owner, name, f"an int {span}", value)
        raise refused(owner, name, f">= {low:,}" if value < low else f"<= {high:,}", value)
    return int(value)


def number(owner: str | None, name: str, value: Any, *, low: float, high: float | None = None,
           open_low: bool = False, open_high: bool = False) -> float:
    """`value` as a finite float from `low` to `high` (no upper bound when None).

    `open_low` and `open_high` leave the bound itself out: (0, 1] is `low=0, open_low=True,
    high=1`. NaN and infinities are always refused.
    """
    if high is None:
        allowed = f"a finite number {'>' if open_low else '>='} {low:,}"
    else:
        allowed = f"in {'(' if open_low else '['}{low:,}, {high:,}{')' if open_high else ']'}"
    try:
        x = float(value) if is_real(value) else math.nan
    except OverflowError:  # an int with hundreds of digits
        x = math.nan
    above = x > low if open_low else x >= low
    below = high is None or (x < high if open_high else x <= high)
    if not (math.isfinite(x) and above and below):
        raise refused(owner, name, allowed, value)
    return x


def one_of(owner: str | None, name: str, value: Any, allowed: Sequence[str]) -> str:
    """`value`, which must be one of the names `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise refused(owner, name, f"one of {', '.join(allowed)}", value, sep=";")
    return value


def text(owner: str | None, name: str, value: Any, allowed: str) -> str:
    """`value`, a non-empty string; `allowed` says what it names ("the name of a metric")."""
    if not isinstance(value, str) or not value:
        raise refused(owner, name, allowed, value)
    return value


def flag(owner: str | None, name: str, value: Any) -> bool:
    """`value`, which must be True or False: 1, "yes" or None are refused, not guessed at."""
    if not isinstance(value, bool):
        raise refused(owner, name, "true or false", value)
    return value
