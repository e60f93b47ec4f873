"""The store's cost of one ready cycle at a large population: claim, report, decide.

A worker's ready cycle outside the user's own save is: claim a member, then
one transaction that stores the result and the checkpoint row, reads the
population snapshot, runs exploit and explore, and applies the copy. This
times that against a SQLite store, with fake checkpoint rows (no files), so
it measures populace's overhead alone.

    python benchmarks/ready_cycle.py --population 1000 --cycles 3000
    python benchmarks/ready_cycle.py --postgresql postgresql://me@host/db   # PostgreSQL

With --postgresql, each population's run goes to a schema of its own in that
database (created, then dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from populace.config import RunConfig
from populace.segment import make_decide
from populace.space import Float, Space
from populace.store import Report, RunRecord, open_store
from populace.strategies import space_to_dict


@contextmanager
def _postgres_schema(url: str, name: str) -> Iterator[str]:
    """A URL whose tables go to a new schema `name` of the database at `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def measure(population: int, cycles: int, exploit: str,
            postgresql: str | None = None) -> np.ndarray:
    """Milliseconds per claim + report + decision, after one warm-up round."""
    space = Space({"lr": Float(1e-4, 1e-1, log=True), "momentum": Float(0.0, 0.99)})
    config = RunConfig(population=population, steps=10**9, ready_steps=5, exploit=exploit)
    decide = make_decide(config, space)
    rng = np.random.default_rng(0)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        url = (stack.enter_context(_postgres_schema(postgresql, f"ready_cycle_{population}"))
               if postgresql else Path(folder) / "run.db")
        store = open_store(url)
        store.create(RunRecord(run=config.to_dict(), space=space_to_dict(space),
                               checkpoints=folder, trainable="bench:Bench",
                               window=config.window()),
                     [space.sample(rng) for _ in range(population)])
        times = []
        for i in range(population + cycles):
            started = time.perf_counter()
            member = store.claim("worker", 60.0)
            sha = f"{i:064x}"
            store.report(Report(member.id, "worker", member.step, member.step + 5,
                                float(rng.random()), {"score": 0.0}, member.hparams,
                                f"{sha[:2]}/{sha}.ckpt", sha, 1000, False), decide, 2)
            times.append(time.perf_counter() - started)
        store.close()
    return np.array(times[population:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, nargs="+", default=[4, 64, 1000])
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--exploit", default="truncation")
    parser.add_argument("--postgresql", help="a PostgreSQL database URL instead of SQLite")
    args = parser.parse_args()
    print("| population | median ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for n in args.population:
        ms = measure(n, args.cycles, args.exploit, args.postgresql)
        print(f"| {n} | {np.median(ms):.2f} | {np.percentile(ms, 95):.2f} | {ms.max():.2f} |")


if __name__ == "__main__":
    main()
