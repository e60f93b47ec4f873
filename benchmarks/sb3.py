"""Stable-Baselines3 under populace: PBT against random search, SB3's PPO and SAC.

    nice -n 19 .venv/bin/python benchmarks/sb3.py --seeds 5

The tasks are the examples at their own config: examples/sb3_ppo.py on CartPole-v1
and Acrobot-v1 (6 members, 12 steps of 2048 environment steps: 24,576 per member,
ready every 2 steps, truncation 0.25, perturb-or-resample) and examples/sb3_sac.py on
Pendulum-v1 (4 members, 10 steps of 500: 5,000 per member, scored on 5 separate
deterministic episodes). For each task and seed, PBT and random search (the same run
with exploit none: the seed's initial hparams and member seeds, so the same initial
weights and environments) train on the same budget, each a fresh process on the
local executor with 2 workers; wall time and the peak summed RSS of the process tree
are measured from outside. Seeds go in the outer loop, so a stopped benchmark leaves
whole comparisons. `--records FILE` keeps every run's record (stores beside it) and
resumes from it; the section in benchmarks/RESULTS.md is rewritten after every run.
`child` runs one method of one task and seed (the driver starts it); `report` writes the
section again from `--records` alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from overhead import Sampler
from results import RESULTS, write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = {  # task: (example, POPULACE_ENV)
    "CartPole-v1": (ROOT / "examples" / "sb3_ppo.py", "CartPole-v1"),
    "Acrobot-v1": (ROOT / "examples" / "sb3_ppo.py", "Acrobot-v1"),
    "Pendulum-v1": (ROOT / "examples" / "sb3_sac.py", ""),
}
METHODS = ("PBT", "random search")
HEADING = "## Stable-Baselines3 under PBT: PPO on classic control, SAC on Pendulum"
WORKERS = 2
BESIDE = (
    "Beside populace's own PPO (examples/rl_cartpole.py, \"Reinforcement learning: PPO on "
    "classic control\" above: 8 members, 61,440 environment steps each, the t-test exploit, "
    "median member 500.0 [165.8, 500.0] with PBT against 231.2 [129.7, 251.7] with random "
    "search on CartPole), SB3's PPO here trains 6 members on 24,576 steps each with "
    "truncation 0.25, and SAC 4 members on 5,000 steps each. The budget is what 30 runs on "
    "two shared cores finish in about an hour; it separates good hparams from bad ones "
    "(random search's median member ends well below its best on every task). Wall times "
    "say more about the other work on the cores than about the methods: the same kind of "
    "run took from 34 to 231 s. Every run is seeded, but an asynchronous run on 2 workers "
    "does not repeat exactly (README, \"What repeats\")."
)


def child(args: argparse.Namespace) -> None:
    """One populace run of a task's example; its figures from the store, as a BENCH line."""
    import populace
    from populace.script import load_script
    from populace.store import open_store

    example, env = TASKS[args.task]
    os.environ["POPULACE_ENV"] = env  # before the script loads, here and in workers
    script = load_script(example)
    settings = {**script.config, "seed": args.seed, "workers": WORKERS}
    if args.method == "random search":
        settings["exploit"] = "none"
    result = populace.run(script.trainable, script.space, store=args.store, script=example,
                          progress=False, **settings)
    db = open_store(args.store)
    try:
        members, exploits, results = db.members(), db.events("exploit"), db.results()
    finally:
        db.close()
    last = {r.member: r for r in results if r.step == settings["steps"]}
    print("BENCH " + json.dumps({
        "best": result.score, "median": statistics.median(m.score for m in members),
        "exploits": len(exploits),
        "timesteps": sum(r.metrics["timesteps"] for r in last.values()) / len(last),
    }), flush=True)


def measure(cmd: list, timeout: float = 3600) -> dict:
    """Run `cmd` in a fresh session; its last `BENCH {json}` line, wall time and peak RSS."""
    with tempfile.TemporaryFile() as log:
        launched = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            code = proc.wait()
        wall = time.perf_counter() - launched
        sampler.stop()
        log.seek(0)
        text = log.read().decode(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.startswith("BENCH ")]
    if code != 0 or not lines:
        raise RuntimeError(f"{shlex.join(map(str, cmd))}: exit {code}\n" + text[-3000:])
    return {**json.loads(lines[-1][6:]), "wall": wall, "rss": sampler.rss}


def spread(values: list[float], digits: int = 1) -> str:
    """median [min, max]"""
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}, {max(values):.{digits}f}]")


def section(records: list[dict], command: str) -> str:
    """The RESULTS.md section: per task, each method's figures over seeds, and per seed."""
    date = datetime.date.today().isoformat()
    lines = [HEADING, "", f"{date}, `{command}`, {platform.machine()}, 2 cores shared with "
             "other work, `nice -n 19`, populace's local executor with 2 workers. The "
             "score: the best and the median member's final score (PPO: the mean return "
             "of the last 10 training episodes; SAC: 5 deterministic evaluation episodes), "
             "over seeds, median [min, max].", ""]
    lines += ["| task | method | seeds | best member | median member | exploits | "
              "wall (s) | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|"]
    for task in TASKS:
        for method in METHODS:
            rows = [r for r in records if r["task"] == task and r["method"] == method]
            if rows:
                lines.append(
                    f"| {task} | {method} | {len(rows)} | {spread([r['best'] for r in rows])} "
                    f"| {spread([r['median'] for r in rows])} "
                    f"| {spread([r['exploits'] for r in rows], 0)} "
                    f"| {spread([r['wall'] for r in rows], 0)} "
                    f"| {spread([r['rss'] / 2**20 for r in rows], 0)} |")
    lines += ["", "Per seed, best / median member (PBT against random search):", "",
              "| task | seed | PBT | random search |", "|---|---|---|---|"]
    for task in TASKS:
        for seed in sorted({r["seed"] for r in records if r["task"] == task}):
            cells = []
            for method in METHODS:
                row = [r for r in records if (r["task"], r["seed"], r["method"])
                       == (task, seed, method)]
                cells.append(f"{row[0]['best']:.1f} / {row[0]['median']:.1f}" if row else "-")
            lines.append(f"| {task} | {seed} | {cells[0]} | {cells[1]} |")
    lines += ["", *tallies(records), "", BESIDE]
    return "\n".join(lines) + "\n"


def tallies(records: list[dict]) -> list[str]:
    """Per task, in how many seeds PBT's best and median member end above random search's."""
    lines = []
    for task in TASKS:
        pairs = []
        for seed in sorted({r["seed"] for r in records if r["task"] == task}):
            by = {r["method"]: r for r in records if (r["task"], r["seed"]) == (task, seed)}
            if len(by) == len(METHODS):
                pairs.append((by["PBT"], by["random search"]))
        if pairs:
            counts = []
            for key in ("best", "median"):
                above = sum(p[key] > q[key] for p, q in pairs)
                level = sum(p[key] == q[key] for p, q in pairs)
                counts.append(f"{key} member above in {above} of {len(pairs)} seeds"
                              + (f" (level in {level})" if level else ""))
            lines.append(f"- {task}, PBT against random search: {'; '.join(counts)}.")
    return lines


def drive(args: argparse.Namespace) -> None:
    records_path = args.records or Path(tempfile.mkdtemp()) / "records.json"
    records = json.loads(records_path.read_text()) if records_path.exists() else []
    folder = records_path.parent
    command = "nice -n 19 .venv/bin/python benchmarks/sb3.py --seeds " + str(args.seeds)
    for seed in range(args.seeds):
        for task in TASKS:
            for method in METHODS:
                if any((r["task"], r["seed"], r["method"]) == (task, seed, method)
                       for r in records):
                    continue
                store = folder / f"{task}-{seed}-{method.replace(' ', '-')}.db"
                for left in folder.glob(f"{store.stem}.*"):  # a stopped run's: start afresh
                    subprocess.run(["rm", "-rf", str(left)], check=True)
                record = measure([sys.executable, Path(__file__), "child", "--task", task,
                                  "--seed", seed, "--method", method, "--store", store])
                records.append({**record, "task": task, "seed": seed, "method": method})
                print(f"{task} seed {seed} {method}: best {record['best']:.1f}, median "
                      f"{record['median']:.1f}, {record['exploits']} exploits, "
                      f"{record['wall']:.0f} s", flush=True)
                records_path.write_text(json.dumps(records, indent=1))
                write_section(args.output, HEADING, section(records, command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("child")
    one.add_argument("--task", choices=list(TASKS), required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--method", choices=METHODS, required=True)
    one.add_argument("--store", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--records", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    sub.add_parser("report", help="rewrite the section from --records, running nothing")
    args = parser.parse_args()
    if args.command == "child":
        child(args)
    elif args.command == "report":
        command = "nice -n 19 .venv/bin/python benchmarks/sb3.py --seeds " + str(args.seeds)
        write_section(args.output, HEADING,
                      section(json.loads(args.records.read_text()), command))
    else:
        drive(args)


if __name__ == "__main__":
    main()
