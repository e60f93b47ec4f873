"""A task where no fixed learning rate finishes the job, only a schedule.

A member's state is a score s in [0, 1]. Each step it gains most when its
learning rate is near the best one for its current score, and the best one
falls as the score rises: 10^(-1 - 2 s), from 0.1 at the start to 0.001 at
the end. A learning rate far above the best one loses ground. So a fixed
learning rate climbs only while it suits the score and then stalls (random
search ends near 0.2); only a population that lowers its learning rate as
it goes reaches 1. It is the class of Ray Tune's PBT benchmark example, and
what benchmarks/async_quality.py measures asynchronous PBT on.

    populace run examples/moving_optimum.py --store runs/moving.db
    populace run examples/moving_optimum.py --store runs/moving-rs.db --exploit none

A step costs microseconds, so a run measures the decisions, not training;
MOVING_OPTIMUM_STEP_SECONDS makes each step sleep as long as a real one would
take, so that worker processes train side by side as they would on a real task
(otherwise the first process to start can finish the run before the last one
has started).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from populace import Float, Trainable

GAIN = 0.005  # the most a step can add: 200 steps on a perfect schedule
WIDTH = 0.2  # decades of learning rate around the best one that still make progress
NOISE = 0.002  # per-step noise of the score
STEP_SECONDS = float(os.environ.get("MOVING_OPTIMUM_STEP_SECONDS", "0"))

space = {"lr": Float(1e-4, 1.0, log=True)}
config = {
    "population": 8, "steps": 200, "ready_steps": 4, "executor": "inline",
    "exploit": {"name": "truncation", "fraction": 0.25}, "explore": "perturb",
}


def best_log_lr(score: float) -> float:
    """log10 of the learning rate that gains most at `score`."""
    return -1.0 - 2.0 * score


class MovingOptimum(Trainable):
    def build(self, hparams, seed):
        self.score = 0.0
        self.rng = np.random.default_rng(seed)
        self.apply(hparams)

    def apply(self, hparams):
        self.lr = hparams["lr"]

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def step(self):
        time.sleep(STEP_SECONDS)
        off = math.log10(self.lr) - best_log_lr(self.score)
        gain = GAIN * math.exp(-off * off / (2 * WIDTH * WIDTH))
        loss = 0.01 * max(0.0, off - 2 * WIDTH)  # far too high a learning rate diverges
        self.score = min(1.0, max(0.0, self.score + gain - loss + self.rng.normal(0, NOISE)))

    def evaluate(self):
        return self.score

    def save(self, path: Path):
        path.write_text(json.dumps({"score": self.score, "rng": self.rng.bit_generator.state}))

    def load(self, path: Path):
        state = json.loads(path.read_text())
        self.score = state["score"]
        self.rng.bit_generator.state = state["rng"]
