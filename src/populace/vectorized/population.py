"""A whole population's training state as stacked tensors, one row per member, trained
in one call a step.

The state of row i is member i's parameters, buffers and optimizer state (the slices
at i of the stacked tensors), its stream key (its data order) and its step. An
exploit's copy is one gather over every stacked tensor (`take`), so the member's slice
equals the donor's bit for bit; explore writes its hparams (`hparams.set`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from populace.errors import ConfigError
from populace.space import Space
from populace.vectorized.data import Data
from populace.vectorized.functional import Functional, build_member, stack
from populace.vectorized.hparams import HparamTable, check_read, check_space
from populace.vectorized.optim import StackedOptimizer

if TYPE_CHECKING:
    from populace.vectorized.trainable import VectorizedTrainable

Tensors = dict[str, Tensor]
PARTS = ("param", "buffer", "optimizer")  # the stacked tensors, by what they hold


class Population:
    """Every member's training state, stacked; members are rows 0 .. len - 1."""

    def __init__(self, trainable: VectorizedTrainable, space: Space, seeds: Sequence[int],
                 device: torch.device | str = "cpu"):
        check_space(space)
        self.trainable, self.space = trainable, space
        self.device = torch.device(device)
        self.optimizer = trainable.optimizer
        if not isinstance(self.optimizer, StackedOptimizer):
            raise ConfigError(f"{type(trainable).__name__}.optimizer must be a stacked "
                              "optimizer (populace.vectorized.SGD, Adam or AdamW), got "
                              f"{self.optimizer!r}")
        modules = [build_member(trainable, seed) for seed in seeds]
        self.base, params, buffers = stack(modules, self.device)
        self.parts: dict[str, Tensors] = {"param": params, "buffer": buffers,
                                          "optimizer": self.optimizer.init(params)}
        self.keys = np.array(seeds, dtype=np.int64)  # each member's data stream
        self.steps = np.zeros(len(seeds), dtype=np.int64)
        self.hparams = HparamTable(space, self.optimizer, len(seeds), self.device)
        data = trainable.data()
        if not isinstance(data, Data):
            raise ConfigError(f"{type(trainable).__name__}.data must return a data source "
                              "(populace.vectorized.Shuffled, or an object with batches(keys, "
                              f"steps) and to(device)), got {type(data).__name__}")
        self.data = data.to(self.device)
        self.functional = Functional(trainable, self.base, trainable.eval_chunk, self.device)
        # the last step's gradients and batch, held until the next step has made its own:
        # freed at once, they leave the heap's top free, glibc gives it back to the system,
        # and the next step faults it all in again (128 digits members: 2,800 to 3,900
        # page faults a step against 900 to 1,450 held; the time saved was 16% in one pair
        # of runs and within noise in later ones, benchmarks/RESULTS.md)
        self._spent: tuple[object, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def check(self, hparams: Mapping[str, object]) -> None:
        """Refuse, before training, a model vmap cannot run and hparams nothing reads: one
        trial step of two members with `hparams`, on a copy of their state."""
        rows = np.arange(min(2, len(self)))
        index = self._index(rows)
        table = HparamTable(self.space, self.optimizer, len(rows), self.device)
        table.set(list(range(len(rows))), [hparams] * len(rows))
        params, buffers = self._rows("param", index), self._rows("buffer", index)
        batch = self.data.batches(self.keys[rows], self.steps[rows])
        self.functional.trial(params, buffers, table.model(), batch)
        check_read(self.space, self.optimizer, self.functional.read)

    def _index(self, rows: np.ndarray) -> Tensor:
        return torch.as_tensor(rows, dtype=torch.int64, device=self.device)

    def _rows(self, part: str, index: Tensor | None) -> Tensors:
        tensors = self.parts[part]
        return dict(tensors) if index is None else {k: v[index] for k, v in tensors.items()}

    def train(self, rows: np.ndarray | None = None) -> None:
        """One training step of the members at `rows` (None: all), each on its own batch."""
        whole = rows is None or len(rows) == len(self)
        chosen = np.arange(len(self)) if rows is None else rows
        index = None if whole else self._index(chosen)
        params, buffers = self._rows("param", index), self._rows("buffer", index)
        state = self._rows("optimizer", index)
        batch = self.data.batches(self.keys[chosen], self.steps[chosen])
        grads, _ = self.functional.grads(params, buffers, self.hparams.model(index), batch)
        self.optimizer.update(params, grads, state, self.hparams.optimizer(index))
        self._spent = (grads, batch)  # see __init__: freed after the next step's are made
        if index is not None:  # the members' copies go back; the others' stay as they were
            for part, new in (("param", params), ("buffer", buffers), ("optimizer", state)):
                for k, v in new.items():
                    self.parts[part][k][index] = v
        self.steps[chosen] += 1

    def evaluate(self, rows: np.ndarray) -> list[dict[str, float]]:
        """The metrics of the members at `rows`, one dict each."""
        # every member, in any order: evaluated in the population's order, with no copy
        # of their state first (each member's metrics are its own, wherever it stands)
        every = self._every(np.sort(rows))
        index = None if every else self._index(rows)
        metrics = self.functional.metrics(self._rows("param", index),
                                          self._rows("buffer", index),
                                          self.hparams.model(index))
        columns = {}
        for name, values in metrics.items():
            if values.shape != (len(rows),):
                raise ConfigError(f"metric {name!r} must be one number per member, got a "
                                  f"tensor of shape {tuple(values.shape[1:])} per member")
            columns[name] = values.double().cpu().numpy()
        at = rows if every else range(len(rows))
        return [{name: float(column[i]) for name, column in columns.items()} for i in at]

    def take(self, sources: Mapping[int, int]) -> None:
        """Row `dst` becomes a copy of row `src` for each (dst, src) of `sources`: its
        parameters, buffers, optimizer state, key and step, bit for bit. Every copy reads
        the state as it was before any of them."""
        if not sources:
            return
        order = np.arange(len(self))
        order[list(sources)] = list(sources.values())
        index = self._index(order)
        for part in PARTS:
            self.parts[part] = {k: v[index] for k, v in self.parts[part].items()}
        self.keys, self.steps = self.keys[order], self.steps[order]

    def tensors(self, rows: np.ndarray) -> Tensors:
        """The stacked state of the members at `rows`, on the CPU, by "part/name".

        Every row in order, on the CPU, gives the population's own tensors where each is
        the whole of its memory (torch.save then writes what it writes of a copy): a
        checkpoint of the whole population copies nothing first, and its caller writes
        them before the population trains on.
        """
        if self.device.type == "cpu" and self._every(rows):
            own = {f"{part}/{k}": v for part in PARTS for k, v in self.parts[part].items()}
            if _whole(own.values()):
                return own
        index = self._index(rows)
        return {f"{part}/{k}": v[index].cpu() for part in PARTS
                for k, v in self.parts[part].items()}

    def _every(self, rows: np.ndarray) -> bool:
        """Whether `rows` are every row of the population, in order."""
        return len(rows) == len(self) and bool(np.array_equal(rows, np.arange(len(self))))

    def put(self, rows: Sequence[int], tensors: Mapping[str, Tensor]) -> None:
        """Rows `rows` take the state `tensors` holds (as `tensors` gives it), one per row."""
        ours = {f"{part}/{k}" for part in PARTS for k in self.parts[part]}
        if set(tensors) != ours:
            odd = sorted(set(tensors) ^ ours)
            raise ConfigError(f"the checkpoint does not hold this trainable's state: "
                              f"{', '.join(odd[:4])} are in one but not the other (another "
                              "model or optimizer?)")
        index = self._index(np.asarray(rows))
        for name, value in tensors.items():
            part, key = name.split("/", 1)
            self.parts[part][key][index] = value.to(self.device)

    def fresh(self, rows: Sequence[int], seeds: Sequence[int]) -> None:
        """Rows `rows` start again from scratch, from `seeds` (a member sent back past its
        last intact checkpoint)."""
        if not rows:
            return
        _, params, buffers = stack([build_member(self.trainable, s) for s in seeds],
                                   self.device)
        state = {"param": params, "buffer": buffers, "optimizer": self.optimizer.init(params)}
        self.put(rows, {f"{part}/{k}": v for part, t in state.items() for k, v in t.items()})
        self.keys[list(rows)] = seeds
        self.steps[list(rows)] = 0


def _whole(tensors: Iterable[Tensor]) -> bool:
    """Whether each tensor is contiguous, alone in its memory and all of it, and needs no
    gradient: saved as it is, it writes the bytes its copy would."""
    seen = set()
    for v in tensors:
        storage = v.untyped_storage()
        if (v.requires_grad or not v.is_contiguous() or v.storage_offset() != 0
                or storage.nbytes() != v.numel() * v.element_size() or v.numel() == 0
                or storage.data_ptr() in seen):
            return False
        seen.add(storage.data_ptr())
    return True
