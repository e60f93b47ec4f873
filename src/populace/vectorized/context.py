"""A member's hparams inside its forward pass, and the Dropout that reads its rate there.

In a vectorized run one call trains every member, so a layer cannot hold a member's
hparam as a Python attribute (`nn.Dropout.p` is one float for all). Instead the run
puts each member's hparams in a context around the model's forward pass; under vmap a
layer that reads one (`hparam("dropout")`) gets that member's value, a 0-d tensor.
The same model trained alone (a plain loop, `populace.vectorized.plain`) gets the same
values the same way, and outside any context (a best member loaded into a plain
module) `hparam` returns the layer's default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

_current: ContextVar[Mapping[str, Tensor] | None] = ContextVar("populace_member_hparams",
                                                                default=None)


class Reads(Mapping[str, Tensor]):
    """A member's hparams that note which names were read: an hparam nothing reads is
    refused before training (`hparams.check_read`), so none is dropped silently."""

    def __init__(self, values: Mapping[str, Tensor], read: set[str]):
        self._values, self.read = values, read

    def __getitem__(self, name: str) -> Tensor:
        value = self._values[name]  # a missing name raises KeyError, as a dict does
        self.read.add(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@contextmanager
def member_hparams(values: Mapping[str, Tensor]) -> Iterator[None]:
    """Make `values` the hparams `hparam` returns while the block runs."""
    token = _current.set(values)
    try:
        yield
    finally:
        _current.reset(token)


def hparam(name: str, default: float | None = None) -> Tensor | float:
    """The member's value of hparam `name` inside a vectorized forward pass; `default`
    outside one (a model used on its own). KeyError when a run has no such hparam."""
    values = _current.get()
    if values is None:
        if default is None:
            raise KeyError(f"hparam {name!r} is read outside a vectorized run and has no "
                           "default: give the layer one")
        return default
    if name not in values:
        raise KeyError(f"hparam {name!r}, which the run's space lacks (it has "
                       f"{', '.join(values) or 'no hparams'})")
    return values[name]


class Dropout(nn.Module):
    """Dropout at a rate that is an hparam of each member (`hparam`), so PBT can tune it.

    In a vectorized run the masks are drawn under vmap with different randomness per
    member; outside a run (a loaded member) the rate is `p`. In eval mode it is the
    identity, as `nn.Dropout` is.
    """

    def __init__(self, name: str = "dropout", p: float = 0.0):
        super().__init__()
        self.name, self.p = name, p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        p = torch.as_tensor(hparam(self.name, self.p), dtype=x.dtype, device=x.device)
        keep = torch.rand_like(x) >= p
        # a rate of 1 keeps nothing: 0, not 0 / 0
        return x * keep / (1 - p).clamp_min(torch.finfo(x.dtype).tiny)

    def extra_repr(self) -> str:
        return f"hparam={self.name!r}, p={self.p}"
