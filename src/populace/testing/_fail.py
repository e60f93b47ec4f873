"""How a battery check says what broke: the implementation, the check, the inputs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np


def name_of(thing: Any) -> str:
    """A function or class as "module:QualName", an object as its repr."""
    if inspect.isfunction(thing) or inspect.isclass(thing):
        return f"{thing.__module__}:{thing.__qualname__}"
    return repr(thing)


def short(values: Any) -> str:
    """A column for a message: at most a dozen values, the rest elided."""
    return np.array2string(np.asarray(values), threshold=12, edgeitems=5, separator=", ")


def fail(what: str, check: Callable[..., Any], problem: str, inputs: str) -> NoReturn:
    """Raise the AssertionError every battery raises: `what` fails `check`: why, on what."""
    raise AssertionError(f"{what} fails {check.__name__}: {problem}\n  inputs: {inputs}")
