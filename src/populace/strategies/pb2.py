"""PB2: explore by a model of what each hparam setting did, not by random perturbation.

Population-Based Bandits (Parker-Holder et al., NeurIPS 2020, arXiv:2002.02518): keep
PBT's exploit, and choose the copier's new hparams by GP-UCB. The data are the
population's recent segments (`Snapshot.segments`): each one's start step, the score its
weights had then, its hparams, and the score's improvement per step over it. A
time-varying GP (`populace.strategies.gp`) models the improvement, and the new hparams
maximize its upper confidence bound at the donor's step and score, within the space's
bounds (log dimensions in log space, Ints rounded). Choice hparams come first, as in
PB2-Mix (Parker-Holder et al., NeurIPS 2021): an EXP3 bandit per Choice, on the
time-discounted improvements each option earned, picks the option; the GP then picks
the Float and Int values given the options. A dimension's own rule (`explore=Keep()`)
still moves that hparam; Constants stay.

Without data (too few segments yet, or called with no population, as the first
explores of a run are), every setting's upper bound is the same, and PB2 draws from the
prior. Needs scikit-learn: `pip install 'populace[pb2]'`.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from populace.checks import whole
from populace.errors import ConfigError
from populace.snapshot import Segment, Snapshot
from populace.space import Choice, Dimension, Float, Int, Space
from populace.strategies.explore import MAX_SEGMENTS

MIN_DATA = 2  # segments before a model is fit: one point models nothing
# the newest segments the GP fits, whatever the population: a fit runs inside the report's
# write transaction and grows as the cube of its points (0.3 s at 256, 1.4 s at 512 on
# one core), and the time kernel gives the oldest ones little weight anyway
MAX_DATA = 256
# the bandit forgets as the paper's time kernel does at its fastest (eps = 0.5)
FORGET = 0.5


@dataclass(frozen=True)
class PB2:
    """PB2 explore (Parker-Holder et al. 2020; Choice hparams as PB2-Mix, 2021).

    `segments` is how many of each member's latest segments the store keeps for the model:
    with a population of n, the GP fits the newest min(n * segments, 256) of them
    (`MAX_DATA`), inside the report's transaction, so tens are plenty.

        populace run train.py --explore pb2
    """

    segments: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments",
                           whole("PB2", "segments", self.segments, 1, MAX_SEGMENTS))
        if importlib.util.find_spec("sklearn") is None:  # said now, not at the first explore
            raise ConfigError("explore 'pb2' needs scikit-learn, which is not installed: "
                              "pip install 'populace[pb2]'")

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator,
        *, snapshot: Snapshot | None = None, member: int | None = None,
        donor: int | None = None,
    ) -> dict[str, Any]:
        """New hparams for the member that copies `donor` (whose hparams are `hparams`)."""
        out = {name: dim.explore.mutate(dim, hparams[name], rng) if dim.explore is not None
               else hparams[name] for name, dim in space.items()}
        numbers = [n for n, d in space.items() if d.explore is None and isinstance(d, (Float, Int))]
        choices = [n for n, d in space.items() if d.explore is None and isinstance(d, Choice)
                   and len(d.options) > 1]
        data = _segments(snapshot, space, numbers + choices) if snapshot is not None else []
        if len(data) < MIN_DATA:
            out.update({n: space[n].sample(rng) for n in numbers + choices})
            return out
        assert snapshot is not None  # data come from it
        model = _Model(data, space, numbers, choices, snapshot, donor)
        for name in choices:
            out[name] = model.pick(name, rng)
        if numbers:
            out.update(model.values(out, snapshot, member, rng))
        return out


def _index(dim: Choice, value: Any) -> int:
    """The position of `value` among `dim`'s options, bools kept apart from numbers."""
    for i, option in enumerate(dim.options):
        if option == value and isinstance(option, bool) == isinstance(value, bool):
            return i
    raise ConfigError(f"value must be one of {list(dim.options)}, got {value!r}")


def _unit(dim: Float | Int, value: float) -> float:
    """`value` in [0, 1] over the dimension's bounds (in log space when `log`)."""
    f = math.log if dim.log else float
    return (f(value) - f(dim.low)) / (f(dim.high) - f(dim.low))


def _from_unit(dim: Float | Int, u: float) -> float | int:
    """The dimension's value at `u` in [0, 1], inside its bounds (an Int rounded)."""
    lo, hi = (math.log(dim.low), math.log(dim.high)) if dim.log else (dim.low, dim.high)
    x = lo + float(u) * (hi - lo)
    x = math.exp(x) if dim.log else x
    if isinstance(dim, Int):
        return int(min(max(round(x), dim.low), dim.high))
    return float(min(max(x, dim.low), dim.high))


def _valid(dim: Dimension, value: Any) -> bool:
    try:
        dim.validate(value)
    except ConfigError:
        return False
    return True


def _segments(snapshot: Snapshot, space: Space, names: Sequence[str]) -> list[Segment]:
    """The usable segments, the newest `MAX_DATA` by start step (ties: in the snapshot's
    order): they lasted, scored finitely, and name a value of the space for every hparam
    the model chooses (a stored space may have changed since)."""
    usable = [s for member in snapshot.segments for s in member
              if s.step > s.start and math.isfinite(s.before) and math.isfinite(s.score)
              and all(n in s.hparams and _valid(space[n], s.hparams[n]) for n in names)]
    if len(usable) <= MAX_DATA:
        return usable
    return sorted(usable, key=lambda s: -s.start)[:MAX_DATA]  # a stable sort: ties keep order


def _scaled(values: np.ndarray, at: float) -> tuple[np.ndarray, float]:
    """`values` and `at` scaled together onto [0, 1] (all 0 when they are all equal)."""
    lo, hi = min(float(values.min()), at), max(float(values.max()), at)
    span = hi - lo if hi > lo else 1.0
    return (values - lo) / span, (at - lo) / span


class _Model:
    """One explore's view of the data: inputs scaled, improvements standardized."""

    def __init__(self, data: list[Segment], space: Space, numbers: list[str],
                 choices: list[str], snapshot: Snapshot, donor: int | None) -> None:
        self.space, self.numbers, self.choices = space, numbers, choices
        sign = 1.0 if snapshot.maximize else -1.0  # improvement: higher is better
        rate = np.array([sign * (s.score - s.before) / (s.step - s.start) for s in data])
        # standardized and clipped, as in the paper's code: one wild segment cannot
        # dominate the model
        self.y = np.clip((rate - rate.mean()) / (rate.std() + 1e-8), -2.0, 2.0)
        row = snapshot.index(donor) if donor is not None else int(snapshot.ranking()[0])
        # the new segment starts at the donor's step and score (they came with its weights)
        score = float(snapshot.scores[row])
        before = np.array([s.before for s in data])
        self.time, self.now = _scaled(np.array([float(s.start) for s in data]),
                                      float(snapshot.steps[row]))
        self.before, self.score = _scaled(before, score if math.isfinite(score)
                                          else float(before.mean()))
        self.data = data

    def pick(self, name: str, rng: np.random.Generator) -> Any:
        """An option of the Choice `name` drawn by EXP3 (Auer et al. 2002): each option's
        gain is its segments' discounted mean reward, importance-weighted by how often it
        was played (its share of the data stands for the probability it had)."""
        dim = self.space[name]
        assert isinstance(dim, Choice)
        k = len(dim.options)
        reward = (self.y + 2.0) / 4.0  # in [0, 1], as EXP3 wants
        weight = FORGET ** (np.abs(self.now - self.time) / 2.0)
        played = np.array([_index(dim, s.hparams[name]) for s in self.data])
        gain = np.zeros(k)
        for option in range(k):
            mine = played == option
            if mine.any():
                gain[option] = weight.sum() * np.average(reward[mine], weights=weight[mine])
        gamma = min(1.0, math.sqrt(k * math.log(k) / ((math.e - 1) * len(self.data))))
        p = np.exp(gamma / k * (gain - gain.max()))
        p = (1 - gamma) * p / p.sum() + gamma / k
        return dim.options[int(rng.choice(k, p=p))]

    def _row(self, hparams: Mapping[str, Any], time: float, before: float) -> list[float]:
        """The GP's input for a segment: time, score before, each Choice one-hot, numbers."""
        row = [time, before]
        for name in self.choices:
            dim = self.space[name]
            assert isinstance(dim, Choice)
            row += [float(i == _index(dim, hparams[name])) for i in range(len(dim.options))]
        for name in self.numbers:
            dim = self.space[name]
            assert isinstance(dim, (Float, Int))
            row.append(_unit(dim, hparams[name]))
        return row

    def values(self, chosen: Mapping[str, Any], snapshot: Snapshot, member: int | None,
               rng: np.random.Generator) -> dict[str, Any]:
        """The Float and Int values maximizing the GP's UCB, given the chosen options."""
        from populace.strategies import gp  # scikit-learn, only once PB2 has data

        X = np.array([self._row(s.hparams, t, b)
                      for s, t, b in zip(self.data, self.time, self.before, strict=True)])
        context = np.array(self._row(chosen, self.now, self.score)[:-len(self.numbers)])
        # what the other members train now, from this same point, for the spread
        others = [h for i, h in zip(snapshot.ids.tolist(), snapshot.hparams, strict=True)
                  if i != member and all(_valid(self.space[n], h.get(n))
                                         for n in self.numbers + self.choices)]
        pending = np.array([self._row(h, self.now, self.score) for h in others])
        best = gp.propose(X, self.y, context, pending.reshape(len(others), X.shape[1]), rng)
        out = {}
        for name, u in zip(self.numbers, best, strict=True):
            dim = self.space[name]
            assert isinstance(dim, (Float, Int))
            out[name] = _from_unit(dim, u)
        return out
