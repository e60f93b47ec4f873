"""PBT over a PyTorch Lightning model: its own LightningModule and DataModule, unchanged.

An MLP classifies two interleaved half-moons (made here, no download); PBT tunes
its learning rate, momentum, dropout and batch size. One populace step is one
epoch of Lightning's `Trainer.fit`; the checkpoints are Lightning's own.

    populace run examples/lightning_classifier.py --store runs/lightning.db
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from populace import Choice, Float
from populace.integrations.lightning import LightningTrainable

space = {
    "lr": Float(1e-3, 0.5, log=True),
    "momentum": Float(0.0, 0.99),
    "dropout": Float(0.0, 0.5),
    "batch_size": Choice([16, 32, 64]),
}
# inline: the members train in this process, one at a time (tiny members: no process
# start-up, no second import of Lightning); `--executor local` trains them in parallel
config = {"population": 4, "steps": 6, "ready_steps": 2, "executor": "inline", "score": "val_acc"}


def moons(n: int, seed: int) -> TensorDataset:
    """Two half-moons with noise: a task a straight line cannot solve."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=g)
    angle = torch.rand(n, generator=g) * math.pi
    x = torch.stack([torch.cos(angle) + label * 1.0, torch.sin(angle) * (1 - 2 * label)
                     + label * 0.5], dim=1)
    return TensorDataset(x + 0.15 * torch.randn(n, 2, generator=g), label)


class Moons(pl.LightningDataModule):
    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.train, self.val = moons(1024, 0), moons(512, 1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=512)


class MLP(pl.LightningModule):
    """What a Lightning user already has: training and validation steps, an optimizer."""

    def __init__(self, lr: float, momentum: float, dropout: float) -> None:
        super().__init__()
        self.lr, self.momentum = lr, momentum
        self.net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, index):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)


class Classifier(LightningTrainable):
    modules = {"dropout": (nn.Dropout, "p")}  # set on the live model after every load
    ignore = ("batch_size",)  # read by the DataModule, built anew for each member
    trainer_args = {"accelerator": "cpu"}

    def module(self, hparams):
        return MLP(hparams["lr"], hparams["momentum"], hparams["dropout"])

    def data(self, hparams):
        return Moons(hparams["batch_size"])
