"""A trainable that records which hooks ran, in order, for each member object."""

import json
import os

from populace import Float, Trainable

space = {"x": Float(0.0, 1.0)}
config = {"population": 2, "steps": 8, "ready_steps": 2, "score": "score", "executor": "inline"}
CALLS: list[tuple[int, str, object]] = []


def record(obj, hook, data):
    """Keep the call in memory, and in $RECORDER_LOG (one line each) across processes."""
    CALLS.append((id(obj), hook, data))
    if os.environ.get("RECORDER_LOG"):
        with open(os.environ["RECORDER_LOG"], "a") as log:
            log.write(json.dumps([os.getpid(), id(obj), hook, data]) + "\n")


class Recorder(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        self.x = hparams["x"]
        record(self, "build", dict(hparams))

    def apply(self, hparams):
        self.x = hparams["x"]
        record(self, "apply", dict(hparams))

    def step(self):
        if self.x > float(os.environ.get("RECORDER_FAIL_ABOVE", "inf")):
            raise RuntimeError(f"x={self.x} fails")
        self.total += self.x

    def evaluate(self):
        return self.total

    def save(self, path):
        path.write_text(json.dumps({"total": self.total, "x": self.x}))

    def load(self, path):
        state = json.loads(path.read_text())
        self.total, self.x = state["total"], state["x"]  # the donor's x comes back here
        record(self, "load", state)
