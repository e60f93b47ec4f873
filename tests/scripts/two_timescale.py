"""Short-horizon bias in one line (FIRE-DESIGN's planted run): a state (u, v), loss u + v.

One step at lr h: v <- v (1 - h), the slow direction, converging in proportion to h, and
u <- u + (2h - u) / 2, a noise floor of 2h reached within a few steps. A high lr is
worse now (its floor is higher) and better later (its v is gone), so plain PBT, ranking
by the loss now, favours the low lr; FIRE-PBT's evaluators train a parent's weights
with the low lr of P1's best and find which parent's weights improve faster from there.
Deterministic: no randomness anywhere, so a run's decisions repeat exactly.
"""

import json

from populace import Float, Trainable

space = {"lr": Float(0.0005, 0.2, log=True)}


class TwoTimescale(Trainable):
    def build(self, hparams, seed):
        self.u, self.v = 0.0, 1.0
        self.apply(hparams)

    def apply(self, hparams):
        self.lr = hparams["lr"]

    def step(self):
        self.v *= 1.0 - self.lr
        self.u += 0.5 * (2.0 * self.lr - self.u)

    def evaluate(self):
        return self.u + self.v

    def save(self, path):
        path.write_text(json.dumps([self.u, self.v]))

    def load(self, path):
        self.u, self.v = json.loads(path.read_text())
