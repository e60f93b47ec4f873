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
    draw randomness only from `rng`, and return another member's id (or
    `member_id` itself: keep its weights, explore its own hparams). It runs
    inside the store's report transaction, so it must be quick and never
    touch files, processes or the database.

    Optionally, it declares `window`, an int attribute (see `Windowed`): then
    each member's last `window` scores come in `snapshot.recent`.
    """

    def __call__(
        self, snapshot: Snapshot, member_id: int, rng: np.random.Generator
    ) -> int | None: ...


class Windowed(Exploit, Protocol):
    """An exploit strategy that reads each member's recent scores, as TTest does.

    `window` (an int from 0 to 1000, `MAX_WINDOW`; 0: none) is how many of each member's
    latest scores the store keeps and `snapshot.recent` holds. It is the
    optional part of `Exploit`, read only by `window_of`, which checks it: a
    strategy without it gets no recent scores, and the store keeps none.
    """

    window: int


class Curved(Exploit, Protocol):
    """An exploit strategy that reads each member's curve and FIRE's columns, as `Fire`
    does.

    `curve` (an int from 8 to 1000, `MAX_CURVE`) is how many [step, score] points of each
    member's curve the store keeps, and `points` how many a segment adds (1 for now: more
    needs every executor to report scores within a segment). `curve_of` reads and checks
    them; the run's snapshot then carries `groups`, `changes`, `curves`, `evaluated` and
    `evaluations`, and a strategy without them gets none of those.
    """

    curve: int
    points: int


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


class Modelled(Explore, Protocol):
    """An explore strategy that learns from the population's recent segments, as PB2 does.

    `segments` (an int from 1 to 100, `MAX_SEGMENTS`) is how many of each member's latest
    segments the store keeps and `snapshot.segments` holds; `segments_of` reads and
    checks it. The worker then calls it with keywords too: the whole `snapshot`, the
    `member` that copies and its `donor` (whose hparams `hparams` are). Called without
    them (no population known), it must still propose valid hparams.
    """

    segments: int

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator,
        *, snapshot: Snapshot | None = None, member: int | None = None,
        donor: int | None = None,
    ) -> dict[str, Any]: ...


class Ready(Protocol):
    """A ready rule: whether a member has trained long enough to exploit and explore.

    Both counts run from the member's last ready point. `segment_steps` is how
    many steps a segment lasts when that is known in advance (None: it depends
    on something else, such as time), so a caller can plan a segment without
    asking every step. A rule must be pure and quick: it is asked every step.
    """

    def __call__(self, steps_since: int, seconds_since: float) -> bool: ...

    def segment_steps(self) -> int | None: ...
