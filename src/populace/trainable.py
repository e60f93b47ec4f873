"""What a user writes: one member's training, in the paper's hooks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Trainable(ABC):
    """One member: weights θ trained under hyperparameters h.

    populace calls `build` once for each member it starts on a worker, then
    `step` until the member is ready, `evaluate` for its score, `save` for a
    checkpoint. After an exploit it calls `load` with the donor's checkpoint
    and then `apply` with the explored hparams, in that order, so the new
    hparams always win over whatever the checkpoint carried.
    """

    @abstractmethod
    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        """Create model, optimizer and data for a fresh member."""

    @abstractmethod
    def step(self) -> None:
        """Train one step (what a step is, a batch or an epoch, is yours to say)."""

    @abstractmethod
    def evaluate(self) -> float | Mapping[str, float]:
        """The score, or a dict of metrics holding the score under the run's `score` name."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the full training state (weights, optimizer, RNG...) to one file at `path`."""

    @abstractmethod
    def load(self, path: Path) -> None:
        """Restore the state written by `save`."""

    @abstractmethod
    def apply(self, hparams: Mapping[str, Any]) -> None:
        """Put new hparams in force on the live object, without rebuilding it."""
