"""What a user writes for a vectorized run: one member's model, data, loss and metrics.

    class Digits(VectorizedTrainable):
        optimizer = SGD(lr=0.1, momentum=0.9)     # defaults; the space's hparams override

        def model(self, seed):                    # torch is seeded with `seed` already
            return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), Dropout("dropout"),
                                 nn.Linear(128, 10))

        def data(self):                           # each member's own order of the rows
            return Shuffled(x_train, y_train, batch_size=64)

        def loss(self, output, batch, hparams):   # one member's; hparams: 0-d tensors
            return F.cross_entropy(output, batch[1])

        def metrics(self, model):                 # one member's, the model in eval mode
            return {"accuracy": (model(x_val).argmax(1) == y_val).float().mean()}

populace stacks every member's model and trains them all in one vmapped call a step,
on the device the run names. Each hook is written for one member and runs under vmap,
so it must use tensor operations only (no `.item()`, no Python branch on a tensor).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from populace.space import Constant, Space
from populace.trainable import Hooks
from populace.vectorized.data import Batch, Data
from populace.vectorized.optim import SGD, StackedOptimizer
from populace.vectorized.population import Population


class VectorizedTrainable(Hooks, ABC):
    """One member's training, which populace runs for the whole population at once, with
    the vectorized executor (`populace.vectorized.run`)."""

    optimizer: ClassVar[StackedOptimizer] = SGD()
    # members evaluated in one vmapped call; lower it when a large population's evaluation
    # does not fit in memory. None: the run's choice, all at once on a GPU, 64 at a time on
    # the CPU (where a larger population's activations outgrow the caches) unless the
    # metrics draw random numbers (a chunk's draws are not the whole call's)
    eval_chunk: ClassVar[int | None] = None
    # torch's intra-op threads for the batched model (None: one per core the run's process
    # may use, its CPU affinity): one process trains every member, so it takes every core,
    # where the local executor's processes take one thread each
    threads: ClassVar[int | None] = None

    @abstractmethod
    def model(self, seed: int) -> nn.Module:
        """A fresh member's model (torch's generator is seeded with `seed` around the call)."""

    @abstractmethod
    def data(self) -> Data:
        """The training batches of every member (`Shuffled`, or your own `Data`)."""

    @abstractmethod
    def loss(self, output: Any, batch: Batch, hparams: Mapping[str, Tensor]) -> Tensor:
        """One member's training loss, a 0-d tensor, from its model's output on its batch."""

    @abstractmethod
    def metrics(self, model: Callable[..., Any]) -> Mapping[str, Tensor]:
        """One member's metrics as 0-d tensors (the run's score among them); `model(x)`
        calls the member's model, in eval mode and without gradients, with `x` moved to
        the run's device (on a GPU, compare its output with `y.to(output.device)`)."""

    def inputs(self, batch: Batch) -> tuple[Tensor, ...]:
        """What the model is called with, from a batch: its first tensor by default."""
        return (batch[0],)

    def build(self, hparams: Mapping[str, Any], seed: int) -> Population:
        """A population of one member on the CPU, checked as a run checks its population:
        a model vmap cannot run is refused by name before a run writes anything."""
        space = Space({name: Constant(value) for name, value in hparams.items()})
        probe = Population(self, space, [seed])
        probe.hparams.set([0], [hparams])
        probe.check(hparams)
        return probe
