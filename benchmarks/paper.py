"""The paper's translation and GAN experiments at laptop scale: PBT against random search,
and the paper's ablations, written to benchmarks/RESULTS.md.

    nice -n 19 .venv/bin/python benchmarks/paper.py --seeds 5 --ablation-seeds 3

For each domain (examples/translation.py, examples/gan_digits.py) and seed,
the script's own config runs as PBT and with `exploit="none"` (random search):
the seed draws the members' hparams and weights, so both start from the same
members and train the same steps. Then the ablations, each one change to the
script's config: population 4 and 16, the other exploit (truncation against
tournament), explore by resample in place of perturb, ready twice as often and
half as often, exploit only (explore "keep": a copy keeps its donor's
hparams) and explore only (exploit "own": no member copies, each explores its
own hparams at every ready point). Every run uses the local executor with 2 workers. Records go to
benchmarks/paper.json after every run (a benchmark started again skips the runs
it holds); the section is rewritten each time, and seed 0's PBT run of each
domain is plotted with populace's report (the schedules PBT found and the
lineage of the best member) as benchmarks/paper_<domain>_schedule.png and
paper_<domain>_lineage.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from results import RESULTS, write_section
from search_quality import spread

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOMAINS = {"translation": ROOT / "examples" / "translation.py",
           "gan": ROOT / "examples" / "gan_digits.py"}
# the metric each domain reports beside its score, never ranked by
CHECKS = {"translation": ("test_bleu", "test BLEU"), "gan": ("coverage", "coverage")}
HEADING = "## The paper's translation and GAN experiments at laptop scale"
RECORDS = HERE / "paper.json"
WORKERS = 2
MAIN = ("PBT", "random search")


def variants(config: dict) -> dict[str, dict]:
    """Each method's change to the script's config: the main two, then the ablations."""
    other = "truncation" if config["exploit"]["name"] == "tournament" else "tournament"
    ready = config["ready_steps"]
    return {
        "PBT": {},
        "random search": {"exploit": "none"},
        "population 4": {"population": 4},
        "population 16": {"population": 16},
        f"exploit {other}": {"exploit": {"name": other}},
        "explore resample": {"explore": {"name": "resample"}},
        f"ready every {ready // 2}": {"ready_steps": ready // 2},
        f"ready every {ready * 2}": {"ready_steps": ready * 2},
        "exploit only": {"explore": {"name": "keep"}},
        "explore only": {"exploit": {"name": "own"}},
    }


def run_once(domain: str, method: str, seed: int, folder: Path) -> dict:
    """One run of a domain's script under one method and seed, measured from its store."""
    import populace
    from populace.script import load_script
    from populace.store import open_store

    script = load_script(DOMAINS[domain])
    settings = {**script.config, "seed": seed, "executor": "local", "workers": WORKERS,
                **variants(script.config)[method]}
    store = folder / f"{domain}-{seed}-{method.replace(' ', '-')}.db"
    for left in folder.glob(f"{store.stem}.*"):  # a stopped run's: start afresh
        shutil.rmtree(left) if left.is_dir() else left.unlink()
    began, load = time.perf_counter(), os.getloadavg()[0]
    result = populace.run(script.trainable, script.space, store=store, script=script.path,
                          progress=False, **settings)
    seconds = time.perf_counter() - began
    db = open_store(store)
    try:
        results, exploits = db.results(), db.events("exploit")
    finally:
        db.close()
    key = CHECKS[domain][0]
    last = {}
    for r in results:  # each member's last result
        if r.member not in last or r.step >= last[r.member].step:
            last[r.member] = r
    scores = [m.score for m in result.members if m.score is not None]
    return {"domain": domain, "method": method, "seed": seed, "best": result.score,
            "check": last[result.best.id].metrics.get(key),
            "median": statistics.median(scores), "exploits": len(exploits),
            "steps": sum(r.step - r.start for r in results), "seconds": seconds,
            "load": load, "population": settings["population"], "store": str(store),
            "schedule": [{"step": e.step, "hparams": e.hparams} for e in result.schedule]}


def plot(domain: str, store: str) -> list[Path]:
    """The schedules PBT found and the best member's lineage, populace's report plots."""
    from populace.report.data import gather
    from populace.report.plots import hparams_figure, lineage_figure, save
    from populace.store import open_store

    db = open_store(store)
    try:
        view = gather(db)
    finally:
        db.close()
    out = []
    for name, figure in (("schedule", hparams_figure), ("lineage", lineage_figure)):
        fig = figure(view)
        fig.suptitle(f"{domain}, PBT seed 0", fontsize=10)
        out.append(save(fig, HERE / f"paper_{domain}_{name}.png"))
    return out


# -- the section ---------------------------------------------------------------------------


def pick(records: Sequence[dict], domain: str, method: str) -> list[dict]:
    """One domain and method's records, in seed order."""
    return sorted((r for r in records if r["domain"] == domain and r["method"] == method),
                  key=lambda r: r["seed"])


def table(records: Sequence[dict], domain: str, methods: Sequence[str], score: str,
          seeds: Sequence[int] | None = None) -> list[str]:
    """Median [min, max] over seeds (all, or `seeds`) of each method's measures, a row a
    method."""
    check = CHECKS[domain][1]
    lines = [f"| method | seeds | best member's {score} | its {check} | median member's "
             f"{score} | exploits | steps trained | wall (s) |", "|---|" + "---|" * 7]
    for method in methods:
        rows = [r for r in pick(records, domain, method) if seeds is None or r["seed"] in seeds]
        if not rows:
            continue
        checks = [r["check"] for r in rows]
        lines.append(
            f"| {method} | {len(rows)} | {spread([r['best'] for r in rows], '.2f')} | "
            f"{'n/a' if None in checks else spread(checks, '.2f')} | "
            f"{spread([r['median'] for r in rows], '.2f')} | "
            f"{spread([r['exploits'] for r in rows], '.0f')} | "
            f"{spread([r['steps'] for r in rows], '.0f')} | "
            f"{spread([r['seconds'] for r in rows], '.0f')} |")
    return lines


def per_seed(records: Sequence[dict], domain: str) -> list[str]:
    """Each seed's PBT against random search."""
    lines = ["| seed | PBT best | random best | PBT median | random median |",
             "|---|---|---|---|---|"]
    for p in pick(records, domain, "PBT"):
        r = [x for x in pick(records, domain, "random search") if x["seed"] == p["seed"]]
        if r:
            lines.append(f"| {p['seed']} | {p['best']:.2f} | {r[0]['best']:.2f} | "
                         f"{p['median']:.2f} | {r[0]['median']:.2f} |")
    return lines


def wins(records: Sequence[dict], domain: str, key: str) -> str:
    """How many seeds PBT was above, level with and below random search."""
    rand = {r["seed"]: r[key] for r in pick(records, domain, "random search")}
    diffs = [p[key] - rand[p["seed"]] for p in pick(records, domain, "PBT") if p["seed"] in rand]
    return (f"{sum(d > 0 for d in diffs)} above, {sum(d == 0 for d in diffs)} level, "
            f"{sum(d < 0 for d in diffs)} below")


def verdict(records: Sequence[dict], domain: str) -> str:
    """PBT against random search in numbers."""
    p, r = pick(records, domain, "PBT"), pick(records, domain, "random search")
    if not p or not r:
        return "Not run yet."
    out = []
    for key, what in (("best", "best member"), ("median", "median member")):
        a, b = (statistics.median(x[key] for x in rows) for rows in (p, r))
        out.append(f"the {what}'s median score is {a:.2f} with PBT against {b:.2f} with random "
                   f"search (per seed: PBT {wins(records, domain, key)})")
    text = "; ".join(out)
    return text[0].upper() + text[1:] + "."


def section(records: Sequence[dict], commands: Sequence[Sequence[str]], notes: dict) -> str:
    """The markdown section this benchmark owns in RESULTS.md."""
    import torch

    from populace.script import load_script

    ran = [c if isinstance(c, str) else
           shlex.join(["nice", "-n", "19", ".venv/bin/python", "benchmarks/paper.py", *c])
           for c in commands]
    loads = [r["load"] for r in records]
    lines = [
        HEADING, "",
        "Produced by " + ", then ".join(f"`{c}`" for c in ran) + " (from the repository root) "
        f"on {datetime.date.today().isoformat()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other work (1-minute load average at the "
        f"start of a run: {spread(loads, '.1f') if loads else 'n/a'}), Python "
        f"{platform.python_version()}, torch {torch.__version__}; wall times are noise "
        "under that load, scores are not.", "",
        "Each domain's script runs at its own config as PBT and with `exploit=\"none\"` "
        "(random search): the same seeds draw the same members (hparams and initial weights), "
        "and both train the same steps. The ablations change one setting of PBT's config "
        "each. All runs use the local executor with 2 workers. The best member is the one "
        "`populace.run` returns (best final score); the check beside it is from its last "
        "result and never ranked by. Table cells are median [min, max] over seeds.", "",
    ]
    for domain, path in DOMAINS.items():
        if not any(r["domain"] == domain for r in records):
            lines += [f"### {domain}", "", "Not run yet.", ""]
            continue
        config = load_script(path).config
        score = config["score"]
        names = list(variants(config))
        seeds = sorted({r["seed"] for r in records
                        if r["domain"] == domain and r["method"] in names[2:]}) or [0]
        lines += [
            f"### {domain}: `{path.relative_to(ROOT)}` ({config['population']} members, "
            f"{config['steps']} steps, ready every {config['ready_steps']}, exploit "
            f"{config['exploit']['name']}, explore {describe(config['explore'])})", "",
            *table(records, domain, MAIN, score), "",
            verdict(records, domain), "",
            *per_seed(records, domain), "",
            f"Ablations, one change each to PBT's config, on seeds {', '.join(map(str, seeds))} "
            "(PBT and random search on the same seeds, from the main runs):", "",
            *table(records, domain, [*MAIN, *names[2:]], score, seeds), "",
        ]
        unrun = [n for n in names if not pick(records, domain, n)]
        if unrun:
            lines += ["Not run (no time left on the shared cores): " + ", ".join(unrun) + ".", ""]
        if notes.get(domain):
            lines += [notes[domain], ""]
        for name in ("schedule", "lineage"):
            if (HERE / f"paper_{domain}_{name}.png").exists():
                lines += [f"![{domain} {name}](paper_{domain}_{name}.png)", ""]
    return "\n".join(lines)


def describe(explore: dict) -> str:
    factors = explore.get("factors")
    return explore["name"] + (f" x{' / x'.join(map(str, factors))}" if factors else "")


# -- the driver ----------------------------------------------------------------------------


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the main comparison")
    parser.add_argument("--ablation-seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None,
                        help="these methods only (the main two, ablations by name)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/populace-paper"),
                        help="where the run stores go")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--notes", type=Path, default=HERE / "paper_notes.json",
                        help="what the results show, a paragraph a domain, written after "
                             "reading them")
    parser.add_argument("--rewrite", action="store_true",
                        help="only rewrite the section from the records (new notes, say)")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    saved = json.loads(RECORDS.read_text()) if RECORDS.exists() else {}
    records, commands = saved.get("records", []), saved.get("commands", [])
    if not args.rewrite:  # as run, with the PYTHONPATH that chose the library's copy
        path = f"PYTHONPATH={os.environ['PYTHONPATH']} " if "PYTHONPATH" in os.environ else ""
        commands.append(path + shlex.join(["nice", "-n", "19", ".venv/bin/python",
                                           "benchmarks/paper.py", *argv]))
    notes = json.loads(args.notes.read_text()) if args.notes.exists() else {}

    def write() -> None:
        if not args.rewrite:
            RECORDS.write_text(json.dumps({"records": records, "commands": commands}, indent=1))
        write_section(args.output, HEADING, section(records, commands, notes))

    from populace.script import load_script

    for domain in [] if args.rewrite else args.domains:
        names = list(variants(load_script(DOMAINS[domain]).config))
        plan = [(m, s) for s in range(args.seeds) for m in MAIN]
        # seed by seed: a benchmark stopped early leaves every ablation with as many seeds
        plan += [(m, s) for s in range(args.ablation_seeds) for m in names[2:]]
        for method, seed in plan:
            if args.only and method not in args.only:
                continue
            if any(r["domain"] == domain and r["method"] == method and r["seed"] == seed
                   for r in records):
                continue
            record = run_once(domain, method, seed, args.folder)
            records.append(record)
            print(f"{domain} {method:18} seed {seed}: best {record['best']:.2f} median "
                  f"{record['median']:.2f} check {record['check']} exploits "
                  f"{record['exploits']} {record['seconds']:.0f} s load {record['load']:.1f}",
                  flush=True)
            write()
            if method == "PBT" and seed == 0:
                plot(domain, record["store"])
                write()
    write()
    print(f"wrote {args.output} and {RECORDS}")


if __name__ == "__main__":
    main(sys.argv[1:])
