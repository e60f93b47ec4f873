"""Checkpoint files of a vectorized run: one file for the members that reach a ready point
together, which each member's checkpoint row points into.

The run writes the file through the run's checkpoint storage like any checkpoint
(hashed, renamed to its sha256, checked on every load), then reports each member with
that key: the store's rows of one ready point share one file, and the store deletes the
file once no row names it. A row's `member` says whose slice it is, so an exploit that
points a member at its donor's row reads the donor's slice. The file loads with
`torch.load(weights_only=True)`: tensors and plain values only.

    {"format": "populace.vectorized/1",
     "members": [k] int64,                   member ids, the file's rows
     "state": {"param/<name>": [k, ...], "buffer/<name>": [k, ...],
               "optimizer/step": [k], "optimizer/<slot>/<name>": [k, ...]},
     "keys": [k] int64, "steps": [k] int64,   each member's data stream and step
     "rng": torch's random state (dropout masks), the CPU's and, in use, the GPUs'}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from populace.checkpoints import open_storage
from populace.results import RunResult

FORMAT = "populace.vectorized/1"
Tensors = dict[str, Tensor]


def rng_state() -> dict[str, Any]:
    """Torch's random state as a file holds it: the CPU's and, in use, the GPUs'."""
    rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def same_rng(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two `rng_state`s are one state (no random number drawn in between)."""
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(torch.equal(x, y) for x, y in zip(a[k], b[k], strict=True))
        if isinstance(a[k], list) else torch.equal(a[k], b[k]) for k in a)


def save(path: str | os.PathLike[str], members: Sequence[int], tensors: Tensors,
         keys: np.ndarray, steps: np.ndarray, rng: dict[str, Any] | None = None) -> None:
    """Write the state of `members` (row i of each tensor is members[i]'s) to `path`, with
    torch's random state `rng` (None: as it is now)."""
    rng = rng_state() if rng is None else rng
    torch.save({"format": FORMAT, "members": torch.tensor(list(members), dtype=torch.int64),
                "state": tensors, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "steps": torch.from_numpy(np.asarray(steps, dtype=np.int64)), "rng": rng}, path)


@dataclass(frozen=True)
class Saved:
    """A vectorized checkpoint file as read back."""

    members: list[int]
    state: Tensors
    keys: np.ndarray
    steps: np.ndarray
    rng: dict[str, Any]

    def row(self, member: int | None) -> int:
        """The file's row of `member` (None: the file's only member)."""
        if member is None and len(self.members) == 1:
            return 0
        if member not in self.members:
            raise KeyError(f"member {member} is not in this checkpoint, which holds members "
                           f"{self.members[:8]}{'...' if len(self.members) > 8 else ''}")
        return self.members.index(member)

    def restore_rng(self) -> None:
        """Put torch's random state back as the file holds it (the GPUs there are here)."""
        torch.set_rng_state(self.rng["cpu"])
        if "cuda" in self.rng and torch.cuda.is_available():
            for device, state in enumerate(self.rng["cuda"][:torch.cuda.device_count()]):
                torch.cuda.set_rng_state(state, device)


def read(path: str | os.PathLike[str]) -> Saved:
    """A file `save` wrote (ValueError for any other)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a checkpoint of a vectorized run "
                         f"(format {FORMAT})")
    return Saved(saved["members"].tolist(), saved["state"], saved["keys"].numpy(),
                 saved["steps"].numpy(), saved["rng"])


def load_member(path: str | os.PathLike[str], model: nn.Module,
                member: int | None = None) -> nn.Module:
    """Load `member`'s weights and buffers from a vectorized checkpoint into `model` (a plain
    module, as the trainable's `model` builds it), and return it."""
    saved = read(path)
    row = saved.row(member)
    model.load_state_dict({name.split("/", 1)[1]: value[row]
                           for name, value in saved.state.items()
                           if name.startswith(("param/", "buffer/"))})
    return model


def load_best(result: RunResult, model: nn.Module) -> nn.Module:
    """The run's best member as a plain module: its checkpoint fetched and hash-checked from
    the run's storage, its slice loaded into `model`."""
    best = result.best.checkpoint
    if best is None or result.checkpoint is None:
        raise ValueError(f"member {result.best.id} has no checkpoint yet")
    root = str(result.checkpoint)[:-len(best.key) - 1]
    path = open_storage(root).fetch(best.key, best.sha256)
    return load_member(path, model, best.member)
