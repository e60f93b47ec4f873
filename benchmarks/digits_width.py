"""examples/digits_mlp.py with one hidden layer whose width is an hparam: accuracy against
model size, a real trade-off, for benchmarks/multi_objective.py.

A member's width is drawn once (4 to 128 units, log-uniform) and never explored: a copy
takes its donor's width with its weights. It reports `accuracy` (validation), `params`
(its parameter count) and `weighted`, the scalarized goal accuracy - 0.05 * cost, where
cost is log(params) scaled onto [0, 1] over the widths allowed: five accuracy points are
worth the whole range of sizes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from populace import Int
from populace.script import load_script
from populace.strategies import Keep

_DIGITS = load_script(Path(__file__).resolve().parents[1] / "examples" / "digits_mlp.py")
LOW, HIGH = 4, 128
WEIGHT = 0.05  # accuracy given up for the whole range of sizes, in the scalarized goal

space = {**_DIGITS.space, "width": Int(LOW, HIGH, log=True, explore=Keep())}
config = {**_DIGITS.config, "population": 8, "executor": "inline", "workers": 1,
          "objectives": {"accuracy": "max", "params": "min"}}


def params(width: int) -> int:
    """Parameters of the 64-width-10 MLP."""
    return 64 * width + width + width * 10 + 10


def cost(n: float) -> float:
    """A parameter count on [0, 1]: log-scaled over the widths allowed."""
    return math.log(n / params(LOW)) / math.log(params(HIGH) / params(LOW))


class DigitsWidth(_DIGITS.trainable):
    ignore = ("batch_size", "width")  # width is set by build, batch size read by step

    def build(self, hparams, seed):
        super().build(hparams, seed)
        torch.manual_seed(seed)
        width = hparams["width"]
        self.model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(),
                                   nn.Linear(width, 10))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)

    def evaluate(self):
        out = super().evaluate()
        n = float(sum(p.numel() for p in self.model.parameters()))
        return {**out, "params": n, "weighted": out["accuracy"] - WEIGHT * cost(n)}
