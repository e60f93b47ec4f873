"""A strategy of your own, and an explore rule per hparam, on the paper's toy problem.

The members maximise Q(θ) = 1.2 − (θ0² + θ1²) following the surrogate
Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²) (Jaderberg et al. 2017, Fig. 2), with a
step size `lr` that is tuned too.

- Exploit is `CopyBest`, defined below and not built in: a member copies the
  best member of the population, but only when it is more than `margin`
  behind it (truncation would copy a random member of the top 20%, whatever
  the gap).
- Explore is the run's default, perturb by ×0.8 or ×1.2, for `lr` only: h0
  and h1 start at 0 for half the members, and no factor moves a 0, so they
  carry their own rule, `Noise(0.1)`, as in the paper's toy.

    populace run examples/custom_strategy.py --store runs/custom.db

`CopyBest` works in worker processes because every worker imports this
script before it reads the run's config, and the config names the strategy
by its import path. A strategy kept in a module of your own works the same
way from any script, or from a config file:
`exploit: {name: mypackage.strategies:CopyBest, margin: 0.02}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from populace import Float, Trainable
from populace.strategies import Noise, Snapshot


@dataclass(frozen=True)
class CopyBest:
    """Exploit: copy the best member when more than `margin` behind its score."""

    margin: float = 0.02

    def __call__(self, snapshot: Snapshot, member_id: int, rng: np.random.Generator) -> int | None:
        best = int(snapshot.ranking()[0])
        row = snapshot.index(member_id)
        if best == row or not snapshot.valid()[best]:
            return None
        mine, top = snapshot.scores[row], snapshot.scores[best]
        gap = top - mine if snapshot.maximize else mine - top
        if np.isnan(mine) or gap > self.margin:  # a member without a score always copies
            return int(snapshot.ids[best])
        return None


space = {
    "h0": Float(0.0, 1.0, explore=Noise(0.1)),
    "h1": Float(0.0, 1.0, explore=Noise(0.1)),
    "lr": Float(0.002, 0.05, log=True),  # the run's explore: perturb by 0.8 or 1.2
}
initial = [
    {"h0": 1.0, "h1": 0.0, "lr": 0.01}, {"h0": 0.0, "h1": 1.0, "lr": 0.01},
    {"h0": 1.0, "h1": 0.0, "lr": 0.005}, {"h0": 0.0, "h1": 1.0, "lr": 0.005},
]
config = {
    "population": 4, "workers": 2, "steps": 200, "ready_steps": 4,
    "exploit": CopyBest(margin=0.02),
    "explore": "perturb",
}


class Toy(Trainable):
    def build(self, hparams, seed):
        self.theta = np.array([0.9, 0.9])
        self.apply(hparams)

    def apply(self, hparams):
        self.h = np.array([hparams["h0"], hparams["h1"]])
        self.lr = hparams["lr"]

    def step(self):
        # gradient ascent on the surrogate Q̂(θ|h)
        self.theta = self.theta + self.lr * (-2.0 * self.h * self.theta)

    def evaluate(self):
        return float(1.2 - np.sum(self.theta**2))

    def save(self, path: Path):
        path.write_text(json.dumps(self.theta.tolist()))

    def load(self, path: Path):
        self.theta = np.array(json.loads(path.read_text()))
