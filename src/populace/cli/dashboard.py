"""`populace dashboard`: the live dashboard of one or more runs, in the browser."""

from __future__ import annotations

import argparse

from rich.console import Console

from populace.cli.base import Command
from populace.dashboard import Dashboard, exposed
from populace.display import console as make_console
from populace.store.driver import safe_url


class DashboardCommand(Command):
    name = "dashboard"
    help = ("the live dashboard of the runs in STORE ... (SQLite files, postgresql:// URLs), "
            "read-only, in the browser")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("stores", nargs="+", metavar="STORE")
        parser.add_argument("--host", default="127.0.0.1",
                            help="the address to listen on (127.0.0.1: this machine alone; "
                                 "another warns that anyone reaching the port reads the runs)")
        parser.add_argument("--port", type=int, default=8080,
                            help="the port to listen on (8080; 0: any free one)")
        parser.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                            help="how often the page asks for what is new (2)")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        if warning := exposed(args.host):
            make_console(stderr=True).print(f"[yellow]warning:[/] {warning}", highlight=False)
        poll = max(0.2, args.poll)
        dashboard = Dashboard(args.stores, args.host, args.port, poll, warn=False)
        names = ", ".join(safe_url(s) for s in args.stores)
        console.print(f"the dashboard of {names}: {dashboard.url} (Ctrl-C stops it)",
                      highlight=False, soft_wrap=True)
        try:
            dashboard.run()
        except KeyboardInterrupt:  # uvicorn raises Ctrl-C's again once it has shut down
            pass
        console.print("the dashboard stopped")
        return 0
