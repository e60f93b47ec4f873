"""The `populace` command, assembled from one small class per subcommand.

Each command (`base.Command`) declares its arguments and does its action; the parser is
assembled from them, in the order of `COMMANDS`. A run's settings come, weakest first,
from populace's defaults, the script's `config` dict, a `--config` YAML or TOML file, and
the command line (`settings`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.markup import escape

from populace import __version__, stopping
from populace.checkpoints import StorageMissing
from populace.cli.base import Command, Parser
from populace.cli.dashboard import DashboardCommand
from populace.cli.history import Export, Replay, Report
from populace.cli.mend import Collect, Delete, Detach, Retry
from populace.cli.run import Run, settings_table
from populace.cli.settings import read_config_file
from populace.cli.status import Result, Status
from populace.cli.worker import Worker
from populace.display import console as make_console
from populace.errors import ConfigError, StorageFault
from populace.executors import WorkersDied
from populace.results import RunFailed
from populace.store import StoreError

__all__ = ["COMMANDS", "main", "read_config_file", "settings_table"]

# in the order `populace --help` lists them
COMMANDS: tuple[Command, ...] = (Run(), Worker(), Report(), Replay(), Retry(), Delete(),
                                 Collect(), Detach(), Result(), Status(), Export(),
                                 DashboardCommand())


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(command.name for command in COMMANDS)
    parser = Parser(prog="populace", description=f"The `populace` command: {names}.")
    parser.add_argument("--version", action="version", version=f"populace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        own = sub.add_parser(command.name, aliases=command.aliases, help=command.help,
                             description=command.help)
        command.add_arguments(own)
        own.set_defaults(action=command.take_action)
    parser.set_defaults(commands=sub.choices)  # each command's parser, for its usage
    return parser


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
        status: int = args.action(args, console)  # the chosen command's take_action
        sys.stdout.flush()  # a closed pipe is found here, not at the exit's flush
        return status
    except StorageFault as e:  # before StoreError: a store's full disk is one too
        err.print(f"[red]storage failed:[/] {escape(str(e))}", highlight=False)
        return StorageFault.exit_status
    except (ConfigError, StoreError, StorageMissing) as e:
        # escaped: `pip install 'populace[report]'` is not rich markup
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        return 2
    except (RunFailed, WorkersDied) as e:
        err.print(f"[red]run failed:[/] {e}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return stopping.exit_status()
    except BrokenPipeError:
        # the reader went away (`populace status --json | head -1`): stop quietly, as a
        # Unix tool does, with stdout on /dev/null so the flush at exit cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status of a tool the pipe's end stopped
