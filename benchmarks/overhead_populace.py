"""The populace side of benchmarks/overhead.py: one job, run in populace's own venv.

Not meant to be run by hand (benchmarks/overhead.py starts it in a fresh process and
measures it from outside), but it can be:

    BENCH_STATS=/tmp/stats .venv/bin/python benchmarks/overhead_populace.py \
        --population 4 --steps 100 --ready 5 --step-ms 10 --store /tmp/b.db

The job's settings reach the spawned worker processes through environment variables
(BENCH_*), read when they import this module.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import time
import uuid
from pathlib import Path

import populace
from populace import Float, Trainable

STEP_SECONDS = float(os.environ.get("BENCH_STEP_S", "0"))
STATE_BYTES = int(os.environ.get("BENCH_STATE_BYTES", str(1 << 20)))
STATS = Path(os.environ.get("BENCH_STATS", "."))
HEADER = struct.Struct("<qqd")  # seed, step, lr: makes every saved state unique


class Record:
    """Time spent in step() by one trainable object, written next to each save."""

    def __init__(self) -> None:
        self.path = STATS / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.first = self.last = None
        self.seconds = 0.0
        self.steps = 0

    def step(self, started: float, wall_started: float) -> None:
        ended = time.perf_counter()
        self.seconds += ended - started
        self.steps += 1
        if self.first is None:
            self.first = wall_started
        self.last = wall_started + (ended - started)

    def write(self) -> None:
        if self.steps:
            self.path.write_text(json.dumps({"first": self.first, "last": self.last,
                                             "seconds": self.seconds, "steps": self.steps}))


def score(lr: float, step: int) -> float:
    """Best near lr = 0.03; grows with the steps trained."""
    return step * (1.0 - (math.log10(lr) + 1.5) ** 2 / 10)


class Bench(Trainable):
    """Sleeps STEP_SECONDS per step; its state is STATE_BYTES bytes."""

    def build(self, hparams, seed):
        self.lr = hparams["lr"]
        self.seed = seed
        self.count = 0
        self.state = bytearray(STATE_BYTES)
        self.record = Record()

    def step(self):
        wall, started = time.time(), time.perf_counter()
        if STEP_SECONDS:
            time.sleep(STEP_SECONDS)
        self.count += 1
        self.record.step(started, wall)

    def evaluate(self):
        return score(self.lr, self.count)

    def save(self, path):
        HEADER.pack_into(self.state, 0, self.seed, self.count, self.lr)
        with open(path, "wb") as f:
            f.write(self.state)
        self.record.write()

    def load(self, path):
        with open(path, "rb") as f:
            self.state = bytearray(f.read())
        _, self.count, _ = HEADER.unpack_from(self.state, 0)

    def apply(self, hparams):
        self.lr = hparams["lr"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--ready", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    imported = time.time()
    result = populace.run(
        Bench, {"lr": Float(1e-3, 1.0, log=True)}, store=args.store,
        population=args.population, steps=args.steps, ready_steps=args.ready,
        exploit="truncation", explore="perturb", executor="local", workers=args.workers,
        progress=False,
    )
    returned = time.time()
    from populace.store import open_store
    store = open_store(args.store)
    exploits = len(store.events("exploit"))
    results = len(store.results())
    store.close()
    print("BENCH " + json.dumps({"imported": imported, "returned": returned,
                                 "exploits": exploits, "results": results,
                                 "best": result.score}), flush=True)


if __name__ == "__main__":
    main()
