"""Soak: real runs on the local executor under faults injected at random moments.

Each round is one run of tests/scripts/counter.py (`populace run`, local
executor) on a fresh store. While it trains, faults come at random moments
(exponential gaps): SIGKILL of one worker process, SIGKILL of the whole run
(process group) then `populace run` again on the same store, SIGTERM of one
worker or of the whole run (then resumed), SIGSTOP of one worker for longer
than its lease (another worker takes its member over; its late report must
be refused), and a damaged checkpoint file (truncated, one byte flipped, or
deleted). A run that ends before every member is done is resumed.

After each round the store is checked: every member at the final step,
results lost (a result seen committed during the run and missing at the end,
or a gap in a member's own history), duplicated results and events, each
member's lineage one unbroken line, time to recover (from a kill to the next
accepted report of the member it interrupted). The figures go to
benchmarks/faults.md.

    nice -n 10 .venv/bin/python benchmarks/soak.py --minutes 10 --seed 0

The fault schedule (which fault, which gap, which victim by rank) is drawn
from --seed, so a rerun injects the same sequence of faults; the exact moment
a fault lands in a run's progress depends on the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
from results import write_section

from populace.lineage import lineage
from populace.segment import member_seed
from populace.store import open_store, store_exists

ROOT = Path(__file__).resolve().parents[1]
COUNTER = ROOT / "tests" / "scripts" / "counter.py"
FAULTS = {  # kind: weight
    "kill-worker": 0.25,
    "kill-run": 0.2,
    "term-worker": 0.1,
    "term-run": 0.1,
    "stop-worker": 0.1,
    "damage-checkpoint": 0.25,
}
# PostgreSQL only: the server restarts (fast or immediate, at random), or ends every
# client's connection
SERVER_FAULTS = {"restart-server": 0.15, "drop-connections": 0.1}
TIMED = ("kill-worker", "kill-run", "term-worker", "term-run", "stop-worker",
         *SERVER_FAULTS)


@dataclass
class Fault:
    kind: str
    at: float  # wall clock, as the store's result times
    members: set[int]  # members interrupted (training when it landed)
    detail: str = ""


@dataclass
class Round:
    number: int
    seed: int
    seconds: float = 0.0
    starts: int = 0
    exits: Counter = field(default_factory=Counter)  # exit status of each run that ended
    early_success: int = 0  # runs that exited 0 while members were still left to train
    start_errors: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    results: int = 0
    events: Counter = field(default_factory=Counter)
    lost: int = 0
    duplicate_results: int = 0
    duplicate_events: int = 0
    members_done: int = 0
    population: int = 0
    broken_lineages: int = 0
    damaged: int = 0  # checkpoint files damaged (one may be hit twice)
    damaged_detected: int = 0
    saturated: bool = False  # the counter's total capped: checkpoints of the same bytes
    recovers_unexplained: int = 0  # recover events naming no file the soak damaged
    orphan_files: int = 0
    temp_dirs: int = 0
    recovery: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def workers_of(pid: int) -> list[int]:
    """The run's worker processes: spawned by it (GPU workers), or forked by its fork
    server (a child of the run, whose own children are the workers)."""
    found = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "spawn_main" in cmdline:
            found.append(child)
        elif "forkserver" in cmdline:
            found += children(child)
    return sorted(found)


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.deadline = time.monotonic() + args.minutes * 60
        self.rounds: list[Round] = []
        self.server = None
        self.faults = dict(FAULTS)
        if args.backend == "postgresql":
            sys.path.insert(0, str(ROOT / "tests"))
            from support.postgres import OwnServer  # the tests' server, run by pg_ctl

            self.server = OwnServer()
            self.faults.update(SERVER_FAULTS)
        kinds = args.faults.split(",") if args.faults else list(self.faults)
        unknown = sorted(set(kinds) - set(self.faults))
        if unknown:
            raise SystemExit(f"--faults: unknown {unknown}; known: {', '.join(self.faults)}")
        weights = np.array([self.faults[k] if k in kinds else 0.0 for k in self.faults])
        self.weights = weights / weights.sum()

    # -- one round -------------------------------------------------------------------------

    def round(self, number: int) -> Round:
        args = self.args
        seed = args.seed * 1000 + number
        rnd = Round(number, seed, population=args.population)
        rng = np.random.default_rng([args.seed, number])
        work = Path(tempfile.mkdtemp(prefix=f"populace-soak-{number}-"))
        store_path = (work / "soak.db" if self.server is None
                      else self.server.database(f"soak{args.seed}_{number}"))
        pids = work / "pids"
        pids.mkdir()
        config = work / "soak.yaml"
        config.write_text(f"lease_seconds: {args.lease_seconds}\nretries: 2\n")
        cmd = [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store",
               str(store_path), "--config", str(config), "--population", str(args.population),
               "--workers", str(args.workers), "--steps", str(args.steps), "--ready-steps",
               str(args.ready_steps), "--seed", str(seed), "--checkpoints",
               str(work / "checkpoints"), "--quiet"]
        env = {**os.environ, "COUNTER_SLEEP": str(args.step_seconds), "COUNTER_PIDS": str(pids),
               "COLUMNS": "200"}
        # every other round, states stop changing early: members write the same bytes again
        # and again, which collection must never delete under another row
        rnd.saturated = number % 2 == 1
        if rnd.saturated:
            env["COUNTER_SATURATE"] = "3.0"
        member_of = {member_seed(seed, m): m for m in range(args.population)}
        began = time.monotonic()

        def start() -> subprocess.Popen:
            rnd.starts += 1
            return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        proc = start()
        observer = None
        seen: dict[int, tuple] = {}
        stopped: dict[int, float] = {}  # pid -> monotonic time to continue it
        damaged: list[str] = []
        next_fault = time.monotonic() + self.gap(rng)
        while True:
            now = time.monotonic()
            if observer is None and store_exists(store_path):
                try:
                    observer = open_store(store_path)
                    observer.members()
                except Exception:  # still being created
                    if observer is not None:
                        observer.close()
                    observer = None
            if observer is not None:
                for r in observer.results():
                    seen.setdefault(r.id, (r.member, r.start, r.step, r.score))
            for pid, until in list(stopped.items()):
                if now >= until:
                    self.signal(pid, signal.SIGCONT)
                    del stopped[pid]
            code = proc.poll()
            if code is not None:
                output = proc.stdout.read().decode(errors="replace")
                rnd.exits[code] += 1
                if observer is not None and all(m.status in ("done", "failed")
                                                for m in observer.members()):
                    if code != 0:
                        rnd.problems.append(f"last run exited {code}: {output[-500:]}")
                    break
                if code == 0:  # claimed success, yet members are left: resumed all the same
                    rnd.early_success += 1
                if code == 2:  # refused to start: record why, then try again
                    rnd.start_errors.append(output.strip()[-300:])
                    time.sleep(0.2)
                for pid in stopped:  # a stopped worker of the ended run goes on or dies
                    self.signal(pid, signal.SIGCONT)
                stopped.clear()
                proc = start()
                continue
            if now >= next_fault and now < self.deadline and observer is not None:
                kind = str(rng.choice(list(self.faults), p=self.weights))
                pick = float(rng.random())  # which victim, by rank: reproducible by seed
                fault = self.inject(kind, pick, proc, observer, pids, member_of, stopped,
                                    damaged, rng)
                if fault is None:
                    rnd.skipped[kind] += 1
                else:
                    rnd.faults.append(fault)
                    print(f"round {number} +{time.monotonic() - began:6.1f}s {kind:<17} "
                          f"{fault.detail}", flush=True)
                next_fault = time.monotonic() + self.gap(rng)
            time.sleep(0.05)
        rnd.seconds = time.monotonic() - began
        self.check(rnd, observer, seen, damaged)
        observer.close()
        if not self.args.keep and not rnd.problems:
            shutil.rmtree(work)
        else:
            rnd.problems.append(f"kept {work}")
        return rnd

    def gap(self, rng: np.random.Generator) -> float:
        return max(0.3, float(rng.exponential(self.args.mean_gap)))

    @staticmethod
    def signal(pid: int, sig: int) -> bool:
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def inject(self, kind, pick, proc, observer, pids, member_of, stopped, damaged, rng):
        members = observer.members()
        running = {m.id for m in members if m.status == "running"}
        at = time.time()
        if kind == "restart-server":
            mode = "fast" if pick < 0.5 else "immediate"
            self.server.restart(mode)
            return Fault(kind, at, running, f"pg_ctl restart -m {mode}")
        if kind == "drop-connections":
            return Fault(kind, at, running, f"{self.server.drop_connections()} connections")
        if kind in ("kill-run", "term-run"):
            for pid in list(stopped):  # a stopped process takes SIGTERM only once continued
                self.signal(pid, signal.SIGCONT)
            stopped.clear()
            try:
                os.killpg(proc.pid, signal.SIGKILL if kind == "kill-run" else signal.SIGTERM)
            except ProcessLookupError:
                return None
            proc.wait()
            return Fault(kind, at, running, f"run {proc.pid}, members running {sorted(running)}")
        if kind == "damage-checkpoint":
            live = {m.checkpoint.key for m in members
                    if m.status != "done" and m.checkpoint is not None}
            rows = sorted(c.key for c in observer.checkpoints() if c.key in live)
            if not rows:
                return None
            key = rows[int(pick * len(rows))]
            path = Path(observer.config().checkpoints) / key
            how = str(rng.choice(["truncate", "flip", "delete"]))
            try:
                data = path.read_bytes()
                if how == "delete":
                    path.unlink()
                elif how == "truncate":
                    path.write_bytes(data[: len(data) // 2])
                else:
                    i = int(rng.integers(len(data)))
                    path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
            except FileNotFoundError:
                return None
            damaged.append(key)
            return Fault(kind, at, set(), f"{how} {key[:12]}")
        workers = [w for w in workers_of(proc.pid) if w not in stopped]
        if not workers:
            return None
        pid = workers[int(pick * len(workers))]
        try:
            member = member_of.get(int((pids / str(pid)).read_text()))
        except (OSError, ValueError):
            member = None
        held = {member} & running
        if kind == "kill-worker":
            sent = self.signal(pid, signal.SIGKILL)
        elif kind == "term-worker":
            sent = self.signal(pid, signal.SIGTERM)
        else:  # stop-worker: past its lease, so another worker takes its member over
            sent = self.signal(pid, signal.SIGSTOP)
            stopped[pid] = time.monotonic() + 1.5 * self.args.lease_seconds
        if not sent:
            return None
        return Fault(kind, at, held, f"worker {pid}, member {member}")

    # -- the checks --------------------------------------------------------------------------

    def check(self, rnd: Round, store, seen: dict[int, tuple], damaged: list[str]) -> None:
        args = self.args
        members, results, events = store.members(), store.results(), store.events()
        rnd.results = len(results)
        rnd.events = Counter(e.kind for e in events)
        rnd.members_done = sum(m.status == "done" and m.step == args.steps for m in members)
        now = {r.id: (r.member, r.start, r.step, r.score) for r in results}
        vanished = [i for i, row in seen.items() if now.get(i) != row]
        rnd.lost = len(vanished)
        moves = [e for e in events if e.kind in ("exploit", "recover") and e.result is not None]
        for m in members:
            own = [r for r in results if r.member == m.id]
            if own and own[0].start != 0 and not any(e.member == m.id and e.result < own[0].id
                                                     for e in moves):
                rnd.lost += 1
            for a, b in pairwise(own):
                between = [e for e in moves if e.member == m.id and a.id <= e.result < b.id]
                if between:
                    if between[-1].donor_step != b.start:
                        rnd.lost += 1
                        rnd.problems.append(f"member {m.id}: result {b.id} starts at {b.start},"
                                            f" its last copy was at {between[-1].donor_step}")
                elif b.start != a.step:
                    rnd.lost += 1  # a gap: a segment trained, its result missing
                    rnd.problems.append(f"member {m.id}: result {b.id} starts at {b.start}, "
                                        f"the one before ended at {a.step}")
                # the same segment stored twice, with no recovery sending the member back
            keys: dict[tuple[int, int], int] = {}
            for r in own:
                key = (r.start, r.step)
                if key in keys and not any(e.kind == "recover" and e.member == m.id
                                           and keys[key] <= e.result < r.id for e in moves):
                    rnd.duplicate_results += 1
                keys[key] = r.id
            path = lineage(m.checkpoint and m.checkpoint.id, results)
            if not path or path[0].start != 0 or path[-1].step != args.steps or any(
                    b.start != a.step for a, b in pairwise(path)):
                rnd.broken_lineages += 1
                line = " ".join(f"{r.member}:{r.start}-{r.step}" for r in path)
                rnd.problems.append(f"member {m.id}: lineage is not one line: {line}")
        event_keys = Counter((e.kind, e.member, e.donor, e.step, e.donor_step,
                              json.dumps(e.before), json.dumps(e.after), e.result)
                             for e in events)
        rnd.duplicate_events = sum(n - 1 for n in event_keys.values())
        recovers = [e.detail or "" for e in events if e.kind == "recover"]
        rnd.damaged = len(set(damaged))
        rnd.damaged_detected = sum(any(key in r for r in recovers) for key in set(damaged))
        rnd.recovers_unexplained = sum(not any(key in r for key in damaged) for r in recovers)
        for r in recovers:
            if not any(key in r for key in damaged):
                rnd.problems.append(f"a recover no injected damage explains: {r[:300]}")
        root = Path(store.config().checkpoints)
        live = {c.key for c in store.checkpoints()}
        files = [p for p in root.rglob("*.ckpt") if ".tmp-" not in str(p.relative_to(root))]
        rnd.orphan_files = sum(str(p.relative_to(root)) not in live for p in files)
        rnd.temp_dirs = len([p for p in root.glob(".tmp-*")])
        by_member: dict[int, list[float]] = {}
        for r in results:
            by_member.setdefault(r.member, []).append(r.time)
        for fault in rnd.faults:
            if fault.kind not in TIMED or not fault.members:
                continue
            # recovered once every member it interrupted has an accepted report again
            after = [min((t for t in by_member.get(m, []) if t > fault.at), default=None)
                     for m in fault.members]
            if None in after:
                rnd.problems.append(f"{fault.kind} at {fault.at}: a member never reported again")
                continue
            rnd.recovery.setdefault(fault.kind, []).append(max(after) - fault.at)

    # -- all rounds ------------------------------------------------------------------------

    def run(self) -> None:
        number = 0
        while time.monotonic() < self.deadline:
            rnd = self.round(number)
            self.rounds.append(rnd)
            print(f"round {number}: {rnd.seconds:.1f}s, {len(rnd.faults)} faults, "
                  f"{rnd.starts} starts, {rnd.results} results, lost {rnd.lost}, duplicates "
                  f"{rnd.duplicate_results}/{rnd.duplicate_events}, done "
                  f"{rnd.members_done}/{rnd.population}, problems {rnd.problems}", flush=True)
            number += 1


def heading(soak: Soak) -> str:
    """The section of benchmarks/faults.md this soak's backend owns."""
    return f"## {'PostgreSQL' if soak.server is not None else 'SQLite'}"


def summary(soak: Soak, command: str, seconds: float) -> str:
    rounds, args = soak.rounds, soak.args
    faults = Counter(f.kind for r in rounds for f in r.faults)
    skipped = sum((r.skipped for r in rounds), Counter())
    events = sum((r.events for r in rounds), Counter())
    exits = sum((r.exits for r in rounds), Counter())
    recovery: dict[str, list[float]] = {}
    for r in rounds:
        for kind, times in r.recovery.items():
            recovery.setdefault(kind, []).extend(times)
    total = lambda name: sum(getattr(r, name) for r in rounds)  # noqa: E731
    lines = [
        heading(soak),
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, by",
        "",
        "```sh",
        command,
        "```",
        "",
        f"{len(rounds)} runs of `tests/scripts/counter.py` on the local executor with a "
        f"{'PostgreSQL' if soak.server is not None else 'SQLite'} store, "
        f"{args.population} members, {args.workers} workers, {args.steps} steps each, ready "
        f"every {args.ready_steps} steps, {args.step_seconds * 1000:g} ms per step, leases of "
        f"{args.lease_seconds:g} s, retries 2; a fault every {args.mean_gap:g} s on average "
        f"(exponential gaps); {seconds / 60:.1f} minutes in all. Each run was resumed with "
        "`populace run` on the same store until every member was done, then checked.",
        "",
        "| check | result |",
        "|---|---|",
        f"| members at the final step | {total('members_done')} of "
        f"{sum(r.population for r in rounds)} |",
        f"| results lost | {total('lost')} |",
        f"| duplicated results | {total('duplicate_results')} |",
        f"| duplicated events | {total('duplicate_events')} |",
        f"| lineages broken (not one line from step 0 to the end) | {total('broken_lineages')} |",
        f"| results stored | {total('results')} |",
        f"| runs started (first starts and resumes) | {total('starts')} |",
        f"| resumes refused at start (exit 2) | {sum(len(r.start_errors) for r in rounds)} |",
        f"| runs that exited 0 with members left to train | {total('early_success')} |",
        f"| late reports refused (a stopped worker's lease was taken over) | "
        f"{events.get('refused', 0)} |",
        f"| damaged checkpoints detected by hash and recovered from | "
        f"{total('damaged_detected')} of {total('damaged')} files damaged (the rest were never "
        "loaded again) |",
        f"| 'recover' events: injected damage / anything else | "
        f"{events.get('recover', 0) - total('recovers_unexplained')} / "
        f"{total('recovers_unexplained')} |",
        f"| rounds whose checkpoints repeat (states stop changing) | "
        f"{sum(r.saturated for r in rounds)} of {len(rounds)} |",
        f"| segments retried / members failed | {events.get('retry', 0)} / "
        f"{events.get('failed', 0)} |",
        f"| orphan checkpoint files / temp folders left by kills | {total('orphan_files')} / "
        f"{total('temp_dirs')} |",
        "",
        "| fault | injected | time to recover, median s | max s |",
        "|---|---|---|---|",
    ]
    for kind in soak.faults:
        times = recovery.get(kind, [])
        med = f"{statistics.median(times):.2f}" if times else "-"
        top = f"{max(times):.2f}" if times else "-"
        lines.append(f"| {kind} | {faults.get(kind, 0)} | {med} | {top} |")
    lines += [
        "",
        "Time to recover: from the fault to the moment every member it interrupted (training "
        "when it landed) has an accepted report again, read from the store's result times; "
        "a damaged checkpoint is not timed (it is found only when loaded). Results lost: a "
        "result seen committed during the run and not in the store at the end, or a gap in a "
        "member's own history (a result that does not start where the member's previous one "
        "ended or where its last copy or recovery put it). Duplicates: the same segment of a "
        "member stored twice with no recovery in between, and identical event rows.",
        "",
        f"Exit status of each run process: {dict(sorted(exits.items()))} (0: finished; "
        "-9: killed by the soak; 143 (or -15, a SIGTERM before the run trained): terminated "
        "by it; 1: every worker process died).",
        f"Faults drawn but skipped (no worker or checkpoint to hit at that moment): "
        f"{dict(skipped) or 'none'}.",
    ]
    errors = [e for r in rounds for e in r.start_errors]
    if errors:
        lines += ["", "Resumes refused at start (first of each):", ""]
        lines += [f"- `{e.splitlines()[-1] if e else ''}`" for e in dict.fromkeys(errors)]
    problems = [f"round {r.number}: {p}" for r in rounds for p in r.problems]
    if problems:
        lines += ["", "Problems:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="inject faults for this long (the last run then finishes)")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--ready-steps", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=0.01)
    parser.add_argument("--lease-seconds", type=float, default=2.0)
    parser.add_argument("--mean-gap", type=float, default=2.0,
                        help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", help=f"comma-separated kinds to inject (default: all of "
                                         f"{', '.join(FAULTS)}; on PostgreSQL also "
                                         f"{', '.join(SERVER_FAULTS)})")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the store: a SQLite file, or a PostgreSQL server of the soak's "
                             "own (Debian's postgresql-15, installed if missing)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "faults.md"))
    parser.add_argument("--keep", action="store_true", help="keep every round's store")
    args = parser.parse_args()
    command = " ".join(["python", "benchmarks/soak.py", *sys.argv[1:]])
    started = time.monotonic()
    soak = Soak(args)
    try:
        soak.run()
    finally:
        if soak.server is not None:
            soak.server.close()
    text = summary(soak, command, time.monotonic() - started)
    print(text)
    if args.out:
        out = Path(args.out)
        if not out.exists():
            out.write_text("# Fault soak\n")
        write_section(out, heading(soak), text)
    broken = sum(r.lost + r.duplicate_results + r.duplicate_events + r.broken_lineages
                 + r.recovers_unexplained + (r.population - r.members_done)
                 for r in soak.rounds)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
