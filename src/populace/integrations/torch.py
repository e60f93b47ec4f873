"""PyTorch members: one-file checkpoints and hparams that survive an exploit.

After an exploit populace builds the member, loads the donor's checkpoint
and then applies the member's explored hparams. Loading an optimizer's state
dict puts the donor's lr (momentum, weight decay...) back into its param
groups, and an LR scheduler's state brings back the donor's base lr: unless
`apply` writes the new values over both, the explore step silently never
takes effect (a recurring bug in Ray Tune's PBT). `apply_hparams` does that
write, and refuses hparams it cannot place, so none is dropped silently.

    class Net(TorchTrainable):
        state = ("model", "optimizer")
        modules = {"dropout": ("model", torch.nn.Dropout, "p")}

        def build(self, hparams, seed):
            torch.manual_seed(seed)
            self.model = ...
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
            self.apply(hparams)
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR

from populace.errors import ConfigError
from populace.trainable import Trainable

# param-group entries that are bookkeeping, not hparams
NOT_HPARAMS = ("params", "initial_lr")


class Stateful(Protocol):
    """Anything torch can checkpoint: modules, optimizers, LR schedulers, GradScalers."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any], /) -> Any: ...


def save_state(path: str | os.PathLike[str], /, **objects: Stateful) -> None:
    """Write each named object's state dict and the RNG states to one file at `path`.

    Everything is stored as tensors and plain Python values, so the file loads
    with `torch.load(path, weights_only=True)`, which runs no pickled code.
    """
    for name, obj in objects.items():
        if not callable(getattr(obj, "state_dict", None)):
            raise TypeError(f"{name}: must have state_dict() (a module, optimizer, LR "
                            f"scheduler or GradScaler), got {type(obj).__name__}")
    torch.save({"objects": {name: obj.state_dict() for name, obj in objects.items()},
                "rng": _rng_state()}, path)


class PickledCheckpoint(pickle.UnpicklingError):
    """A checkpoint holds pickled Python objects, and loading them was not allowed."""


def load_state(path: str | os.PathLike[str], /, *, allow_pickle: bool = False,
               **objects: Stateful) -> None:
    """Load the state `save_state` wrote into the same named objects, and restore the RNGs.

    The file is read with `weights_only=True`: tensors and plain values only. A
    file holding other pickled Python objects (an instance of your own class in
    a state dict, say) could run code while it loads, and is refused with
    `PickledCheckpoint` unless `allow_pickle=True`; allow it only for
    checkpoints you trust.
    """
    saved = _read(path, allow_pickle)
    names, given = sorted(saved["objects"]), sorted(objects)
    for name in names:
        if name not in objects:
            raise ValueError(f"{name}: checkpoint {os.fspath(path)!r} holds it but it was not "
                             f"given; given: {given} (load_objects loads some of them)")
    _load(path, saved, objects)
    _set_rng_state(saved["rng"])


def load_objects(path: str | os.PathLike[str], /, *, allow_pickle: bool = False,
                 **objects: Stateful) -> None:
    """Load some of the objects a checkpoint holds, by name, and nothing else: the best
    member's model for use after the run, say, without its optimizer. The caller's
    random state is left as it is (`load_state` restores the member's)."""
    _load(path, _read(path, allow_pickle), objects)


def _read(path: str | os.PathLike[str], allow_pickle: bool) -> dict[str, Any]:
    # to CPU first: load_state_dict copies each tensor onto its object's own device
    try:
        saved: dict[str, Any] = torch.load(path, map_location="cpu",
                                           weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        if allow_pickle or "weights only" not in str(e).lower():
            raise  # a damaged file, not a refused object
        raise PickledCheckpoint(
            f"checkpoint {os.fspath(path)!r} holds pickled Python objects ({_refused(e)}); "
            "loading them could run arbitrary code, so populace refuses them by default. "
            "If you trust this checkpoint, allow them: load_state(..., allow_pickle=True), "
            "`allow_pickle = True` on a TorchTrainable, or "
            "member.register(..., allow_pickle=True)"
        ) from None
    return saved


def _load(path: str | os.PathLike[str], saved: dict[str, Any],
          objects: Mapping[str, Stateful]) -> None:
    names = sorted(saved["objects"])
    for name in sorted(objects):
        if name not in saved["objects"]:
            raise ValueError(f"{name}: not in checkpoint {os.fspath(path)!r}, which holds {names}")
    for name, obj in objects.items():
        obj.load_state_dict(saved["objects"][name])


def reseed(seed: int) -> None:
    """Seed torch (CPU and every GPU), NumPy's global generator and Python's `random`:
    a copy's own random stream after an exploit, in place of the donor's it loaded."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _refused(error: Exception) -> str:
    """What torch's weights-only unpickler refused, in one line."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            return reason.split(". ")[0].rstrip(".")
    return "objects other than tensors and plain values"


def _rng_state() -> dict[str, Any]:
    legacy = np.random.get_state(legacy=True)
    if not isinstance(legacy, tuple):  # a dict: numpy's global generator is not an MT19937
        raise TypeError("numpy's global random generator is not an MT19937: no state to save")
    kind, keys, pos, has_gauss, gauss = legacy
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "random": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    # only where CUDA is in use already: asking would start a CUDA context in a CPU job
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    r = state["random"]
    random.setstate((r["version"], tuple(r["internal"].tolist()), r["gauss_next"]))
    # a checkpoint written on more GPUs than this machine has restores those it has
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)


def apply_hparams(
    hparams: Mapping[str, Any],
    *,
    optimizers: Iterable[Optimizer] = (),
    schedulers: Iterable[LRScheduler] = (),
    modules: Mapping[str, tuple[nn.Module, type[nn.Module], str]] | None = None,
    ignore: Iterable[str] = (),
) -> None:
    """Put `hparams` in force on live optimizers and modules, over whatever a checkpoint held.

    Each hparam goes to exactly one kind of target:
    - `modules={"dropout": (model, nn.Dropout, "p")}` sets attribute `p` of every
      `nn.Dropout` inside `model`;
    - any other name that is a key of the optimizers' param groups (lr, momentum,
      weight_decay, betas, eps...) is set in every param group that has it;
    - names in `ignore` are left to the caller (e.g. batch_size, read by its data loader).
    Any other name raises ConfigError, so no hparam is dropped silently.

    With an LR scheduler on an optimizer, `lr` is the schedule's base lr: the member
    keeps the decay its schedule has reached, scaled to the new base. Pass that
    scheduler in `schedulers`; an optimizer whose groups show one (they hold
    'initial_lr') without it is refused, as its next step would undo the new lr.
    """
    optimizers, modules, skip = list(optimizers), dict(modules or {}), set(ignore)
    # ReduceLROnPlateau has no base lr: it scales the current lr, which the hparam replaces
    scheduler_of = {id(s.optimizer): s for s in schedulers if hasattr(s, "base_lrs")}
    for name, value in hparams.items():
        if name in skip:
            continue
        if name in modules:
            _set_modules(name, value, *modules[name])
            continue
        groups = [(o, g) for o in optimizers for g in o.param_groups
                  if name in g and name not in NOT_HPARAMS]
        if not groups:
            keys = sorted({k for o in optimizers for g in o.param_groups for k in g}
                          - set(NOT_HPARAMS))
            raise ConfigError(
                f"hparam {name!r} has no target: it is not a param-group key of the optimizers "
                f"({', '.join(keys) or 'none given'}) nor in modules "
                f"({', '.join(modules) or 'none given'}); list it in ignore if your apply uses it"
            )
        if name == "lr":
            for optimizer in {id(o): o for o, _ in groups}.values():
                _set_lr(optimizer, value, scheduler_of.get(id(optimizer)))
            continue
        for _, group in groups:
            _set_value(group, name, value)


def _set_modules(name: str, value: Any, root: nn.Module, kind: type[nn.Module], attr: str) -> None:
    targets = [m for m in root.modules() if isinstance(m, kind)]
    if not targets:
        raise ConfigError(f"hparam {name!r}: {type(root).__name__} has no {kind.__name__} "
                          f"submodule to set {attr!r} on")
    for module in targets:
        if not hasattr(module, attr):
            raise ConfigError(f"hparam {name!r}: {kind.__name__} has no attribute {attr!r}")
        setattr(module, attr, value)


def _set_value(group: dict[str, Any], name: str, value: Any) -> None:
    current = group[name]
    if isinstance(current, torch.Tensor):  # a tensor lr (capturable, compiled steps) stays one
        current.fill_(value)
    elif isinstance(current, tuple):  # betas: JSON gives lists, optimizers want tuples
        if not isinstance(value, (list, tuple)) or len(value) != len(current):
            raise ConfigError(f"hparam {name!r} must be a list of {len(current)} numbers "
                              f"like {list(current)}, got {value!r}")
        group[name] = tuple(value)
    else:
        group[name] = value


def _set_lr(optimizer: Optimizer, value: float, scheduler: LRScheduler | None) -> None:
    if scheduler is None:
        if any("initial_lr" in g for g in optimizer.param_groups):
            raise ConfigError(
                f"hparam 'lr': {type(optimizer).__name__} is driven by an LR scheduler (its "
                "param groups hold 'initial_lr'); pass that scheduler in schedulers so the "
                "new lr is not undone at its next step"
            )
        for group in optimizer.param_groups:
            _set_value(group, "lr", value)
        return
    if isinstance(scheduler, (OneCycleLR, CyclicLR)):
        raise ConfigError(
            f"hparam 'lr': {type(scheduler).__name__} sets lr from its own bounds and would "
            "undo it; set those bounds in your own apply and list 'lr' in ignore"
        )
    for i, group in enumerate(optimizer.param_groups):
        base = float(scheduler.base_lrs[i])
        # the hparam is the base lr; the schedule's progress (lr / base) carries over
        _set_value(group, "lr", value * float(group["lr"]) / base if base else value)
        group["initial_lr"] = value
        scheduler.base_lrs[i] = value


class TorchTrainable(Trainable):
    """A Trainable whose save, load and apply follow from the torch objects it names.

    Write `build` (set the attributes named in `state`, then `self.apply(hparams)`
    so build and apply cannot disagree), `step` and `evaluate`. Optimizers and LR
    schedulers among `state` receive the hparams as `apply_hparams` describes;
    `modules` maps an hparam to (attribute of self, module type, module attribute).
    """

    state: ClassVar[tuple[str, ...]] = ("model", "optimizer")
    modules: ClassVar[Mapping[str, tuple[str, type[nn.Module], str]]] = {}
    ignore: ClassVar[tuple[str, ...]] = ()
    # intra-op threads per process; None keeps torch's default (one per core)
    threads: ClassVar[int | None] = 1
    # load checkpoints holding pickled Python objects (they can run code): trusted ones only
    allow_pickle: ClassVar[bool] = False

    def __init__(self) -> None:
        # workers are processes sharing the cores: torch's default of one thread per
        # core in each oversubscribes the CPU (measured: two workers on two cores,
        # the digits MLP, 10 to 40 times slower per epoch than with one thread each)
        if self.threads is not None:
            torch.set_num_threads(self.threads)

    def save(self, path: Path) -> None:
        """Write the objects named in `state` and the RNG states to `path`."""
        save_state(path, **self._objects())

    def load(self, path: Path) -> None:
        """Restore the objects named in `state` and the RNG states from `path`."""
        load_state(path, allow_pickle=self.allow_pickle, **self._objects())

    def reseed(self, seed: int) -> None:
        """Reseed torch (CPU and every GPU), NumPy and Python's `random` (see `reseed`)."""
        reseed(seed)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        """Set `hparams` on the optimizers, schedulers and `modules` (see `apply_hparams`)."""
        objects = self._objects().values()
        apply_hparams(
            hparams,
            optimizers=[o for o in objects if isinstance(o, Optimizer)],
            schedulers=[o for o in objects if isinstance(o, LRScheduler)],
            modules={name: (self._attribute(attr), kind, field)
                     for name, (attr, kind, field) in self.modules.items()},
            ignore=self.ignore,
        )

    def _objects(self) -> dict[str, Stateful]:
        return {name: self._attribute(name) for name in self.state}

    def _attribute(self, name: str) -> Any:
        if not hasattr(self, name):
            raise AttributeError(f"{type(self).__name__}.{name} is not set; build must set "
                                 f"every attribute named in state and modules")
        return getattr(self, name)
