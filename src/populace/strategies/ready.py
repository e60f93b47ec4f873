"""Ready: decide when a member has trained long enough to exploit and explore.

A ready rule (the `Ready` protocol) is a callable `(steps_since, seconds_since)
-> bool`, counted from the member's last ready point (Jaderberg et al. 2017, section 3: "ready",
e.g. a number of steps or an amount of time since the last exploit).
"""

from __future__ import annotations

from dataclasses import dataclass

from populace.checks import number, whole


@dataclass(frozen=True)
class EverySteps:
    """Ready every `steps` training steps, the paper's usual rule (section 4.1)."""

    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", whole("EverySteps", "steps", self.steps, 1))

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
        seconds = number("EverySeconds", "seconds", self.seconds, low=0, open_low=True)
        object.__setattr__(self, "seconds", seconds)

    def __call__(self, steps_since: int, seconds_since: float) -> bool:
        """Whether at least `seconds` seconds have passed since the last ready point."""
        return seconds_since >= self.seconds

    def segment_steps(self) -> int | None:
        """None: a segment's length in steps is not known in advance."""
        return None
