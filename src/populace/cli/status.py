"""`populace status` and `populace result`: what a run holds, finished or not."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from populace.checkpoints import CheckpointStorage, open_storage
from populace.cli.base import Command
from populace.cli.tables import front_table, print_best, print_events
from populace.display import members_table
from populace.results import load_result, result_of
from populace.store import TRAINING, MemberRow, Role, StoreError, open_store, store_exists
from populace.store.driver import safe_url


class Status(Command):
    name = "status"
    help = "one row per member of the run in STORE"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--json", action="store_true", help="JSON instead of a table")
        parser.add_argument("--events", action="store_true",
                            help="every event instead of the members: exploits, waits for a "
                                 "donor, dropped decisions, retries, failures, recoveries, "
                                 "refused reports; FIRE-PBT's evaluations started, stopped "
                                 "and succeeded, each with its reason")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        if not store_exists(args.store):
            raise StoreError(f"{safe_url(args.store)} does not exist")
        store = open_store(args.store)
        try:
            if args.events:
                print_events(store.events(), args.json, console)
                return 0
            members = store.members()
            storage = open_storage(store.config().checkpoints)
            run = store.config().run
            objectives = run.get("objectives")
            front = result_of(store) if objectives and any(m.score is not None
                                                           for m in members) else None
        finally:
            store.close()
        if args.json:
            on_front = None if front is None else {f.id for f in front.front}
            fire = any(m.role == Role.EVALUATOR for m in members)
            print(json.dumps([_member_json(m, storage, objectives, on_front, fire)
                              for m in members], indent=2))
            return 0
        console.print(members_table(members, title=args.store, score=run["score"],
                                    mode=run["mode"]))
        if front is not None:
            console.print(front_table(front))
        return 0


def _member_json(m: MemberRow, storage: CheckpointStorage, objectives: dict[str, str] | None,
                 on_front: set[int] | None, fire: bool = False) -> dict[str, object]:
    """A member as `status --json` prints it (its objectives only in a multi-objective run;
    its sub-population, role and evaluation only in a FIRE-PBT run)."""
    return {
        "id": m.id, "step": m.step, "score": m.score, "hparams": m.hparams,
        "generation": m.generation, "parent": m.parent, "status": m.status, "error": m.error,
        "checkpoint": m.checkpoint and storage.location(m.checkpoint.key),
        **({"objectives": dict(zip(objectives, m.objectives or [], strict=False)),
            "front": on_front is not None and m.id in on_front}
           if objectives else {}),
        **({"sub": m.sub, "role": m.role, "evaluation": m.evaluation} if fire else {}),
    }


class Result(Command):
    name = "result"
    help = "the best member of the run in STORE: its score, hparams, checkpoint and schedule"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store")
        parser.add_argument("--json", action="store_true", help="JSON instead of text")

    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        result = load_result(args.store)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
            return 0
        training = [m for m in result.members if m.status in TRAINING]
        if training:
            console.print(f"the run is not finished: {len(training)} member(s) still to "
                          "train; the same populace run command resumes it")
        print_best(result, console)
        console.print(f"its checkpoint: {result.checkpoint}", highlight=False, soft_wrap=True)
        table = Table(title="its schedule: the hparams in force from each step on")
        for name in ("step", "member", "hparams"):
            table.add_column(name)
        for e in result.schedule:
            table.add_row(str(e.step), str(e.member), json.dumps(e.hparams))
        console.print(table)
        return 0
