"""The plain view of a population that every strategy decides from.

A worker process and a batched trainer build the same `Snapshot`, so a
strategy never knows (or cares) where the population lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Snapshot:
    """Each member's latest state, one column per field, row i is one member.

    `scores` holds NaN for a member that has not reported yet or reported a
    non-finite score; such a member ranks below every other and never donates.
    """

    ids: np.ndarray  # int64, member ids
    steps: np.ndarray  # int64, each member's step
    scores: np.ndarray  # float64, latest score, NaN when missing or not finite
    hparams: Sequence[Mapping[str, Any]]
    maximize: bool = True
    # each member's last few finite scores, oldest first (empty when not kept)
    recent: Sequence[Sequence[float]] = ()

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.steps) == len(self.scores) == len(self.hparams) == n):
            raise ValueError("Snapshot columns must have equal lengths")
        if self.recent and len(self.recent) != n:
            raise ValueError("Snapshot.recent must have one window per member")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, member_id: int) -> int:
        """Row of `member_id` in the columns."""
        rows = np.flatnonzero(self.ids == member_id)
        if len(rows) == 0:
            raise KeyError(f"member {member_id} is not in the snapshot")
        return int(rows[0])

    def valid(self) -> np.ndarray:
        """Boolean mask of members with a finite score (the only possible donors)."""
        return np.isfinite(self.scores)

    def ranking(self) -> np.ndarray:
        """Row indices from best to worst; members without a valid score come last.

        Ties keep the order of `ids`, so a ranking is deterministic.
        """
        oriented = self.scores if self.maximize else -self.scores
        key = np.where(np.isfinite(oriented), oriented, -np.inf)
        # lexsort sorts by the last key first: best score, then smallest id
        return np.lexsort((self.ids, -key))

    def better(self, a: int, b: int) -> bool:
        """Whether row `a` has a strictly better valid score than row `b`."""
        sa, sb = self.scores[a], self.scores[b]
        if not np.isfinite(sa):
            return False
        if not np.isfinite(sb):
            return True
        return bool(sa > sb) if self.maximize else bool(sa < sb)
