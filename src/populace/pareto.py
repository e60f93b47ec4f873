"""Ranking members by several objectives at once: non-dominated sorting with crowding
distance (NSGA-II, Deb et al. 2002), as multi-objective PBT ranks its population
(Dushatskiy et al., ICML 2023).

Points are rows, one column per objective, each oriented so that higher is better; a row
with a NaN has no valid score and ranks after every other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from populace.mode import Mode


def oriented(values: Sequence[Sequence[float | None] | None], modes: Iterable[Mode | str]
             ) -> np.ndarray:
    """Members' objective values (None where missing) as points: one row each, every
    column turned so that higher is better (`Mode.MIN` negated), NaN where missing;
    `modes` are each column's `Mode`, or its word."""
    signs = np.array([Mode(mode).sign for mode in modes])
    rows = [[np.nan] * len(signs) if v is None else
            [np.nan if x is None else float(x) for x in v] for v in values]
    return np.array(rows, dtype=float).reshape(len(rows), len(signs)) * signs


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether point `a` is at least as good as `b` everywhere and better somewhere."""
    return bool(np.all(a >= b) and np.any(a > b))


def fronts(points: np.ndarray) -> np.ndarray:
    """Each row's non-domination rank: 0 for the Pareto front, 1 for the front once that
    is removed, and so on; rows with a NaN get one rank past the last front."""
    n = len(points)
    valid = ~np.isnan(points).any(axis=1) if n else np.zeros(0, bool)
    # beats[i, j]: row i dominates row j (a population is small: n x n is nothing)
    ge = (points[:, None, :] >= points[None, :, :]).all(axis=2)
    gt = (points[:, None, :] > points[None, :, :]).any(axis=2)
    beats = ge & gt & valid[:, None] & valid[None, :]
    rank = np.full(n, -1)
    left = valid.copy()
    level = 0
    while left.any():
        # the rows no remaining row dominates
        front = left & ~(beats & left[:, None]).any(axis=0)
        rank[front] = level
        left &= ~front
        level += 1
    rank[~valid] = level
    return rank


def crowding(points: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Each row's crowding distance within its front: the sum over objectives of the gap
    between its neighbours, scaled by the front's range; a front's ends are infinite."""
    distance = np.zeros(len(points))
    for level in np.unique(rank):
        rows = np.flatnonzero(rank == level)
        if np.isnan(points[rows]).any():
            continue  # rows without a valid score: no distance
        for column in points[rows].T:
            by = np.argsort(column, kind="stable")
            order, values = rows[by], column[by]
            distance[order[0]] = distance[order[-1]] = np.inf
            span = values[-1] - values[0]
            if span > 0 and len(rows) > 2:
                distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def ranking(points: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row indices best first: by front, then by crowding distance (the less crowded
    first, which keeps the front spread), then by id, so a ranking is deterministic."""
    rank = fronts(points)
    distance = crowding(points, rank)
    return np.lexsort((ids, -distance, rank))
