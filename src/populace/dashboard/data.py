"""What the dashboard shows, read from the stores it was given, as JSON-ready values.

Every store is opened read-only (`populace.store.open_reader`: SQLite's `mode=ro`, a
PostgreSQL session whose transactions are all read-only), and only when asked: a store
whose run has not started yet is shown as waiting, and read once it exists. A poll
reads only what is newer than what the page already holds (results and events by id,
members by the time their row changed); the long series are thinned in the database.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from populace import pareto
from populace.mode import Mode
from populace.report.data import ancestry, evaluations, stop_reasons
from populace.store import (
    TRAINING,
    Event,
    Kind,
    MemberRow,
    Result,
    Status,
    StoreError,
    StoreReader,
    is_postgres,
    open_reader,
)
from populace.store.driver import safe_url

# a poll hands back at most this many results; past it the page asks again at once
POLL_LIMIT = 5000
# the points of every member's score series together, at most (thinned in the database)
SERIES_POINTS = 20_000
# members whose row changed this many seconds before the newest change the page saw are
# sent again: the writers' clocks (other machines, with PostgreSQL) may lag a little
CLOCK_SLACK = 30.0
ERROR_CHARS = 4000  # of a failed member's traceback


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _last_line(error: str | None) -> str | None:
    if error is None:
        return None
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no error recorded)"


def member_json(m: MemberRow) -> dict[str, Any]:
    return {
        "id": m.id, "step": m.step, "score": m.score, "status": str(m.status),
        "generation": m.generation, "parent": m.parent, "hparams": m.hparams,
        "error": _last_line(m.error), "traceback": None if m.error is None
        else m.error[-ERROR_CHARS:], "objectives": m.objectives, "sub": m.sub,
        "role": str(m.role), "evaluation": m.evaluation,
    }


def result_json(r: Result, objectives: list[str]) -> list[Any]:
    """A result as the page keeps it: [id, member, step, score, hparams, objectives]."""
    return [r.id, r.member, r.step, r.score, r.hparams,
            [r.metrics.get(name) for name in objectives] if objectives else None]


def event_json(e: Event) -> dict[str, Any]:
    return {"id": e.id, "kind": str(e.kind), "member": e.member, "donor": e.donor,
            "step": e.step, "donor_step": e.donor_step, "before": e.before, "after": e.after,
            "strategy": e.strategy, "time": e.time, "detail": e.detail, "result": e.result}


def best_member(members: list[MemberRow], mode: Mode,
                objectives: dict[str, str] | None) -> MemberRow | None:
    """The run's best member now: the best score (ties: lowest id), or in a
    multi-objective run the first of its Pareto ranking; None before any score."""
    scored = [m for m in members if m.status != Status.FAILED and m.score is not None]
    if not scored:
        return None
    if objectives:
        points = pareto.oriented([m.objectives for m in scored], objectives.values())
        order = pareto.ranking(points, np.array([m.id for m in scored]))
        return scored[int(order[0])]
    return min(scored, key=lambda m: (-mode.sign * (m.score or 0.0), m.id))


def label(url: str) -> str:
    """A store's short name for the page: a SQLite file's name, a PostgreSQL store's
    database (and schema, where the URL names one)."""
    if not is_postgres(url):
        return os.path.basename(url.removeprefix("sqlite:///")) or url
    parts = urlsplit(url)
    schema = re.search(r"search_path(?:%3D|=)([\w$]+)", unquote(parts.query) or "")
    database = parts.path.strip("/") or "postgres"
    return f"{database}/{schema.group(1)}" if schema else database


class Source:
    """One store given to the dashboard: opened read-only on first use, one read at a
    time (a SQLite connection or a PostgreSQL session serves one call at once)."""

    def __init__(self, index: int, url: str | os.PathLike[str]):
        self.index, self.url = index, os.fspath(url)
        self.name = safe_url(self.url)
        self.label = label(self.url)
        self._reader: StoreReader | None = None
        self._inode: int | None = None  # a SQLite file's, to see it replaced (--overwrite)
        self._lock = threading.Lock()
        self._exploits: list[Event] = []  # every exploit event, read incrementally
        self._front: dict[int, list[tuple[int, int, list[float | None]]]] = {}
        self._front_after = 0

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def reader(self) -> StoreReader | None:
        """The store's reader; None while it holds no run (yet). Call under `lock`."""
        if not is_postgres(self.url):
            try:
                inode: int | None = os.stat(self.url.removeprefix("sqlite:///")).st_ino
            except OSError:
                inode = None
            if inode != self._inode and self._reader is not None:
                self._reader.close()  # deleted, or another file there now
                self._reader = None
            self._inode = inode
            if inode is None:
                return None
        if self._reader is None:
            self._reader = open_reader(self.url, patience=2.0)
        return self._reader if self._reader.exists() else None

    def __enter__(self) -> StoreReader | None:
        self._lock.acquire()
        try:
            return self.reader()
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    # -- what the page reads ------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run as the runs table shows it; `state` waiting (no run yet) or error."""
        return self._read()[0]

    def _read(self) -> tuple[dict[str, Any], list[MemberRow]]:
        """The summary and the members it was made from (none: waiting or error), from one
        read of the members."""
        base = {"index": self.index, "store": self.name, "label": self.label}
        try:
            with self as reader:
                if reader is None:
                    return {**base, "state": "waiting", "note": "no run in this store yet"}, []
                members, updated = reader.members_updated()
                return {**base, **self._summary(reader, members), "updated": updated}, members
        except StoreError as e:
            self.close()
            return {**base, "state": "error", "note": str(e)}, []

    def _summary(self, reader: StoreReader, members: list[MemberRow]) -> dict[str, Any]:
        config = reader.config()
        run = config.run
        mode, objectives = config.mode, run.get("objectives")
        best = best_member(members, mode, objectives)
        statuses = Counter(str(m.status) for m in members)
        total = run["steps"] * sum(m.role != "evaluator" for m in members)
        trained = sum(m.step for m in members if m.role != "evaluator")
        latest_result, latest_event = reader.latest()
        return {
            "state": "training" if any(m.status in TRAINING for m in members) else
            "failed" if members and all(m.status == Status.FAILED for m in members)
            else "finished",
            "population": len(members), "steps": run["steps"], "trained": trained,
            "progress": trained / total if total else 0.0, "status": dict(statuses),
            "best": None if best is None else best.id,
            "best_score": None if best is None else best.score,
            "score": run.get("score"), "mode": str(mode), "objectives": objectives,
            "executor": run.get("executor"), "exploit": run.get("exploit", {}).get("name"),
            "explore": run.get("explore", {}).get("name"), "settings": run,
            "hparams": self._hparam_names(config.space, members),
            "log_hparams": [name for name, spec in config.space.items()
                            if isinstance(spec, dict) and spec.get("log")],
            "fire": any(m.sub != 1 for m in members),
            "pb2": run.get("explore", {}).get("name") == "pb2",
            "latest_result": latest_result, "latest_event": latest_event,
        }

    @staticmethod
    def _hparam_names(space: Mapping[str, Any], members: list[MemberRow]) -> list[str]:
        names = list(space)
        return names + sorted({k for m in members for k in m.hparams} - set(names))

    def overview(self) -> dict[str, Any]:
        """The first page of one run: its summary and every member."""
        summary, members = self._read()
        if "updated" not in summary:  # waiting, or an error
            return {"summary": summary, "members": []}
        return {"summary": summary, "members": [member_json(m) for m in members],
                "updated": summary["updated"]}

    def poll(self, after_result: int, after_event: int, since: float | None) -> dict[str, Any]:
        """What changed since the page last asked: the results and events after the ids it
        holds, the members whose rows changed since `since` (less CLOCK_SLACK)."""
        with self as reader:
            if reader is None:
                return {"results": [], "events": [], "members": [], "more": False}
            objectives = list(reader.config().run.get("objectives") or {})
            results = reader.results_after(after_result, POLL_LIMIT + 1)
            events = reader.events_after(after_event, POLL_LIMIT + 1)
            members, updated = reader.members_updated(
                None if since is None else since - CLOCK_SLACK)
        more = len(results) > POLL_LIMIT or len(events) > POLL_LIMIT
        return {"results": [result_json(r, objectives) for r in results[:POLL_LIMIT]],
                "events": [event_json(e) for e in events[:POLL_LIMIT]],
                "members": [member_json(m) for m in members], "updated": updated,
                "more": more}

    def series(self, points: int = SERIES_POINTS) -> dict[str, Any]:
        """Every member's results, thinned in the database to `points` in all (their
        metrics not read), and who copied whom at which step (where lines break, and the
        markers)."""
        with self as reader:
            if reader is None:
                return {"results": [], "hparams": [], "latest_result": 0,
                        "exploits": {"member": [], "donor": [], "step": []}}
            population = max(1, int(reader.config().run["population"]))
            latest, _ = reader.latest()
            rows = reader.results_sampled(max(2, points // population), metrics=False)
            exploits = self._exploit_events(reader)
        # a member's hparams repeat from result to result, and the reader hands out one
        # dict for each stored text: sent once each, the rows name them by index
        table: dict[int, int] = {}
        hparams = [table.setdefault(id(r.hparams), len(table)) for r in rows]
        unique = {id(r.hparams): r.hparams for r in rows}
        return {"results": [[r.id, r.member, r.step, r.score, h]
                            for r, h in zip(rows, hparams, strict=True)],
                "hparams": [unique[key] for key in table],
                # column by column: a long run has tens of thousands
                "exploits": {"member": [e.member for e in exploits],
                             "donor": [e.donor for e in exploits],
                             "step": [e.step for e in exploits]},
                "latest_result": latest}

    def _exploit_events(self, reader: StoreReader) -> list[Event]:
        """Every exploit, without its hparams (who copied whom, when), read once: each
        call reads only the newer ones."""
        after = self._exploits[-1].id if self._exploits else 0
        while True:
            new = reader.events_after(after, 50_000, kinds=(Kind.EXPLOIT,), details=False)
            self._exploits += new
            if len(new) < 50_000:
                return self._exploits
            after = new[-1].id

    def events(self, kinds: tuple[str, ...], member: int | None, limit: int) -> dict[str, Any]:
        """The newest `limit` events (of `kinds`, of `member`), newest first."""
        with self as reader:
            if reader is None:
                return {"events": []}
            found = reader.events_after(0, limit, kinds=kinds, member=member, newest=True)
        return {"events": [event_json(e) for e in found]}

    def lineage(self, member: int) -> dict[str, Any]:
        """The lineage of `member`: the stretch each ancestor trained, every copy (donor,
        step, hparams before and after) and the results along it, oldest first."""
        with self as reader:
            if reader is None:
                raise LookupError("no run in this store yet")
            if member not in {m.id for m in reader.members()}:
                raise LookupError(f"no member {member} in this run")
            chain = [reader.events_after(e.id - 1, 1)[0]  # with their hparams
                     for e in ancestry(member, self._exploit_events(reader))]
            owners = [chain[0].donor] if chain else [member]
            owners += [e.member for e in chain]
            bounds: list[int | None] = [0, *(e.result or 0 for e in chain), None]
            stretches, points = [], []
            for i, owner in enumerate(owners):
                assert owner is not None  # ancestry stops at a copy without a donor
                low, high = bounds[i] or 0, bounds[i + 1]
                own = [r for r in reader.results(owner)
                       if r.id > low and (high is None or r.id <= high)]
                points += [[r.step, r.score, r.hparams, owner] for r in own]
                stretches.append({"member": owner, "first": own[0].step if own else None,
                                  "last": own[-1].step if own else None})
        return {"member": member, "stretches": stretches,
                "copies": [event_json(e) for e in chain], "points": points}

    def curve(self) -> dict[str, Any]:
        """The best and the mean score of the results at each step: what two runs are
        compared on."""
        with self as reader:
            if reader is None:
                return {"steps": [], "best": [], "mean": [], "mode": "max"}
            mode = reader.config().mode
            rows = reader.scores_by_step()
        best = [r[2] if mode.maximize else r[1] for r in rows]
        return {"steps": [r[0] for r in rows], "best": best, "mean": [r[3] for r in rows],
                "mode": str(mode)}

    def front(self, step: int | None) -> dict[str, Any]:
        """A multi-objective run's members as they stood at `step` (their newest result
        up to it; None: now), with each one's Pareto rank, and the steps there are."""
        with self as reader:
            if reader is None:
                return {"objectives": {}, "points": [], "steps": []}
            objectives = reader.config().run.get("objectives") or {}
            if not objectives:
                return {"objectives": {}, "points": [], "steps": []}
            self._read_front(reader, list(objectives))
        steps = sorted({s for rows in self._front.values() for _, s, _ in rows})
        at = steps[-1] if step is None and steps else step
        latest = {}
        for member, rows in self._front.items():
            upto = [r for r in rows if at is not None and r[1] <= at]
            if upto:
                latest[member] = upto[-1][2]
        ids = sorted(latest)
        points = pareto.oriented([latest[i] for i in ids], objectives.values())
        rank = pareto.fronts(points) if ids else np.zeros(0, int)
        return {"objectives": objectives, "step": at, "steps": steps,
                "points": [{"member": i, "values": latest[i], "rank": int(rank[k])}
                           for k, i in enumerate(ids)]}

    def _read_front(self, reader: StoreReader, names: list[str]) -> None:
        while True:
            new = reader.results_after(self._front_after, 50_000)
            for r in new:
                self._front.setdefault(r.member, []).append(
                    (r.id, r.step, [r.metrics.get(n) for n in names]))
            if new:
                self._front_after = new[-1].id
            if len(new) < 50_000:
                return

    def strategy_state(self) -> dict[str, Any]:
        """PB2's data (each member's recent segments, what its Gaussian process fits) and
        FIRE-PBT's (sub-populations, evaluators, evaluations), where the run has them."""
        with self as reader:
            if reader is None:
                return {"pb2": [], "fire": None}
            config = reader.config()
            members = reader.members()
            snapshot = reader.snapshot() if config.segments else None
            fire = any(m.sub != 1 for m in members)
            kinds = (Kind.EVALUATION, Kind.SUCCEEDED, Kind.STOPPED)
            found = evaluations(reader.events_after(0, 1_000_000, kinds=kinds)) if fire else []
        pb2 = [] if snapshot is None else [
            {"member": int(i), "start": s.start, "step": s.step, "before": s.before,
             "score": s.score, "hparams": dict(s.hparams)}
            for i, segments in zip(snapshot.ids, snapshot.segments, strict=False)
            for s in segments]
        return {"pb2": pb2, "fire": None if not fire else {
            "subs": {str(sub): [m.id for m in members if m.sub == sub]
                     for sub in sorted({m.sub for m in members})},
            "evaluators": [member_json(m) for m in members if m.role == "evaluator"],
            "evaluations": [{"evaluator": e.evaluator, "step": e.step, "parent": e.parent,
                             "what": e.what, "end": e.end, "outcome": e.outcome, "why": e.why}
                            for e in found[-500:]],
            "stop_reasons": dict(stop_reasons(found))}}
