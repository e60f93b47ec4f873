"""Run N workers as processes on this machine, all pulling from one store."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue

from populace import stopping
from populace.errors import StorageFault
from populace.executors import forkserver
from populace.executors.gpus import gpu_slots, visible_gpus
from populace.executors.source import TrainableSource, work
from populace.stopping import stop_on_signals, stop_with_parent
from populace.store import TRAINING, Store, open_store
from populace.worker import TIMED_OUT

START_SECONDS = 60.0  # how long a worker process waits for the others to start
STOP_SECONDS = 5.0  # how long a stopped worker process may take to give its lease back


class WorkersDied(RuntimeError):
    """Every worker process ended while members were still left to train."""


def _work(url: str, source: TrainableSource, together: threading.Barrier,
          gpus: str | None, faults: SimpleQueue, environment: dict[str, str]) -> None:
    stop_on_signals()
    stop_with_parent()
    # a worker forked from the fork server has the environment the server started with
    os.environ.clear()
    os.environ.update(environment)
    if gpus is not None:  # before the trainable imports torch, which reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    store = open_store(url)
    try:
        work(store, source, lambda: _wait(together))
    except KeyboardInterrupt:
        pass  # the parent reports the interruption; the lease was given back
    except StorageFault as e:  # the parent stops the run with it
        faults.put(str(e))
        sys.exit(StorageFault.exit_status)
    finally:
        store.close()


def _wait(together: threading.Barrier) -> None:
    """Wait until every worker process has imported the trainable, for a while at most.

    A spawned process takes a second or more to import torch and the script: the
    first one to start would otherwise train its members far ahead of the others,
    and an asynchronous run's first ranks would hold only the members it trains.
    A worker that failed to start breaks the barrier; the others go on alone.
    """
    with contextlib.suppress(threading.BrokenBarrierError):
        together.wait(timeout=START_SECONDS)


def run_local(store: Store, source: TrainableSource, workers: int,
              gpus_per_worker: float = 0.0) -> None:
    """Start `workers` processes and wait until every one has finished; each sees
    `gpus_per_worker` GPUs of its own (or a share of one)."""
    slots = gpu_slots(workers, gpus_per_worker, visible_gpus() if gpus_per_worker else [])
    ctx = forkserver.context(gpus_per_worker)
    together, faults = ctx.Barrier(workers), ctx.SimpleQueue()

    def start(i: int) -> BaseProcess:
        p = ctx.Process(target=_work, args=(store.url, source, together, slots[i], faults,
                                            dict(os.environ)),
                        name=f"populace-worker-{i}")
        p.start()
        return p

    procs = [start(i) for i in range(workers)]
    try:
        while any(p.is_alive() for p in procs):
            stopping.check()  # a stop whose KeyboardInterrupt was lost stops the workers too
            for p in procs:
                p.join(timeout=0.2)
            if not all(p.is_alive() for p in procs):
                together.abort()  # one ended (done, or died starting): nobody waits for it
            if any(p.exitcode == StorageFault.exit_status for p in procs):
                raise StorageFault(faults.get())
            # a worker ended for a segment that timed out (recorded): one in its place
            procs = [start(i) if p.exitcode == TIMED_OUT else p for i, p in enumerate(procs)]
    except BaseException:
        _stop(procs)
        raise
    if any(m.status in TRAINING for m in store.members()) and store.meta("stopped") is None:
        # a worker stopped from outside (SIGTERM) exits 0 after giving its lease back
        crashed = [p.name for p in procs if p.exitcode not in (0, None)]
        raise WorkersDied(
            f"worker processes {', '.join(crashed)} died before the run finished (their "
            "output above says why); run again to resume" if crashed else
            "every worker process was stopped before the run finished; run again to resume"
        )


def _stop(procs: Sequence[BaseProcess]) -> None:
    """Stop every worker process (SIGTERM: each gives its lease back), and kill one that
    has not ended within STOP_SECONDS (a step stuck where no signal reaches)."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=STOP_SECONDS)
        if p.is_alive():
            p.kill()
            p.join()
