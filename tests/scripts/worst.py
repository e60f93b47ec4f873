"""A trainable whose member 0 is always the worst, whatever it copies; the others' scores
are their progress plus noise from their own random stream.

Member 0 is known by its seed (the run's seed is 0), which a copy keeps: after an
exploit the worker builds the member with its own seed, then loads the donor's state.
WORST_SLEEP slows each step down (seconds), so worker processes that start at different
times still train side by side.
"""

import json
import os
import time

import numpy as np

from populace import Float, Trainable
from populace.segment import member_seed

space = {"x": Float(0.1, 1.0)}
config = {"population": 4, "steps": 40, "ready_steps": 4, "seed": 0,
          "exploit": {"name": "truncation", "fraction": 0.25}, "explore": "keep"}
WORST = member_seed(0, 0)


class Worst(Trainable):
    def build(self, hparams, seed):
        self.worst = seed == WORST
        self.total = 0.0
        self.rng = np.random.default_rng(seed)
        self.apply(hparams)

    def apply(self, hparams):
        self.x = hparams["x"]

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def step(self):
        time.sleep(float(os.environ.get("WORST_SLEEP", "0")))
        self.total += self.x + self.rng.normal(0, 0.01)

    def evaluate(self):
        return -1.0 if self.worst else self.total

    def save(self, path):
        path.write_text(json.dumps({"total": self.total, "rng": self.rng.bit_generator.state}))

    def load(self, path):
        state = json.loads(path.read_text())
        self.total = state["total"]
        self.rng.bit_generator.state = state["rng"]
