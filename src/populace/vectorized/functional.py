"""The population as one functional model: every member's parameters and buffers stacked
along a leading axis (torch.func.stack_module_state), and one forward and gradient for all
members at once (vmap over functional_call and grad).

Buffers are stacked too, so a layer that updates one in place in training mode (batch
norm's running statistics) updates each member's own slice. A model vmap cannot run
is refused before training, naming the layer: a trial step on two members runs under
hooks that note which layer was running when it failed (an in-place write of a
member's value into a tensor made for all, a branch on a tensor's value, `.item()`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from populace.errors import ConfigError
from populace.vectorized import layout
from populace.vectorized.context import Reads, member_hparams
from populace.vectorized.data import Batch
from populace.vectorized.hparams import LOCAL_INSTEAD

if TYPE_CHECKING:
    from populace.vectorized.trainable import VectorizedTrainable

Tensors = dict[str, Tensor]

LIMITS = "https://pytorch.org/docs/stable/func.ux_limitations.html"
# members a CPU evaluates in one vmapped call when the trainable names no eval_chunk: a
# large population's activations, all at once, outgrow the caches (the digits MLP's
# evaluation of 128 to 512 members took about half as long in chunks of 64, its metrics
# the same to the bit; a GPU takes them all at once)
CPU_EVAL_CHUNK = 64


def build_member(trainable: VectorizedTrainable, seed: int) -> nn.Module:
    """The member's fresh model: `trainable.model(seed)` with torch seeded by `seed` (the
    caller's random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = trainable.model(seed)
    if not isinstance(module, nn.Module):
        raise TypeError(f"{type(trainable).__name__}.model must return an nn.Module, got "
                        f"{type(module).__name__}")
    return module


def stack(modules: Sequence[nn.Module], device: torch.device) -> tuple[nn.Module, Tensors,
                                                                         Tensors]:
    """The members' parameters and buffers stacked (leading axis: member), on `device`, and
    a skeleton of the model on the meta device to call them through."""
    params, buffers = stack_module_state(list(modules))
    base = copy.deepcopy(modules[0]).to("meta")
    return (base, {k: v.detach().to(device) for k, v in params.items()},
            {k: v.detach().to(device) for k, v in buffers.items()})


class Functional:
    """The trainable's loss and metrics, run for every member in one vmapped call.

    `read` collects the hparams the model and the loss read (`hparams.check_read`).
    """

    def __init__(self, trainable: VectorizedTrainable, base: nn.Module,
                 eval_chunk: int | None = None, device: torch.device | None = None):
        self.trainable, self.base = trainable, base.train()  # every layer, whatever it was
        # the run's device, where `model(x)` in the metrics moves its inputs (a metrics hook
        # holds its validation tensors where it made them, the CPU)
        self.device = device
        self.read: set[str] = set()
        # whether the metrics draw random numbers, once a trial (or a run's report, see
        # populace.vectorized.run) has seen them (None: not known): a chunk's draws are
        # not those of the whole population's call
        self.metrics_draw: bool | None = None
        # dropout masks differ between members; everything else is the same per member
        self._grads = vmap(grad_and_value(self._loss), randomness="different")
        self.eval_chunk = eval_chunk

    def _call(self, params: Tensors, buffers: Tensors, inputs: Sequence[Tensor]) -> Any:
        return functional_call(self.base, (params, buffers), tuple(inputs))

    def _loss(self, params: Tensors, buffers: Tensors, hparams: Mapping[str, Tensor],
              batch: Batch) -> Tensor:
        hp = Reads(hparams, self.read)
        with member_hparams(hp):
            output = self._call(params, buffers, self.trainable.inputs(batch))
        loss = self.trainable.loss(output, batch, hp)
        if loss.dim() != 0:  # the shape one member sees, under vmap
            raise ConfigError(f"the trainable's loss must be one number per member, got a "
                              f"tensor of shape {tuple(loss.shape)} per member")
        return loss

    def _member_metrics(self, params: Tensors, buffers: Tensors,
                        hparams: Mapping[str, Tensor]) -> dict[str, Tensor]:
        def model(*inputs: Tensor) -> Any:
            if self.device is not None:
                inputs = tuple(x.to(self.device) for x in inputs)
            return self._call(params, buffers, inputs)

        with member_hparams(hparams):
            metrics = self.trainable.metrics(model)
        return {name: torch.as_tensor(value) for name, value in metrics.items()}

    def _mode(self, training: bool) -> None:
        """The model in training or eval mode: set on every layer when the mode changes,
        not at every step (a walk over every layer, 30 us of a 2 ms step at 8 digits
        members)."""
        if self.base.training is not training:
            self.base.train(training)

    def grads(self, params: Tensors, buffers: Tensors, hparams: Mapping[str, Tensor],
              batch: Batch) -> tuple[Tensors, Tensor]:
        """Every member's gradient and loss on its own batch.

        Tried and undone: one backward pass of the losses summed, outside vmap, gives
        the same gradients and skips torch.func.grad's import of torch's compiler (a
        second of a run's start), but its steps were 8 to 10% slower at 512 digits
        members (its weight gradients come out transposed; benchmarks/RESULTS.md).
        """
        self._mode(training=True)
        grads, loss = self._grads(params, buffers, hparams, batch)
        return grads, loss

    def metrics(self, params: Tensors, buffers: Tensors,
                hparams: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every member's metrics (one value per member each), the model in eval mode."""
        self._mode(training=False)
        with torch.no_grad():
            metrics: dict[str, Tensor] = vmap(
                self._member_metrics, randomness="different", chunk_size=self.chunk()
            )(params, buffers, hparams)
        return metrics

    def chunk(self) -> int | None:
        """The members evaluated in one vmapped call (None: all): the trainable's
        `eval_chunk`; else on the CPU `CPU_EVAL_CHUNK`, once a trial found that the
        metrics draw no random number."""
        if self.eval_chunk is not None or self.device is None or self.device.type != "cpu":
            return self.eval_chunk
        return CPU_EVAL_CHUNK if self.metrics_draw is False else None

    def trial(self, params: Tensors, buffers: Tensors, hparams: Mapping[str, Tensor],
              batch: Batch) -> None:
        """A gradient and the metrics of the members given (two suffice), refused with the
        layer that could not run under vmap and what to do instead."""
        for what, run in (("loss", lambda: self.grads(params, buffers, hparams, batch)),
                          ("metrics", lambda: self._trial_metrics(params, buffers, hparams))):
            with _running_layer(self.base) as running:
                try:
                    run()
                except ConfigError:
                    raise
                except KeyError as e:  # an hparam the space lacks (`hparam`, the loss's)
                    raise ConfigError(f"{_where(self.base, running, what)} reads "
                                      f"{e.args[0] if e.args else e}") from e
                except Exception as e:
                    raise ConfigError(_unvmappable(self.base, running, what, e)) from e

    def _trial_metrics(self, params: Tensors, buffers: Tensors,
                       hparams: Mapping[str, Tensor]) -> None:
        """The metrics, noting whether they draw a random number."""
        before = layout.rng_state()
        self.metrics(params, buffers, hparams)
        self.metrics_draw = not layout.same_rng(before, layout.rng_state())


@contextmanager
def _running_layer(base: nn.Module) -> Iterator[list[str]]:
    """The names of the layers running now, outermost first, kept by forward hooks."""
    running: list[str] = []

    def enter(name: str) -> Callable[..., None]:
        return lambda *_: running.append(name)

    def leave(*_: Any) -> None:  # a hook that returned something would replace the output
        running.pop()

    handles = []
    for name, layer in base.named_modules():
        handles.append(layer.register_forward_pre_hook(enter(name)))
        handles.append(layer.register_forward_hook(leave))
    try:
        yield running
    finally:
        for handle in handles:
            handle.remove()


def _unvmappable(base: nn.Module, running: list[str], what: str, error: Exception) -> str:
    """Why the model (or the trainable's loss or metrics) cannot train vmapped, and what
    to do instead."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = str(error).lower()
    if any(w in text for w in ("inplace", "in-place", "in place", "match the broadcast")):
        advice = ("an in-place operation writes a value that differs per member into a tensor "
                  "all members share (a buffer, or a tensor made in forward): write it out "
                  "of place (y = x + z, not x += z or x.add_(z))")
    elif any(w in text for w in ("item()", "data-dependent", "boolean value", "data dependent")):
        advice = ("it branches on a tensor's value (if or while on a tensor, .item(), "
                  "int(tensor)), and the value differs per member: compute both branches and "
                  "choose with torch.where, and return tensors, not Python numbers")
    else:
        advice = f"see what vmap cannot run: {LIMITS}"
    return (f"a vectorized run cannot train this model: {_where(base, running, what)} failed "
            f"under vmap ({reason}); {advice}; {LOCAL_INSTEAD}")


def _where(base: nn.Module, running: list[str], what: str) -> str:
    """The layer that was running (innermost), else the trainable's hook."""
    if not running:
        return f"the trainable's {what}"
    return f"layer {running[-1] or 'the model'} ({type(base.get_submodule(running[-1])).__name__})"

