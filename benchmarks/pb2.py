"""PB2 and PB2-Mix against perturb-explore PBT and random search, written to RESULTS.md.

    python benchmarks/pb2.py --seeds 5

Two tasks, each at populations 4 and 8, over the same seeds (a seed draws the same
initial members for every method): examples/moving_optimum.py (the asynchronous-quality
problem: the best learning rate falls as the score rises, 200 steps, ready every 4) and
examples/digits_mlp.py (an MLP on scikit-learn's digits, 40 epochs, ready every 4; its
batch size is a Choice). Every method keeps the script's exploit (truncation) and
changes the explore: perturb (the script's), PB2, PB2-Mix, or no exploit at all (random
search). On digits "PB2" holds the batch size as each member drew it (a Choice rule of
Keep, as Ray Tune's PB2, which models continuous hparams only) and "PB2-Mix" lets the
bandit choose it; moving_optimum has no Choice, so there the two are one method. One
worker trains each run (inline), so a seed's run repeats exactly.

    python benchmarks/pb2.py --tasks rl --populations 4 --seeds 5

runs the RL example (examples/rl_cartpole.py: PPO on CartPole, perturb or resample) into
a section of its own, with the t-test exploit its section was measured with (the example
itself truncates since 2026-12-06); it has no Choice either.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch
from results import measure, produced_by, seeds_parser, write_section

import populace
from populace.script import load_script
from populace.store import open_store

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"moving optimum": ROOT / "examples" / "moving_optimum.py",
         "digits": ROOT / "examples" / "digits_mlp.py",
         "rl": ROOT / "examples" / "rl_cartpole.py"}
HEADING = "## PB2 and PB2-Mix: model-based explore against perturb and random search"
RL_HEADING = "## PB2 on the RL example: PPO on CartPole"
DEFAULT_TASKS = ["moving optimum", "digits"]
# the exploit each task's section was measured with, where its script's is now another
MEASURED_EXPLOIT = {"rl": {"name": "ttest", "window": 4}}
METHODS = ("PBT (perturb)", "PB2", "PB2-Mix", "random search")
# what the figures mean: checked against the runs of 2026-12-01 when written
READING = (
    "How to read it. At population 4 on the moving optimum PB2 is ahead of perturb in "
    "every seed (best member median 0.847 against 0.567), as the PB2 paper reports for "
    "small populations: perturb's two low seeds (1 and 4, best 0.17 and 0.12) reach 0.85 "
    "and 0.72 with PB2 from the same initial members, while perturb, which moves a "
    "learning rate by factors of 1.2 from the donor's, stays behind the moving optimum. "
    "At population 8 perturb has the members to follow the schedule by itself and is "
    "ahead in the median (0.997 against 0.939; per seed 2 above, 1 level, 2 below): this "
    "run did not trace why; PB2 models only the last segments' improvement, so it is as "
    "greedy as PBT (FIRE-PBT's point) and its UCB keeps spending copies on uncertain "
    "learning rates late in the run. On digits every method's best member lies within a "
    "few validation images of the others (the task saturates near 0.98): PB2 and PB2-Mix "
    "match perturb, and every PBT lifts the median member above random search in every "
    "seed at population 8. The batch size's bandit (PB2-Mix against PB2, which holds it "
    "as drawn) makes no difference that these 5 seeds can show. The cost: PB2 fits its GP "
    "inside the report's transaction, about 0.1 to 0.2 s per explore on this busy machine "
    "(moving optimum, population 8: 29 s against 5 s for about 150 copies), small beside a "
    "real segment's training, large beside a toy's microsecond steps. The RL example "
    "(examples/rl_cartpole.py) has a section of its own (its PPO runs take over a minute "
    "each on these shared cores): populations 4 and 8."
)
RL_READING = (
    "How to read it. With the t-test exploit a population of 4 copies only 1 to 4 times "
    "in 30 steps, so explore acts only that often, and PB2 and the script's perturb or "
    "resample mostly end level: PB2's best member reaches 500 in all 5 seeds, perturb's in "
    "4 (seed 2: 290, where PB2's reaches 500 and its median member 336 against 228); in "
    "seed 1 PB2's median member ends at 181 against 347; in the other three the medians "
    "are level. Both PBTs lift the median member above random search (347 and 336 "
    "against 181). Five seeds and a handful of explores per run cannot tell the two "
    "explores apart here."
)


@dataclass(frozen=True)
class Record:
    task: str
    population: int
    seed: int
    method: str
    best: float
    median: float
    test: float | None
    exploits: int
    seconds: float


def methods(task: str) -> tuple[str, ...]:
    """PB2-Mix differs from PB2 only where the space has a Choice."""
    return tuple(m for m in METHODS if m != "PB2-Mix" or task == "digits")


# appended to a copy of the script for "PB2": each Choice keeps the value a member drew
HOLD_CHOICES = """

from dataclasses import replace as _replace

from populace import Choice as _Choice
from populace.strategies import Keep as _Keep

space = {n: _replace(d, explore=_Keep()) if isinstance(d, _Choice) else d
         for n, d in space.items()}
"""


def run_once(task: str, population: int, seed: int, method: str, directory: Path) -> Record:
    path = TASKS[task]
    if method == "PB2" and task == "digits":  # continuous hparams only
        path = directory / f"{path.stem}_hold_choices.py"
        path.write_text(TASKS[task].read_text() + HOLD_CHOICES)
    script = load_script(path)
    settings = {**script.config, "population": population, "seed": seed,
                "executor": "inline", "workers": 1}
    settings["exploit"] = MEASURED_EXPLOIT.get(task, settings["exploit"])
    if method == "random search":
        settings["exploit"] = "none"
    elif method.startswith("PB2"):
        settings["explore"] = "pb2"
    store = directory / f"{task}-{population}-{seed}-{method}.db".replace(" ", "-")
    began = time.perf_counter()
    result = populace.run(script.trainable, script.space, store=store, initial=script.initial,
                          progress=False, script=script.path, **settings)
    seconds = time.perf_counter() - began
    with closing(open_store(store)) as db:
        results, exploits = db.results(), len(db.events("exploit"))
    last = max((r for r in results if r.member == result.best.id), key=lambda r: r.step)
    scores = [m.score for m in result.members if m.score is not None]
    return Record(task, population, seed, method, result.score, statistics.median(scores),
                  last.metrics.get("test_accuracy"), exploits, seconds)


def spread(values: Sequence[float], fmt: str = ".4f") -> str:
    return (f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, "
            f"{max(values):{fmt}}]")


def pick(records: Sequence[Record], task: str, population: int, method: str) -> list[Record]:
    return sorted((r for r in records if (r.task, r.population, r.method)
                   == (task, population, method)), key=lambda r: r.seed)


def table(records: Sequence[Record], task: str, population: int) -> list[str]:
    rows = ["| method | best member | median member | best member's test accuracy "
            "| exploits | wall (s) |", "|---|---|---|---|---|---|"]
    for method in methods(task):
        mine = pick(records, task, population, method)
        tests = [r.test for r in mine]
        rows.append(f"| {method} | {spread([r.best for r in mine])} | "
                    f"{spread([r.median for r in mine])} | "
                    f"{'n/a' if None in tests else spread(tests)} | "
                    f"{spread([r.exploits for r in mine], '.0f')} | "
                    f"{spread([r.seconds for r in mine], '.1f')} |")
    return rows


def versus(records: Sequence[Record], task: str, population: int, method: str) -> str:
    """Per seed, how `method`'s best and median members compare with perturb's and
    random search's."""
    mine = pick(records, task, population, method)
    parts = []
    for other in ("PBT (perturb)", "random search"):
        theirs = pick(records, task, population, other)
        for label, get in (("best", lambda r: r.best), ("median", lambda r: r.median)):
            d = [get(a) - get(b) for a, b in zip(mine, theirs, strict=True)]
            parts.append(f"{label} member {sum(x > 0 for x in d)} above / "
                         f"{sum(x == 0 for x in d)} level / {sum(x < 0 for x in d)} below "
                         f"{other}")
    return f"{task}, population {population}, {method}: " + "; ".join(parts) + "."


def section(records: Sequence[Record], argv: Sequence[str], total: float,
            tasks: Sequence[str], populations: Sequence[int], seeds: int) -> str:
    rl = list(tasks) == ["rl"]
    setup = (
        "Each run keeps the script's config (8 PPO members by default, here the populations "
        "below; a step is 2,048 environment steps; 30 steps, ready every 3; exploit by "
        "Welch's t-test on the last 4 ready-point scores; score = mean return of the last "
        "10 episodes, 500 at most) and changes the explore only: the script's perturb "
        "(x0.8 / x1.2) or resample (probability 0.25) each hparam, PB2 (`--explore pb2`, 16 "
        "segments per member), or no exploit (random search). The space has no Choice, so "
        "PB2-Mix is PB2 here." if rl else
        "Each run keeps its script's config (truncation; moving optimum: fraction 0.25, 200 "
        "steps, ready every 4; digits: fraction 0.2, 40 epochs, ready every 4, scored by "
        "validation accuracy) and changes the explore only: perturb by 0.8 or 1.2, PB2 "
        "(`--explore pb2`, 16 segments per member), PB2-Mix (the same, with the digits batch "
        "size, a Choice, chosen by its bandit; on digits PB2 holds it as drawn), or no "
        "exploit (random search).")
    lines = [
        RL_HEADING if rl else HEADING, "", produced_by("pb2.py", argv, total), "",
        f"{setup} Populations {', '.join(map(str, populations))}, seeds 0 to {seeds - 1}; "
        "one worker per run (inline). Scores are final scores, across seeds median [min, "
        "max]; exploits are the copies carried out.", "",
    ]
    for task in tasks:
        for population in populations:
            lines += [f"### {task}, population {population}", "",
                      *table(records, task, population), ""]
    lines += ["### Per seed", ""]
    lines += [versus(records, task, p, m) for task in tasks for p in populations
              for m in methods(task) if m.startswith("PB2")]
    lines += ["", RL_READING if rl else READING]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
    parser = seeds_parser(__doc__)
    parser.add_argument("--populations", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS, choices=list(TASKS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = [(task, population, seed, method) for task in args.tasks
             for population in args.populations for seed in range(args.seeds)
             for method in methods(task)]
    records, total = measure(cases, run_once, lambda r: (
        f"{r.task} population {r.population} seed {r.seed} {r.method:14}: best {r.best:.4f} "
        f"median {r.median:.4f} exploits {r.exploits} {r.seconds:.1f}s"))
    write_section(args.output, RL_HEADING if args.tasks == ["rl"] else HEADING,
                  section(records, argv, total, args.tasks, args.populations, args.seeds))
    print(f"wrote {args.output} ({total:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
