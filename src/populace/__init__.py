"""populace: Population Based Training (Jaderberg et al., 2017, arXiv:1711.09846)."""

from populace.api import RunFailed, RunResult, run
from populace.config import RunConfig
from populace.function import Member
from populace.space import Choice, ConfigError, Constant, Float, Int, Space
from populace.trainable import Trainable

__all__ = [
    "Choice", "ConfigError", "Constant", "Float", "Int", "Member", "RunConfig", "RunFailed",
    "RunResult", "Space", "Trainable", "run",
]
__version__ = "0.1.0"
