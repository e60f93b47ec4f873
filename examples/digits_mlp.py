"""An MLP on scikit-learn's handwritten digits (8x8 images, 10 classes), tuned by PBT.

    populace run examples/digits_mlp.py --store runs/digits.db

Sixteen members train with SGD, one step being one epoch. Every 4 epochs the
worst fifth copies the weights, optimizer state and hparams of one of the
best fifth and perturbs those hparams. The data ships with scikit-learn: no
download. Digits saturates near 98% validation accuracy, so PBT shows most in
the population (its worst members catch up), less in its best member.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from populace import Choice, Float
from populace.integrations.torch import TorchTrainable

SPLIT_SEED = 0  # the same split for every member and every run
TRAIN, VALIDATION = 1078, 359  # the remaining 360 images are the test set

space = {
    "lr": Float(1e-3, 0.5, log=True),
    "momentum": Float(0.0, 0.99),
    "weight_decay": Float(1e-6, 1e-2, log=True),
    "dropout": Float(0.0, 0.6),
    "batch_size": Choice([16, 32, 64, 128]),  # ordered: perturb moves to a neighbour
}
# digits stops improving after about 20 epochs: 40 give PBT ten ready points
config = {
    "population": 16, "steps": 40, "ready_steps": 4,
    # exploit ranks by validation accuracy only; test_accuracy is reported, never used
    "score": "accuracy",
}


@cache
def dataset() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The split, standardized by the training set's statistics; loaded once per process."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    parts = np.split(order, [TRAIN, TRAIN + VALIDATION])
    mean, std = x[parts[0]].mean(axis=0), x[parts[0]].std(axis=0)
    std[std == 0] = 1.0  # pixels that are blank in every training image
    x = (x - mean) / std
    return {
        name: (torch.tensor(x[idx], dtype=torch.float32), torch.tensor(y[idx]))
        for name, idx in zip(("train", "validation", "test"), parts, strict=True)
    }


class DigitsMLP(TorchTrainable):
    state = ("model", "optimizer")
    modules = {"dropout": ("model", nn.Dropout, "p")}
    ignore = ("batch_size",)  # step reads it from self.batch_size

    def build(self, hparams, seed):
        # the member's seed draws its initial weights, and through the RNG state
        # saved in each checkpoint, its data order and dropout masks
        torch.manual_seed(seed)
        self.data = dataset()
        self.model = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Dropout(),
            nn.Linear(128, 128), nn.ReLU(), nn.Dropout(),
            nn.Linear(128, 10),
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)  # every hparam, as after an exploit: build and apply cannot disagree

    def apply(self, hparams):
        super().apply(hparams)
        self.batch_size = hparams["batch_size"]

    def step(self):
        x, y = self.data["train"]
        self.model.train()
        for batch in torch.randperm(len(y)).split(self.batch_size):
            loss = F.cross_entropy(self.model(x[batch]), y[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        x, y = self.data["validation"]
        logits = self.model(x)
        test_x, test_y = self.data["test"]
        return {
            "accuracy": (logits.argmax(1) == y).float().mean().item(),
            "loss": F.cross_entropy(logits, y).item(),
            "test_accuracy": (self.model(test_x).argmax(1) == test_y).float().mean().item(),
        }
