"""Curve math for FIRE-PBT (Dalibard & Jaderberg 2021): does an evaluator improve faster?

A curve is a member's [step, score] points since its weights last changed hands, oldest
first. Only the scores and their order count: two curves are aligned by the score they
pass through, not by step, so an asynchronous run, where members stand at different
steps, compares them as a synchronous one does. Every function here works on *oriented*
values (`oriented`: higher is better whatever the run's mode), so `Mode.MIN` and
`Mode.MAX` give mirrored answers by construction.

The rules follow PBT-Zoo's reading of the paper (AwesomeLemon/PBT-Zoo, algo/firepbt.py)
with deliberate deviations: a moving average (not a Gaussian process, which PBT-Zoo fits
to the identity) used only to align; the sign test dropping ties; curves that never meet
adding nothing to fitness (no shift search); an evaluator still below the child's start
given its whole budget to get there (PBT-Zoo's p = 2 stops it at its first check); and no
verdict of any kind before `min_points` points, so that a parent exactly as good as its
child is not stopped after two points for a p-value of 1 (`Fire.verdict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from populace.mode import Mode

Curve = Sequence[Sequence[float]]  # [step, score] points, oldest first, as a store keeps them


def oriented(curve: Curve, mode: Mode) -> np.ndarray:
    """The curve's scores, higher is better; a non-finite score (a diverged evaluation) is
    worse than any other, -inf, so it never wins a comparison nor opens an overlap."""
    values = np.array([float(point[1]) for point in curve], dtype=np.float64) * mode.sign
    return np.where(np.isfinite(values), values, -np.inf)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A centred moving average over `window` points (odd), over fewer at both ends, so the
    curve keeps its length and its first point stays where the curve starts.

    Used only to find where two curves meet, so that one lucky point cannot open an
    overlap; the sign test and the best-score difference read the raw points. A window
    holding a -inf point averages to -inf.
    """
    n, half = len(values), window // 2
    if half == 0 or n < 2:
        return values.copy()
    at = np.arange(n)
    lo, hi = np.maximum(at - half, 0), np.minimum(at + half + 1, n)
    finite = np.isfinite(values)
    total = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    bad = np.concatenate(([0], np.cumsum(~finite)))
    means = (total[hi] - total[lo]) / (hi - lo)
    return np.where(bad[hi] > bad[lo], -np.inf, means)


class Overlap(NamedTuple):
    """Where two curves stand at one score: `a`'s and `b`'s index there, and how many
    points each has from there on (the shorter remainder)."""

    a: int
    b: int
    length: int


def overlap(a: np.ndarray, b: np.ndarray, window: int) -> Overlap | None:
    """The overlap of oriented curves `a` and `b`: "from the same score, who improves faster?"

    The curve that starts lower is followed to its first (smoothed) point that reaches the
    other's first point, and paired there with the other's start. None when it never gets
    there. Symmetric: `overlap(b, a)` is this one with `a` and `b` swapped.
    """
    if len(a) == 0 or len(b) == 0:
        return None
    sa, sb = smooth(a, window), smooth(b, window)
    if sa[0] < sb[0]:
        hit = np.flatnonzero(sa >= sb[0])
        if len(hit) == 0:
            return None
        ia, ib = int(hit[0]), 0
    else:
        hit = np.flatnonzero(sb >= sa[0])
        if len(hit) == 0:
            return None
        ia, ib = 0, int(hit[0])
    return Overlap(ia, ib, min(len(a) - ia, len(b) - ib))


def best_difference(a: np.ndarray, b: np.ndarray, where: Overlap | None) -> float:
    """The best-score difference (bsd): `a`'s best raw point minus `b`'s over their overlap;
    0.0 where they never meet, or both are -inf throughout (no evidence either way)."""
    if where is None:
        return 0.0
    d = float(a[where.a:where.a + where.length].max() - b[where.b:where.b + where.length].max())
    return d if np.isfinite(d) else 0.0


def sign_test(a: np.ndarray, b: np.ndarray) -> float:
    """One-sided sign test that `a` beats `b` point by point more often than chance; tied
    pairs are dropped, as they say nothing either way; 1.0 when every pair ties."""
    # imported here, as TTest does: scipy.stats adds a few hundred ms to every start
    from scipy.stats import binomtest

    wins, untied = int(np.sum(a > b)), int(np.sum(a != b))
    if untied == 0:
        return 1.0
    return float(binomtest(wins, untied, 0.5, alternative="greater").pvalue)


def min_points(significance: float) -> int:
    """The fewest points whose sign test can reach p < `significance`: all better, 0.5^m.

    That is ceil(log2(1/p)) except at a power of two: at 0.25 it is 3, not 2, as 0.5^2 =
    0.25 is not below 0.25; so this counts up exactly (7 at 0.01).
    """
    m = 1
    while 0.5**m >= significance:
        m += 1
    return m


class Comparison(NamedTuple):
    """An evaluator's curve against its child's.

    `p` is the sign test's p-value (evaluator better; 1.0: no evidence), `difference`
    the best-score difference (evaluator minus child, oriented), `points` how many points
    the test read, and `behind` says the curves never met because the evaluator never
    reached the child's first score.
    """

    p: float
    difference: float
    points: int
    behind: bool


def compare(evaluator: np.ndarray, child: np.ndarray, window: int) -> Comparison:
    """The evaluator's oriented curve against the child's, for the verdict.

    Where they overlap: the sign test and bsd on the aligned raw points. Where the
    evaluator starts above the child's whole curve, each of its points is tested against
    the child's best ("wholly better" needs as many points as any test). Where it never
    reaches the child's start, nothing is tested: it is behind.
    """
    where = overlap(evaluator, child, window)
    if where is not None:
        ev = evaluator[where.a:where.a + where.length]
        ch = child[where.b:where.b + where.length]
        return Comparison(sign_test(ev, ch), best_difference(evaluator, child, where),
                          where.length, behind=False)
    if len(evaluator) == 0 or len(child) == 0 or (
            smooth(evaluator, window)[0] < smooth(child, window)[0]):
        return Comparison(1.0, 0.0, 0, behind=True)
    best = float(child.max())
    difference = float(evaluator.max()) - best
    return Comparison(sign_test(evaluator, np.full(len(evaluator), best)),
                      difference if np.isfinite(difference) else 0.0, len(evaluator),
                      behind=False)
