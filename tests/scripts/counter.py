"""A cheap trainable for end-to-end tests: its score is how far it got, scaled by x.

COUNTER_FAIL_ABOVE makes members whose x exceeds it raise in `step`;
COUNTER_NAN_ABOVE makes their score NaN; COUNTER_FAIL_ONCE (a folder) makes
each member raise once, the first time it steps; COUNTER_SLEEP slows each step
down so a test can interrupt a run in the middle.
"""

import errno
import json
import os
import time

from populace import Float, Trainable

space = {"x": Float(0.0, 1.0)}
config = {"population": 4, "steps": 20, "ready_steps": 4, "score": "total"}


class Counter(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        # read at build time: the module may have been imported before a test set them
        self.fail_above = float(os.environ.get("COUNTER_FAIL_ABOVE", "inf"))
        self.sleep = float(os.environ.get("COUNTER_SLEEP", "0"))
        self.nan_above = float(os.environ.get("COUNTER_NAN_ABOVE", "inf"))
        self.seed = seed
        self.apply(hparams)

    def apply(self, hparams):
        self.x = hparams["x"]

    def step(self):
        if self.x > self.fail_above:
            raise RuntimeError(f"x={self.x} is too large")
        if os.environ.get("COUNTER_FAIL_ONCE"):
            marker = os.path.join(os.environ["COUNTER_FAIL_ONCE"], str(self.seed))
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError(f"a passing failure of the member with seed {self.seed}")
        time.sleep(self.sleep)
        self.total += self.x

    def evaluate(self):
        total = float("nan") if self.x > self.nan_above else self.total
        return {"total": total, "x": self.x}

    def save(self, path):
        if os.environ.get("COUNTER_DISK_FULL"):  # a full disk, halfway through the file
            path.write_text("{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        path.write_text(json.dumps(self.total))

    def load(self, path):
        self.total = json.loads(path.read_text())
