"""Each member's hparams as tensors of shape [population], and the checks that every hparam
of the space is a number and reaches something that reads it.

An hparam goes to the optimizer when the optimizer names it (lr, momentum, ...), else to
the model (a layer that calls `populace.vectorized.hparam`, such as `Dropout`) and to the
loss function, which receive every hparam of the space and may read any. One that none
of them reads is refused before training, so no hparam is dropped silently.

An hparam that would set a tensor's shape (a batch size, a layer's width) is refused
rather than handled by masking: every member's tensors are slices of one stacked
tensor, so a member with a smaller batch would still pay for the largest, its mean
loss would need a mask the user's loss function does not know of, and members would
no longer take the same number of steps per epoch. Such an hparam is read by nothing
(the model is built from a seed alone, the data source has one batch size), so the
same check refuses it, with a message that says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from populace.checks import is_real, is_whole
from populace.errors import ConfigError
from populace.space import Choice, Constant, Dimension, Float, Int, Space
from populace.vectorized.optim import StackedOptimizer, exact

# where a refusal sends a run that cannot batch: the local executor trains each member as
# a model of its own, so its members may differ in anything
LOCAL_INSTEAD = ("or, where members must differ in it, train the run with the local executor "
                 "(--executor local; executor='local' in populace.run), each member a model of "
                 "its own (a Trainable that reads it): docs/vectorized.md, \"Which hparams "
                 "batch\", says which do")


def _options(dimension: Dimension) -> Sequence[Any] | None:
    """The values a Choice or Constant may take; None for a Float or Int (numbers)."""
    if isinstance(dimension, Choice):
        return dimension.options
    if isinstance(dimension, Constant):
        return (dimension.value,)
    return None


def check_space(space: Space) -> None:
    """Refuse an hparam that is not a number: each is one tensor entry per member."""
    for name, dimension in space.items():
        options = _options(dimension)
        if options is None and isinstance(dimension, (Float, Int)):
            continue
        if options is not None and all(is_real(x) for x in options):
            continue
        raise ConfigError(
            f"hparam {name!r} is {dimension.to_dict()}: a vectorized run holds each hparam as "
            "one number per member (a tensor of shape [population]), so it must be a Float, "
            "an Int, or a Choice or Constant of numbers; give a number instead (an option's "
            f"index, say) and choose by it in the model or the loss with torch.where, "
            f"{LOCAL_INSTEAD}")


def integral(space: Space) -> set[str]:
    """The hparams whose every value is an integer: int64 tensors, the rest floats."""
    found = set()
    for name, dimension in space.items():
        options = _options(dimension)
        if isinstance(dimension, Int) or (options is not None
                                          and all(is_whole(x) for x in options)):
            found.add(name)
    return found


def check_read(space: Space, optimizer: StackedOptimizer, read: set[str]) -> None:
    """Refuse hparams of the space that neither the optimizer, the model nor the loss read."""
    unread = [n for n in space if n not in optimizer.hparams and n not in read]
    if unread:
        raise ConfigError(
            f"hparam {unread[0]!r} has no target: {type(optimizer).__name__} takes "
            f"{', '.join(optimizer.hparams)}, and neither the model (a layer calling "
            "populace.vectorized.hparam, such as Dropout) nor the loss read it. A vectorized "
            "run gives every member tensors of one shape, so an hparam that sets a shape (a "
            "batch size, a layer's width) cannot differ between members: fix it in the "
            "trainable (the data's batch_size, the model) and take it out of the space, "
            f"{LOCAL_INSTEAD}")


class HparamTable:
    """Every member's hparams, one tensor of shape [population] per name.

    `exact` holds them in float64 (`optim.exact`), as the optimizer's update rules read them;
    `values` as the model and loss see them: int64 for integer hparams, else the
    default float dtype.
    """

    def __init__(self, space: Space, optimizer: StackedOptimizer, population: int,
                 device: torch.device):
        self.names = tuple(space)
        self.defaults = optimizer.defaults()
        self.optimizer_names = optimizer.hparams
        self._integral = integral(space)
        dtype = exact(device)
        self.exact = {name: torch.full((population,), value, dtype=dtype, device=device)
                      for name, value in self.defaults.items()}
        self.exact.update({name: torch.zeros(population, dtype=dtype, device=device)
                           for name in self.names})
        self.values: dict[str, Tensor] = {}
        self._refresh()

    def set(self, rows: Sequence[int], hparams: Sequence[Mapping[str, Any]]) -> None:
        """Members at `rows` train with `hparams` from now on (one mapping per row)."""
        if not rows:
            return
        index = torch.as_tensor(list(rows), device=next(iter(self.exact.values())).device)
        for name, column in self.exact.items():
            given = [h.get(name, self.defaults.get(name)) for h in hparams]
            column[index] = torch.tensor(given, dtype=column.dtype, device=column.device)
        self._refresh()

    def _refresh(self) -> None:
        self.values = {name: self.exact[name].to(torch.int64 if name in self._integral
                                                 else torch.get_default_dtype())
                       for name in self.names}

    def optimizer(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        """The optimizer's hparams of the members at `rows` (None: every member)."""
        return {n: self.exact[n] if rows is None else self.exact[n][rows]
                for n in self.optimizer_names}

    def model(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        """The space's hparams as the model and the loss read them."""
        return {n: v if rows is None else v[rows] for n, v in self.values.items()}
