"""What a user writes: one member's training, in the paper's hooks."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class Hooks:
    """The hooks a user writes for populace to call, whichever way the run trains them: a
    `Trainable` member by member, or a `populace.vectorized.VectorizedTrainable` the whole
    population at once. A run script defines one subclass."""


class Trainable(Hooks, ABC):
    """One member: weights θ trained under hyperparameters h.

    populace calls `build` once for each member it starts on a worker, then
    `step` until the member is ready, `evaluate` for its score, `save` for a
    checkpoint. After an exploit it calls `load` with the donor's checkpoint,
    `reseed` with a seed of the member's own, and then `apply` with the explored
    hparams, in that order, so the new hparams always win over whatever the
    checkpoint carried, and the copy does not replay the donor's random draws.

    `member_id` and `current_step` say which member the object trains and the step
    it has reached, for the trainable's own logging; populace keeps them up to date.
    """

    member_id: int | None = None
    current_step: int = 0

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

    def reseed(self, seed: int) -> None:
        """After an exploit: draw from a stream of the member's own, not the donor's.

        `load` restored the donor's random state with its weights; kept, the copy
        would see the donor's data order and dropout masks, and the two would train
        as one. The default reseeds Python's `random` and NumPy's global generator;
        override it (and call it) for generators the trainable holds itself.
        """
        random.seed(seed)
        np.random.seed(seed % 2**32)
