"""The counter of counter.py as a training function: each step adds x to a total, the
score, so a score inside a segment lies on the line between its start and its end."""

import torch

from populace import Float

space = {"x": Float(0.0, 1.0)}
config = {"population": 8, "steps": 40, "ready_steps": 4, "score": "total"}


def trainable(member):
    torch.set_num_threads(1)
    model = torch.nn.Module()
    model.register_buffer("total", torch.zeros((), dtype=torch.float64))
    member.register({"model": model}, ignore=("x",))
    while member.training:
        model.total += member.hparams["x"]
        member.report(total=float(model.total))
