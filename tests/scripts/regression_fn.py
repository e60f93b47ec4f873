"""A training function (the function API): linear regression with SGD in torch."""

import os

import torch

from populace import Float

space = {"lr": Float(1e-3, 0.3, log=True), "momentum": Float(0.0, 0.9)}
config = {"population": 4, "steps": 12, "ready_steps": 3, "score": "loss", "mode": "min"}

X = torch.linspace(-1, 1, 64).unsqueeze(1)
Y = 3 * X + 0.5


def trainable(member):
    torch.set_num_threads(1)
    if os.environ.get("REGRESSION_CALLS"):  # count the calls, one line each
        with open(os.environ["REGRESSION_CALLS"], "a") as calls:
            calls.write(f"{member.id}\n")
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.0)
    if os.environ.get("REGRESSION_FORGET_REGISTER") != "1":
        member.register({"model": model, "optimizer": optimizer})
    while member.training:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), Y)
        loss.backward()
        optimizer.step()
        member.report(loss=loss.item(), lr=optimizer.param_groups[0]["lr"])
        if os.environ.get("REGRESSION_RETURN_EARLY") == "1":
            return
