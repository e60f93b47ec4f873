"""Which way a score improves: the run's mode, one word everywhere."""

from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    """`max` or `min`: compares, prints and encodes as its value, so a stored run's
    `"max"` and `Mode.MAX` are equal."""

    MAX = "max"
    MIN = "min"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def maximize(self) -> bool:
        """Whether higher scores are better."""
        return self is Mode.MAX

    @property
    def sign(self) -> float:
        """+1.0 or -1.0: a score times it is higher when better."""
        return 1.0 if self is Mode.MAX else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than score `b`."""
        return a > b if self is Mode.MAX else a < b

    def reached(self, score: float, target: float) -> bool:
        """Whether `score` is at `target` or past it in this mode."""
        return score >= target if self is Mode.MAX else score <= target
