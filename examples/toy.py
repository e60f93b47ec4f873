"""The toy experiment of the PBT paper (Jaderberg et al., 2017, Fig. 2).

Each member maximises Q(θ) = 1.2 − (θ0² + θ1²) but can only follow the
gradient of a surrogate Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²). Two members start
at θ = [0.9, 0.9] with h = [1, 0] and [0, 1]: alone, each shrinks one
coordinate and stalls at Q = 0.39. With exploit and explore they reach 1.2.

    populace run examples/toy.py --store runs/toy.db
    populace run examples/toy.py --store runs/grid.db --exploit none   # the paper's grid search

Explore resamples h from its prior: the paper adds noise instead, and a
multiplicative perturb could never move an h that is 0 (the whole
population would lock at 0.39).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from populace import Float, Trainable

LEARNING_RATE = 0.01

space = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}
initial = [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}]
config = {
    "population": 2, "workers": 1, "steps": 200, "ready_steps": 4,
    "exploit": "truncation", "explore": "resample", "executor": "inline",
}


def q(theta: np.ndarray) -> float:
    """The true objective, which ranks the members."""
    return float(1.2 - np.sum(theta**2))


class Toy(Trainable):
    def build(self, hparams, seed):
        self.theta = np.array([0.9, 0.9])
        self.apply(hparams)

    def apply(self, hparams):
        self.h = np.array([hparams["h0"], hparams["h1"]])

    def step(self):
        # gradient ascent on the surrogate Q̂(θ|h)
        self.theta = self.theta + LEARNING_RATE * (-2.0 * self.h * self.theta)

    def evaluate(self):
        return q(self.theta)

    def save(self, path: Path):
        path.write_text(json.dumps(self.theta.tolist()))

    def load(self, path: Path):
        self.theta = np.array(json.loads(path.read_text()))
