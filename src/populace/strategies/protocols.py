"""The shapes of PBT's decisions: what the worker calls, and what a strategy may do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from populace.snapshot import Snapshot
from populace.space import Space


class Exploit(Protocol):
    """An exploit strategy: the donor `member_id` copies, or None to keep its own state.

    It must be pure: read `snapshot` (each member's id, step, latest score,
    hparams; `snapshot.ranking()` orders them best first, whatever the mode),
    draw randomness only from `rng`, and return another member's id. It runs
    inside the store's report transaction, so it must be quick and never
    touch files, processes or the database. An object with an int attribute
    `window` also gets each member's last `window` scores in `snapshot.recent`.
    """

    def __call__(
        self, snapshot: Snapshot, member_id: int, rng: np.random.Generator
    ) -> int | None: ...


class Explore(Protocol):
    """An explore strategy: new hparams from the (just copied) donor's hparams.

    It must be pure: return a new dict with every hparam of `space`, each
    valid for its dimension (`space.validate` passes), drawing randomness
    only from `rng`, and never mutate `hparams`. To honour per-hparam rules
    (`Float(..., explore=Noise(0.1))`), subclass `Rule` and write `mutate`.
    """

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]: ...
