"""PBT against random search on the toy and on digits, written to benchmarks/RESULTS.md.

    python benchmarks/search_quality.py --seeds 5

For each task and seed the run script's own config runs twice: with its
exploit (truncation) and with `exploit="none"`. The seed draws the members'
hparams and weights, so both runs start from the same members and train the
same number of steps; random search is PBT with exploit off.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from results import RESULTS, write_section

import populace
from populace.script import Script, load_script
from populace.store import Result, open_store

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"toy": ROOT / "examples" / "toy.py", "digits": ROOT / "examples" / "digits_mlp.py"}
METHODS = {"PBT": None, "random search": "none"}  # exploit: None keeps the script's
HEADING = "## Search quality: PBT against random search"
VALIDATION_IMAGES = 359  # digits_mlp.py's validation split: one image is 0.28 points


@dataclass(frozen=True)
class Record:
    """What one run measured."""

    task: str
    seed: int
    method: str
    best: float
    test: float | None
    median: float
    steps: int
    budget: int
    skipped: int
    exploits: int
    seconds: float


def run_once(task: str, script: Script, seed: int, method: str, directory: Path) -> Record:
    """Run `script` once with `seed` and `method`, and measure it from its store."""
    settings = {**script.config, "seed": seed, "executor": "local",
                "workers": os.cpu_count() or 1}
    if METHODS[method] is not None:
        settings["exploit"] = METHODS[method]
    store = directory / f"{task}-{seed}-{method.replace(' ', '-')}.db"
    began = time.perf_counter()
    result = populace.run(script.trainable, script.space, store=store, initial=script.initial,
                          progress=False, script=script.path, **settings)
    seconds = time.perf_counter() - began
    db = open_store(store)
    try:
        results, events, run = db.results(), db.events("exploit"), db.config().run
    finally:
        db.close()
    last = max((r for r in results if r.member == result.best.id), key=lambda r: r.step)
    scores = [m.score for m in result.members if m.score is not None]
    return Record(
        task=task, seed=seed, method=method, best=result.score,
        test=last.metrics.get("test_accuracy"), median=statistics.median(scores),
        steps=steps_used(results), budget=run["population"] * run["steps"],
        skipped=sum(e.donor_step - e.step for e in events), exploits=len(events),
        seconds=seconds,
    )


def steps_used(results: Sequence[Result]) -> int:
    """Training steps the run paid for: each result trained steps (start, step]."""
    return sum(r.step - r.start for r in results)


def spread(values: Sequence[float], fmt: str) -> str:
    """`median [min, max]` of `values`, each formatted with `fmt`."""
    return (f"{format(statistics.median(values), fmt)} "
            f"[{format(min(values), fmt)}, {format(max(values), fmt)}]")


def pick(records: Sequence[Record], task: str, method: str) -> list[Record]:
    """The records of one task and method, in seed order."""
    return sorted((r for r in records if r.task == task and r.method == method),
                  key=lambda r: r.seed)


ROWS: list[tuple[str, Callable[[Record], float | None], str]] = [
    ("best member's validation {score}", lambda r: r.best, ".4f"),
    ("best member's test accuracy", lambda r: r.test, ".4f"),
    ("median member's validation {score}", lambda r: r.median, ".4f"),
    ("training steps used", lambda r: r.steps, ".0f"),
    ("exploits", lambda r: r.exploits, ".0f"),
    ("wall time (s)", lambda r: r.seconds, ".1f"),
]


def table(records: Sequence[Record], task: str, score: str) -> list[str]:
    """A markdown table of median [min, max] across seeds, PBT beside random search."""
    lines = ["| across seeds: median [min, max] | " + " | ".join(METHODS) + " |",
             "|---|" + "---|" * len(METHODS)]
    for label, get, fmt in ROWS:
        cells = []
        for method in METHODS:
            values = [get(r) for r in pick(records, task, method)]
            cells.append("n/a" if None in values else spread(values, fmt))
        if any(cell != "n/a" for cell in cells):
            lines.append(f"| {label.format(score=score)} | " + " | ".join(cells) + " |")
    return lines


def per_seed(records: Sequence[Record], task: str) -> list[str]:
    """A markdown table of each seed's runs, PBT beside random search."""
    pairs = list(zip(pick(records, task, "PBT"), pick(records, task, "random search"),
                     strict=True))
    columns: list[tuple[str, Callable[[Record], float | None]]] = [
        ("best", lambda r: r.best), ("test", lambda r: r.test), ("median", lambda r: r.median)]
    shown = [(name, get) for name, get in columns if get(pairs[0][0]) is not None]
    header = "".join(f" PBT {name} | random {name} |" for name, _ in shown)
    lines = [f"| seed |{header} PBT steps (skipped) |", "|---|" + "---|" * (2 * len(shown) + 1)]
    for p, r in pairs:
        cells = "".join(f" {get(p):.4f} | {get(r):.4f} |" for _, get in shown)
        lines.append(f"| {p.seed} |{cells} {p.steps} ({p.skipped}) |")
    return lines


def wins(records: Sequence[Record], task: str, get: Callable[[Record], float]) -> str:
    """How many seeds PBT was above, level with and below random search."""
    pairs = zip(pick(records, task, "PBT"), pick(records, task, "random search"), strict=True)
    diffs = [get(p) - get(r) for p, r in pairs]
    return (f"{sum(d > 0 for d in diffs)} above, {sum(d == 0 for d in diffs)} level, "
            f"{sum(d < 0 for d in diffs)} below")


def med(records: Sequence[Record], task: str, method: str,
        get: Callable[[Record], float]) -> float:
    """The median across seeds of one measure."""
    return statistics.median(get(r) for r in pick(records, task, method))


def steps_text(records: Sequence[Record], task: str) -> str:
    """What the step counts say, checked against the exploit events."""
    pbt, rand = pick(records, task, "PBT"), pick(records, task, "random search")
    budget = pbt[0].budget
    exact = sum(r.steps == r.budget for r in rand)
    balanced = all(r.steps + r.skipped == r.budget for r in pbt)
    text = (f"Random search trained exactly the budget of {budget} steps (population x steps) "
            f"in {exact} of {len(rand)} seeds. PBT trained "
            f"{spread([r.steps for r in pbt], '.0f')} steps: ")
    if all(r.skipped == 0 for r in pbt):
        return text + (
            "every exploit copied a donor at the member's own step, so none were skipped "
            "(workers claim the member furthest behind, so a population larger than the "
            "workers advances nearly in lockstep).")
    return text + (
        f"fewer in {sum(r.skipped > 0 for r in pbt)} of {len(pbt)} seeds, because an exploit "
        "that copies a donor further ahead moves the member forward to the donor's step, and "
        "the steps it jumps over are never trained (a member is never sent back: one whose "
        "donor is behind waits for it to catch up). Budget = used + skipped (summed over the "
        f"exploit events) holds in {'every' if balanced else 'not every'} PBT run."
    )


def toy_text(records: Sequence[Record]) -> str:
    """The toy's outcome, from the measured numbers."""
    pbt, rand = pick(records, "toy", "PBT"), pick(records, "toy", "random search")
    same = len({round(r.best, 12) for r in rand}) == 1
    lowest = min(pbt, key=lambda r: r.best)
    most = max(pbt, key=lambda r: r.skipped)
    skipping = (
        f"The seed that skipped most steps (seed {most.seed}, {most.skipped}) also ends "
        f"lowest (Q {lowest.best:.4f}): a skipped step is a gradient step never taken."
        if lowest is most else
        f"The lowest PBT run (seed {lowest.seed}, Q {lowest.best:.4f}) skipped "
        f"{lowest.skipped} steps; the one that skipped most (seed {most.seed}) "
        f"{most.skipped}.")
    return (
        f"The toy's score is its true objective Q = 1.2 - (θ0² + θ1²) (the optimum is 1.2); "
        f"it has no test set. Its two members start from the script's `initial` "
        f"(h = [1, 0] and [0, 1]) in every seed, so random search here is the paper's grid "
        f"search: {'the same' if same else 'a'} best Q "
        f"{'in every seed' if same else 'per seed'} ({spread([r.best for r in rand], '.4f')}), "
        f"the member that can shrink only one coordinate. PBT's best member reaches a median "
        f"Q of {med(records, 'toy', 'PBT', lambda r: r.best):.4f} "
        f"({wins(records, 'toy', lambda r: r.best)} random search across seeds): exploit lets "
        f"a member take the other's θ and explore resamples h, which a member alone can never "
        f"change. " + steps_text(records, "toy") + (
            " Here the toy runs on the local executor with two workers, one per member, each "
            "at its own pace (a step takes microseconds, and the second process starts "
            "later), so members drift apart and exploits jump ahead; the script's own "
            "`executor=\"inline\"`, which the README's table uses, alternates the members "
            "in one process, so neither gets ahead. " + skipping
            if any(r.skipped for r in pbt) else "")
    )


def digits_text(records: Sequence[Record], population: int) -> str:
    """The digits outcome and why, from the measured numbers."""
    best_p, best_r = (med(records, "digits", m, lambda r: r.best) for m in METHODS)
    test_p, test_r = (med(records, "digits", m, lambda r: r.test) for m in METHODS)
    pop_p, pop_r = (med(records, "digits", m, lambda r: r.median) for m in METHODS)
    everyone = [r.best for r in records if r.task == "digits"]
    gap = round((best_p - best_r) * VALIDATION_IMAGES)  # accuracies are k / 359
    verdict = "matches" if gap == 0 else "beats" if gap > 0 else "falls short of"
    by = "" if gap == 0 else f" by {abs(gap)} of the {VALIDATION_IMAGES} validation images"
    span = round((max(everyone) - min(everyone)) * VALIDATION_IMAGES)
    population_text = (
        "PBT shows in the population instead: its median member reaches "
        f"{pop_p:.4f} against {pop_r:.4f} without exploit"
        if pop_p > pop_r else
        f"Nor does PBT lift the population: its median member reaches {pop_p:.4f} against "
        f"{pop_r:.4f} without exploit")
    return (
        f"On digits PBT's median best-member validation accuracy is {best_p:.4f} against "
        f"random search's {best_r:.4f}: PBT {verdict} random search's median{by} (per seed: "
        f"{wins(records, 'digits', lambda r: r.best)}). The best member barely differs "
        f"because digits saturates: the best members of all runs, PBT and random "
        f"search, lie in [{min(everyone):.4f}, {max(everyone):.4f}], {span} validation images "
        f"from end to end, and among {population} random configurations at least one is "
        f"good. On the held-out test set, which selection never sees, the best member scores "
        f"a median {test_p:.4f} with PBT and {test_r:.4f} with random search (per seed: "
        f"{wins(records, 'digits', lambda r: r.test)}); the best member is picked from "
        f"{population} on {VALIDATION_IMAGES} images, so its validation score is optimistic "
        f"and gaps of a few images on either set are noise. {population_text} (per seed: "
        f"{wins(records, 'digits', lambda r: r.median)}): with exploit, members with a poor "
        f"learning rate, momentum or dropout copy a good member's weights and hparams instead "
        f"of finishing badly. " + steps_text(records, "digits")
    )


def section(records: Sequence[Record], argv: Sequence[str], total: float) -> str:
    """The markdown section this benchmark owns in RESULTS.md."""
    command = shlex.join(["python", "benchmarks/search_quality.py", *argv])
    digits, toy = load_script(TASKS["digits"]).config, load_script(TASKS["toy"]).config
    lines = [
        HEADING, "",
        f"Produced by `{command}` (from the repository root, in its `.venv`) on "
        f"{datetime.date.today().isoformat()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}; the whole benchmark took {total:.0f} s. Other processes may "
        "have shared the cores, so wall times are indicative only.",
        "",
        "Each task runs its script's own config (`examples/toy.py`, "
        "`examples/digits_mlp.py`) once per seed with its exploit (truncation; toy: explore "
        "by resample, digits: perturb) and once with `exploit=\"none\"`: the same members, "
        "hparams, weights and steps, no exploit (random search). Both use "
        "`executor=\"local\"` with one worker per core. The best member is the one "
        "`populace.run` returns (best final validation score); its test accuracy is from its "
        "last result's metrics, never used for selection. Training steps used sum "
        "`step - start` over every result in the store. PBT on the local executor is not "
        "reproducible run to run: exploit decides on the population as it stands when a "
        "member reports, which depends on process timing; random search decides nothing and "
        "repeats exactly.",
        "",
        f"### Digits MLP: accuracy ({digits['population']} members, {digits['steps']} epochs, "
        f"ready every {digits['ready_steps']})", "",
        *table(records, "digits", "accuracy"), "",
        *per_seed(records, "digits"), "",
        f"### Toy (Fig. 2): the \"accuracy\" is the score Q ({toy['population']} members, "
        f"{toy['steps']} steps, ready every {toy['ready_steps']})", "",
        *table(records, "toy", "score Q"), "",
        *per_seed(records, "toy"), "",
        "### Outcome", "",
        digits_text(records, digits["population"]), "",
        toy_text(records), "",
    ]
    return "\n".join(lines)


def progress(record: Record) -> str:
    """One line on a finished run."""
    test = "" if record.test is None else f" test {record.test:.4f}"
    return (f"{record.task:6} seed {record.seed} {record.method:13}: best {record.best:.4f}"
            f"{test} median {record.median:.4f} steps {record.steps}/{record.budget} "
            f"exploits {record.exploits} {record.seconds:.1f}s")


def main(argv: Sequence[str]) -> None:
    """Run every task, seed and method; write the section to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    began = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as directory:
        for task, path in TASKS.items():
            script = load_script(path)
            for seed in range(args.seeds):
                for method in METHODS:
                    records.append(run_once(task, script, seed, method, Path(directory)))
                    print(progress(records[-1]), flush=True)
    total = time.perf_counter() - began
    write_section(args.output, HEADING, section(records, argv, total))
    print(f"wrote {args.output} ({total:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
