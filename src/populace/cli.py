"""The `populace` command: run, worker, status, result, report, export, replay, retry, delete, gc.

Settings come, weakest first, from populace's defaults, the script's
`config` dict, a `--config` YAML or TOML file, and the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from populace import __version__
from populace.api import run
from populace.checkpoints import CheckpointStorage, StorageMissing
from populace.config import BOUNDS, DOCS, INTERNAL, RunConfig, strategy_spec
from populace.display import console as make_console
from populace.display import members_table
from populace.errors import ConfigError
from populace.executors import WorkersDied, source_of, work
from populace.mend import delete, retry
from populace.replay import default_replay_store, replay
from populace.results import RunFailed, RunResult, load_result, result_of
from populace.script import load_script
from populace.stopping import stop_on_sigterm
from populace.store import (
    TRAINING,
    Event,
    Kind,
    Status,
    Store,
    StoreError,
    open_store,
    store_exists,
)
from populace.store.driver import safe_url
from populace.sweep import grace_for, orphans, sweep

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# flags that set a RunConfig field directly
FIELDS = ("population", "workers", "steps", "seed", "ready_steps", "ready_seconds", "mode",
          "score", "objectives", "executor", "keep_checkpoints", "burn_in", "synch", "ray_address",
          "cpus_per_worker", "gpus_per_worker", "device", "stop_score", "time_budget",
          "tensorboard", "mlflow")
READY = {"ready_steps", "ready_seconds"}


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--step 50` must not quietly mean --steps 50."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="populace", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"populace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    parser.set_defaults(commands=sub.choices)  # each command's parser, for its usage

    r = sub.add_parser("run", help="start a run, or resume the one in --store")
    r.add_argument("script", help="Python file defining `space` and a Trainable subclass "
                                  "(or `trainable = train` for a training function)")
    r.add_argument("--store", required=True,
                   help="the run's SQLite file, or a postgresql:// URL")
    r.add_argument("--config", help="YAML or TOML file of settings")
    r.add_argument("--checkpoints", help="checkpoint folder, or an fsspec URL such as "
                                         "s3://bucket/run (default: beside the store)")
    r.add_argument("--population", type=int)
    r.add_argument("--workers", type=int, help="worker processes or Ray tasks (default: CPU "
                                                "cores); 0: only `populace worker`s train")
    r.add_argument("--steps", type=int, help="training steps per member")
    r.add_argument("--seed", type=int)
    r.add_argument("--exploit",
                   help="truncation | tournament | ttest | none | own | package.module:Name")
    r.add_argument("--fraction", type=float, help="truncation: bottom/top fraction (0.2)")
    r.add_argument("--window", type=int, help="ttest: recent scores compared (10)")
    r.add_argument("--significance", type=float, help="ttest: the test's level (0.05)")
    r.add_argument("--explore", help="perturb | resample | perturb-or-resample | noise | keep"
                                     " | pb2 | package.module:Name")
    r.add_argument("--noise-scale", type=float, help="noise: standard deviation added")
    r.add_argument("--factors", help="perturb factors, comma separated (0.8,1.2)")
    r.add_argument("--resample-probability", type=float,
                   help="perturb-or-resample: chance to resample each hparam (0.25)")
    r.add_argument("--ready-steps", type=int, help="exploit/explore every N steps")
    r.add_argument("--ready-seconds", type=float, help="exploit/explore every T seconds")
    r.add_argument("--burn-in", type=int, help="steps a member trains before it may exploit")
    r.add_argument("--stop-score", type=_number_or_off,
                   help="stop the run once a member's score reaches this (in the run's "
                        "mode); off: no more")
    r.add_argument("--time-budget", type=_number_or_off,
                   help="stop the run once it has trained this many seconds (over every "
                        "run command, not the time between them); off: no more")
    r.add_argument("--synch", action="store_true", default=None,
                   help="decide the whole population at once, generation by generation")
    r.add_argument("--mode", help="max | min: the score's direction")
    r.add_argument("--score", help="name of the metric exploit ranks by")
    r.add_argument("--objectives", type=_objectives,
                   help="several metrics ranked at once, e.g. accuracy:max,width:min")
    r.add_argument("--executor",
                   help="local (processes, default) | inline (this process) | ray | "
                        "vectorized (the whole population as one batched model, this process: "
                        "how a VectorizedTrainable always trains)")
    r.add_argument("--ray-address", help="executor ray: cluster to join (default: start one)")
    r.add_argument("--cpus-per-worker", type=float, help="executor ray: CPUs per worker (1)")
    r.add_argument("--gpus-per-worker", type=float,
                   help="GPUs per worker (local and ray); 0.5 puts two on a GPU (0)")
    r.add_argument("--device", help="executor vectorized: cpu | cuda | cuda:N | mps | auto "
                                    "(default: the GPU when there is one)")
    r.add_argument("--keep-checkpoints", type=int, help="newest checkpoints kept per member")
    r.add_argument("--tensorboard", metavar="DIR", help="live TensorBoard logs in DIR")
    r.add_argument("--mlflow", metavar="URI", help="live MLflow runs at URI (or a folder, or "
                                                   "beside)")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--overwrite", action="store_true",
                   help="delete the run in --store (and its checkpoints), then start anew")

    w = sub.add_parser("worker", help="join the run in --store from this machine: claim "
                                      "members, train and report until the run is done")
    w.add_argument("--store", required=True, help="the run's SQLite file or postgresql:// URL")
    w.add_argument("--script", help="the run's script here (default: the path it was "
                                     "started with)")
    w.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the run to be created (60)")

    rep = sub.add_parser("report", help="an HTML page and PNG plots of the run in STORE")
    rep.add_argument("store")
    rep.add_argument("--out", help="folder for the page and plots (default: beside the store)")

    rp = sub.add_parser("replay", help="train one member from scratch on the best schedule")
    rp.add_argument("store")
    rp.add_argument("--out", help="the replay's store (default: STORE's name + .replay.db)")
    rp.add_argument("--seed", type=int, help="the replay's seed (default: the run's)")
    rp.add_argument("--member", type=int,
                    help="replay this member's schedule (default: the best member's)")
    rp.add_argument("--quiet", action="store_true", help="no progress display")

    rt = sub.add_parser("retry", help="make the failed members of the run in STORE train "
                                      "again from their checkpoints, after a fix")
    rt.add_argument("store")
    rt.add_argument("--member", type=int, action="append",
                    help="only this member (repeat for several; default: every failed one)")

    d = sub.add_parser("delete", help="delete the run in STORE: its checkpoints and its store")
    d.add_argument("store")
    d.add_argument("--yes", action="store_true", help="do not ask first")

    g = sub.add_parser("gc", help="remove checkpoint files of the run in STORE that no "
                                  "checkpoint names (left by killed workers)")
    g.add_argument("store")
    g.add_argument("--grace", type=float, default=None,
                   help="only files older than this many seconds (default: none once no "
                        "member trains, else twice the run's lease)")
    g.add_argument("--dry-run", action="store_true", help="list them, remove nothing")

    res = sub.add_parser("result", help="the best member of the run in STORE: its score, "
                                        "hparams, checkpoint and schedule")
    res.add_argument("store")
    res.add_argument("--json", action="store_true", help="JSON instead of text")

    s = sub.add_parser("status", help="one row per member of the run in STORE")
    s.add_argument("store")
    s.add_argument("--json", action="store_true", help="JSON instead of a table")
    s.add_argument("--events", action="store_true",
                   help="every event instead of the members: exploits, waits for a donor, "
                        "dropped decisions, retries, failures, recoveries, refused reports")
    x = sub.add_parser("export", help="write the run in STORE, finished or not, as TensorBoard "
                                      "logs or MLflow runs")
    x.add_argument("store")
    x.add_argument("--tensorboard", metavar="DIR", help="a folder for one log per member")
    x.add_argument("--mlflow", metavar="URI", nargs="?", const="beside",
                   help="an MLflow tracking URI, or a folder for an mlflow.db (default: "
                        "beside the store, STORE's name + .mlflow.db)")
    return parser


# flags that set a strategy's parameters rather than a setting of their own name
STRATEGY_FLAGS = {"exploit": ("fraction", "window", "significance"),
                  "explore": ("factors", "resample_probability", "noise_scale")}


def settings_table() -> str:
    """The README's table of settings, written from RunConfig's fields, their DOCS and
    BOUNDS, and this command's flags: one place defines them, so the table cannot drift."""
    run = _parser().parse_args(["run", "x", "--store", "x"]).commands["run"]
    # argparse lists a parser's arguments only in _actions, its long-standing attribute
    flags = {a.dest: a.option_strings[0] for a in run._actions if a.option_strings}
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
    rows += [f"| {a.dest} | `{a.option_strings[0]}` | {a.help} |" for a in run._actions
             if a.option_strings and a.dest not in settings and a.dest != "help"]
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


OFF = "off"  # a stop setting turned off on a resume


def _number_or_off(text: str) -> float | str:
    if text == OFF:
        return OFF
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or off, got {text!r}") from None


def read_config_file(path: str) -> dict[str, Any]:
    """Settings from a YAML or TOML file (parsed as data: nothing in it is executed)."""
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from e
    try:
        if file.suffix == ".toml":
            data = tomllib.loads(text.decode("utf-8"))
        elif file.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file must end in .yaml, .yml or .toml, got {path!r}")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config file {path!r} is not valid: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of settings")
    return data


def _strategy(settings: dict[str, Any], kind: str, name: str | None,
              params: dict[str, Any]) -> None:
    """Merge a strategy name and its flags into settings[kind] (a name or a dict)."""
    current = settings.get(kind)
    spec = {} if current is None else strategy_spec(kind, current)
    if name is not None and name != spec.get("name"):
        spec = {"name": name}
    spec.update({k: v for k, v in params.items() if v is not None})
    if spec:
        settings[kind] = spec


def _objectives(text: str) -> dict[str, str]:
    """`accuracy:max,width:min` as {"accuracy": "max", "width": "min"} (RunConfig checks
    the names and directions)."""
    pairs = [item.rpartition(":") for item in text.split(",")]
    if any(not name or not sep for name, sep, _ in pairs):
        raise argparse.ArgumentTypeError(
            f"--objectives must be metric:max or metric:min pairs, comma separated, got {text!r}")
    return {name: mode for name, _, mode in pairs}


def _factors(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as e:
        raise ConfigError(f"factors must be numbers separated by commas, got {text!r}") from e


def settings_from(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """The run's settings: script defaults, then the config file, then the flags."""
    flags = {name: None if getattr(args, name) == OFF else getattr(args, name)
             for name in FIELDS if getattr(args, name) is not None}
    settings = dict(defaults)
    for layer in (read_config_file(args.config) if args.config else {}, flags):
        if READY & set(layer):  # a ready rule replaces the weaker layer's, of either kind
            for key in READY:
                settings.pop(key, None)
        settings.update(layer)
    _strategy(settings, "exploit", args.exploit, {
        "fraction": args.fraction, "window": args.window, "significance": args.significance,
    })
    _strategy(settings, "explore", args.explore, {
        "factors": _factors(args.factors), "probability": args.resample_probability,
        "scale": args.noise_scale,
    })
    explore = settings.get("explore")
    if (args.explore == "noise" and isinstance(explore, dict) and "scale" not in explore):
        raise ConfigError("--explore noise needs --noise-scale, the standard deviation of "
                          "the noise added to each hparam (e.g. --noise-scale 0.1)")
    return settings


def _run(args: argparse.Namespace, console: Console) -> int:
    script = load_script(args.script)
    # a resume keeps the stored settings: only the config file and flags may change them,
    # not the script's defaults (the run may have grown past its steps)
    resuming = store_exists(args.store) and not args.overwrite
    result = run(
        script.trainable, script.space, store=args.store, checkpoints=args.checkpoints,
        initial=script.initial, progress=not args.quiet, script=script.path,
        overwrite=args.overwrite, **settings_from(args, {} if resuming else script.config),
    )
    if result.stopped:
        console.print(f"stopped early: {result.stopped}")
    failed = [m.id for m in result.members if m.status == Status.FAILED]
    if failed:
        err = make_console(stderr=True)
        err.print(f"{len(failed)} member(s) failed ({', '.join(map(str, failed))}): populace "
                  f"status {safe_url(args.store)} shows why; after a fix, populace retry "
                  f"{safe_url(args.store)} trains them again", highlight=False)
    if result.objectives:
        console.print(front_table(result))
    console.print(f"best member {result.best.id} at step {result.best.step}: "
                  f"{_metrics(result.metrics)}")
    console.print(f"its hparams: {json.dumps(result.hparams)}")
    if result.checkpoint is not None:
        console.print(f"its checkpoint: {result.checkpoint}", highlight=False, soft_wrap=True)
    store, n = safe_url(args.store), len(result.schedule)
    console.print(f"its schedule has {n} {'entry' if n == 1 else 'entries'}: populace report "
                  f"{store} shows it; populace replay {store} retrains it alone")
    return 0


def _worker(args: argparse.Namespace, console: Console) -> int:
    stop_on_sigterm()  # a Slurm or terminal stop gives the lease back at once, like Ctrl-C
    store = _wait_for_run(args.store, args.wait, console)
    try:
        source = source_of(store.config(), args.script)
        console.print(f"worker joined the run in {safe_url(store.url)}")
        segments = work(store, source)
    finally:
        store.close()
    console.print(f"no member left to train: the run is done ({segments} segments "
                  "trained by this worker)")
    return 0


def _wait_for_run(url: str, wait: float, console: Console) -> Store:
    """The store at `url` once it holds a run, waiting up to `wait` seconds for its start."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        if store_exists(url):
            store = open_store(url)
            if store.exists():
                return store
            store.close()
        if time.monotonic() >= deadline:
            raise StoreError(f"{safe_url(url)} holds no run (waited {wait:g} s): start one with "
                             "populace run SCRIPT --store URL --workers 0")
        if not said:
            console.print(f"waiting up to {wait:g} s for a run in {safe_url(url)}")
            said = True
        time.sleep(0.5)


def _retry(args: argparse.Namespace, console: Console) -> int:
    retried = retry(args.store, args.member)
    if not retried:
        console.print("no member of the run has failed: nothing to retry")
        return 0
    console.print(f"member(s) {', '.join(map(str, retried))} will train again from their "
                  "checkpoints: run the same `populace run` (or `populace worker`) to resume")
    return 0


def _delete(args: argparse.Namespace, console: Console) -> int:
    where = safe_url(args.store)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"populace delete {where} deletes the run and its checkpoints: "
                              "add --yes to do it without a question")
        if input(f"delete the run in {where} and its checkpoints? [y/N] ").strip() != "y":
            console.print("nothing deleted")
            return 1
    from populace.report import default_out  # matplotlib's import: only where it is needed

    report = default_out(args.store).is_dir()
    removed = delete(args.store)
    console.print(f"deleted the run in {where}, its {removed} checkpoint file(s)"
                  + (f" and its report {default_out(args.store)}" if report else ""),
                  highlight=False)
    if store_exists(replayed := default_replay_store(args.store)):
        console.print(f"kept {replayed}, a replay of it: a run of its own (populace delete "
                      f"{replayed} deletes it)", highlight=False)
    return 0


def _gc(args: argparse.Namespace, console: Console) -> int:
    """Remove orphan checkpoint files; say which, and how much space they held."""
    if not store_exists(args.store):
        raise StoreError(f"{safe_url(args.store)} does not exist")
    if args.grace is not None and not (args.grace >= 0 and math.isfinite(args.grace)):
        raise ConfigError(f"--grace must be a number of seconds >= 0, got {args.grace}")
    store = open_store(args.store)
    try:
        storage = CheckpointStorage(store.config().checkpoints)
        storage.check(store.meta("run"))
        grace = grace_for(store) if args.grace is None else args.grace
        found = orphans(store, storage, grace) if args.dry_run else sweep(store, storage, grace)
    finally:
        store.close()
    verb = "would remove" if args.dry_run else "removed"
    for name in found:
        console.print(f"{verb} {name}", highlight=False)
    console.print(f"{verb} {len(found)} file(s) no checkpoint names from {storage.url} "
                  f"(grace {grace:g} s)", highlight=False)
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    if not store_exists(args.store):
        raise StoreError(f"{safe_url(args.store)} does not exist")
    store = open_store(args.store)
    try:
        if args.events:
            return _events(store.events(), args.json, console)
        members = store.members()
        storage = CheckpointStorage(store.config().checkpoints)
        run = store.config().run
        objectives = run.get("objectives")
        front = result_of(store) if objectives and any(m.score is not None
                                                       for m in members) else None
    finally:
        store.close()
    if args.json:
        print(json.dumps([
            {"id": m.id, "step": m.step, "score": m.score, "hparams": m.hparams,
             "generation": m.generation, "parent": m.parent, "status": m.status,
             "error": m.error,
             "checkpoint": m.checkpoint and storage.location(m.checkpoint.key),
             **({"objectives": dict(zip(objectives, m.objectives or [], strict=False)),
                 "front": front is not None and m.id in {f.id for f in front.front}}
                if objectives else {})}
            for m in members
        ], indent=2))
    else:
        console.print(members_table(members, title=args.store, score=run["score"],
                                    mode=run["mode"]))
        if front is not None:
            console.print(front_table(front))
    return 0


def front_table(result: RunResult) -> Table:
    """A multi-objective run's Pareto front: each member on it, its objectives, hparams."""
    names = list(result.objectives or {})
    table = Table(title=f"Pareto front: {len(result.front)} member(s) no other dominates ("
                        + ", ".join(f"{n} {m}" for n, m in (result.objectives or {}).items())
                        + ")")
    for column in ("member", "step", *names, "hparams"):
        table.add_column(column)
    for m in result.front:
        values = [f"{v:.6g}" if v is not None else "-" for v in (m.objectives or [])]
        table.add_row(str(m.id), str(m.step), *values, json.dumps(m.hparams))
    return table


def _result(args: argparse.Namespace, console: Console) -> int:
    result = load_result(args.store)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    training = [m for m in result.members if m.status in TRAINING]
    if training:
        console.print(f"the run is not finished: {len(training)} member(s) still to train; "
                      "the same populace run command resumes it")
    if result.objectives:
        console.print(front_table(result))
    console.print(f"best member {result.best.id} at step {result.best.step}: "
                  f"{_metrics(result.metrics)}")
    console.print(f"its hparams: {json.dumps(result.hparams)}")
    console.print(f"its checkpoint: {result.checkpoint}", highlight=False, soft_wrap=True)
    table = Table(title="its schedule: the hparams in force from each step on")
    for name in ("step", "member", "hparams"):
        table.add_column(name)
    for e in result.schedule:
        table.add_row(str(e.step), str(e.member), json.dumps(e.hparams))
    console.print(table)
    return 0


def _export(args: argparse.Namespace, console: Console) -> int:
    if args.tensorboard is None and args.mlflow is None:
        raise ConfigError("populace export needs --tensorboard DIR, --mlflow [URI] or both")
    from populace.export import export, mlflow_uri  # tensorboardX or mlflow: loaded here only

    export(args.store, args.tensorboard, args.mlflow)
    if args.tensorboard is not None:
        console.print(f"TensorBoard logs written to {args.tensorboard}: tensorboard --logdir "
                      f"{args.tensorboard}", highlight=False)
    if args.mlflow is not None:
        uri = mlflow_uri(args.mlflow, args.store)
        console.print(f"MLflow runs written to {uri}: mlflow ui --backend-store-uri {uri}",
                      highlight=False)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    try:  # matplotlib loads only for this command
        from populace.report import write_report
    except ModuleNotFoundError as e:
        raise ConfigError(f"populace report needs {e.name}: pip install 'populace[report]'") from e

    page = write_report(args.store, Path(args.out) if args.out else None)
    console.print(f"report written to {page} (plots beside it as PNG files)")
    return 0


def _replay(args: argparse.Namespace, console: Console) -> int:
    done = replay(args.store, args.out, progress=not args.quiet, seed=args.seed,
                  member=args.member)
    console.print(f"replayed {len(done.schedule)} schedule entries into {done.store}")
    whose = "best member" if args.member is None else f"member {args.member}"
    console.print(f"score: replay {_number(done.score)}, PBT's {whose} "
                  f"{_number(done.pbt_score)}")
    if done.metrics:
        console.print("replay metrics: " + _metrics(done.metrics))
    return 0


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {_number(v)}" for k, v in metrics.items())


def _events(events: list[Event], as_json: bool, console: Console) -> int:
    """The decisions: who copied whom at which step, hparams before and after; who waited
    for a donor to catch up, and which decision was dropped and why."""
    rows = [{"kind": e.kind, "member": e.member, "donor": e.donor, "step": e.step,
             "donor_step": e.donor_step, "before": e.before, "after": e.after,
             "strategy": e.strategy, "detail": e.detail, "time": e.time}
            for e in events]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    decisions = sum(r["kind"] in (Kind.EXPLOIT, Kind.EXPLORE) for r in rows)
    table = Table(title=f"{decisions} exploit/explore events, {len(rows) - decisions} others")
    for name in ("kind", "member", "donor", "step", "donor step", "strategy", "before",
                 "after", "detail"):
        table.add_column(name)
    for r in rows:
        table.add_row(str(r["kind"]), str(r["member"]), str(r["donor"]), str(r["step"]),
                      str(r["donor_step"]), str(r["strategy"]), json.dumps(r["before"]),
                      json.dumps(r["after"]), str(r["detail"] or ""))
    console.print(table)
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; an unknown flag is named with its own command's usage, not the
    top level's (argparse leaves extras to the top-level parser)."""
    parser = _parser()
    args, extras = parser.parse_known_args(argv)
    commands = args.__dict__.pop("commands")
    if extras:
        commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    console, err = make_console(), make_console(stderr=True)
    try:
        commands = {"run": _run, "worker": _worker, "status": _status, "report": _report,
                    "replay": _replay, "gc": _gc, "retry": _retry, "delete": _delete,
                    "result": _result, "export": _export}
        return commands[args.command](args, console)
    except (ConfigError, StoreError, StorageMissing) as e:
        # escaped: `pip install 'populace[report]'` is not rich markup
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        return 2
    except (RunFailed, WorkersDied) as e:
        err.print(f"[red]run failed:[/] {e}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
