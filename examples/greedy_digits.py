"""A real network where a late learning-rate cut decides the final score (issue 30).

    populace run examples/greedy_digits.py --store runs/greedy-digits.db
    python examples/greedy_digits.py 3    # the evidence: late and early cuts, constant lrs

An MLP (64-128-10) on scikit-learn's digits, trained by plain SGD (batch 16, no
momentum), built to hold the two forces of the noisy quadratic model
(examples/noisy_quadratic.py) that make a greedy ranking wrong:

- slow directions: FAST of the 64 input pixels keep their scale, the other 56 are
  multiplied by SLOW (0.05), so the weights reading them have 400 times less curvature
  and learn only under a high learning rate held long;
- a noise floor: a share (LABEL_NOISE) of each batch's labels is drawn afresh at random,
  gradient noise whose floor in the validation loss rises with the learning rate and
  falls at once when it is cut.

The score is the validation loss (cross-entropy on clean labels: smooth, and it shows
the noise floor); the validation and test accuracies are reported beside it. A step is
UPDATES SGD updates (an eighth of an epoch), so a ready interval of half an epoch holds
the 4 curve points FIRE-PBT scores a segment at. The only hparam is the learning rate.

Running this file trains members alone over a few seeds: constant lrs, lrs cut by 10
at 75% of the run, and lr 1 cut early. Measured on 2026-12-06 over seeds 0 to 9
(benchmarks/greedy.md), median final validation loss / accuracy:

    constant 0.3: 0.810 / 0.831   0.5: 0.801 / 0.824   1.0: 0.922 / 0.773
    lr 1.0 cut at 25%: 0.815 / 0.830   at 50%: 0.738 / 0.871   at 75%: 0.729 / 0.874
    lr 0.6 cut at 75%: 0.716 / 0.880   lr 2.0 cut at 75%: 0.983 / 0.750

A late cut ends 0.07 to 0.085 below the best constant lr in loss and 4 to 5 points above
it in accuracy, and cutting early gives it all back; but right after any cut the loss
drops at once (the noise floor), so at every ready point a member that has just cut
ranks above one that holds a high lr. That is the trap for a greedy ranking
(tests/paper/test_greedy.py checks both halves): ready every half epoch, PBT's lineage
cuts early and ends behind random search; FIRE-PBT with 4 sub-populations does not
(benchmarks/greedy.md).
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
LABEL_NOISE = 0.3  # share of each batch's labels drawn afresh at random
# FAST pixels (a fixed random choice) keep their scale; the others are multiplied by SLOW:
# the slow directions of the noisy quadratic, learnt only under a high lr held long
FAST, SLOW = 8, 0.05
BATCH = 16
UPDATES = 7  # SGD updates a step: an eighth of an epoch (900 images, batch 16)
STEPS = 240  # 30 epochs
CUT = 0.75  # the reference schedule divides the lr by 10 after this share of the steps

space = {"lr": Float(1e-3, 3.0, log=True)}  # lr 2 held to 75% is already too high
# ready every half epoch: 60 decisions a member; exploit ranks by validation loss only
config = {"population": 16, "steps": STEPS, "ready_steps": 4, "score": "loss", "mode": "min"}


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
    """Each input pixel's scale: 1 for FAST pixels drawn once, SLOW for the others."""
    ranks = np.random.default_rng(SPLIT_SEED + 1).permutation(64)
    return torch.tensor(np.where(ranks < FAST, 1.0, SLOW), dtype=torch.float32)


class GreedyDigits(TorchTrainable):
    """One member: the MLP and its SGD optimizer; the lr lives in the optimizer."""

    state = ("model", "optimizer")

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        # the seed draws the initial weights and, through the RNG state each checkpoint
        # keeps, the batches and the labels drawn at random
        torch.manual_seed(seed)
        self.data = dataset()
        self.model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)

    def step(self) -> None:
        x, y = self.data["train"]
        self.model.train()
        for batch in torch.randint(len(y), (UPDATES, BATCH)):
            labels = y[batch]
            drawn = torch.rand(BATCH) < LABEL_NOISE  # afresh every batch: gradient noise
            labels = torch.where(drawn, torch.randint(0, 10, (BATCH,)), labels)
            loss = F.cross_entropy(self.model(x[batch]), labels)
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
    """A member on a fixed schedule family: its lr until CUT of STEPS, then lr / 10.
    Random search over these members (exploit none) is the population-sized reference a
    non-greedy search should reach (benchmarks/greedy.py)."""

    def apply(self, hparams: Mapping[str, Any]) -> None:
        super().apply(hparams)
        self.lr = float(hparams["lr"])

    def step(self) -> None:
        lr = self.lr if self.current_step < round(CUT * STEPS) else self.lr / 10
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        super().step()


trainable = GreedyDigits  # what `populace run` trains; the Cut is for the benchmark


def train_schedule(lr: float, seed: int, cut: float | None = None) -> dict[str, float]:
    """One member trained alone at `lr`, divided by 10 after `cut` of the steps (None:
    constant): its final metrics. The references the benchmark sets PBT against."""
    member = GreedyDigits()
    member.build({"lr": lr}, seed)
    for step in range(STEPS):
        if cut is not None and step == round(cut * STEPS):
            member.apply({"lr": lr / 10})
        member.step()
    return member.evaluate()


def compare(schedules: Sequence[tuple[float, float | None]], seeds: int) -> list[str]:
    """Mean final validation loss and accuracy of each (lr, cut) schedule, a line each."""
    lines = []
    for lr, cut in schedules:
        found = [train_schedule(lr, seed, cut) for seed in range(seeds)]
        loss = [m["loss"] for m in found]
        lines.append(f"| {lr:g} | {'never' if cut is None else f'{cut:.0%}'} | "
                     f"{statistics.mean(loss):.3f} [{min(loss):.3f}, {max(loss):.3f}] | "
                     f"{statistics.mean(m['accuracy'] for m in found):.3f} |")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    began = time.perf_counter()
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print("| lr | cut by 10 at | mean loss [min, max] | mean accuracy |\n|---|---|---|---|")
    compare([(0.3, None), (0.5, None), (1.0, None), (1.0, 0.25), (1.0, 0.5), (1.0, CUT),
             (0.6, CUT)], seeds=seeds)
    print(f"{time.perf_counter() - began:.0f} s")
