"""A small CNN on the 8x8 digits as a vectorized run: a model that is not an MLP (two
convolutions, pooling, dropout), every member in one batched model, tuned with Adam.

    populace run examples/digits_cnn_vectorized.py --store runs/digits-cnn.db

Eight members; a step is one batch of 64 images (16 steps a pass over the training
set), 16 passes, a ready point every 4 (about 30 s on two cores: vmap turns the
members' convolutions into one grouped convolution, which a CPU runs about as fast as
eight separate ones; a GPU runs it as one kernel). The learning rate, Adam's beta1, the weight
decay and the dropout rate are per-member hparams: Adam's state (both moments and the
step count) is stacked like the weights, so a copy takes it whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from populace import Float
from populace.vectorized import Adam, Dropout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_vectorized import EPOCH, DigitsVectorized  # noqa: E402 - its data, loss, metrics

space = {
    "lr": Float(3e-4, 3e-2, log=True),
    "beta1": Float(0.8, 0.95),
    "weight_decay": Float(1e-6, 1e-3, log=True),
    "dropout": Float(0.0, 0.5),
}
config = {
    "population": 8, "steps": 16 * EPOCH, "ready_steps": 4 * EPOCH,
    "score": "accuracy", "executor": "vectorized",
}


class DigitsCNN(DigitsVectorized):
    """The MLP example's data, loss and metrics; a CNN, and Adam."""

    optimizer = Adam()

    def model(self, seed):
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),  # the 64 pixels as one 8x8 channel
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), Dropout("dropout"), nn.Linear(16 * 4 * 4, 10),
        )
