"""examples/two_timescale.py as a vectorized trainable, for FIRE-PBT's planted case on the
vectorized executor: the hparam lr is SGD's, and one SGD step at lr h on
v^2 / 2 + (u - 2h)^2 / 4h is the toy's step (v <- v (1 - h), u <- u + (2h - u) / 2), so
the members' losses are the toy's, in float32; its space, initial hparams and config are
the toy's."""

from pathlib import Path

import torch
from torch import nn

from populace.script import load_script
from populace.vectorized import SGD, Shuffled, VectorizedTrainable

toy = load_script(Path(__file__).resolve().parents[2] / "examples" / "two_timescale.py")
space, initial = toy.space, toy.initial
config = {**toy.config, "executor": "vectorized"}


class State(nn.Module):
    def __init__(self):
        super().__init__()
        self.u = nn.Parameter(torch.zeros(()))
        self.v = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return torch.stack([self.u, self.v]) + 0 * x.sum()


class VectorTimescale(VectorizedTrainable):
    optimizer = SGD()  # at each member's lr

    def model(self, seed):
        return State()

    def data(self):
        return Shuffled(torch.zeros(4, 1), batch_size=1)

    def loss(self, output, batch, hparams):
        u, v = output[0], output[1]
        h = hparams["lr"]
        return v**2 / 2 + (u - 2 * h) ** 2 / (4 * h)

    def metrics(self, model):
        return {"score": model(torch.zeros(1)).sum()}  # u + v, as the toy
