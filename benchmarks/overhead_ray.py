"""The Ray Tune side of benchmarks/overhead.py: one job, run in Ray's own venv.

Ray is not a dependency of populace: benchmarks/overhead.py creates
benchmarks/.venv-ray (pip install "ray[tune]") and starts this script there in a
fresh process, measuring it from outside. By hand:

    BENCH_STATS=/tmp/stats benchmarks/.venv-ray/bin/python benchmarks/overhead_ray.py \
        --population 4 --steps 100 --ready 5 --step-ms 10 --storage /tmp/ray-bench

The same job as benchmarks/overhead_populace.py: a function trainable that sleeps per
step, reports every step (one training_iteration), and checkpoints a 1 MB state at
every ready point (every `--ready` steps); PBT with truncation (quantile 0.2) and
perturb-only explore (resample_probability 0), all members running at once on
fractional CPUs of ray.init(num_cpus=2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import tempfile
import time
import uuid
from pathlib import Path

STATE_BYTES = int(os.environ.get("BENCH_STATE_BYTES", str(1 << 20)))
HEADER = "<qqd"  # seed, step, lr (a format string: a Struct does not pickle)


def score(lr: float, step: int) -> float:
    return step * (1.0 - (math.log10(lr) + 1.5) ** 2 / 10)


def make_train(steps: int, ready: int, step_seconds: float, stats: str):
    from ray import tune

    def train(config):
        record = {"first": None, "last": None, "seconds": 0.0, "steps": 0}
        record_path = Path(stats) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        lr = config["lr"]
        seed = uuid.uuid4().int & ((1 << 62) - 1)
        state = bytearray(STATE_BYTES)
        count = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                with open(Path(folder) / "state.bin", "rb") as f:
                    state = bytearray(f.read())
            _, count, _ = struct.unpack_from(HEADER, state, 0)
        while count < steps:
            wall, started = time.time(), time.perf_counter()
            if step_seconds:
                time.sleep(step_seconds)
            count += 1
            ended = time.perf_counter()
            record["seconds"] += ended - started
            record["steps"] += 1
            if record["first"] is None:
                record["first"] = wall
            record["last"] = wall + (ended - started)
            metrics = {"score": score(lr, count), "step": count}
            if count % ready == 0 or count == steps:
                with tempfile.TemporaryDirectory() as folder:
                    struct.pack_into(HEADER, state, 0, seed, count, lr)
                    with open(Path(folder) / "state.bin", "wb") as f:
                        f.write(state)
                    record_path.write_text(json.dumps(record))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)

    return train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--ready", type=int, default=5)
    parser.add_argument("--step-ms", type=float, default=0.0)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--storage", required=True)
    args = parser.parse_args()
    stats = os.environ["BENCH_STATS"]

    import ray
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    imported = time.time()
    ray.init(num_cpus=args.cpus)
    initialised = time.time()

    pbt = PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=args.ready,
        quantile_fraction=0.2, resample_probability=0.0,
        hyperparam_mutations={"lr": tune.loguniform(1e-3, 1.0)},
    )
    train = make_train(args.steps, args.ready, args.step_ms / 1000, stats)
    tuner = tune.Tuner(
        tune.with_resources(train, {"cpu": args.cpus / args.population}),
        param_space={"lr": tune.loguniform(1e-3, 1.0)},
        tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=pbt,
                                    num_samples=args.population),
        run_config=tune.RunConfig(storage_path=os.path.abspath(args.storage), name="bench",
                                  verbose=0),
    )
    results = tuner.fit()
    returned = time.time()
    best = results.get_best_result().metrics.get("score")
    errors = len(results.errors)
    ray.shutdown()
    print("BENCH " + json.dumps({"imported": imported, "initialised": initialised,
                                 "returned": returned, "shutdown": time.time(),
                                 "exploits": getattr(pbt, "_num_perturbations", None),
                                 "errors": errors, "best": best}), flush=True)


if __name__ == "__main__":
    main()
