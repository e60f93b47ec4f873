"""populace: Population Based Training (Jaderberg et al., 2017, arXiv:1711.09846)."""

from populace.api import RunFailed, RunResult, run
from populace.config import RunConfig
from populace.function import Member
from populace.space import Choice, ConfigError, Constant, Float, Int, Space
from populace.strategies import (
    Keep,
    NoExploit,
    Noise,
    Perturb,
    PerturbOrResample,
    Resample,
    Tournament,
    Truncation,
    TTest,
)
from populace.trainable import Trainable

__all__ = [
    "Choice", "ConfigError", "Constant", "Float", "Int", "Keep", "Member", "NoExploit",
    "Noise", "Perturb", "PerturbOrResample", "Resample", "RunConfig", "RunFailed", "RunResult",
    "Space", "Tournament", "Trainable", "Truncation", "TTest", "run",
]
__version__ = "0.1.0"
