"""Optimizers over a stacked population: torch.optim's update rules with each hparam a
tensor of shape [population], and every state tensor stacked like the parameters.

One update moves every member by its own learning rate, momentum, weight decay,
betas and eps, so PBT's explore step is a write into those tensors and an exploit's
copy of the optimizer state is a slice copy. The rules follow torch.optim's
single-tensor code (SGD, Adam, AdamW in torch 2.x) operation for operation, so a
member matches the same member trained alone by torch.optim within float
tolerance (tests/vectorized/test_vectorized.py checks it). Scalars are kept in float64, as
torch.optim keeps them in Python floats, so Adam's bias corrections agree too.

State is a flat dict of stacked tensors: "step" (each member's update count) and
"<slot>/<parameter name>". `update` works in place, on the parameters, the state and
the gradients (fresh tensors of vmap's): a step allocates no parameter-sized tensor
that it can reuse, which on a CPU costs a fifth of the step in page faults.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

Tensors = dict[str, Tensor]


def exact(device: torch.device) -> torch.dtype:
    """The dtype of per-member scalars on `device`: float64, as torch.optim's Python floats,
    except on Apple's MPS, which has none (there Adam's bias corrections round more)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _per_member(value: Tensor, like: Tensor) -> Tensor:
    """A [population] tensor shaped to broadcast over a stacked tensor like `like` (a
    number in `like`'s dtype, a mask as it is)."""
    if value.is_floating_point():
        value = value.to(like.dtype)
    return value.view(-1, *[1] * (like.dim() - 1))


class _PerMember:
    """A step's per-member scalars, each cast and shaped for a stacked tensor once a step
    rather than once a parameter (at 8 digits members the repeated casts made the update
    half again as long as raw torch.func's)."""

    def __init__(self, **values: Tensor):
        self._values = values
        self._made: dict[tuple[str, torch.dtype, int], Tensor] = {}

    def __call__(self, name: str, like: Tensor) -> Tensor:
        key = (name, like.dtype, like.dim())
        if key not in self._made:
            self._made[key] = _per_member(self._values[name], like)
        return self._made[key]


class StackedOptimizer(ABC):
    """An update rule over stacked tensors, and the torch.optim optimizer it stands for."""

    # the hparams it reads per member; any of them may be in a run's space
    hparams: ClassVar[tuple[str, ...]]
    slots: ClassVar[tuple[str, ...]]  # state tensors kept per parameter

    def defaults(self) -> dict[str, float]:
        """Each hparam's value for members whose space does not set it."""
        return {name: float(value) for name, value in asdict(self).items()  # type: ignore[call-overload]
                if name in self.hparams}

    def init(self, params: Mapping[str, Tensor]) -> Tensors:
        """The state of members that have not taken a step."""
        first = next(iter(params.values()))
        state = {"step": torch.zeros(first.shape[0], dtype=exact(first.device),
                                     device=first.device)}
        for slot in self.slots:
            state.update({f"{slot}/{name}": torch.zeros_like(p) for name, p in params.items()})
        return state

    @abstractmethod
    def update(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
               state: Mapping[str, Tensor], hp: Mapping[str, Tensor]) -> None:
        """One step for every member, in place (the gradients are used up)."""

    @abstractmethod
    def plain(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """The torch.optim optimizer one member trained alone uses (before `apply`)."""

    def apply(self, optimizer: torch.optim.Optimizer, hparams: Mapping[str, Any]) -> None:
        """Put a member's hparams in force on its plain optimizer's param groups."""
        values = {**self.defaults(), **{k: v for k, v in hparams.items() if k in self.hparams}}
        for group in optimizer.param_groups:
            for name, value in values.items():
                if name in ("beta1", "beta2"):
                    betas = list(group["betas"])
                    betas[name == "beta2"] = float(value)
                    group["betas"] = tuple(betas)
                else:
                    group[name] = float(value)


@dataclass(frozen=True)
class SGD(StackedOptimizer):
    """torch.optim.SGD: momentum (with dampening, optionally Nesterov) and weight decay.

    A member with momentum 0 steps along its gradient, as torch.optim.SGD without a
    momentum buffer does; `nesterov` is one choice for the whole run.
    """

    lr: float = 0.01
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    hparams = ("lr", "momentum", "dampening", "weight_decay")
    slots = ("momentum",)

    def update(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
               state: Mapping[str, Tensor], hp: Mapping[str, Tensor]) -> None:
        # per member, so each parameter costs four passes and no elementwise branch: a
        # first step (no buffer yet) takes the gradient as its buffer, as torch.optim
        # does, and so does every step of a member without momentum
        first = state["step"] == 0
        per = _PerMember(
            decay=hp["weight_decay"], given_momentum=hp["momentum"], lr=-hp["lr"],
            momentum=torch.where(first, 0.0, hp["momentum"]),
            fresh=torch.where(first | (hp["momentum"] == 0), 1.0, 1 - hp["dampening"]))
        for name, p in params.items():
            g = grads[name].addcmul_(per("decay", p), p)
            buffer = state[f"momentum/{name}"]
            buffer.mul_(per("momentum", p)).addcmul_(per("fresh", p), g)
            if self.nesterov:
                direction = g.addcmul_(per("given_momentum", p), buffer)
            else:
                direction = buffer  # the gradient itself, for a member without momentum
            p.addcmul_(per("lr", p), direction)
        state["step"].add_(1)

    def plain(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               dampening=self.dampening, weight_decay=self.weight_decay,
                               nesterov=self.nesterov)


@dataclass(frozen=True)
class Adam(StackedOptimizer):
    """torch.optim.Adam (without amsgrad); the betas are the hparams beta1 and beta2."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    hparams = ("lr", "beta1", "beta2", "eps", "weight_decay")
    slots = ("exp_avg", "exp_avg_sq")
    decoupled: ClassVar[bool] = False  # AdamW: decay the weights, not the gradient

    def update(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
               state: Mapping[str, Tensor], hp: Mapping[str, Tensor]) -> None:
        step = state["step"] + 1
        beta1, beta2 = hp["beta1"], hp["beta2"]
        # in float64, as torch.optim computes them in Python floats (AdamW's weight
        # factor too)
        decay = ({"shrink": 1 - hp["lr"] * hp["weight_decay"]} if self.decoupled
                 else {"decay": hp["weight_decay"]})
        per = _PerMember(step_size=-hp["lr"] / (1 - beta1 ** step),
                         correction2_sqrt=(1 - beta2 ** step).sqrt(), keep1=1 - beta1,
                         beta2=beta2, keep2=1 - beta2, eps=hp["eps"], **decay)
        for name, p in params.items():
            g = grads[name]
            if self.decoupled:
                p.mul_(per("shrink", p))
            else:
                g.addcmul_(per("decay", p), p)
            exp_avg, exp_avg_sq = state[f"exp_avg/{name}"], state[f"exp_avg_sq/{name}"]
            exp_avg.lerp_(g, per("keep1", p))
            exp_avg_sq.mul_(per("beta2", p)).addcmul_(g, g * per("keep2", p))
            denom = exp_avg_sq.sqrt().div_(per("correction2_sqrt", p))
            denom.add_(per("eps", p))
            p.addcmul_(per("step_size", p), exp_avg.div(denom))
        state["step"].copy_(step)

    def plain(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        kind = torch.optim.AdamW if self.decoupled else torch.optim.Adam
        return kind(params, lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps,
                    weight_decay=self.weight_decay)


@dataclass(frozen=True)
class AdamW(Adam):
    """torch.optim.AdamW: Adam with weight decay applied to the weights (decoupled)."""

    weight_decay: float = 1e-2
    decoupled: ClassVar[bool] = True


OPTIMIZERS: dict[str, type[StackedOptimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
