"""examples/digits_mlp.py pruned by magnitude: accuracy against the weights it keeps, a
trade-off PBT can explore, for benchmarks/multi_objective.py.

After each epoch the smallest `sparsity` fraction of each layer's weights (by magnitude)
is set to zero; a pruned weight may grow back in the next epoch, and a lower sparsity
after an explore lets it. The member reports `accuracy` (validation), `kept` (the
fraction of weights that are not zero: its cost) and `weighted`, the scalarized goal
accuracy - 0.05 * kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from populace import Float
from populace.script import load_script

_DIGITS = load_script(Path(__file__).resolve().parents[1] / "examples" / "digits_mlp.py")
WEIGHT = 0.05  # accuracy given up for keeping every weight, in the scalarized goal

space = {**_DIGITS.space, "sparsity": Float(0.0, 0.98)}
config = {**_DIGITS.config, "population": 8, "executor": "inline", "workers": 1,
          "objectives": {"accuracy": "max", "kept": "min"}}


class DigitsSparse(_DIGITS.trainable):
    ignore = ("batch_size", "sparsity")  # both read from self by step

    def apply(self, hparams):
        super().apply(hparams)
        self.sparsity = hparams["sparsity"]

    def step(self):
        super().step()
        with torch.no_grad():
            for weight in self.weights():
                k = int(self.sparsity * weight.numel())
                if k:
                    threshold = weight.abs().flatten().kthvalue(k).values
                    weight[weight.abs() <= threshold] = 0.0

    def weights(self):
        return [m.weight for m in self.model if isinstance(m, torch.nn.Linear)]

    def evaluate(self):
        out = super().evaluate()
        kept = sum(int((w != 0).sum()) for w in self.weights()) / sum(
            w.numel() for w in self.weights())
        return {**out, "kept": kept, "weighted": out["accuracy"] - WEIGHT * kept}
