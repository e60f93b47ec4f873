"""The dashboard at scale: a store of 1,000 members and 100,000 results.

Writes a SQLite store of a PBT run that size (members, results every 4 steps, the
exploits truncation would make: the bottom fifth copies the top fifth at every ready
point), serves its dashboard, and measures:

- the first page in a real browser (Debian's chromium, through Playwright), each load in
  a fresh browser context (nothing cached), from the navigation's start: `tables`, the
  first page complete (the runs table and the population table of 1,000 members
  filled), `score`, the score chart drawn too (the charts' script loaded and parsed, the
  thinned series read), and `charts`, every chart drawn (score with the best lineage,
  lineage, hparams, side by side);
- each poll's latency over HTTP: idle (nothing new), and after 1,000 new results that
  another connection writes, as the page asks for them (only what is newer than what it
  holds), and the runs table's refresh that goes with each poll.

    python benchmarks/dashboard.py                 # 1,000 members, 100,000 results
    python benchmarks/dashboard.py --members 100 --results 10000 --loads 3
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

import populace.dashboard as dashboard
from populace.config import RunConfig
from populace.space import Float, Space
from populace.store import RunRecord, open_store
from populace.strategies import space_to_dict

READY = 4  # steps between results


def write_store(path: Path, members: int, results: int, seed: int = 0) -> None:
    """A run of `members` members and `results` results in `path`, written in bulk."""
    space = Space({"lr": Float(1e-4, 1e-1, log=True), "momentum": Float(0.0, 0.99)})
    rounds = results // members
    config = RunConfig(population=members, steps=READY * rounds, ready_steps=READY)
    record = RunRecord(run=config.to_dict(), space=space_to_dict(space),
                       checkpoints=str(path.parent / "checkpoints"), trainable="bench:Bench")
    rng = np.random.default_rng(seed)
    hparams = [{"lr": float(10 ** rng.uniform(-4, -1)), "momentum": float(rng.uniform(0, .99))}
               for _ in range(members)]
    open_store(path).create(record, hparams)
    value = np.zeros(members)
    rate = np.array([0.5 + h["momentum"] for h in hparams])
    rows, events, now, result_id = [], [], time.time() - rounds * 60, 0
    for r in range(1, rounds + 1):
        step = READY * r
        value += rate * rng.uniform(0.5, 1.5, members)
        for m in range(members):
            result_id += 1
            rows.append((m, step - READY, step, float(value[m]), json.dumps({"score": value[m]}),
                         json.dumps(hparams[m]), 0.1, now + r * 60 + m * 0.01))
        order = np.argsort(value)
        fifth = members // 5
        for low, high in zip(order[:fifth], order[::-1][:fifth], strict=True):
            m, donor = int(low), int(high)
            after = {"lr": hparams[donor]["lr"] * float(rng.choice([0.8, 1.2])),
                     "momentum": hparams[donor]["momentum"]}
            events.append(("exploit", m, donor, step, step, json.dumps(hparams[m]),
                           json.dumps(after), "truncation+perturb", result_id,
                           now + r * 60 + 30))
            hparams[m], value[m], rate[m] = after, value[donor], rate[donor]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO results (member, start, step, score, metrics, hparams,"
                         " seconds, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO events (kind, member, donor, step, donor_step, before,"
                         " after, strategy, result, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         events)
        conn.executemany("UPDATE members SET step = ?, score = ?, hparams = ?, updated = ?,"
                         " generation = ? WHERE id = ?",
                         [(READY * rounds, float(value[m]), json.dumps(hparams[m]), time.time(),
                           rounds, m) for m in range(members)])
    conn.close()


def more_results(path: Path, n: int, step: int) -> None:
    """`n` new results (and their members' rows), as workers would report them."""
    conn = sqlite3.connect(path, timeout=60)
    members = conn.execute("SELECT COUNT(*) FROM members").fetchone()[0]
    now = time.time()
    with conn:
        conn.executemany(
            "INSERT INTO results (member, start, step, score, metrics, hparams, seconds, time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(i % members, step - READY, step, float(step), json.dumps({"score": step}),
              json.dumps({"lr": 0.01, "momentum": 0.5}), 0.1, now) for i in range(n)])
        conn.executemany("UPDATE members SET step = ?, updated = ? WHERE id = ?",
                         [(step, now, i % members) for i in range(n)])
    conn.close()


def fetch(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = json.load(r)
    return (time.perf_counter() - start) * 1000, body


def first_pages(url: str, loads: int) -> list[tuple[int, int, int]]:
    """(tables, score, charts) milliseconds from the navigation's start, one fresh
    context each."""
    from playwright.sync_api import sync_playwright

    import_path = Path(__file__).resolve().parents[1] / "tests"
    import sys

    sys.path.insert(0, str(import_path))
    from support.browser import chromium

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium()), args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            page = context.new_page()
            page.goto(url)
            deadline = time.monotonic() + 120
            while not page.evaluate("document.body.dataset.chartsMs"):
                assert time.monotonic() < deadline, "the charts were not drawn in 120 s"
                time.sleep(0.02)
            times.append(tuple(int(page.evaluate(f"document.body.dataset.{name}Ms"))
                               for name in ("tables", "score", "charts")))
            context.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5, help="first pages loaded")
    parser.add_argument("--polls", type=int, default=10, help="polls timed, of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.db"
        start = time.perf_counter()
        write_store(path, args.members, args.results)
        print(f"store: {args.members} members, {args.results} results, "
              f"{path.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - start:.0f} s")
        served = dashboard.start([path], port=0)
        try:
            pages = first_pages(served.url, args.loads)
            api = f"{served.url}api/runs/0/"
            _, overview = fetch(api + "overview")  # what the page holds once loaded
            last_result = overview["summary"]["latest_result"]
            last_event = overview["summary"]["latest_event"]
            updated = overview["updated"]
            idle, busy, runs, got = [], [], [], []
            step = READY * (args.results // args.members)
            for _ in range(args.polls):
                ms, body = fetch(api + f"poll?results={last_result}&events={last_event}"
                                 f"&since={updated}")
                idle.append(ms)
                step += READY
                more_results(path, 1000, step)
                ms, body = fetch(api + f"poll?results={last_result}&events={last_event}"
                                 f"&since={updated}")
                busy.append(ms)
                got.append(len(body["results"]))
                last_result, updated = body["results"][-1][0], body["updated"]
                runs.append(fetch(f"{served.url}api/runs")[0])
        finally:
            served.stop()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    for i, name in enumerate(("first page (both tables)", "score chart drawn",
                              "every chart drawn")):
        values = [p[i] for p in pages]
        print(f"{name}, ms from the navigation's start: median "
              f"{statistics.median(values):.0f} [{min(values)}, {max(values)}]  "
              f"({args.loads} loads)")
    for name, values in (("poll, idle", idle), ("poll after 1,000 new results", busy),
                         ("runs table refresh", runs)):
        print(f"{name}, ms: median {statistics.median(values):.1f} "
              f"[{min(values):.1f}, {max(values):.1f}]  ({len(values)} polls)")
    print(f"results each busy poll handed back: {sorted(set(got))}")


if __name__ == "__main__":
    main()
