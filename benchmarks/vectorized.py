"""A vectorized population against the local executor and against raw torch.func.

The job: the digits MLP of examples/digits_vectorized.py (64-128-128-10 with dropout,
SGD with momentum and weight decay, a batch of 64 images a step), `--steps` steps per
member, ready every `--ready`, truncation exploit and perturb explore, every member's
starting hparams drawn from the example's space with seed 0. Three systems run it:

- vectorized: `populace.run(..., executor="vectorized")`, one process, all members in
  one batched model;
- local: the same members trained alone by torch.optim (`populace.vectorized.plain`:
  the same model, batches and hparams) by the local executor, one worker process per
  core, one torch thread each;
- raw: torch.func alone, no PBT: the members' models stacked, vmap over grad, an SGD
  step in place, the same batches; no store, no evaluation, no checkpoints, no exploit.
  The limit a vectorized run can approach.

Each row is a fresh process (this script with --child) whose peak memory (RSS of the
process and its children, sampled every 0.25 s) is measured from outside; its wall
time is measured inside, from before `populace.run` to its return (store creation,
the members' first build and every ready point included; the interpreter's start and
torch's import not). Inside a vectorized run, timers around the training step, the
evaluation, checkpoint writes and reads and the store's calls split its wall time;
PBT's own work is everything but the training step and the evaluation. The rate of
either system drifts by up to a fifth between runs minutes apart on a small machine:
`--pairs K` runs vectorized and raw in turn K times (each pair in the other order to the
one before) and gives the median of the pairs' ratios, with their range.

    nice -n 19 .venv/bin/python benchmarks/vectorized.py                  # CPU, all rows
    .venv/bin/python benchmarks/vectorized.py --populations 512 --local --long 0 --pairs 5
    nice -n 19 .venv/bin/python benchmarks/vectorized.py --populations 8 32 --local 8
    .venv/bin/python benchmarks/vectorized.py --device cuda --local       # GPU, no local rows
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "examples")]

HEADING = "## Vectorized population: one batched model against the local executor and torch.func"

from digits_vectorized import DigitsVectorized  # noqa: E402 - found through sys.path

from populace.vectorized.plain import PlainMember  # noqa: E402


class TimedAlone(PlainMember):
    """A member trained alone that adds up its process's training and evaluation time in
    $BENCH_STATS/<pid>.json (the local executor's workers import it as `vectorized`)."""

    vectorized = DigitsVectorized
    device = os.environ.get("BENCH_DEVICE", "cpu")  # the local child's --device
    seconds: dict[str, float] = defaultdict(float)  # this process's, every member's

    def step(self) -> None:
        started = time.perf_counter()
        super().step()
        self.seconds["train"] += time.perf_counter() - started

    def evaluate(self) -> dict[str, float]:
        started = time.perf_counter()
        try:
            return super().evaluate()
        finally:
            self.seconds["evaluate"] += time.perf_counter() - started

    def save(self, path: Path) -> None:
        super().save(path)
        if self.place.type == "cuda":  # this worker's peak, summed over the workers
            self.seconds["gpu_mb"] = gpu_peak()["gpu_mb"]
        stats = Path(os.environ["BENCH_STATS"]) / f"{os.getpid()}.json"
        stats.write_text(json.dumps(self.seconds))


# -- one job, in a child process ---------------------------------------------------------


class Timers:
    """Seconds spent in each wrapped function, by a name of the caller's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        setattr(owner, name, timed)


def job(args: argparse.Namespace) -> dict:
    """The settings every system shares."""
    return {"population": args.population, "steps": args.steps, "ready_steps": args.ready,
            "score": "accuracy", "seed": 0}


def child_vectorized(args: argparse.Namespace, folder: Path) -> dict:
    from digits_vectorized import DigitsVectorized, space

    import populace
    from populace.checkpoints import LocalCheckpointStorage
    from populace.store import Store
    from populace.vectorized import layout
    from populace.vectorized import run as vectorized_run
    from populace.vectorized.population import Population

    timers = Timers()
    timers.wrap(Population, "train", "train")
    timers.wrap(Population, "evaluate", "evaluate")
    for name in ("take", "put", "fresh"):
        timers.wrap(Population, name, "restore")
    timers.wrap(layout, "read", "restore")
    timers.wrap(LocalCheckpointStorage, "fetch", "checkpoint")
    try:  # where a core is spare, the run writes its files beside the evaluation: its
        from populace.vectorized.beside import Beside, Pending  # wall pays the wait alone
    except ImportError:  # (code before it, for a comparison: written in the run's thread)
        timers.wrap(LocalCheckpointStorage, "write", "checkpoint")
    else:
        for owner, name in ((Beside, "write"), (Pending, "result"), (Pending, "discard")):
            timers.wrap(owner, name, "checkpoint")
        timers.wrap(LocalCheckpointStorage, "write", "checkpoint.write")  # in either thread
    # the files the store let go (in the run's thread unless a core is spare)
    timers.wrap(LocalCheckpointStorage, "delete", "checkpoint.delete")
    for name in ("claim", "report", "report_all", "fail"):
        timers.wrap(Store, name, "store")
        timers.wrap(Store, name, f"store.{name}")
    # the set-up's parts, not in PARTS: the run's check before it writes anything (its
    # first gradient imports torch's compiler modules, as raw's first does) and the
    # worker's build of every member
    timers.wrap(vectorized_run, "preflight", "setup.preflight")
    timers.wrap(vectorized_run.VectorizedWorker, "__init__", "setup.worker")
    DigitsVectorized.threads = args.threads or None  # None: the run's own, every core
    DigitsVectorized.eval_chunk = args.eval_chunk or None  # None: the run's choice
    run = populace.run  # its modules imported (lazily, at this name) before the clock, as raw's
    started, cpu = time.perf_counter(), cpu_seconds()
    run(DigitsVectorized, space, store=folder / "run.db", progress=False,
        executor="vectorized", device=args.device, **job(args))
    wall = time.perf_counter() - started
    return {"wall": wall, "cpu": cpu_seconds() - cpu, **timers.seconds, **gpu_peak()}


def cpu_seconds() -> float:
    """The CPU time this process has used, every thread's (user and system)."""
    times = os.times()
    return times.user + times.system


def gpu_peak() -> dict[str, float]:
    """This process's peak GPU memory in MB, where it used a GPU."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    return {"gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def child_local(args: argparse.Namespace, folder: Path) -> dict:
    from digits_vectorized import space

    import populace

    stats = folder / "stats"
    stats.mkdir()
    os.environ["BENCH_STATS"] = str(stats)
    os.environ["BENCH_DEVICE"] = args.device  # "auto": each worker's own GPU, when given one
    from vectorized import TimedAlone  # by its module's name: worker processes import it

    started = time.perf_counter()
    populace.run(TimedAlone, space, store=folder / "run.db", progress=False,
                 executor="local", workers=args.workers,
                 gpus_per_worker=args.gpus_per_worker, **job(args))
    wall = time.perf_counter() - started
    seconds: dict[str, float] = defaultdict(float)
    for file in stats.glob("*.json"):
        for label, value in json.loads(file.read_text()).items():
            seconds[label] += value
    return {"wall": wall, **seconds}


def child_raw(args: argparse.Namespace, folder: Path) -> dict:
    import copy

    import numpy as np
    import torch
    import torch.nn.functional as F
    from digits_vectorized import DigitsVectorized, space
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    from populace.segment import member_seed
    from populace.space import Space
    from populace.vectorized.context import member_hparams
    from populace.vectorized.heap import kept

    started = time.perf_counter()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    trainable = DigitsVectorized()
    rng = np.random.default_rng(0)
    hparams = [Space(space).sample(rng) for _ in range(args.population)]
    seeds = [member_seed(0, m) for m in range(args.population)]
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(trainable.model(seed))
    params, buffers = stack_module_state(models)
    params = {k: v.detach().to(device) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    base = copy.deepcopy(models[0]).to("meta")
    data = trainable.data().to(device)

    def column(name: str) -> torch.Tensor:
        return torch.tensor([h[name] for h in hparams], device=device)

    lr, momentum, decay = column("lr"), column("momentum"), column("weight_decay")
    dropout = {"dropout": column("dropout")}
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}

    def loss(p, b, h, x, y):
        with member_hparams(h):
            return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    grads_of = vmap(grad_and_value(loss), randomness="different")
    keys, steps = np.array(seeds, dtype=np.int64), np.zeros(args.population, dtype=np.int64)
    # --raw-heap kept: glibc's heap as a vectorized run keeps it for its steps
    heap = kept() if args.raw_heap == "kept" else contextlib.nullcontext()
    trained = time.perf_counter()
    with heap:
        for _ in range(args.steps):
            # x, y and grads live on until the next step has made its own, so glibc keeps the
            # heap's top; the vectorized run holds them as long (`Population._spent`), or both
            # would fault that memory in again at every step
            x, y = data.batches(keys, steps)
            grads, _ = grads_of(params, buffers, dropout, x, y)
            with torch.no_grad():  # in place: no parameter-sized tensor allocated a step
                for k, p in params.items():
                    shape = (-1,) + (1,) * (p.dim() - 1)
                    g = grads[k].addcmul_(decay.view(shape), p)
                    velocity[k].mul_(momentum.view(shape)).add_(g)
                    p.addcmul_(-lr.view(shape), velocity[k])
            steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    now = time.perf_counter()
    return {"wall": now - started, "train": now - trained, **gpu_peak()}


# in the tables' order
CHILDREN = {"vectorized": child_vectorized, "local": child_local, "raw": child_raw}


# -- the parent: one fresh process a row ------------------------------------------------


def measure(system: str, population: int, args: argparse.Namespace,
            steps: int | None = None) -> dict:
    from overhead import Sampler

    steps = steps or args.steps
    cmd = [sys.executable, __file__, "--child", system, "--population", str(population),
           "--steps", str(steps), "--ready", str(args.ready), "--device", args.device,
           "--workers", str(args.workers), "--threads", str(args.threads),
           "--eval-chunk", str(args.eval_chunk),
           "--gpus-per-worker", str(args.gpus_per_worker), "--raw-heap", args.raw_heap]
    load = os.getloadavg()[0]  # other work on the cores slows every figure
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as folder:
        proc = subprocess.Popen(cmd + ["--folder", folder], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate()
        sampler.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{system} at {population} failed:\n{out[-3000:]}")
    row = json.loads(lines[-1][6:])
    row.update(system=system, population=population, steps=steps, rss=sampler.rss,
               rate=population * steps / row["wall"], load=[load, os.getloadavg()[0]])
    print(json.dumps(row), file=sys.stderr)
    return row


PARTS = ("train", "evaluate", "checkpoint", "store", "restore")
LONG_MEMBERS = 128  # the population of the targets, measured again at --long steps


def typical(rows: list[dict], steps: int) -> dict[tuple[str, int], dict]:
    """Each system's row at each population for runs of `steps`: with several samples
    (--pairs), the one of median rate (the lower of the two middle ones)."""
    samples: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("steps", steps) == steps:
            samples[r["system"], r["population"]].append(r)
    return {key: sorted(group, key=lambda r: r["rate"])[(len(group) - 1) // 2]
            for key, group in samples.items()}


def paired(rows: list[dict], population: int, steps: int) -> list[float]:
    """Vectorized against raw, rate over rate, for each pair of samples run one after the
    other (--pairs; a row of no pair is pair 0): the machine's drift over minutes cancels
    within a pair, not between two medians."""
    by = {(r["system"], r.get("pair", 0)): r for r in rows
          if r["population"] == population and r.get("steps", steps) == steps}
    return [by["vectorized", i]["rate"] / by["raw", i]["rate"]
            for system, i in sorted(by) if system == "vectorized" and ("raw", i) in by]


def ratio(rows: list[dict], population: int, steps: int, other: str) -> str | None:
    """The vectorized run's rate over `other`'s (None: not measured): against raw, the
    median of the pairs' with their range; against the local executor, measured once,
    the typical vectorized sample's."""
    if other == "raw":
        ratios = paired(rows, population, steps)
    else:
        by = typical(rows, steps)
        a, b = by.get(("vectorized", population)), by.get((other, population))
        ratios = [] if a is None or b is None else [a["rate"] / b["rate"]]
    if len(ratios) <= 1:
        return f"{ratios[0]:.2f}" if ratios else None
    return (f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f}, "
            f"{len(ratios)} pairs)")


def table(rows: list[dict], args: argparse.Namespace) -> str:
    """Throughput and memory of the three systems; where a vectorized run's time goes."""
    by = typical(rows, args.steps)

    def cell(system: str, p: int, show) -> str:
        row = by.get((system, p))
        return "-" if row is None else show(row)

    lines = ["| members | member-steps/s: vectorized | local | raw torch.func | vectorized / "
             "local | vectorized / raw | peak memory (MB): vectorized | local | raw |",
             "|---|---|---|---|---|---|---|---|---|"]
    gpu = any("gpu_mb" in r for r in rows)
    if gpu:
        lines[0] += " peak GPU memory (MB): vectorized | local | raw |"
        lines[1] += "---|---|---|"
    for p in args.populations:
        rate = [cell(s, p, lambda r: f"{r['rate']:,.0f}") for s in CHILDREN]
        memory = [cell(s, p, lambda r: f"{r['rss'] / 2**20:,.0f}") for s in CHILDREN]
        if gpu:
            memory += [cell(s, p, lambda r: f"{r.get('gpu_mb', 0):,.0f}") for s in CHILDREN]
        ratios = [ratio(rows, p, args.steps, other) or "-" for other in ("local", "raw")]
        lines.append(f"| {p:,} | {' | '.join(rate)} | {' | '.join(ratios)} "
                     f"| {' | '.join(memory)} |")
    lines += ["", "Where a vectorized run's wall time goes (seconds, and share of the wall; "
              "PBT's own work is checkpoints, store and restore; set-up is building the "
              "members, the run's check and its store, and the result):", "",
              "| members | wall | train | evaluate | checkpoints | store (claims, reports, "
              "decisions) | restore (copies, loads) | set-up and the rest | load average |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in args.populations:
        v = by.get(("vectorized", p))
        if v is None:
            continue
        wall = v["wall"]
        rest = wall - sum(v.get(part, 0.0) for part in PARTS)
        shares = [f"{v.get(part, 0.0):.1f} ({v.get(part, 0.0) / wall:.0%})" for part in PARTS]
        lines.append(f"| {p:,} | {wall:.1f} | {' | '.join(shares)} | {rest:.1f} "
                     f"({rest / wall:.0%}) | {v['load'][0]:.1f} to {v['load'][1]:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, nargs="+", default=[8, 32, 128, 512, 2048])
    parser.add_argument("--local", type=int, nargs="*", default=[8, 32, 128],
                        help="populations the local executor runs (none: no local rows)")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=1,
                        help="samples of vectorized and raw at each population, run in turn; "
                             "the ratio is the median of the pairs'")
    parser.add_argument("--ready", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--long", type=int, default=640,
                        help=f"then vectorized and raw at {LONG_MEMBERS} members for this many "
                             "steps (the example's 40 epochs; 0: not)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="the local executor's GPU share per worker (0.5: two on a GPU)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the vectorized and raw processes (0: every "
                             "core the process is given, the vectorized run's default)")
    parser.add_argument("--eval-chunk", type=int, default=0,
                        help="members the vectorized run evaluates in one vmapped call (0: "
                             "the run's choice: 64 on the CPU, all on a GPU)")
    parser.add_argument("--raw-heap", choices=("given-back", "kept"), default="given-back",
                        help="glibc's heap in raw torch.func's steps: as glibc gives it back "
                             "(torch.func alone), or kept as the vectorized run keeps it")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the section to this file (default: benchmarks/RESULTS.md)")
    parser.add_argument("--rows", type=Path,
                        help="write the section from these rows (a vectorized.json), measuring "
                             "nothing")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--population", type=int)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        if args.child == "raw":  # the local executor's workers take one thread each, and
            import torch  # a vectorized run its trainable's `threads`, every core by default

            torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
        print("BENCH " + json.dumps(CHILDREN[args.child](args, args.folder)), flush=True)
        return
    if args.rows:
        saved = json.loads(args.rows.read_text())
        write(args, table(saved["rows"], args), saved["rows"], saved["seconds"],
              saved["date"], saved["load"], saved.get("command", ""))
        return
    started = time.time()
    rows = []
    for p in args.populations:
        for pair in range(args.pairs):  # in turn, each pair in the other order
            for system in ("vectorized", "raw")[::1 if pair % 2 == 0 else -1]:
                rows.append({**measure(system, p, args), "pair": pair})
        if p in args.local:
            rows.append(measure("local", p, args))
    if args.long:  # the example's own budget: the run's fixed costs weigh less
        rows += [measure(system, LONG_MEMBERS, args, args.long) for system in ("vectorized",
                                                                               "raw")]
    text = table(rows, args)
    print(text)
    write(args, text, rows, time.time() - started, time.strftime("%Y-%m-%d"),
          os.getloadavg()[0], " ".join(sys.argv[1:]))


def findings(rows: list[dict], args: argparse.Namespace) -> str:
    """What the figures say against the targets, and what limits each."""
    by = typical(rows, args.steps)

    def share(p: int, part: str) -> str:
        v = by.get(("vectorized", p))
        return "-" if v is None else f"{v.get(part, 0.0) / v['wall']:.0%}"

    against_raw = "; ".join(f"{ratio(rows, p, args.steps, 'raw')} at {p:,}"
                            for p in args.populations if ratio(rows, p, args.steps, "raw"))
    long = {r["system"]: r for r in rows if r["population"] == LONG_MEMBERS
            and r.get("steps", args.steps) != args.steps}
    budget = ""
    if {"vectorized", "raw"} <= set(long):
        v, raw = long["vectorized"], long["raw"]
        budget = (f" At the example's budget of {v['steps']} steps a member, the same "
                  f"{LONG_MEMBERS} members made {v['rate']:,.0f} member-steps per second "
                  f"vectorized and {raw['rate']:,.0f} with raw torch.func: "
                  f"{v['rate'] / raw['rate']:.2f}; the set-up, a few seconds, weighs less in "
                  "a longer run.")
    steps_alone = ", ".join(
        f"{by[('vectorized', p)]['train']:.1f} against {by[('raw', p)]['train']:.1f} at {p:,}"
        for p in args.populations if ("vectorized", p) in by and ("raw", p) in by)
    return f"""Against the targets (issue 35): at 128 members the vectorized run made
{ratio(rows, 128, args.steps, 'local') or 'not measured'} times the local executor's member-steps
per second (target: at least 2); of raw torch.func's (target: at least 0.9 at every
population) {against_raw or 'not measured'}.{budget}

The training steps alone took (seconds, vectorized against raw, the typical samples)
{steps_alone}. Raw's include the one-off import of torch's compiler modules at its
first gradient (about 1 s), which the vectorized run pays before training, in the
check of its model.

What limits each figure:

- Vectorized: the training step is every member's matrix products at once, so
  member-steps per second rise with the population until the cores are full, then
  fall once the members' weights and activations outgrow the caches (raw torch.func
  falls alike). Around the step: the evaluation at each ready point (the example's
  validation and test sets, vmapped 64 members a call on the CPU: {share(128, 'evaluate')}
  of the wall at 128 members), one checkpoint file a ready point of every member's
  weights and momentum (about 210 KB a member, hashed and fsynced: {share(128, 'checkpoint')}
  at 128), and the store, every member ready together reported in one transaction
  ({share(128, 'store')} at 128). The set-up (building every member, the run's check before it
  writes anything, the store) is a second or two at every size, so it weighs most in
  the short runs of the small populations.
- Local: each worker process trains one member at a time, so a step is one small
  model's forward and backward pass, where PyTorch's cost per operation dominates;
  with more members than workers a worker loads a checkpoint each time it switches
  members. Measured at {', '.join(map(str, args.local)) or 'no'} members only, to keep its
  rows affordable.
- Raw torch.func: the same model, batches and per-member hparams, an SGD step in place;
  no evaluation, no store, no checkpoint, no exploit: the limit.
- The machine: rows run one after another, so two rows compare minutes apart, and the
  rate of either moves by up to a fifth between samples; hence --pairs, which runs
  vectorized and raw in turn (each pair in the other order to the one before) and
  compares within each pair. With other work on the cores, torch's two threads spin
  waiting for each other: set `threads = 1` on the trainable, or OMP_WAIT_POLICY=PASSIVE.
"""


def write(args: argparse.Namespace, text: str, rows: list[dict], seconds: float, date: str,
          load: float, command: str) -> None:
    import torch
    from results import RESULTS, write_section

    section = f"""{HEADING}

Produced by `.venv/bin/python benchmarks/vectorized.py {command}` on
{date}: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU
cores, Python {platform.python_version()}, torch {torch.__version__}, device
{args.device} ({'CUDA' if torch.cuda.is_available() else 'no GPU'}); {seconds:.0f} s in
all, load average {load:.1f} at the end. The digits MLP of `examples/digits_vectorized.py`
(64-128-128-10, dropout, SGD, batch 64), {args.steps} steps a member, ready every
{args.ready}, truncation and perturb; the local executor with {args.workers} worker
processes at {', '.join(map(str, args.local)) or 'no'} members only (each member trained
alone by torch.optim, one torch thread a process); the vectorized and raw processes
with {args.threads or 'one per core'} torch thread(s); raw torch.func's steps with glibc's
heap {'kept, as the vectorized run keeps it' if args.raw_heap == 'kept' else
'as glibc gives it back (torch.func alone)'}. A member-step is one member's
training step; wall time runs from before `populace.run` to its return. The rows are in
`benchmarks/vectorized.json`.

{text}

{findings(rows, args)}"""
    write_section(args.output or RESULTS, HEADING, section)
    (args.output or RESULTS).with_name("vectorized.json").write_text(json.dumps(
        {"seconds": seconds, "date": date, "load": load, "command": command, "rows": rows},
        indent=1))


if __name__ == "__main__":
    main()
