"""populace: Population Based Training (Jaderberg et al., 2017, arXiv:1711.09846).

The names below are imported on first use (PEP 562), so `import populace` is cheap: the
`populace` command and every spawned worker process import only the modules they use
(no numpy, rich or torch for a name that does not need them).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing alone costs more than the rest here

# public name -> the module that defines it
_EXPORTS = {
    "RunFailed": "populace.results",
    "RunResult": "populace.results",
    "load_result": "populace.results",
    "run": "populace.api",
    "RunConfig": "populace.config",
    "Member": "populace.function",
    "Choice": "populace.space",
    "ConfigError": "populace.errors",
    "Constant": "populace.space",
    "Float": "populace.space",
    "Int": "populace.space",
    "Space": "populace.space",
    "Keep": "populace.strategies",
    "NoExploit": "populace.strategies",
    "Noise": "populace.strategies",
    "OwnState": "populace.strategies",
    "Perturb": "populace.strategies",
    "PerturbOrResample": "populace.strategies",
    "Resample": "populace.strategies",
    "Tournament": "populace.strategies",
    "Truncation": "populace.strategies",
    "TTest": "populace.strategies",
    "Trainable": "populace.trainable",
}

__all__ = [
    "Choice", "ConfigError", "Constant", "Float", "Int", "Keep", "Member", "NoExploit",
    "Noise", "OwnState", "Perturb", "PerturbOrResample", "Resample", "RunConfig", "RunFailed",
    "RunResult", "Space", "Tournament", "Trainable", "Truncation", "TTest", "load_result", "run",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the module behind a public name the first time it is asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'populace' has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from typing import Any

    from populace.api import run
    from populace.config import RunConfig
    from populace.errors import ConfigError
    from populace.function import Member
    from populace.results import RunFailed, RunResult, load_result
    from populace.space import Choice, Constant, Float, Int, Space
    from populace.strategies import (
        Keep,
        NoExploit,
        Noise,
        OwnState,
        Perturb,
        PerturbOrResample,
        Resample,
        Tournament,
        Truncation,
        TTest,
    )
    from populace.trainable import Trainable
