"""`populace worker`: join a run from this machine, which is how a run scales out."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import NoReturn

from rich.console import Console

from populace.cli.base import Command
from populace.executors import source_of, work
from populace.stopping import stopped_by_signals
from populace.store import Store, StoreError, open_store, store_exists
from populace.store.driver import safe_url


class Worker(Command):
    name = "worker"
    help = ("join the run in --store from this machine: claim members, train and report "
            "until the run is done")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--store", required=True,
                            help="the run's SQLite file or postgresql:// URL")
        parser.add_argument("--script", help="the run's script here (default: the path it "
                                             "was started with)")
        parser.add_argument("--wait", type=float, default=60.0,
                            help="seconds to wait for the run to be created (60)")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        # a Slurm or terminal stop gives the lease back at once, like Ctrl-C; the handlers
        # are put back as the command returns (called in-process, it leaves none behind)
        with stopped_by_signals():
            return self._act(args, console)

    def _act(self, args: argparse.Namespace, console: Console) -> int:
        store = _wait_for_run(args.store, args.wait, console)
        try:
            source = source_of(store.config(), args.script)
            console.print(f"worker joined the run in {safe_url(store.url)}")
            segments = work(store, source, end=_start_again)
        finally:
            store.close()
        console.print(f"no member left to train: the run is done ({segments} segments "
                      "trained by this worker)")
        return 0


def _start_again() -> NoReturn:
    """After a segment timed out (recorded): this process, replaced by a fresh worker on
    the same run with the same process id and command line, since only a new process can
    leave a step that never returns; its supervisor (Slurm, systemd, a shell loop) sees
    the worker go on."""
    print("populace: this worker starts again in a new process", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(sys.executable, sys.orig_argv)


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
