"""A training function (the function API): linear regression with SGD in torch.

REGRESSION_NAN_ABOVE makes members whose lr exceeds it report a NaN loss;
REGRESSION_SLEEP slows each step down (seconds), so worker processes that start at
different times still train side by side;
REGRESSION_CATCH=1 makes the loop catch what `member.report` raises and go on.
REGRESSION_AFTER_LOOP (a store path) makes the function, after its loop, append the
statuses of the store's members to that path + ".after", one JSON line each time.
"""

import os
import time

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
    torch.manual_seed(member.seed)  # the same initial weights on every run
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.0)
    if os.environ.get("REGRESSION_FORGET_REGISTER") != "1":
        member.register({"model": model, "optimizer": optimizer})
    while member.training:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), Y)
        loss.backward()
        optimizer.step()
        value = loss.item()
        time.sleep(float(os.environ.get("REGRESSION_SLEEP", "0")))
        if member.hparams["lr"] > float(os.environ.get("REGRESSION_NAN_ABOVE", "inf")):
            value = float("nan")
        try:
            member.report(loss=value, lr=optimizer.param_groups[0]["lr"])
        except Exception:
            if os.environ.get("REGRESSION_CATCH") != "1":
                raise
        if os.environ.get("REGRESSION_RETURN_EARLY") == "1":
            return
    if os.environ.get("REGRESSION_AFTER_LOOP"):
        import json

        from populace.store import open_store

        store = open_store(os.environ["REGRESSION_AFTER_LOOP"])
        with open(os.environ["REGRESSION_AFTER_LOOP"] + ".after", "a") as out:
            out.write(json.dumps([m.status for m in store.members()]) + "\n")
        store.close()
