"""The counter of counter.py as a vectorized trainable: each step adds x to its total,
which is its score. In float32 arithmetic that is exact on every path (a vmapped
gradient of -total * x is -x, and SGD at lr 1 adds x), so a vectorized run and the same
members trained alone by torch.optim (`CounterAlone`, on the inline executor) reach the
same scores to the last bit, and make the same decisions.

VECTOR_COUNTER_SLEEP slows each step down (seconds), so a test can kill a run midway.
"""

import os
import time

import torch
from torch import nn

from populace import Float
from populace.vectorized import SGD, Shuffled, VectorizedTrainable
from populace.vectorized.plain import PlainMember

space = {"x": Float(0.0, 1.0)}
config = {"population": 4, "steps": 20, "ready_steps": 4, "score": "total",
          "executor": "vectorized"}


class Total(nn.Module):
    def __init__(self):
        super().__init__()
        self.total = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.total + 0 * x.sum()


class Slow(Shuffled):
    def batches(self, keys, steps):
        time.sleep(float(os.environ.get("VECTOR_COUNTER_SLEEP", "0")))
        return super().batches(keys, steps)

    def to(self, device):
        return self


class VectorCounter(VectorizedTrainable):
    optimizer = SGD(lr=1.0)

    def model(self, seed):
        return Total()

    def data(self):
        return Slow(torch.zeros(4, 1), batch_size=1)

    def loss(self, output, batch, hparams):
        return -output * hparams["x"]

    def metrics(self, model):
        return {"total": model(torch.zeros(1))}


class CounterAlone(PlainMember):
    vectorized = VectorCounter


trainable = VectorCounter
