"""A cheap trainable for end-to-end tests: its score is how far it got, scaled by x.

COUNTER_FAIL_ABOVE makes members whose x exceeds it raise in `step`;
COUNTER_NAN_ABOVE makes their score NaN; COUNTER_FAIL_ONCE (a folder) makes
each member raise once, the first time it steps; COUNTER_NAN_ONCE (a folder)
makes each member's first evaluation after training NaN; COUNTER_BAD_SCORE is the score those
two give (default "nan"; "inf", "-inf"); COUNTER_SLEEP slows each step down so
a test can interrupt a run in the middle; COUNTER_PIDS (a folder) gets a file
named after the process id holding the seed of the member it last built, so a
test can tell which member a worker process trains; COUNTER_EVALS (a file) gets
a line at each evaluation, so a test can follow a run without opening its store;
COUNTER_SATURATE caps the total, so a member's state stops changing and members
write checkpoints of the same bytes, over and over; COUNTER_SLOW_START (a folder) makes
every process but the first to import this script take 2 s longer to start;
COUNTER_HANG_ONCE (a folder) makes the first member to reach its third step
in a process hang there, once in the whole run (a deadlocked data loader);
COUNTER_HIDE_ERRNO makes a failed save raise a RuntimeError that hides the OSError
behind it, as torch's zip writer does.
"""

import errno
import json
import os
import time

from populace import Float, Trainable

if os.environ.get("COUNTER_SLOW_START"):
    try:  # the first importer leaves a mark and starts at once; the others are slow
        os.close(os.open(os.path.join(os.environ["COUNTER_SLOW_START"], "first"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        time.sleep(2.0)

space = {"x": Float(0.0, 1.0)}
config = {"population": 4, "steps": 20, "ready_steps": 4, "score": "total"}


class Counter(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        self.trained = 0  # steps this object took (the run's preflight evaluates untrained)
        # read at build time: the module may have been imported before a test set them
        self.fail_above = float(os.environ.get("COUNTER_FAIL_ABOVE", "inf"))
        self.sleep = float(os.environ.get("COUNTER_SLEEP", "0"))
        self.nan_above = float(os.environ.get("COUNTER_NAN_ABOVE", "inf"))
        self.bad_score = float(os.environ.get("COUNTER_BAD_SCORE", "nan"))
        self.saturate = float(os.environ.get("COUNTER_SATURATE", "inf"))
        self.seed = seed
        if os.environ.get("COUNTER_PIDS"):
            folder = os.environ["COUNTER_PIDS"]
            tmp = os.path.join(folder, f".{os.getpid()}")
            with open(tmp, "w") as f:
                f.write(str(seed))
            os.replace(tmp, os.path.join(folder, str(os.getpid())))
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
        if os.environ.get("COUNTER_HANG_ONCE") and self.trained == 2:
            try:  # the first member to get here hangs, once in the whole run
                os.close(os.open(os.path.join(os.environ["COUNTER_HANG_ONCE"], "hung"),
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                time.sleep(3600)
            except FileExistsError:
                pass
        time.sleep(self.sleep)
        self.total = min(self.total + self.x, self.saturate)
        self.trained += 1

    def evaluate(self):
        total = self.bad_score if self.x > self.nan_above else self.total
        if os.environ.get("COUNTER_NAN_ONCE") and self.trained:
            marker = os.path.join(os.environ["COUNTER_NAN_ONCE"], str(self.seed))
            if not os.path.exists(marker):
                open(marker, "w").close()
                total = self.bad_score
        if os.environ.get("COUNTER_EVALS") and self.trained:
            with open(os.environ["COUNTER_EVALS"], "a") as evals:
                evals.write(f"{self.seed} {self.trained}\n")
        return {"total": total, "x": self.x}

    def save(self, path):
        # a disk that fills once training starts (the run's preflight saves untrained),
        # halfway through the file
        if os.environ.get("COUNTER_DISK_FULL") and self.trained:
            path.write_text("{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        try:
            path.write_text(json.dumps(self.total))
            return
        except OSError:
            if not os.environ.get("COUNTER_HIDE_ERRNO"):
                raise
        raise RuntimeError("[enforce fail] unexpected pos 107584 vs 107512 (a failed write, "
                           "its errno hidden as torch's zip writer hides it)")

    def load(self, path):
        self.total = json.loads(path.read_text())
