"""Run N workers as Ray tasks on a Ray cluster (one started here, or one to join).

Ray only places the workers: each task runs the same worker loop as a local
process, against the same store, so a run can move between executors and
resume. The store and the checkpoint storage must be reachable from every node
(PostgreSQL and a shared or fsspec checkpoint URL on a remote cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from populace import stopping
from populace.errors import ConfigError, StorageFault
from populace.executors.local import WorkersDied
from populace.executors.source import TrainableSource, work
from populace.store import TRAINING, Store, open_store

POLL = 0.5  # seconds between looks for a stop while the tasks run


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as e:
        raise ConfigError("executor ray needs Ray: pip install 'populace[ray]'") from e
    return ray


def _work(url: str, source: TrainableSource) -> str | None:
    """One worker's loop; the message of a storage that failed, for the driver to stop
    the run with (a task's exception would only say that a worker died)."""
    store = open_store(url)
    try:
        work(store, source)
    except StorageFault as e:
        return str(e)
    finally:
        store.close()
    return None


def run_ray(store: Store, source: TrainableSource, workers: int, address: str | None = None,
            cpus: float = 1.0, gpus: float = 0.0) -> None:
    """Start `workers` Ray tasks, each asking for `cpus` and `gpus`, and wait for them.

    Joins the cluster at `address` ('auto', 'ray://host:10001'), or starts a
    local one when there is none; a cluster started here is shut down after.
    A task whose storage failed stops the run with its StorageFault; one whose
    process ended for a segment that timed out is replaced, as the local
    executor replaces its worker process.
    """
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="warning")
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_work)
        errors = _wait(ray, store, lambda i: task.options(name=f"populace-worker-{i}")
                       .remote(store.url, source), workers)
        if errors and any(m.status in TRAINING for m in store.members()):
            raise WorkersDied(
                f"{len(errors)} of {workers} Ray worker tasks failed before the run finished; "
                f"first error:\n{errors[0]}\nrun again to resume"
            )
    finally:
        if started:
            ray.shutdown()


def _wait(ray: Any, store: Store, start: Callable[[int], Any], workers: int) -> list:
    """Start the tasks and wait for every one; the errors of those that failed."""
    running = {start(i): i for i in range(workers)}
    timeouts = len(store.events("timeout"))
    errors = []
    try:
        while running:
            stopping.check()  # a stop whose KeyboardInterrupt was lost cancels the tasks
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL)
            if not done:
                continue
            ref = done[0]
            i = running.pop(ref)
            try:
                fault = ray.get(ref)
            except ray.exceptions.RayError as e:
                # a task's process that ended for a segment that timed out recorded a
                # 'timeout' event first (populace.worker.Watchdog): one in its place
                if len(store.events("timeout")) > timeouts:
                    timeouts += 1
                    running[start(i)] = i
                else:
                    errors.append(e)
                continue
            if fault is not None:
                raise StorageFault(fault)
    except BaseException:
        for ref in running:  # a cancelled task gives its lease back like an interrupted one
            ray.cancel(ref)
        raise
    return errors
