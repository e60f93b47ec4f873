"""How populace's ready cycle grows with the population and with the store's size.

A ready cycle outside the user's own save: claim a member, then one report
transaction (result and checkpoint rows, the population snapshot, truncation exploit
and perturb explore, the copy applied), against SQLite, with fake checkpoint rows and
no files, as in benchmarks/ready_cycle.py. Two sweeps:

- population 4 .. 1000 on a fresh store (after every member has reported once);
- store size: the results table pre-filled with 10^3 .. 10^6 rows (executemany in one
  transaction, straight into SQLite), optionally with as many deleted checkpoint rows
  (what a long run leaves behind), at a fixed population.

    .venv/bin/python benchmarks/scaling.py --plot benchmarks/scaling.png

With `--postgresql URL` the population sweep runs against that PostgreSQL server
instead, each population in a schema of its own (created, then dropped); the store-size
sweep is SQLite's alone (`--sizes` none).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ready_cycle import _postgres_schema  # benchmarks/, the script's folder

from populace.config import RunConfig
from populace.segment import make_decide
from populace.space import Float, Space
from populace.store import Report, RunRecord, open_store
from populace.strategies import space_to_dict


def fill(path: Path, rows: int, population: int, checkpoints: bool) -> float:
    """Add `rows` results (and, if asked, as many deleted checkpoint rows); seconds taken."""
    started = time.perf_counter()
    rng = np.random.default_rng(1)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    now = time.time()
    members = rng.integers(0, population, rows)
    scores = rng.random(rows)
    lrs = rng.random(rows)
    conn.executemany(
        "INSERT INTO results (member, start, step, score, metrics, hparams, seconds, time)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((int(m), -5 - i, -i, float(s), json.dumps({"score": float(s)}),
          json.dumps({"lr": float(lr), "momentum": 0.9}), 0.01, now)
         for i, (m, s, lr) in enumerate(zip(members, scores, lrs, strict=True))),
    )
    if checkpoints:
        conn.executemany(
            "INSERT INTO checkpoints (member, step, key, sha256, bytes, created, deleted)"
            " VALUES (?, ?, ?, ?, ?, ?, 1)",
            ((int(m), -i, f"{i:064x}"[:2] + f"/{i:064x}.ckpt", f"{i:064x}", 1000, now)
             for i, m in enumerate(members)),
        )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def measure(population: int, cycles: int, prefill: int = 0,
            checkpoints: bool = False, postgresql: str | None = None) -> dict[str, float]:
    """Milliseconds per claim, per report (with its decision) and per cycle."""
    space = Space({"lr": Float(1e-4, 1e-1, log=True), "momentum": Float(0.0, 0.99)})
    config = RunConfig(population=population, steps=10**9, ready_steps=5,
                       exploit="truncation", explore="perturb")
    decide = make_decide(config, space)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder, (
            _postgres_schema(postgresql, f"scaling_{uuid.uuid4().hex[:12]}") if postgresql
            else _nothing()) as url:
        path = Path(folder) / "run.db"
        store = open_store(url or path)
        store.create(RunRecord(run=config.to_dict(), space=space_to_dict(space),
                               checkpoints=folder, trainable="bench:Bench",
                               window=config.window()),
                     [space.sample(rng) for _ in range(population)])
        filled = fill(path, prefill, population, checkpoints) if prefill else 0.0
        claims, reports, exploits = [], [], 0
        # a fixed checkpoint-id offset keeps the fake keys apart from the pre-filled ones
        for i in range(population + cycles):
            started = time.perf_counter()
            member = store.claim("worker", 60.0)
            claimed = time.perf_counter()
            sha = f"{i + 10**9:064x}"
            outcome = store.report(
                Report(member.id, "worker", member.step, member.step + 5,
                       float(rng.random()), {"score": 0.0}, member.hparams,
                       f"{sha[:2]}/{sha}.ckpt", sha, 1000, False), decide, 2)
            ended = time.perf_counter()
            if i >= population:
                claims.append(claimed - started)
                reports.append(ended - claimed)
                exploits += outcome.decision is not None
        store.close()  # checkpoints the WAL into the file
        db_bytes = sum(p.stat().st_size for p in Path(folder).glob("run.db*"))  # 0: PostgreSQL
    claim, report = np.array(claims) * 1000, np.array(reports) * 1000
    cycle = claim + report
    return {"population": population, "prefill": prefill, "checkpoints": checkpoints,
            "cycles": cycles, "claim": float(np.median(claim)),
            "report": float(np.median(report)), "median": float(np.median(cycle)),
            "p95": float(np.percentile(cycle, 95)), "max": float(cycle.max()),
            "exploits": exploits, "fill_s": filled, "db_mb": db_bytes / 2**20}


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def row(r: dict) -> str:
    return (f"| {r['population']} | {r['prefill']:,} | {r['claim']:.3f} | {r['report']:.3f} | "
            f"{r['median']:.3f} | {r['p95']:.3f} | {r['max']:.2f} | {r['exploits']} | "
            f"{r['db_mb']:.1f} | {'yes' if r['checkpoints'] else 'no'} |")


HEAD = ("| population | results pre-filled | claim ms | report + decision ms | cycle ms, median "
        "| p95 | max | exploits | store MB | + deleted checkpoint rows |\n"
        "|---|---|---|---|---|---|---|---|---|---|")


def plot(by_population: list[dict], by_size: dict[str, list[dict]], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [r["population"] for r in by_population]
    a.plot(x, [r["median"] for r in by_population], "o-", label="cycle (median)")
    a.plot(x, [r["p95"] for r in by_population], "o:", label="cycle (p95)")
    a.plot(x, [r["claim"] for r in by_population], "s--", label="claim")
    a.plot(x, [r["report"] for r in by_population], "^--", label="report + decision")
    a.axhline(5.0, color="red", lw=0.8, label="target 5 ms")
    a.set(xscale="log", yscale="log", xlabel="population",
          ylabel="ms per ready cycle", title="ready cycle vs population (fresh store)")
    a.legend(fontsize=8)
    for label, rows in by_size.items():
        b.plot([r["prefill"] for r in rows], [r["median"] for r in rows],
               "s--" if "checkpoint" in label else "o-", label=label)
    b.axhline(5.0, color="red", lw=0.8, label="target 5 ms")
    b.set(xscale="log", yscale="log", xlabel="rows pre-filled in the results table",
          ylabel="ms per ready cycle (median)", title="ready cycle vs store size")
    b.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, nargs="+",
                        default=[16, 64, 256, 1024, 10000])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--postgresql", metavar="URL",
                        help="the population sweep on this PostgreSQL server, not SQLite")
    parser.add_argument("--size-populations", type=int, nargs="+", default=[64, 1000],
                        help="populations of the store-size sweep")
    parser.add_argument("--checkpoint-rows", action="store_true",
                        help="also a sweep with as many deleted checkpoint rows as results")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--replot", type=Path, help="only redraw --plot from a --json file")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.replot.read_text())
        plot(saved["population"], saved["size"], args.plot)
        return

    print("Ready cycle vs population (fresh store):\n")
    print(HEAD)
    by_population = []
    for n in args.populations:
        by_population.append(measure(n, args.cycles, postgresql=args.postgresql))
        print(row(by_population[-1]), flush=True)
    by_size: dict[str, list[dict]] = {}
    if args.postgresql and args.sizes:
        parser.error("the store-size sweep fills SQLite files: give --sizes with no values")
    if args.sizes:
        print("\nReady cycle vs store size:\n")
        print(HEAD)
    variants = [False, True] if args.checkpoint_rows else [False]
    for n in args.size_populations if args.sizes else ():
        for with_checkpoints in variants:
            label = f"population {n}" + (" + checkpoint rows" if with_checkpoints else "")
            for size in args.sizes:
                r = measure(n, args.cycles, size, with_checkpoints)
                by_size.setdefault(label, []).append(r)
                print(row(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"population": by_population, "size": by_size},
                                        indent=1))
    if args.plot:
        plot(by_population, by_size, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
