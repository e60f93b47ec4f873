"""Store checks under contention: worker processes claim and report at once, with live
and with expiring leases, and nothing is lost or stored twice."""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections import Counter
from typing import Any

import numpy as np

from populace.snapshot import Snapshot
from populace.store import Decision, open_store
from populace.testing.stores._kit import Stores, equal, holds, report, some, store_check

# eight workers and thousands of reports: contention as a cluster run would see it
N_WORKERS, N_MEMBERS, TARGET = 8, 16, 200


def _claim_report_loop(url: str, worker: str, short_leases: bool, barrier: Any,
                       out: Any) -> None:
    """Child process: claim and report until every member is done; send back a log.

    With short_leases, one claim in five takes a lease far shorter than its
    segment, so other workers take the member over and the late report is refused.
    """
    log: list[tuple[int, int, int, bool, bool]] = []
    errors: list[str] = []
    rng = np.random.default_rng(int(worker[1:]))
    try:
        store = open_store(url)
        barrier.wait()
        while True:
            late = short_leases and rng.random() < 0.2
            member = store.claim(worker, 0.001 if late else 60.0)
            if member is None:
                if store.progress()["status"].get("done", 0) == N_MEMBERS:
                    break
                time.sleep(0.002)
                continue
            time.sleep(0.02 if late else 0.001)  # training, outside any transaction
            step = member.step + 1
            score = step * member.hparams["lr"]

            def decide(snapshot: Snapshot, _member: int, me: int = member.id,
                       step: int = step) -> Decision | None:
                # the worst member copies the best one, never going back in steps
                rank = snapshot.ranking()
                best, worst = int(snapshot.ids[rank[0]]), int(snapshot.ids[rank[-1]])
                if worst != me or best == me or not step <= snapshot.steps[rank[0]] < TARGET:
                    return None
                return Decision(best, {"lr": snapshot.hparams[rank[0]]["lr"] * 1.1}, "t")

            outcome = store.report(
                report(member.id, worker, step, score, hparams=member.hparams,
                       final=step >= TARGET), decide, 2)
            log.append((member.id, member.step, step, outcome.accepted,
                        outcome.decision is not None))
        store.close()
    except BaseException:
        errors.append(traceback.format_exc())
    out.put((worker, log, errors))


def _answers(procs: list[Any], out: Any, timeout: float = 240.0) -> list[Any]:
    """Each worker process's answer; a process that died without one fails at once (a
    script started without `if __name__ == "__main__":` dies so in every spawned child)."""
    answers: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(answers) < len(procs):
        try:
            answers.append(out.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise AssertionError(
                    f"{len(procs) - len(answers)} of {len(procs)} worker processes gave no "
                    f"answer (exit codes {[p.exitcode for p in procs]}); a script that runs "
                    "the battery needs `if __name__ == \"__main__\":`, as spawned processes "
                    "import it again") from None
    return answers


def _workers_lose_and_duplicate_nothing(stores: Stores, short_leases: bool) -> None:
    store = stores.new(population=N_MEMBERS)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(N_WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_claim_report_loop,
                         args=(store.url, f"w{i}", short_leases, barrier, out))
             for i in range(N_WORKERS)]
    for p in procs:
        p.start()
    answers = _answers(procs, out)
    for p in procs:
        p.join(timeout=60)
        equal(p.exitcode, 0)
    errors = [e for _, _, errs in answers for e in errs]
    equal(errors, [], "\n".join(errors))  # no "database is locked", nothing else
    holds(all(len(log) > 0 for _, log, _ in answers), "the workers did not run concurrently")
    logs = [entry for _, log, _ in answers for entry in log]

    accepted = [e for e in logs if e[3]]
    refused = len(logs) - len(accepted)
    equal(len(store.events("refused")), refused)
    equal(refused > 0, short_leases)
    results = store.results()
    holds(len(results) == len(accepted) >= N_MEMBERS * TARGET // 2)
    equal(Counter((r.member, r.step) for r in results), Counter(
        (e[0], e[2]) for e in accepted))
    equal(len(store.events("exploit")), sum(e[4] for e in accepted))
    for m in range(N_MEMBERS):
        mine = [r.step for r in results if r.member == m]
        # steps only grow: two workers never trained one member at once
        equal(mine, sorted(set(mine)), f"member {m}: {mine}")
    holds(all(e[2] > e[1] for e in logs))
    members = store.members()
    equal([(m.status, m.step) for m in members], [("done", TARGET)] * N_MEMBERS)
    holds(all(some(m.checkpoint).step == m.step for m in members))
    equal(store.progress()["steps"], N_MEMBERS * TARGET)


@store_check
def check_store_concurrent_workers_lose_and_duplicate_nothing(stores: Stores) -> None:
    """Eight worker processes, leases that live: every report accepted, none twice."""
    _workers_lose_and_duplicate_nothing(stores, short_leases=False)


@store_check
def check_store_concurrent_workers_with_expiring_leases(stores: Stores) -> None:
    """One claim in five outlived by its segment: the late report is refused, recorded,
    and its member trained by another worker, none of it twice."""
    _workers_lose_and_duplicate_nothing(stores, short_leases=True)
