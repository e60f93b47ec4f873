"""One member of a vectorized trainable trained alone, by a plain torch.optim loop: the
reference a vectorized run matches, and a `Trainable` for the other executors.

    class DigitsAlone(PlainMember):
        vectorized = DigitsVectorized

`DigitsAlone` builds the member's model from its seed as a vectorized run does, takes
the same batches from the same data source (the member's stream key and step), puts
its hparams in the same context for the model and the loss, and steps the torch.optim
optimizer the stacked one stands for. Its checkpoints are a TorchTrainable's (one
member each), not a vectorized run's: a run trains with one or the other to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from populace.checks import is_whole
from populace.integrations.torch import TorchTrainable
from populace.vectorized.context import member_hparams
from populace.vectorized.data import Batch
from populace.vectorized.functional import build_member
from populace.vectorized.run import device_of
from populace.vectorized.trainable import VectorizedTrainable


class Stream:
    """A member's data stream key, checkpointed with its model and optimizer."""

    def __init__(self, key: int):
        self.key = key

    def state_dict(self) -> dict[str, Any]:
        return {"key": torch.tensor(self.key, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        self.key = int(state["key"])


def as_tensors(hparams: Mapping[str, Any]) -> dict[str, Tensor]:
    """A member's hparams as the model and loss of a vectorized run see them: 0-d tensors,
    int64 for integers, else the default float dtype."""
    return {name: torch.tensor(value, dtype=torch.int64 if is_whole(value)
                               else torch.get_default_dtype())
            for name, value in hparams.items()}


class PlainMember(TorchTrainable):
    """The member `vectorized` describes, trained alone (see the module's doc)."""

    vectorized: ClassVar[type[VectorizedTrainable]]
    state = ("model", "optimizer", "stream")
    # where the member trains: "cpu", a torch device ("cuda", "cuda:1"), or "auto": the
    # first GPU this process sees, when it sees one (a local worker given a GPU, or a
    # share of one, by gpus_per_worker sees only its own)
    device: ClassVar[str] = "cpu"

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        self.spec = self.vectorized()
        self.place = device_of(self.device)
        self.model = build_member(self.spec, seed).to(self.place)
        self.optimizer = self.spec.optimizer.plain(self.model.parameters())
        self.data = self.spec.data().to(self.place)
        self.stream = Stream(seed)
        self.apply(hparams)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        self.spec.optimizer.apply(self.optimizer, hparams)
        self.hparams = {name: value.to(self.place)
                        for name, value in as_tensors(hparams).items()}

    def reseed(self, seed: int) -> None:
        super().reseed(seed)
        self.stream.key = seed  # a copy's own data order, as in a vectorized run

    def batch(self) -> Batch:
        """The member's batch for its current step."""
        stacked = self.data.batches(np.array([self.stream.key]), np.array([self.current_step]))
        return tuple(t[0] for t in stacked)

    def step(self) -> None:
        batch = self.batch()
        self.model.train()
        with member_hparams(self.hparams):
            output = self.model(*self.spec.inputs(batch))
        loss = self.spec.loss(output, batch, self.hparams)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad(), member_hparams(self.hparams):
            return {name: float(value) for name, value in self.spec.metrics(self.model).items()}
