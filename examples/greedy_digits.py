"""A real network where a late learning-rate cut decides the final accuracy (issue 30).

    populace run examples/greedy_digits.py --store runs/greedy-digits.db
    python examples/greedy_digits.py      # the evidence: a late cut against constant lrs

An MLP (64-128-10) on scikit-learn's digits, trained by plain SGD (batch 16, no
momentum) on inputs that span CONDITION decades of scale (each pixel multiplied by a
fixed factor between 1 and 1/100), with Gaussian noise added afresh to every batch
(NOISE, in units of a pixel's standard deviation before scaling; the validation and
test images stay clean). The small-scale pixels are the slow directions of the noisy
quadratic (examples/noisy_quadratic.py): their weights learn only under a high learning
rate held long, and the noise gives a high learning rate a high noise floor. So the
best schedule holds a high learning rate and cuts it late, while a ranking by the
accuracy now favours whoever cut first: what PBT does, and what FIRE-PBT
(arXiv:2109.13800) is meant to cure. The only hparam is the learning rate.

Running this file measures it, with the same trainable: constant learning rates
against the same rates cut by 10 at 75% of the epochs, over a few seeds. Measured on
2026-12-06 for seeds 0 and 1 (two busy cores), final validation accuracy:

    constant lr    0.01: 0.708 0.775   0.03: 0.803 0.863   0.1: 0.805 0.845
    cut at 75%     0.1:  0.853 0.877   0.2:  0.835 0.815

The late cut of lr 0.1 ends 1.4 to 5 points above every constant lr, and lr 0.1 held
constant is no better than 0.03 until the cut: at every ready point before it the high
lr does not look better, which is the trap for a greedy ranking
(tests/paper/test_greedy.py checks the cut's lead; benchmarks/greedy.md sets PBT,
FIRE-PBT and random search on it). The inputs' scales make the trap: at one scale
(CONDITION 0, NOISE 2) PBT's gradual decay ended level with the late cut.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from populace import Float
from populace.integrations.torch import TorchTrainable

SPLIT_SEED = 0  # the same split for every member and every run
TRAIN, VALIDATION = 900, 497  # the remaining 400 images are the test set
NOISE = 3.0  # input noise per training batch, in pixel standard deviations
# the inputs span this many decades of scale: pixel j is multiplied by 10^(-CONDITION r/63),
# r its rank in a fixed shuffle, so the small-scale pixels' weights learn only under a
# high lr held long (the slow directions of the noisy quadratic)
CONDITION = 2.0
BATCH = 16
EPOCHS = 30
CUT = 0.75  # the reference schedule divides the lr by 10 after this share of the epochs

space = {"lr": Float(1e-3, 1.0, log=True)}
# a step is one epoch (57 updates); exploit ranks by validation accuracy only
config = {"population": 16, "steps": EPOCHS, "ready_steps": 2, "score": "accuracy"}


@cache
def dataset() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The split, standardized by the training set's statistics; loaded once per process."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    parts = np.split(order, [TRAIN, TRAIN + VALIDATION])
    mean, std = x[parts[0]].mean(axis=0), x[parts[0]].std(axis=0)
    std[std == 0] = 1.0  # pixels that are blank in every training image
    x = (x - mean) / std * scales().numpy()
    return {
        name: (torch.tensor(x[idx], dtype=torch.float32), torch.tensor(y[idx]))
        for name, idx in zip(("train", "validation", "test"), parts, strict=True)
    }


@cache
def scales() -> torch.Tensor:
    """Each input pixel's scale, from 1 down to 10^-CONDITION, in a fixed random order."""
    ranks = np.random.default_rng(SPLIT_SEED + 1).permutation(64)
    return torch.tensor(10.0 ** (-CONDITION * ranks / 63), dtype=torch.float32)


class GreedyDigits(TorchTrainable):
    """One member: the MLP and its SGD optimizer; the lr lives in the optimizer."""

    state = ("model", "optimizer")

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        # the seed draws the initial weights and, through the RNG state each checkpoint
        # keeps, the data order and the input noise
        torch.manual_seed(seed)
        self.data = dataset()
        self.model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)

    def step(self) -> None:
        x, y = self.data["train"]
        self.model.train()
        for batch in torch.randperm(len(y)).split(BATCH):
            noisy = x[batch] + NOISE * scales() * torch.randn(len(batch), x.shape[1])
            loss = F.cross_entropy(self.model(noisy), y[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        x, y = self.data["validation"]
        logits = self.model(x)
        test_x, test_y = self.data["test"]
        return {
            "accuracy": (logits.argmax(1) == y).float().mean().item(),
            "loss": F.cross_entropy(logits, y).item(),
            "test_accuracy": (self.model(test_x).argmax(1) == test_y).float().mean().item(),
        }


class GreedyDigitsCut(GreedyDigits):
    """A member on a fixed schedule family: its lr until CUT of EPOCHS, then lr / 10.
    Random search over these members (exploit none) is the population-sized reference a
    non-greedy search should reach (benchmarks/greedy.py)."""

    def apply(self, hparams: Mapping[str, Any]) -> None:
        super().apply(hparams)
        self.lr = float(hparams["lr"])

    def step(self) -> None:
        lr = self.lr if self.current_step < round(CUT * EPOCHS) else self.lr / 10
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        super().step()


trainable = GreedyDigits  # what `populace run` trains; the Cut is for the benchmark


def train_schedule(lr: float, seed: int, cut: float | None = None,
                   epochs: int = EPOCHS) -> dict[str, float]:
    """One member trained alone at `lr`, divided by 10 after `cut` of the epochs (None:
    constant): its final metrics. The references the benchmark sets PBT against."""
    member = GreedyDigits()
    member.build({"lr": lr}, seed)
    for epoch in range(epochs):
        if cut is not None and epoch == round(cut * epochs):
            member.apply({"lr": lr / 10})
        member.step()
    return member.evaluate()


def compare(constants: Sequence[float], cuts: Sequence[float], seeds: int) -> list[str]:
    """Mean final validation accuracy of constant lrs and of late cuts, one line each."""
    lines = []
    for label, lrs, cut in (("constant", constants, None), (f"cut at {CUT:.0%}", cuts, CUT)):
        for lr in lrs:
            scores = [train_schedule(lr, seed, cut)["accuracy"] for seed in range(seeds)]
            lines.append(f"| {label} | {lr:g} | {statistics.mean(scores):.4f} | "
                         f"{min(scores):.4f} | {max(scores):.4f} |")
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    began = time.perf_counter()
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print("| schedule | lr | mean accuracy | min | max |\n|---|---|---|---|---|")
    compare(constants=(0.01, 0.03, 0.1), cuts=(0.1, 0.2, 0.3), seeds=seeds)
    print(f"{time.perf_counter() - began:.0f} s")
