"""`populace report`, `replay` and `export`: a run's history, read from its store alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from populace.cli.base import Command
from populace.cli.tables import metrics_line, number
from populace.errors import ConfigError
from populace.replay import replay


class Report(Command):
    name = "report"
    help = "an HTML page and PNG plots of the run in STORE"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--out", help="folder for the page and plots (default: beside "
                                          "the store)")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        try:  # matplotlib loads only for this command
            from populace.report import write_report
        except ModuleNotFoundError as e:
            raise ConfigError(f"populace report needs {e.name}: pip install "
                              "'populace[report]'") from e

        page = write_report(args.store, Path(args.out) if args.out else None)
        console.print(f"report written to {page} (plots beside it as PNG files)")
        return 0


class Replay(Command):
    name = "replay"
    help = "train one member from scratch on the best schedule"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--out", help="the replay's store (default: STORE's name + "
                                          ".replay.db)")
        parser.add_argument("--seed", type=int, help="the replay's seed (default: the run's)")
        parser.add_argument("--member", type=int,
                            help="replay this member's schedule (default: the best member's)")
        parser.add_argument("--script", help="the run's script here (default: the path it "
                                             "was started from)")
        parser.add_argument("--quiet", action="store_true", help="no progress display")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        done = replay(args.store, args.out, progress=not args.quiet, seed=args.seed,
                      member=args.member, script=args.script)
        console.print(f"replayed {len(done.schedule)} schedule entries into {done.store}")
        whose = "best member" if args.member is None else f"member {args.member}"
        console.print(f"score: replay {number(done.score)}, PBT's {whose} "
                      f"{number(done.pbt_score)}")
        if done.metrics:
            console.print("replay metrics: " + metrics_line(done.metrics))
        return 0


class Export(Command):
    name = "export"
    help = "write the run in STORE, finished or not, as TensorBoard logs or MLflow runs"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--tensorboard", metavar="DIR",
                            help="a folder for one log per member")
        parser.add_argument("--mlflow", metavar="URI", nargs="?", const="beside",
                            help="an MLflow tracking URI, or a folder for an mlflow.db "
                                 "(default: beside the store, STORE's name + .mlflow.db)")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        if args.tensorboard is None and args.mlflow is None:
            raise ConfigError("populace export needs --tensorboard DIR, --mlflow [URI] or both")
        from populace.export import export, mlflow_uri  # tensorboardX or mlflow: only here

        export(args.store, args.tensorboard, args.mlflow)
        if args.tensorboard is not None:
            console.print(f"TensorBoard logs written to {args.tensorboard}: tensorboard "
                          f"--logdir {args.tensorboard}", highlight=False)
        if args.mlflow is not None:
            uri = mlflow_uri(args.mlflow, args.store)
            console.print(f"MLflow runs written to {uri}: mlflow ui --backend-store-uri {uri}",
                          highlight=False)
        return 0
