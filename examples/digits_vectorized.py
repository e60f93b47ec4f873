"""The digits MLP of examples/digits_mlp.py as a vectorized run: every member in one
batched model, trained by one vmapped call a step, on the GPU when there is one.

    populace run examples/digits_vectorized.py --store runs/digits-vectorized.db

The same model (64-128-128-10, dropout), data split and space as the process-based
example, except the batch size: every member's tensors are slices of one stacked
tensor, so the batch is one size for all (64) and not an hparam. A step here is one
batch (16 a pass over the 1078 training images), so the 40 epochs of digits_mlp.py are
640 steps, with a ready point every 4 epochs. The best member as a plain module, after:

    result = populace.load_result("runs/digits-vectorized.db")
    model = populace.vectorized.load_best(result, DigitsVectorized().model(0))
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.nn.functional as F
from torch import nn

from populace import Float
from populace.vectorized import SGD, Dropout, Shuffled, VectorizedTrainable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_mlp import dataset  # noqa: E402 - the same split and standardisation

BATCH = 64
EPOCH = 1078 // BATCH  # steps in one pass over the training images

space = {
    "lr": Float(1e-3, 0.5, log=True),
    "momentum": Float(0.0, 0.99),
    "weight_decay": Float(1e-6, 1e-2, log=True),
    "dropout": Float(0.0, 0.6),
}
config = {
    "population": 16, "steps": 40 * EPOCH, "ready_steps": 4 * EPOCH,
    "score": "accuracy", "executor": "vectorized",
}


class DigitsVectorized(VectorizedTrainable):
    optimizer = SGD()  # every hparam it takes is in the space

    def model(self, seed):
        return nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), Dropout("dropout"),
            nn.Linear(128, 128), nn.ReLU(), Dropout("dropout"),
            nn.Linear(128, 10),
        )

    def data(self):
        return Shuffled(*dataset()["train"], batch_size=BATCH)

    def loss(self, output, batch, hparams):
        return F.cross_entropy(output, batch[1])

    def metrics(self, model):
        (x, y), (test_x, test_y) = dataset()["validation"], dataset()["test"]
        logits = model(x)  # on the run's device, a GPU's when there is one: y goes there
        y, test_y = y.to(logits.device), test_y.to(logits.device)
        return {
            "accuracy": (logits.argmax(1) == y).float().mean(),
            "loss": F.cross_entropy(logits, y),
            "test_accuracy": (model(test_x).argmax(1) == test_y).float().mean(),
        }
