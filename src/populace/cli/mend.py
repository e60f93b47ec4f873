"""`populace retry`, `delete`, `collect` and `detach`: mending a run, tidying up after
one, and making a copied store a run of its own."""

from __future__ import annotations

import argparse
import math
import sys

from rich.console import Console

from populace.api import checkpoint_root, recorded_checkpoints
from populace.checkpoints import open_storage
from populace.cli.base import Command
from populace.collect import collect, grace_for, orphans
from populace.errors import ConfigError
from populace.mend import delete, retry
from populace.owner import detach, owned, owned_or_named
from populace.replay import default_replay_store
from populace.store import StoreError, open_store, store_exists
from populace.store.driver import safe_url


class Retry(Command):
    name = "retry"
    help = ("make the failed members of the run in STORE train again from their "
            "checkpoints, after a fix")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--member", type=int, action="append",
                            help="only this member (repeat for several; default: every "
                                 "failed one)")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        retried = retry(args.store, args.member)
        if not retried:
            console.print("no member of the run has failed: nothing to retry")
            return 0
        console.print(f"member(s) {', '.join(map(str, retried))} will train again from their "
                      "checkpoints: run the same `populace run` (or `populace worker`) to "
                      "resume")
        return 0


class Delete(Command):
    name = "delete"
    help = "delete the run in STORE: its checkpoints and its store"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--yes", action="store_true", help="do not ask first")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        where = safe_url(args.store)
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"populace delete {where} deletes the run and its "
                                  "checkpoints: add --yes to do it without a question")
            if input(f"delete the run in {where} and its checkpoints? [y/N] ").strip() != "y":
                console.print("nothing deleted")
                return 1
        from populace.report import default_out  # matplotlib's import: only where needed

        report = default_out(args.store).is_dir()
        removed = delete(args.store)
        console.print(f"deleted the run in {where}, its {removed} checkpoint file(s)"
                      + (f" and its report {default_out(args.store)}" if report else ""),
                      highlight=False)
        if store_exists(replayed := default_replay_store(args.store)):
            console.print(f"kept {replayed}, a replay of it: a run of its own (populace "
                          f"delete {replayed} deletes it)", highlight=False)
        return 0


class Collect(Command):
    name = "collect"
    # `gc` was this command's name: kept as an alias only because users' scripts call it
    aliases = ("gc",)
    help = ("remove checkpoint files of the run in STORE that no checkpoint names (left by "
            "killed workers); gc, its old name, still works for the scripts that call it")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--grace", type=float, default=None,
                            help="only files older than this many seconds (default: none "
                                 "once no member trains, else twice the run's lease)")
        parser.add_argument("--dry-run", action="store_true", help="list them, remove nothing")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        """Remove orphan checkpoint files; say which."""
        if not store_exists(args.store):
            raise StoreError(f"{safe_url(args.store)} does not exist")
        if args.grace is not None and not (args.grace >= 0 and math.isfinite(args.grace)):
            raise ConfigError(f"--grace must be a number of seconds >= 0, got {args.grace}")
        store = open_store(args.store)
        try:
            storage = owned(store)
            grace = grace_for(store) if args.grace is None else args.grace
            found = (orphans if args.dry_run else collect)(store, storage, grace)
        finally:
            store.close()
        verb = "would remove" if args.dry_run else "removed"
        for name in found:
            console.print(f"{verb} {name}", highlight=False)
        console.print(f"{verb} {len(found)} file(s) no checkpoint names from {storage.url} "
                      f"(grace {grace:g} s)", highlight=False)
        return 0


class Detach(Command):
    name = "detach"
    help = ("make the store STORE, a copy of another run's store, a run of its own: copy the "
            "checkpoints it keeps into a new folder and give the run a new id")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--checkpoints", required=True,
                            help="an empty folder (or fsspec URL) for the copy's checkpoints")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        if not store_exists(args.store):
            raise StoreError(f"{safe_url(args.store)} does not exist")
        root = checkpoint_root(args.checkpoints, args.store)
        store = open_store(args.store)
        try:
            before = owned_or_named(store).url
            done = detach(store, open_storage(root), recorded_checkpoints(root, args.store))
        finally:
            store.close()
        console.print(f"{safe_url(args.store)} is run {done.run} now, its {done.copied} "
                      f"checkpoint(s) copied from {before} into {done.storage}: it trains, "
                      "collects and deletes there alone", highlight=False)
        return 0
