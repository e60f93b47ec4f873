"""Where each member's training batches come from: a data source draws member i's batch
for its step from its own stream, all members' batches stacked along a leading axis.

A member's stream is a number (its key): its seed at the start, a seed of its own after
each exploit (the worker's `copy_seed`), so a copy does not replay its donor's data
order. A batch depends only on (key, step), never on what other members do, so a member
trained alone (`populace.vectorized.plain`) sees the very same batches, and a resumed
run draws the batches it would have drawn.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

Batch = tuple[Tensor, ...]


@runtime_checkable
class Data(Protocol):
    """A data source of a vectorized run."""

    def batches(self, keys: np.ndarray, steps: np.ndarray) -> Batch:
        """Member i's batch for step `steps[i]` of stream `keys[i]`: each tensor of the
        batch has a leading axis with one entry per member."""
        ...

    def to(self, device: torch.device) -> Data:
        """The same source with its tensors on `device`."""
        ...


def _order(n: int, key: int, epoch: int) -> Tensor:
    """Stream `key`'s order of `n` rows in `epoch`: a permutation of their own."""
    seed = int(np.random.SeedSequence([key, epoch]).generate_state(1, np.uint64)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class Shuffled:
    """Epochs over the rows of `tensors` (the same rows of each), in an order of each
    member's own, `batch_size` rows a step.

    An epoch is `len // batch_size` steps; the rows left over at its end are not used
    in that epoch, as with a DataLoader's drop_last. Each member's order is drawn once
    per epoch (a permutation from its key and the epoch), on the CPU, so it is the same
    on every device.
    """

    def __init__(self, *tensors: Tensor, batch_size: int):
        if not tensors:
            raise ValueError("Shuffled needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"Shuffled: every tensor needs the same number of rows, got "
                             f"{[len(t) for t in tensors]}")
        if not 1 <= batch_size <= n:
            raise ValueError(f"Shuffled: batch_size must be in [1, {n}] (the rows), "
                             f"got {batch_size}")
        self.tensors, self.batch_size, self.rows = tensors, batch_size, n
        self.per_epoch = n // batch_size
        self._orders: Tensor | None = None  # [members, rows] for _drawn's keys and epochs
        self._drawn: tuple[np.ndarray, np.ndarray] | None = None

    def to(self, device: torch.device) -> Shuffled:
        moved = Shuffled(*(t.to(device) for t in self.tensors), batch_size=self.batch_size)
        return moved

    def batches(self, keys: np.ndarray, steps: np.ndarray) -> Batch:
        epochs, within = np.divmod(steps, self.per_epoch)
        orders = self._orders_for(keys, epochs)
        offsets = torch.as_tensor(within * self.batch_size, device=orders.device)
        positions = offsets[:, None] + torch.arange(self.batch_size, device=orders.device)
        rows = orders.gather(1, positions)
        return tuple(t[rows] for t in self.tensors)

    def _orders_for(self, keys: np.ndarray, epochs: np.ndarray) -> Tensor:
        """Each member's order for its epoch; drawn again only where a key or epoch moved
        (once an epoch, in a run whose members step together)."""
        drawn = self._drawn
        if (drawn is not None and self._orders is not None and len(drawn[0]) == len(keys)
                and np.array_equal(drawn[0], keys) and np.array_equal(drawn[1], epochs)):
            return self._orders
        device, previous = self.tensors[0].device, self._orders
        old = {}
        if drawn is not None and previous is not None:
            old = {(int(k), int(e)): i for i, (k, e) in enumerate(zip(*drawn, strict=True))}
        orders = torch.stack([
            previous[old[(int(k), int(e))]] if previous is not None and (int(k), int(e)) in old
            else _order(self.rows, int(k), int(e)).to(device)
            for k, e in zip(keys, epochs, strict=True)])
        self._orders, self._drawn = orders, (keys.copy(), epochs.copy())
        return orders
