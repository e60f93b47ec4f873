"""A cheap trainable with two goals that pull apart: `a` grows with x * y, `b` with
(1 - x) * y. x trades one for the other; y helps both, so a member with a low y is
dominated. For multi-objective runs (objectives a: max, b: max)."""

import json

from populace import Float, Trainable

space = {"x": Float(0.0, 1.0), "y": Float(0.1, 1.0)}
config = {"population": 6, "steps": 24, "ready_steps": 4, "executor": "inline",
          "workers": 1, "objectives": {"a": "max", "b": "max"}}


class TwoGoals(Trainable):
    def build(self, hparams, seed):
        self.a = self.b = 0.0
        self.apply(hparams)

    def apply(self, hparams):
        self.x, self.y = hparams["x"], hparams["y"]

    def step(self):
        self.a += self.x * self.y
        self.b += (1 - self.x) * self.y

    def evaluate(self):
        return {"a": self.a, "b": self.b}

    def save(self, path):
        path.write_text(json.dumps([self.a, self.b]))

    def load(self, path):
        self.a, self.b = json.loads(path.read_text())
