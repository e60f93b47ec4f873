"""Short-horizon bias in one line: a state (u, v), loss u + v, for FIRE-PBT in seconds.

One step at lr h: v <- v (1 - h), the slow direction, converging in proportion to h, and
u <- u + (2h - u) / 2, a noise floor of 2h reached within a few steps. A high lr is
worse now (its floor is higher) and better later (its v is gone), so plain PBT, ranking
by the loss now, favours the low lr; FIRE-PBT's evaluators train a parent's weights
with the low lr of P1's best and find which parent's weights improve faster from there.
Deterministic: no randomness anywhere, so a run's decisions repeat exactly.

    populace run examples/two_timescale.py --store runs/fire.db --exploit fire
    populace status runs/fire.db --events

The initial lrs plant the case tests/run/test_fire_run.py checks: from step 60 on, with
FIRE's defaults before issue 30's runs at 8 and 32 members (`exploit: {name: fire,
start: 6, subpopulations: 2, evaluators: 0.25, budget: 2, align: score}`: P1/P2/E =
3/3/2, the paper's fitness), FIRE must prefer parent 3, the slower starter. Today's
defaults lay 8 members out the same way but rank P2 by `align: start` with budget 4, for
which the case is not planted.
"""

import json

from populace import Float, Trainable

space = {"lr": Float(0.0005, 0.2, log=True)}
# FIRE's layout of 8 in 2 sub-populations and 2 evaluators: P1 = 0, 1, 2 (low lrs), P2 =
# 3, 4, 5 with X = 3 the slower-starting parent (lr 0.1: at step 60 its loss is 0.202,
# Y's 0.146), evaluators 6, 7
initial = [{"lr": lr} for lr in (0.005, 0.002, 0.001, 0.1, 0.05, 0.05, 0.01, 0.01)]
# FIRE's planted run adds exploit {"name": "fire", "start": 6, "subpopulations": 2,
# "evaluators": 0.25, "budget": 2, "align": "score"}: evaluations from step 60
# a step costs microseconds: one inline worker, no processes to start
config = {"population": 8, "steps": 200, "ready_steps": 10, "mode": "min", "explore": "keep",
          "executor": "inline", "workers": 1}


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
