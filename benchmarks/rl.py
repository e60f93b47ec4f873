"""PPO on CartPole-v1 and Acrobot-v1: populace's PBT against random search and Ray Tune's PBT.

    .venv/bin/python benchmarks/rl.py --seeds 5 --ray-seeds 3

The task is examples/rl_cartpole.py at its own config: 8 members, 30 steps of 2048
environment steps each (61,440 per member), ready every 3 steps. For each
environment and seed three methods train the same 8 members (the seed's
initial hparams, and the same member seeds, so the same initial weights and
environments):

- PBT: populace, the script's exploit (truncation: the bottom quarter copies the top
  quarter) and perturb-or-resample explore;
- random search: populace, the same run with exploit none;
- Ray Tune 2.60's PopulationBasedTraining (its truncation, quantile 0.25,
  perturb x0.8 / x1.2 or resample with probability 0.25, asynchronous), the same
  PPO trainable as a function trainable, all 8 members at once on fractional
  CPUs of ray.init(num_cpus=2), in this Python when it has Ray Tune, else in
  benchmarks/.venv-ray (made the first time, torch installed before the rest). Ray's
  PBT decides at a trial's last report too, and a trial it copies then ends with its
  donor's score in Ray's results: the section shows each trial's own last score beside
  them (`trained_finals`).

Each run is a fresh process measured from outside: wall time from launch to
exit, and the peak of the summed RSS of the process and its descendants
(benchmarks/overhead.py's sampler). populace uses the local executor with 2
workers. Then the best lineage's lr and entropy cost of seed 0's PBT run are
plotted (benchmarks/rl_schedule_<env>.png, populace's report plot) and CartPole's
seed-0 best member is replayed with `populace replay --seed` for 3 seeds. The
section goes to benchmarks/RESULTS.md, rewritten after every run; `--records FILE`
keeps the runs' records there (stores beside it) and resumes from it, and with
`--first-seed N` adds seeds from N on to them (fresh seeds, nothing chosen on). `child` runs
one method of one seed (the driver starts it; Ray's runs in Ray's venv). `--learn`
trains one member at a fixed setting instead (the return PPO reaches, and when).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from results import RESULTS, write_section
from rl_notes import BEFORE, CHOICE, WHY_TRUNCATION

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "rl_cartpole.py"
ENVS = ("CartPole-v1", "Acrobot-v1")
METHODS = ("PBT", "random search", "Ray Tune PBT")
HEADING = "## Reinforcement learning: PPO on classic control"
REPLAY = "### Replay of the schedule"
MEASURED = "Measured on"  # opens a subsection kept from an earlier benchmark
LEARN_HEADING = "## Reinforcement learning: PPO learns CartPole at a fixed setting"
# the setting tests/paper/test_rl.py trains with: common PPO practice, with a larger lr
FIXED = {"lr": 1e-3, "entropy": 0.01, "clip": 0.2, "gae_lambda": 0.95, "discount": 0.99,
         "rollout": 128, "env": "CartPole-v1"}
RAY_REQUIREMENTS = (["torch==2.13.0"],  # first: nothing may pull another build of torch
                    ["ray[tune]==2.60.0", "psutil", "gymnasium"])
WORKERS = 2
REPLAY_SEEDS = (1, 2, 3)


def example(env: str):
    """The example module with POPULACE_ENV=env (its space's env Constant)."""
    import importlib.util

    os.environ["POPULACE_ENV"] = env
    spec = importlib.util.spec_from_file_location(f"rl_example_{env.split('-')[0]}", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the children: one method, one seed, one environment --------------------------------


def child_populace(args: argparse.Namespace) -> dict:
    """One populace run (PBT or random search) of the example; its figures from the store."""
    import populace
    from populace.script import load_script
    from populace.store import open_store

    os.environ["POPULACE_ENV"] = args.env  # before the script is loaded, here and in workers
    script = load_script(EXAMPLE)
    settings = {**script.config, "seed": args.seed, "executor": args.executor,
                "workers": WORKERS, "steps": args.steps or script.config["steps"]}
    if args.exploit == "none":
        settings["exploit"] = "none"
    result = populace.run(script.trainable, script.space, store=args.store, script=EXAMPLE,
                          progress=False, **settings)
    db = open_store(args.store)
    try:
        results, exploits, members = db.results(), db.events("exploit"), db.members()
    finally:
        db.close()
    frames = sum(r.step - r.start for r in results) * example_frames()
    return {"best": result.score, "median": statistics.median(m.score for m in members),
            "env_steps": frames, "exploits": len(exploits),
            # with exploit none a member's hparams never change: these are the initial ones
            "hparams": [m.hparams for m in sorted(members, key=lambda m: m.id)],
            "schedule": [{"step": e.step, "hparams": e.hparams} for e in result.schedule]}


def example_frames() -> int:
    """Environment steps per populace step, as the example defines it."""
    import ast

    tree = ast.parse(EXAMPLE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STEP_FRAMES":
            return int(ast.literal_eval(node.value))
    raise RuntimeError("examples/rl_cartpole.py defines no STEP_FRAMES")


def make_ray_train(env: str, steps: int, ready: int, stats: str):
    """The example's PPO as a Ray Tune function trainable, checkpointing at ready points."""

    def train(config):
        import uuid
        import zlib

        import numpy as np
        import torch
        from ray import tune

        sys.path.insert(0, str(ROOT / "src"))
        rl = example(env)
        torch.set_num_threads(1)
        hparams = in_bounds(rl.space, config)
        member = rl.PPO()
        member.build(hparams, config["seed"])
        step = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # an exploit, or a restart: carry on from its state
            with checkpoint.as_directory() as folder:
                member.load(Path(folder) / "member.pt")
                step = json.loads((Path(folder) / "step.json").read_text())
            # a random stream of its own, as populace gives a copy, then the explored hparams
            trial = tune.get_context().get_trial_id()
            member.reseed(int(np.random.SeedSequence([zlib.crc32(trial.encode()), step])
                              .generate_state(1)[0]))
            member.apply(hparams)
        trained = 0
        while step < steps:
            member.step()
            step, trained = step + 1, trained + 1
            metrics = {**member.evaluate(), "step": step}
            if step % ready == 0 or step == steps:
                with tempfile.TemporaryDirectory() as folder:
                    member.save(Path(folder) / "member.pt")
                    (Path(folder) / "step.json").write_text(json.dumps(step))
                    Path(stats, f"{uuid.uuid4().hex}.json").write_text(json.dumps(trained))
                    trained = 0
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)
        Path(stats, f"{uuid.uuid4().hex}.json").write_text(json.dumps(trained))

    return train


def in_bounds(space: dict, config: dict) -> dict:
    """Ray's hparams held inside the example's bounds (Ray's perturb can leave them), ints
    rounded."""
    hparams = {}
    for name, dim in space.items():
        if hasattr(dim, "value"):  # a Constant
            hparams[name] = dim.value
            continue
        value = min(max(config[name], dim.low), dim.high)
        hparams[name] = int(round(value)) if isinstance(dim.low, int) else float(value)
    return hparams


def child_ray(args: argparse.Namespace) -> dict:
    """One Ray Tune PBT run of the example on the given initial members."""
    import ray
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    sys.path.insert(0, str(ROOT / "src"))
    rl = example(args.env)
    start = json.loads(Path(args.initial).read_text())  # [{"hparams": ..., "seed": ...}]
    steps, ready = args.steps or rl.config["steps"], rl.config["ready_steps"]
    stats = Path(args.storage) / "stats"
    stats.mkdir(parents=True)
    mutations = {
        "lr": tune.loguniform(rl.space["lr"].low, rl.space["lr"].high),
        "entropy": tune.loguniform(rl.space["entropy"].low, rl.space["entropy"].high),
        "clip": tune.uniform(rl.space["clip"].low, rl.space["clip"].high),
        "gae_lambda": tune.uniform(rl.space["gae_lambda"].low, rl.space["gae_lambda"].high),
        "discount": tune.uniform(rl.space["discount"].low, rl.space["discount"].high),
        "rollout": tune.lograndint(rl.space["rollout"].low, rl.space["rollout"].high + 1),
    }
    points = [{**{k: m["hparams"][k] for k in mutations}, "seed": m["seed"]} for m in start]
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    pbt = PopulationBasedTraining(time_attr="step", perturbation_interval=ready,
                                  hyperparam_mutations=mutations)
    tuner = tune.Tuner(
        tune.with_resources(make_ray_train(args.env, steps, ready, str(stats)),
                            {"cpu": WORKERS / len(points)}),
        param_space={**mutations, "seed": 0},
        tune_config=tune.TuneConfig(
            metric="return", mode="max", scheduler=pbt, num_samples=len(points),
            search_alg=BasicVariantGenerator(points_to_evaluate=points)),
        run_config=tune.RunConfig(storage_path=str(Path(args.storage) / "ray"), name="rl",
                                  verbose=0),
    )
    grid = tuner.fit()
    finals = [r.metrics["return"] for r in grid if r.metrics and "return" in r.metrics]
    trained = sum(json.loads(p.read_text()) for p in stats.glob("*.json"))
    out = {"best": max(finals), "median": statistics.median(finals),
           "env_steps": trained * rl.STEP_FRAMES, "errors": len(grid.errors),
           "exploits": getattr(pbt, "_num_perturbations", None), "members": len(finals),
           **trained_finals(Path(args.storage), steps)}
    ray.shutdown()
    return out


def trained_finals(storage: Path, steps: int) -> dict:
    """Best and median of each Ray trial's last score from its own training, and how many
    trials Ray's PBT copied at the last step.

    Ray's PBT also decides at a trial's last report: a trial then in the bottom quantile
    takes its donor's checkpoint and, in Ray's results, its donor's score, with no step
    left to train (populace decides nothing after the last step). A trial's last row of
    result.json is its own last report, before any such copy.
    """
    finals = []
    for path in sorted(storage.glob("ray/*/train_*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        finals.append(rows[-1]["return"])
    decisions = [json.loads(line) for path in storage.glob("ray/*/pbt_global.txt")
                 for line in path.read_text().splitlines() if line.strip()]
    return {"best_trained": max(finals), "median_trained": statistics.median(finals),
            "final_copies": sum(d[3] >= steps for d in decisions)}


# -- the driver --------------------------------------------------------------------------


def ray_python() -> Path:
    """A Python with Ray Tune, torch and gymnasium in it: this one when it has them (the
    project's venv with every extra), else benchmarks/.venv-ray, made the first time."""
    probe = "import ray.tune, torch, gymnasium"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return Path(sys.executable)
    python = HERE / ".venv-ray" / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", python.parents[1]], check=True)
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        for packages in RAY_REQUIREMENTS:
            subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
    return python


def wait_for_tests(limit: float = 60) -> float:
    """Seconds spent waiting for a pytest on the shared cores to end (polled every 30 s, for
    `limit` s at most: past that the run goes ahead beside it)."""
    began = time.perf_counter()
    while (subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0
           and time.perf_counter() - began < limit):
        time.sleep(30)
    return time.perf_counter() - began


def measure(cmd: list, env: dict, timeout: float) -> dict:
    """Run `cmd` in a fresh session; its last `BENCH {json}` line, wall time and peak RSS."""
    from overhead import Sampler

    waited = wait_for_tests()
    with tempfile.TemporaryFile() as log:
        launched = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
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
    return {**json.loads(lines[-1][6:]), "wall": wall, "rss": sampler.rss, "waited": waited}


def run_method(method: str, env: str, seed: int, folder: Path, initial: list | None,
               args: argparse.Namespace) -> dict:
    """One method on one environment and seed, in its own process."""
    me = [sys.executable, Path(__file__), "child"]
    common = ["--env", env, "--seed", str(seed), "--steps", str(args.steps or 0)]
    if method == "Ray Tune PBT":
        path = folder / f"initial-{env}-{seed}.json"
        path.write_text(json.dumps(initial))
        storage = folder / f"ray-{env}-{seed}"
        shutil.rmtree(storage, ignore_errors=True)  # left by a stopped run: start afresh
        cmd = [ray_python(), Path(__file__), "child", "ray", *common, "--initial", path,
               "--storage", storage]
    else:
        store = folder / f"{env}-{seed}-{method.replace(' ', '-')}.db"
        for left in folder.glob(f"{store.stem}.*"):  # a stopped run's: never resume it
            shutil.rmtree(left) if left.is_dir() else left.unlink()
        exploit = "none" if method == "random search" else "script"
        cmd = [*me, "populace", *common, "--exploit", exploit, "--store", store,
               "--executor", args.executor]
    record = measure(cmd, {"PYTHONUNBUFFERED": "1"}, timeout=1800)
    record.update(method=method, env=env, seed=seed)
    if method != "Ray Tune PBT":
        record["store"] = str(store)
    return record


def replays(store: str, folder: Path) -> list[dict]:
    """The best member of `store` replayed from scratch on its schedule, once per seed."""
    from populace.replay import replay

    os.environ["POPULACE_ENV"] = "CartPole-v1"
    out = []
    for seed in REPLAY_SEEDS:
        began = time.perf_counter()
        done = replay(store, folder / f"replay-{seed}.db", progress=False, seed=seed)
        out.append({"seed": seed, "score": done.score, "pbt": done.pbt_score,
                    "entries": len(done.schedule), "wall": time.perf_counter() - began})
        print(f"replay seed {seed}: {done.score:.1f} (PBT's best {done.pbt_score:.1f})",
              flush=True)
    return out


def plot_schedule(store: str, env: str, folder: Path) -> Path:
    """The best lineage's lr and entropy cost over steps (populace's report plot), as PNG."""
    from dataclasses import replace

    from populace.report.data import gather
    from populace.report.plots import hparams_figure, save
    from populace.store import open_store

    db = open_store(store)
    try:
        view = gather(db)
    finally:
        db.close()
    fig = hparams_figure(replace(view, hparams=["lr", "entropy"]))
    fig.suptitle(f"{env}, PBT seed 0: every member's lr and entropy cost; the best lineage "
                 "(thick grey) is the schedule PBT found", fontsize=10)
    return save(fig, plot_path(env, folder))


def plot_path(env: str, folder: Path) -> Path:
    return folder / f"rl_schedule_{env.split('-')[0].lower()}.png"


# -- the section ---------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str) -> str:
    return (f"{format(statistics.median(values), fmt)} "
            f"[{format(min(values), fmt)}, {format(max(values), fmt)}]")


def pick(records: Sequence[dict], env: str, method: str) -> list[dict]:
    return sorted((own(r) for r in records if r["env"] == env and r["method"] == method),
                  key=lambda r: r["seed"])


def own(record: dict) -> dict:
    """`record` with its members' own final scores: a populace run's are its final scores
    (populace copies nothing after the last step); a Ray run's are `trained_finals`'
    (absent from a record of a run before they were kept)."""
    if record["method"] == "Ray Tune PBT":
        return record
    return {"best_trained": record["best"], "median_trained": record["median"],
            "final_copies": 0, **record}


ROWS = [("best member's final score", "best", ".1f"),
        ("median member's final score", "median", ".1f"),
        ("best member's own final score", "best_trained", ".1f"),
        ("median member's own final score", "median_trained", ".1f"),
        ("copies at the last step", "final_copies", ".0f"),
        ("environment steps trained (all members)", "env_steps", ".0f"),
        ("exploits", "exploits", ".0f"),
        ("wall time (s)", "wall", ".0f"),
        ("peak memory, all processes (MB)", "rss_mb", ".0f")]


def table(records: Sequence[dict], env: str) -> list[str]:
    methods = [m for m in METHODS if pick(records, env, m)]
    lines = ["| median [min, max] over seeds | "
             + " | ".join(f"{m} ({len(pick(records, env, m))} seeds)" for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for label, key, fmt in ROWS:
        cells = []
        for m in methods:
            values = [r.get(key) for r in pick(records, env, m)]
            cells.append("n/a" if None in values else spread(values, fmt))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def per_seed(records: Sequence[dict], env: str) -> list[str]:
    ray = [r for r in pick(records, env, METHODS[2]) if "median_trained" in r]
    columns = [(m, "best", "median") for m in METHODS] + (
        [(METHODS[2], "best_trained", "median_trained")] if ray else [])
    lines = ["| seed | " + " | ".join(f"{m}{' own' if b != 'best' else ''} best / median"
                                       for m, b, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for seed in sorted({r["seed"] for r in records if r["env"] == env}):
        cells = []
        for m, b, md in columns:
            r = [x for x in pick(records, env, m) if x["seed"] == seed and md in x]
            cells.append(f"{r[0][b]:.1f} / {r[0][md]:.1f}" if r else "-")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def verdict(records: Sequence[dict], env: str) -> str:
    """What the medians say, PBT against each other method on the seeds both ran."""
    out = []
    for other in METHODS[1:]:
        rival = pick(records, env, other)
        seeds = {r["seed"] for r in rival}
        pbt = [r for r in pick(records, env, "PBT") if r["seed"] in seeds]
        if not rival or not pbt:
            continue
        where = ("" if seeds == {r["seed"] for r in pick(records, env, "PBT")}
                 else f" on the seeds both ran ({', '.join(map(str, sorted(seeds)))})")
        keys = [("best", "best member", ""), ("median", "median member", "")]
        if other == METHODS[2] and all("median_trained" in r for r in rival):
            keys += [("best_trained", "best member", " own"),
                     ("median_trained", "median member", " own")]
        for key, what, mine in keys:
            a = statistics.median(r[key] for r in pbt)
            b = statistics.median(r[key] for r in rival)
            word = "above" if a > b else "level with" if a == b else "below"
            out.append(f"the {what}'s{mine} median{where} is {a:.1f} with PBT, {word} "
                       f"{other}'s{mine} {b:.1f}{paired(pbt, rival, key)}")
    text = "; ".join(out) + "."
    if env == "CartPole-v1" and all(r["best"] == 500 for r in records if r["env"] == env):
        text += (" Every run's best member ends at CartPole's ceiling of 500: among 8 "
                 "members one always solves it, so only the median member tells the "
                 "methods apart.")
    return text


def paired(pbt: Sequence[dict], rival: Sequence[dict], key: str) -> str:
    """Seed by seed, PBT's `key` less the rival's: the median difference, the seeds PBT
    is ahead in, and Wilcoxon's signed-rank test (two-sided) where there are 6 seeds or
    more: medians over seeds this noisy move by more than their gap from one benchmark to
    the next, and the paired test says whether a gap is more than that."""
    theirs = {r["seed"]: r[key] for r in rival}
    gaps = [r[key] - theirs[r["seed"]] for r in pbt if r["seed"] in theirs]
    if len(gaps) < 6 or not any(gaps):
        return ""
    from scipy.stats import wilcoxon

    p = wilcoxon(gaps).pvalue
    test = f"p = {p:.2f}" if p >= 0.005 else "p < 0.01"
    return (f" (seed by seed {statistics.median(gaps):+.1f}, ahead in "
            f"{sum(g > 0 for g in gaps)} of {len(gaps)}, Wilcoxon {test})")


def exploit_words(exploit: dict) -> str:
    """The script's exploit in words, from its config."""
    if exploit["name"] == "truncation":
        share = f"{exploit.get('fraction', 0.2):.0%}"
        return (f"truncation exploit (at every ready point a member in the bottom {share} "
                f"copies a random member of the top {share})")
    if exploit["name"] == "ttest":
        return (f"t-test exploit (Welch's test on the last {exploit.get('window', 10)} "
                f"ready-point scores, p < {exploit.get('significance', 0.05)})")
    return f"{exploit['name']} exploit"


def why(records: Sequence[dict], env: str, exploit: dict) -> str:
    """Why PBT did or did not copy, from the exploit counts."""
    pbt, ray = pick(records, env, "PBT"), pick(records, env, "Ray Tune PBT")
    mine = [r["exploits"] for r in pbt]
    theirs = statistics.median(r["exploits"] for r in ray) if ray else 0
    text = (f"Why: populace's {exploit_words(exploit)} made a median of "
            f"{statistics.median(mine):.0f} copies a run, {sum(mine)} in {len(pbt)} runs "
            f"(Ray Tune's truncation a median of {theirs:.0f} a run). ")
    if exploit["name"] == "ttest":
        return text + (
            "A member copies a rival only when Welch's test on their last ready-point "
            "scores finds it better: on a rising learning curve the window's spread is the "
            "trend, not noise, and a few points rarely pass the test.")
    return text + BEFORE.get(env, "") + WHY_TRUNCATION


def schedule_text(record: dict) -> str:
    """The best lineage's lr and entropy cost from step to step."""
    parts = [f"step {e['step']}: lr {e['hparams']['lr']:.2g}, entropy "
             f"{e['hparams']['entropy']:.2g}" for e in record["schedule"]]
    return "; ".join(parts)


def section(records: list[dict], replayed: list[dict], plots: dict, commands: list,
            total: float, executor: str, load: float | None = None,
            kept: dict[str, str] | None = None) -> str:
    """The whole section; `kept`: an environment's (or the replay's) subsection from an
    earlier benchmark, written as it stood, for what these records do not hold."""
    import torch

    rl = example("CartPole-v1")
    # a command given again only resumes or rewrites: named once
    named = dict.fromkeys(shlex.join([".venv/bin/python", "benchmarks/rl.py", *argv])
                          for argv in commands)
    command = "`, then `".join(named)
    cfg = rl.config
    waited = sum(r["waited"] for r in records)
    lines = [
        HEADING, "",
        f"Produced by `{command}` (from the repository root; a second "
        "command with `--records` goes on with the runs the first did not reach) on "
        f"{datetime.date.today().isoformat()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other work"
        + ("" if load is None else f" (load average {load:.1f} at the end)") + ", Python "
        f"{platform.python_version()}, torch {torch.__version__}, Ray 2.60.0; the whole "
        f"benchmark took {total:.0f} s ({waited:.0f} s of it waiting for test runs on the "
        "same cores to end). Wall times are indicative only.",
        "",
        f"`examples/rl_cartpole.py` at its own config: {cfg['population']} PPO members, "
        f"steps of {rl.STEP_FRAMES} environment steps each (the number per environment "
        f"below), ready every {cfg['ready_steps']} steps; score = mean return of the last "
        f"{rl.LAST} finished episodes (CartPole: 500 at most; Acrobot: -500 at worst, about "
        f"-60 to -80 for a good policy). PBT: {exploit_words(cfg['exploit'])}, perturb "
        "(x0.8 / x1.2) or resample (probability 0.25) each hparam, but the discount and "
        "GAE's lambda, which move by added noise (standard deviation 0.01 and 0.03: a "
        "factor sends a value near 1 to a bound of their narrow ranges). Random "
        "search: the same members with exploit none. Both populace runs use the "
        f"`{executor}` executor with {WORKERS} workers. Ray Tune PBT: the same members "
        "(initial hparams and member seeds) and the same PPO code as a function trainable, "
        "checkpointing at every ready point, `PopulationBasedTraining(time_attr='step', "
        f"perturbation_interval={cfg['ready_steps']})` at its defaults otherwise (truncation "
        "quantile 0.25, factors 0.8 / 1.2, resample probability 0.25, asynchronous), all 8 "
        f"members at once on `ray.init(num_cpus={WORKERS})` with a quarter CPU each; a copy "
        "is reseeded and its explored hparams applied after loading, as populace does, and "
        "hparams Ray's perturb pushes out of bounds are clipped. The final score is each "
        "member's last reported score; best and median are over the 8 members. Ray's PBT "
        "also decides at a member's last report (step 15 or 30 is a ready point): a member "
        "then in its bottom quantile takes its donor's checkpoint and, in Ray's results, "
        "its donor's score, with no step left to train, so Ray's median member can rise "
        "by copying alone; populace decides nothing after the last step. The rows and "
        "columns marked own give each member's last score from its own training (Ray: "
        "the last row of the trial's result.json, before any such copy; populace: its "
        "final score) and the copies made at the last step. "
        "Environment steps trained count every step any member trained (an exploit that "
        "copies a donor ahead skips steps; one behind trains some twice). Peak memory: the "
        "largest sum of RSS over the run's process and all its descendants.",
        "",
    ]
    kept = kept or {}
    for env in [e for e in ENVS if pick(records, e, "PBT") or e in kept]:
        if not pick(records, env, "PBT"):
            lines += [kept[env], ""]
            continue
        steps = pick(records, env, "PBT")[0].get("steps") or cfg["steps"]
        lines += [f"### {env}: {steps} steps, {steps * rl.STEP_FRAMES:,} environment steps "
                  "per member", "", *table(records, env), "", *per_seed(records, env), "",
                  "Outcome: " + verdict(records, env), "", why(records, env, cfg["exploit"]), "",
                  *([CHOICE[env], ""] if env in CHOICE else [])]
        seed0 = [r for r in pick(records, env, "PBT") if r["seed"] == 0]
        if seed0 and env in plots:
            lines += [f"The schedule PBT found (seed 0, best member, lr and entropy cost "
                      f"along its lineage): {schedule_text(seed0[0])}. Every member's "
                      f"hparams, the best lineage underneath: "
                      f"[{plots[env].name}]({plots[env].name}).", "",
                      f"![{env} schedule]({plots[env].name})", ""]
    if replayed:
        pbt_best = [r["best"] for r in pick(records, "CartPole-v1", "PBT")]
        scores = [r["score"] for r in replayed]
        inside = sum(min(pbt_best) <= s <= max(pbt_best) for s in scores)
        lines += [
            "### Replay of the schedule", "",
            f"`populace replay STORE --seed S` on CartPole's seed-0 PBT run (its best member "
            f"scored {replayed[0]['pbt']:.1f}; schedule of {replayed[0]['entries']} entries), "
            f"one member trained from scratch on it, no population: "
            + ", ".join(f"seed {r['seed']}: {r['score']:.1f} ({r['wall']:.0f} s)"
                        for r in replayed)
            + f". {inside} of {len(scores)} lie within the spread of PBT's best members "
            f"across seeds [{min(pbt_best):.1f}, {max(pbt_best):.1f}].", "",
        ]
    elif REPLAY in kept:
        lines += [kept[REPLAY], ""]
    return "\n".join(lines)


def earlier(path: Path, envs: Sequence[str]) -> dict[str, str]:
    """The subsections of `envs` (and the replay, which is CartPole's) in the section as
    `path` holds it, each opened with when and how it was measured: a benchmark run on one
    environment keeps the other's tables rather than dropping them."""
    text = path.read_text() if path.exists() else ""
    if HEADING not in text:
        return {}
    body = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    first = body.strip().split("\n", 1)[0]
    date = re.search(r" on (\d{4}-\d{2}-\d{2})", first)
    commands = re.findall(r"`([^`]*benchmarks/rl\.py[^`]*)`", first)
    parts = {}
    for chunk in re.split(r"\n(?=### )", body)[1:]:
        title = chunk.split("\n", 1)[0]
        name = next((e for e in envs if title.startswith(f"### {e}:")), None)
        if name is None and title == REPLAY and "CartPole-v1" in envs:
            name = REPLAY
        if name is None:
            continue
        chunk = chunk.strip()
        if name != REPLAY and MEASURED not in chunk and date:
            env = name
            runs = [c for c in commands if env in c]
            head, rest = chunk.split("\n", 1)
            chunk = (f"{head}\n\n{MEASURED} {date.group(1)}, by `"
                     + "`, then `".join(runs) + f"` (these tables; the commands above ran "
                     f"no {env}).\n{rest}")
        parts[name] = chunk
    return parts


def learn(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """One member at FIXED, no PBT: the return it reaches and after how many env steps."""
    import torch

    rl = example("CartPole-v1")
    torch.set_num_threads(1)
    rows, began = [], time.perf_counter()
    for seed, _ in planned(args.first_seed, args.seeds, 0):
        member, curve, start = rl.PPO(), [], time.perf_counter()
        member.build(FIXED, seed)
        for _ in range(args.steps or 50):
            member.step()
            got = member.evaluate()
            curve.append((got["env_steps"], got["return"]))
        first = {goal: next((f for f, r in curve if r >= goal), None) for goal in (195, 475)}
        rows.append({"seed": seed, "curve": curve, "first": first,
                     "seconds": time.perf_counter() - start})
        print(f"seed {seed}: {curve[-1][1]:.1f} at {curve[-1][0]} env steps; 195 at "
              f"{first[195]}, 475 at {first[475]}", flush=True)
    budget = rl.config["steps"] * rl.STEP_FRAMES

    def at(row: dict, frames: int) -> str:
        """The return at `frames` env steps; "-" past a curve cut short by --steps."""
        return next((f"{r:.1f}" for f, r in row["curve"] if f >= frames), "-")

    def reached(goal: int) -> str:
        hits = [r["first"][goal] for r in rows if r["first"][goal] is not None]
        text = f"{len(hits)} of {len(rows)} seeds"
        return text + (f", after {spread(hits, ',.0f')} env steps" if hits else "")

    command = shlex.join([".venv/bin/python", "benchmarks/rl.py", *argv])
    lines = [
        LEARN_HEADING, "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()} "
        f"({time.perf_counter() - began:.0f} s, cores shared with other work). One PPO "
        f"member of `examples/rl_cartpole.py`, no population, at a fixed setting ("
        + ", ".join(f"{k} {v}" for k, v in FIXED.items() if k != "env")
        + f"), {args.seeds} seeds; score = mean return of the last {rl.LAST} finished "
        "episodes (500 is the most an episode can return).", "",
        "| env steps | " + " | ".join(f"seed {r['seed']}" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for frames in sorted({budget // 2, budget, *(f for f, _ in rows[0]["curve"][9::10])}):
        lines.append(f"| {frames:,} | " + " | ".join(at(r, frames) for r in rows) + " |")
    lines += ["", f"A mean of 195 (CartPole-v0's \"solved\") was reached in {reached(195)}; "
              f"475 (CartPole-v1's) in {reached(475)}. The benchmark's budget is "
              f"{budget:,} env steps per member.", ""]
    write_section(args.output, LEARN_HEADING, "\n".join(lines))
    print(f"wrote {args.output}")


def driver(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Every method, seed and environment; the section is rewritten after each run, and
    runs already in --records (a resumed benchmark) are not run again."""
    began = time.perf_counter()
    folder = args.records.parent
    folder.mkdir(parents=True, exist_ok=True)
    saved = json.loads(args.records.read_text()) if args.records.exists() else {}
    records: list[dict] = saved.get("records", [])
    replayed: list[dict] = saved.get("replays", [])
    spent = saved.get("seconds", 0.0)
    commands = [*saved.get("commands", []), list(argv)]
    # a plot an earlier command drew
    plots = {env: path for env in ENVS if (path := plot_path(env, args.output.parent)).exists()}
    # what an earlier benchmark measured on the environments this one does not run
    kept = earlier(args.output, [e for e in ENVS if e not in args.envs
                                 and not pick(records, e, "PBT")])

    def write() -> None:
        total = spent + time.perf_counter() - began
        args.records.write_text(json.dumps({"records": records, "replays": replayed,
                                            "seconds": total, "commands": commands},
                                           default=str))
        write_section(args.output, HEADING, section(records, replayed, plots, commands, total,
                                                    args.executor, os.getloadavg()[0],
                                                    kept))

    for env in args.envs:
        for seed, methods in planned(args.first_seed, args.seeds, args.ray_seeds):
            for method in methods:
                if any(r["env"] == env and r["seed"] == seed and r["method"] == method
                       for r in records):
                    continue
                search = pick(records, env, "random search")
                initial = [{"hparams": h, "seed": member_seed(seed, i)} for i, h in
                           enumerate(next(r["hparams"] for r in search if r["seed"] == seed))]\
                    if method == "Ray Tune PBT" else None
                record = run_method(method, env, seed, folder, initial, args)
                record["rss_mb"] = record["rss"] / 2**20
                record["steps"] = args.steps or example(env).config["steps"]
                records.append(record)
                print(f"{env} seed {seed} {method:13}: best {record['best']:.1f} median "
                      f"{record['median']:.1f} env steps {record['env_steps']} exploits "
                      f"{record['exploits']} {record['wall']:.0f} s "
                      f"{record['rss_mb']:.0f} MB", flush=True)
                write()
        first = [r for r in pick(records, env, "PBT") if r["seed"] == 0]
        if first:
            plots[env] = plot_schedule(first[0]["store"], env, args.output.parent)
        if env == "CartPole-v1" and first and not replayed and not args.no_replay:
            replayed = replays(first[0]["store"], folder)
        write()
    print(f"wrote {args.output}; stores and records in {folder}")


def planned(first: int, seeds: int, ray_seeds: int) -> list[tuple[int, tuple[str, ...]]]:
    """Each seed the driver runs, with its methods: Ray Tune only on the first `ray_seeds`,
    after random search, whose members are Ray's initial ones."""
    return [(seed, METHODS if seed < first + ray_seeds else METHODS[:2])
            for seed in range(first, first + seeds)]


def member_seed(seed: int, member: int) -> int:
    """populace's seed for member `member` of a run seeded `seed` (populace.segment's)."""
    from populace.segment import member_seed as of

    return of(seed, member)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    child = sub.add_parser("child", help="one method of one seed (started by the driver)")
    child.add_argument("system", choices=("populace", "ray"))
    child.add_argument("--env", required=True)
    child.add_argument("--seed", type=int, required=True)
    child.add_argument("--exploit", default="script")
    child.add_argument("--store")
    child.add_argument("--executor", default="local")
    child.add_argument("--initial")
    child.add_argument("--storage")
    child.add_argument("--steps", type=int, default=0, help="0: the script's")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ray-seeds", type=int, default=3,
                        help="how many of the seeds Ray Tune runs too, the first ones")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds FIRST to FIRST + SEEDS - 1: more seeds added to "
                             "--records without rerunning those it holds")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--executor", default="local", choices=("local", "inline"))
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--records", type=Path, default=None,
                        help="where the runs' records are kept, the stores beside it; a "
                             "benchmark started again with it skips the runs it holds "
                             "(default: a new temporary folder)")
    parser.add_argument("--learn", action="store_true",
                        help="only: one member at a fixed setting on CartPole, --seeds seeds "
                             "from --first-seed on")
    parser.add_argument("--steps", type=int, default=0, help="steps per member (0: the "
                        "script's; fewer only to try the benchmark out)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="the results file; the plots go beside it")
    args = parser.parse_args(argv)
    if args.mode == "child":
        out = child_populace(args) if args.system == "populace" else child_ray(args)
        print("BENCH " + json.dumps(out), flush=True)
        return
    if args.records is None:
        args.records = Path(tempfile.mkdtemp(prefix="rl-bench-")) / "records.json"
    if args.learn:
        learn(args, argv)
        return
    driver(args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
