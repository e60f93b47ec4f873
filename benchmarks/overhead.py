"""populace's overhead against Ray Tune's PBT, on the same jobs, measured side by side.

Each job: a population of members, `--steps` steps each, a step that sleeps `--step-ms`
(0: does nothing), a 1 MB state saved at every ready point (every `--ready` steps),
truncation exploit (20%) with perturb explore. Each system runs the job in a fresh
process (populace: benchmarks/overhead_populace.py in populace's .venv, local executor,
one worker per core; Ray: benchmarks/overhead_ray.py in benchmarks/.venv-ray, all
members at once on fractional CPUs), and this process measures it from outside:

- wall: from starting the process to its exit (start-up and shut-down included);
- ideal: the time spent in step(), summed over all members, divided by the parallelism
  actually available (populace: its workers; Ray: the population, every member runs at
  once and a sleeping step needs no core);
- overhead = wall - ideal, and per ready cycle (population x steps / ready cycles);
- start-up: from starting the process to the first step of any member;
- peak memory: the largest sum, over the process and every descendant, of RSS and of
  PSS (shared pages split between the processes sharing them), sampled every 0.25 s;
- CPU: user + system seconds of the process and the descendants it waited for;
- the machine's load average before and after each job and the job's nice value are
  kept in the --json rows (other work on the cores slows every figure but CPU).

    .venv/bin/python benchmarks/overhead.py                      # populace and Ray, pop 4 16 64
    .venv/bin/python benchmarks/overhead.py --systems populace   # no Ray
    .venv/bin/python benchmarks/overhead.py --utilisation        # populace, 100 ms steps

The Ray side creates benchmarks/.venv-ray (python3 -m venv; pip install "ray[tune]")
the first time it is needed and reuses it after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RAY_VENV = HERE / ".venv-ray"
RAY_REQUIREMENT = "ray[tune]==2.60.0"
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- memory of a process tree, from /proc ----------------------------------------------


def _tree(root: int) -> list[int]:
    """`root` and every descendant (by parent pid) or member of its session."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        sessions[int(entry)] = int(fields[3])
    found = {root} | {pid for pid, sid in sessions.items() if sid == root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(pid for pid in found if pid in parents)


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        pss = 0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


class Sampler(threading.Thread):
    """Peak total RSS and PSS of a process tree, and the most processes seen at once."""

    def __init__(self, root: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.rss = self.pss = self.processes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = _tree(self.root)
            rss = pss = 0
            for pid in pids:
                r, p = _memory(pid)
                rss, pss = rss + r, pss + p
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
            self.processes = max(self.processes, len(pids))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# -- running one job ----------------------------------------------------------------


def ensure_ray_venv() -> Path:
    """benchmarks/.venv-ray/bin/python, created with Ray Tune and psutil the first time."""
    python = RAY_VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import ray.tune"],
                                          capture_output=True).returncode == 0:
        return python
    print(f"creating {RAY_VENV} with {RAY_REQUIREMENT} (a large download)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", RAY_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", RAY_REQUIREMENT, "psutil"],
                   check=True)
    return python


def run_job(system: str, population: int, steps: int, ready: int, step_ms: float,
            workers: int, python: Path, timeout: float) -> dict:
    """Run one job of one system in a fresh process; measure it from outside."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as folder:
        folder = Path(folder)
        stats = folder / "stats"
        stats.mkdir()
        env = {**os.environ, "BENCH_STATS": str(stats), "BENCH_STEP_S": str(step_ms / 1000),
               "BENCH_STATE_BYTES": str(1 << 20), "PYTHONUNBUFFERED": "1"}
        common = ["--population", str(population), "--steps", str(steps),
                  "--ready", str(ready)]
        if system == "populace":
            cmd = [python, HERE / "overhead_populace.py", *common, "--workers", str(workers),
                   "--store", folder / "run.db"]
        else:
            cmd = [python, HERE / "overhead_ray.py", *common, "--step-ms", str(step_ms),
                   "--cpus", str(workers), "--storage", folder / "ray"]
        log = folder / "out.log"
        load_before = os.getloadavg()
        used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(log, "wb") as out:
            launched = time.time()
            proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=folder,
                                    start_new_session=True)
            sampler = Sampler(proc.pid)
            sampler.start()
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                code = "timeout"
            exited = time.time()
            sampler.stop()
        load_after = os.getloadavg()
        used_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        text = log.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.startswith("BENCH ")]
        if code != 0 or not lines:
            tail = "\n".join(text.splitlines()[-30:])
            return {"system": system, "population": population, "step_ms": step_ms,
                    "error": f"exit {code}:\n{tail}"}
        child = json.loads(lines[-1][6:])
        records = [json.loads(p.read_text()) for p in stats.glob("*.json")]
    step_seconds = sum(r["seconds"] for r in records)
    parallel = workers if system == "populace" else population
    wall = exited - launched
    ideal = step_seconds / parallel
    cycles = population * steps / ready
    return {
        "system": system, "population": population, "step_ms": step_ms, "steps": steps,
        "ready": ready, "parallel": parallel, "wall": wall, "ideal": ideal,
        "overhead": wall - ideal, "per_cycle": (wall - ideal) / cycles,
        "startup": min(r["first"] for r in records) - launched,
        "steps_trained": sum(r["steps"] for r in records), "step_seconds": step_seconds,
        "first_step": min(r["first"] for r in records) - launched,
        "last_step": max(r["last"] for r in records) - launched,
        "rss": sampler.rss, "pss": sampler.pss, "processes": sampler.processes,
        # CPU (user + system) of the job's process and every descendant that was waited
        # for: less sensitive than wall time to other work on the machine
        "cpu": (used_after.ru_utime + used_after.ru_stime
                - used_before.ru_utime - used_before.ru_stime),
        "exploits": child.get("exploits"), "child": child, "launched": launched,
        # the machine's 1-minute load average before and after: other work on the cores
        "load_before": load_before[0], "load_after": load_after[0], "nice": os.nice(0),
    }


# -- tables -----------------------------------------------------------------------------


def fmt_time(s: float) -> str:
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.2f}" if s < 0.1 else f"{s * 1000:.0f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| population | step | system | wall s | ideal s | overhead s | overhead per ready "
        "cycle ms | start-up s | peak RSS MB (PSS) | processes | exploits | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['population']} | {r['step_ms']:g} ms | {r['system']} | "
                         "failed | | | | | | | | |")
            continue
        lines.append(
            f"| {r['population']} | {r['step_ms']:g} ms | {r['system']} | "
            f"{fmt_time(r['wall'])} | {fmt_time(r['ideal'])} | {fmt_time(r['overhead'])} | "
            f"{fmt_ms(r['per_cycle'])} | {r['startup']:.2f} | {r['rss'] / 2**20:.0f} "
            f"({r['pss'] / 2**20:.0f}) | {r['processes']} | {r['exploits']} | "
            f"{fmt_time(r['cpu']) if 'cpu' in r else ''} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    runs: dict[tuple, list[dict]] = {}
    for r in rows:
        if "error" not in r:
            runs.setdefault((r["population"], r["step_ms"], r["system"]), []).append(r)
    jobs: dict[tuple, dict[str, dict]] = {}
    for (pop, ms, system), found in runs.items():  # repeated runs: the median overhead
        found.sort(key=lambda r: r["overhead"])
        jobs.setdefault((pop, ms), {})[system] = found[(len(found) - 1) // 2]
    lines = ["| population | step | overhead populace / Ray | 1 / that | wall populace / Ray "
             "| start-up populace / Ray | peak PSS populace / Ray | overhead <= Ray / 50 |",
             "|---|---|---|---|---|---|---|---|"]
    for (pop, ms), both in sorted(jobs.items()):
        if set(both) != {"populace", "ray"}:
            continue
        p, r = both["populace"], both["ray"]
        ratio = p["overhead"] / r["overhead"]
        lines.append(
            f"| {pop} | {ms:g} ms | {ratio:.4f} | {1 / ratio:.0f}x | "
            f"{p['wall'] / r['wall']:.4f} | {p['startup'] / r['startup']:.3f} | "
            f"{p['pss'] / r['pss']:.3f} | {'yes' if ratio <= 1 / 50 else 'no'} |"
        )
    return "\n".join(lines)


def utilisation_table(rows: list[dict]) -> str:
    lines = ["| population | steps | step | wall s | ideal s | utilisation, end to end | "
             "utilisation, first step to last | start-up s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['population']} | | {r['step_ms']:g} ms | failed | | | | |")
            continue
        busy = r["last_step"] - r["first_step"]
        lines.append(
            f"| {r['population']} | {r['steps']} | {r['step_ms']:g} ms | {r['wall']:.3f} | "
            f"{r['ideal']:.3f} | {r['ideal'] / r['wall']:.1%} | "
            f"{r['step_seconds'] / (r['parallel'] * busy):.1%} | {r['startup']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["populace", "ray"],
                        choices=["populace", "ray"])
    parser.add_argument("--populations", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--step-ms", type=float, nargs="+", default=[0.0, 10.0])
    parser.add_argument("--steps", type=int,
                        help="steps per member (100; 20 with --utilisation)")
    parser.add_argument("--ready", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="populace's workers and Ray's num_cpus (default: the cores)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each populace job")
    parser.add_argument("--utilisation", action="store_true",
                        help="populace only: 100 ms steps, 20 steps, populations 4 and 16")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per job, seconds")
    parser.add_argument("--json", type=Path, help="append every measurement to this file")
    parser.add_argument("--tables", type=Path, nargs="+",
                        help="only print the tables of measurements saved by --json")
    args = parser.parse_args()
    if args.tables:
        saved = [json.loads(line) for path in args.tables for line in open(path)]
        main_rows = [r for r in saved if r.get("step_ms") != 100.0]
        util_rows = [r for r in saved if r.get("step_ms") == 100.0]
        if main_rows:
            print(table(main_rows) + "\n\n" + ratios(main_rows))
        if util_rows:
            print("\n" + utilisation_table(util_rows))
        return
    if args.utilisation:
        args.systems, args.step_ms = ["populace"], [100.0]
        if args.steps is None:
            args.steps = 20
        if args.populations == [4, 16, 64]:
            args.populations = [4, 16]
    if args.steps is None:
        args.steps = 100
    pythons = {}
    if "populace" in args.systems:
        pythons["populace"] = ROOT / ".venv" / "bin" / "python"
    if "ray" in args.systems:
        pythons["ray"] = ensure_ray_venv()

    rows = []
    for population in args.populations:
        for step_ms in args.step_ms:
            for system in args.systems:
                for _ in range(args.repeat if system == "populace" else 1):
                    row = run_job(system, population, args.steps, args.ready, step_ms,
                                  args.workers, pythons[system], args.timeout)
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "child"}),
                          file=sys.stderr, flush=True)
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps(row) + "\n")
    if args.utilisation:
        print(utilisation_table(rows))
    else:
        print(table(rows))
        print()
        print(ratios(rows))


if __name__ == "__main__":
    main()
