"""`populace run`: start a run, or resume the one in --store; and the README's table of
the settings its flags set."""

from __future__ import annotations

import argparse
import ast
import contextlib
from dataclasses import fields
from pathlib import Path
from typing import Any

from rich.console import Console

from populace.api import run
from populace.cli.base import Command, Parser
from populace.cli.settings import (
    STRATEGY_FLAGS,
    number_or_off,
    objectives,
    read_config_file,
    settings_from,
)
from populace.cli.tables import print_best
from populace.config import BOUNDS, DOCS, INTERNAL, RunConfig
from populace.dashboard import Dashboard
from populace.display import console as make_console
from populace.errors import ConfigError
from populace.executors import forkserver
from populace.results import RunResult
from populace.script import load_script
from populace.stopping import stopped_by_signals
from populace.store import Status
from populace.store.driver import safe_url


class Run(Command):
    name = "run"
    help = "start a run, or resume the one in --store"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("script", help="Python file defining `space` and a Trainable "
                            "subclass (or `trainable = train` for a training function)")
        parser.add_argument("--store", required=True,
                            help="the run's SQLite file, or a postgresql:// URL")
        parser.add_argument("--config", help="YAML or TOML file of settings")
        parser.add_argument("--checkpoints", help="checkpoint folder, or an fsspec URL such "
                                                  "as s3://bucket/run (default: beside the store)")
        _setting_flags(parser)
        parser.add_argument("--quiet", action="store_true", help="no progress display")
        parser.add_argument("--dashboard", type=int, nargs="?", const=8080, metavar="PORT",
                            help="serve the live dashboard of the run on 127.0.0.1:PORT "
                                 "(8080) while it trains (`populace[dashboard]`)")
        parser.add_argument("--overwrite", action="store_true",
                            help="delete the run in --store (and its checkpoints), then start "
                                 "anew")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        # every stop marked from the start, so one that an import swallows before the run
        # trains still stops it; the handlers are put back as the command returns
        with stopped_by_signals():
            return self._act(args, console)

    def _act(self, args: argparse.Namespace, console: Console) -> int:
        if _in_processes(args):  # local workers import the script while this process does
            forkserver.start(args.script)
        dashboard = None
        if args.dashboard is not None:  # a thread of this process, started after the fork
            dashboard = Dashboard([args.store], port=args.dashboard).start()  # server's
            console.print(f"the dashboard: {dashboard.url}", highlight=False)
        try:
            result = _run(args)
        finally:
            if dashboard is not None:
                dashboard.stop()
                console.print(f"the dashboard stopped with the run: populace dashboard "
                              f"{safe_url(args.store)} serves it again", highlight=False)
        if result.stopped:
            console.print(f"stopped early: {result.stopped}")
        failed = [m.id for m in result.members if m.status == Status.FAILED]
        store = safe_url(args.store)
        if failed:
            make_console(stderr=True).print(
                f"{len(failed)} member(s) failed ({', '.join(map(str, failed))}): populace "
                f"status {store} shows why; after a fix, populace retry {store} trains them "
                "again", highlight=False)
        print_best(result, console)
        if result.checkpoint is not None:
            console.print(f"its checkpoint: {result.checkpoint}", highlight=False,
                          soft_wrap=True)
        n = len(result.schedule)
        console.print(f"its schedule has {n} {'entry' if n == 1 else 'entries'}: populace "
                      f"report {store} shows it; populace replay {store} retrains it alone")
        return 0


def _run(args: argparse.Namespace) -> RunResult:
    """The run the arguments name, trained to its end."""
    script = load_script(args.script)
    # a resume keeps the stored settings: only the config file and flags may change them,
    # not the script's defaults (the run may have grown past its steps); a new run, or
    # one that never trained, takes the script's `config` under them
    layered = settings_from(args, script.config)
    given = settings_from(args, {})
    return run(
        script.trainable, script.space, store=args.store, checkpoints=args.checkpoints,
        initial=script.initial, progress=not args.quiet, script=script.path,
        overwrite=args.overwrite, defaults=layered, **{k: layered[k] for k in given},
    )


def _in_processes(args: argparse.Namespace) -> bool:
    """Whether the run will train in local worker processes, judged before its script
    is loaded: by the flags, the config file, then a `config` dict literal in the script
    (a guess that, wrong, only costs the time it would save)."""
    layers = [{k: v for k in ("executor", "workers") if (v := getattr(args, k)) is not None}]
    if args.config:
        with contextlib.suppress(ConfigError):
            layers.append(read_config_file(args.config))
    layers.append(_config_literal(Path(args.script)))
    settings = {k: v for layer in reversed(layers) for k, v in layer.items()}
    return (settings.get("executor", "local") == "local" and settings.get("workers") != 0
            and Path(args.script).is_file())


def _config_literal(path: Path) -> dict[str, Any]:
    """The script's top-level `config = {...}`, where it is a literal (else nothing)."""
    with contextlib.suppress(OSError, SyntaxError, ValueError):
        for node in ast.parse(path.read_bytes()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "config"):
                found = ast.literal_eval(node.value)
                return found if isinstance(found, dict) else {}
    return {}


def _setting_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that set a RunConfig field (or a strategy's parameter)."""
    add = parser.add_argument
    add("--population", type=int)
    add("--workers", type=int, help="worker processes or Ray tasks (default: CPU cores); 0: "
                                    "only `populace worker`s train")
    add("--steps", type=int, help="training steps per member")
    add("--seed", type=int)
    add("--exploit", help="truncation | tournament | ttest | fire | none | own | "
                           "package.module:Name")
    add("--fraction", type=float, help="truncation: bottom/top fraction (0.2); fire: the "
                                       "same inside each sub-population (0.25)")
    add("--window", type=int, help="ttest: recent scores compared (10)")
    add("--significance", type=float, help="ttest: the test's level (0.05); fire: the "
                                           "p-value an evaluation's success needs (0.01)")
    add("--explore", help="perturb | resample | perturb-or-resample | noise | keep | pb2 | "
                          "package.module:Name")
    add("--noise-scale", type=float, help="noise: standard deviation added")
    add("--factors", help="perturb factors, comma separated (0.8,1.2)")
    add("--resample-probability", type=float,
        help="perturb-or-resample: chance to resample each hparam (0.25)")
    add("--ready-steps", type=int, help="exploit/explore every N steps")
    add("--ready-seconds", type=float, help="exploit/explore every T seconds")
    add("--burn-in", type=int, help="steps a member trains before it may exploit")
    add("--stop-score", type=number_or_off,
        help="stop the run once a member's score reaches this (in the run's mode); off: no "
             "more")
    add("--time-budget", type=number_or_off,
        help="stop the run once it has trained this many seconds (over every run command, "
             "not the time between them); off: no more")
    add("--segment-timeout", type=number_or_off, metavar="SECONDS",
        help="stop a segment that has not reported within this many seconds (a hung step), "
             "as one that raised; off: no more")
    add("--synch", action="store_true", default=None,
        help="decide the whole population at once, generation by generation")
    add("--mode", help="max | min: the score's direction")
    add("--score", help="name of the metric exploit ranks by")
    add("--objectives", type=objectives,
        help="several metrics ranked at once, e.g. accuracy:max,width:min")
    add("--executor", help="local (processes, default) | inline (this process) | ray | "
                           "vectorized (the whole population as one batched model, this "
                           "process: how a VectorizedTrainable always trains)")
    add("--ray-address", help="executor ray: cluster to join (default: start one)")
    add("--cpus-per-worker", type=float, help="executor ray: CPUs per worker (1)")
    add("--gpus-per-worker", type=float,
        help="GPUs per worker (local and ray); 0.5 puts two on a GPU (0)")
    add("--device", help="executor vectorized: cpu | cuda | cuda:N | mps | auto (default: "
                         "the GPU when there is one)")
    add("--keep-checkpoints", type=int, help="newest checkpoints kept per member")
    add("--tensorboard", metavar="DIR", help="live TensorBoard logs in DIR")
    add("--mlflow", metavar="URI", help="live MLflow runs at URI (or a folder, or beside)")


def settings_table() -> str:
    """The README's table of settings, written from RunConfig's fields, their DOCS and
    BOUNDS, and `populace run`'s flags: one place defines them, so the table cannot drift."""
    parser = Parser()
    Run().add_arguments(parser)
    # argparse lists a parser's arguments only in _actions, its long-standing attribute
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    rows = ["| setting | flag | default | allowed |", "|---|---|---|---|"]
    for f in fields(RunConfig):
        if f.name in INTERNAL:
            continue
        shown, allowed = DOCS[f.name]
        named = [flags[f.name]] if f.name in flags else []
        named += [flags[p] for p in STRATEGY_FLAGS.get(f.name, ())]
        default = shown if shown is not None else _shown(getattr(RunConfig(), f.name))
        bound = BOUNDS.get(f.name)
        allowed = allowed.format(max=f"{bound:,}" if bound is not None else "")
        rows.append(f"| {f.name} | {', '.join(f'`{n}`' for n in named) or '`--config`'} | "
                    f"{default} | {allowed} |")
    settings = {f.name for f in fields(RunConfig)} | {p for ps in STRATEGY_FLAGS.values()
                                                      for p in ps}
    rows += ["", "Besides the settings, `populace run` takes:", "",
             "| argument | flag | meaning |", "|---|---|---|"]
    rows += [f"| {a.dest} | `{a.option_strings[0]}` | {a.help} |" for a in parser._actions
             if a.option_strings and a.dest not in settings and a.dest != "help"]
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
