"""Ready: decide when a member has trained long enough to exploit and explore.

A ready rule is a callable `(steps_since, seconds_since) -> bool`, counted
from the member's last ready point (Jaderberg et al. 2017, section 3: "ready",
e.g. a number of steps or an amount of time since the last exploit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

from populace.errors import ConfigError


@dataclass(frozen=True)
class EverySteps:
    """Ready every `steps` training steps, the paper's usual rule (section 4.1)."""

    steps: int

    def __post_init__(self) -> None:
        s = self.steps
        if isinstance(s, bool) or not isinstance(s, Integral) or s < 1:
            raise ConfigError(f"EverySteps: steps must be an int >= 1, got steps={s!r}")
        object.__setattr__(self, "steps", int(s))

    def __call__(self, steps_since: int, seconds_since: float) -> bool:
        """Whether at least `steps` steps have passed since the last ready point."""
        return steps_since >= self.steps

    def segment_steps(self) -> int | None:
        """Steps in one segment, so a worker can train it without asking every step."""
        return self.steps


@dataclass(frozen=True)
class EverySeconds:
    """The paper's ready criterion (section 3) in wall-clock seconds instead of steps."""

    seconds: float

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, Real) or not (math.isfinite(s) and s > 0):
            raise ConfigError(
                f"EverySeconds: seconds must be a finite number > 0, got seconds={s!r}"
            )
        object.__setattr__(self, "seconds", float(s))

    def __call__(self, steps_since: int, seconds_since: float) -> bool:
        """Whether at least `seconds` seconds have passed since the last ready point."""
        return seconds_since >= self.seconds

    def segment_steps(self) -> int | None:
        """None: a segment's length in steps is not known in advance."""
        return None
