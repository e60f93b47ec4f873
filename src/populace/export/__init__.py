"""A run's history in the tools people watch training in: TensorBoard and MLflow.

Everything comes from the store (results, exploit events, lineage), so a finished
run exports as well as a live one: `export` writes a whole run once, `Follow` writes
a training run's new rows as they arrive (the `tensorboard` and `mlflow` settings).
Each tool's package is imported only when its log is made.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from populace.errors import ConfigError
from populace.results import RunFailed, RunResult, result_of
from populace.store import (
    Event,
    MemberRow,
    Result,
    Store,
    StoreError,
    beside,
    open_store,
    store_exists,
)
from populace.store.driver import safe_url

POLL = 2.0  # seconds between two looks at the store while a run trains


class Log(Protocol):
    """Where one tool's copy of the run goes: new rows as they come, then the outcome."""

    def write(self, results: Sequence[Result], events: Sequence[Event],
              members: Sequence[MemberRow], store: Store) -> None: ...

    def finish(self, members: Sequence[MemberRow], best: RunResult | None) -> None: ...


def mlflow_uri(target: str, store: str | os.PathLike[str]) -> str:
    """A tracking URI from the `mlflow` setting: a URI as given, a folder as a SQLite
    database in it, or `beside` for one next to the run's store (runs/x.mlflow.db).

    MLflow 3 refuses its plain-folder store (in maintenance mode), so a local folder
    holds an `mlflow.db` (what `mlflow ui` opens by default when started there).
    """
    if "://" in target:
        return target
    path = beside(store, ".mlflow.db") if target == "beside" else (
        os.path.join(target, "mlflow.db"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return f"sqlite:///{os.path.abspath(path)}"


def make_logs(store: Store, tensorboard: str | None, mlflow: str | None) -> list[Log]:
    """The logs the settings ask for, each starting afresh from an empty copy of the run."""
    logs: list[Log] = []
    if tensorboard is not None:
        with _extra("tensorboard"):
            from populace.export.tensorboard import TensorBoardLog
        logs.append(TensorBoardLog(tensorboard))
    if mlflow is not None:
        with _extra("mlflow"):
            from populace.export.mlflow import MlflowLog
        logs.append(MlflowLog(mlflow_uri(mlflow, store.url), store))
    return logs


@contextmanager
def _extra(name: str) -> Iterator[None]:
    """A missing package named as the extra that installs it."""
    try:
        yield
    except ModuleNotFoundError as e:
        raise ConfigError(f"{name}: logging a run to {name} needs the package {e.name}: "
                          f"pip install 'populace[{name}]'") from e


class Tail:
    """The rows of a store not yet handed to the logs (results and events by id)."""

    def __init__(self) -> None:
        self.result = 0
        self.event = 0

    def pass_on(self, store: Store, logs: Sequence[Log]) -> list[MemberRow]:
        """Hand each log the rows stored since the last call; return the members."""
        results = [r for r in store.results() if r.id > self.result]
        events = [e for e in store.events() if e.id > self.event]
        members = store.members()
        if results or events:
            for log in logs:
                log.write(results, events, members, store)
            self.result = max([self.result, *(r.id for r in results)])
            self.event = max([self.event, *(e.id for e in events)])
        return members


def finish(store: Store, logs: Sequence[Log], members: Sequence[MemberRow]) -> None:
    """Mark the best member (none when every member failed) and close each log."""
    try:
        best: RunResult | None = result_of(store)
    except RunFailed:
        best = None
    for log in logs:
        log.finish(members, best)


def export(store: str | os.PathLike[str], tensorboard: str | None = None,
           mlflow: str | None = None) -> None:
    """Write the run in `store`, finished or not, to a TensorBoard folder and/or MLflow."""
    if not store_exists(store):
        raise StoreError(f"{safe_url(os.fspath(store))} does not exist")
    db = open_store(store)
    try:
        db.config()  # not a populace store: said before any log is made
        logs = make_logs(db, tensorboard, mlflow)
        finish(db, logs, Tail().pass_on(db, logs))
    finally:
        db.close()


class Follow:
    """Writes a training run's new results and events to the logs, polling the store
    from a thread with its own connection (as the progress display does), so it sees
    every executor's members and costs the workers nothing."""

    def __init__(self, url: str, tensorboard: str | None, mlflow: str | None):
        self._url, self._tensorboard, self._mlflow = url, tensorboard, mlflow
        self._stop = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None  # the logs could not be made
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name="populace-export")

    def _follow(self) -> None:
        # the store and each tool's client live in this thread alone
        store = open_store(self._url)
        try:
            try:
                logs = make_logs(store, self._tensorboard, self._mlflow)
            except BaseException as e:
                self._error = e
                return
            finally:
                self._started.set()
            tail = Tail()
            while not self._stop.wait(POLL):
                try:
                    tail.pass_on(store, logs)
                except Exception as e:  # a busy store or an unreachable server: next poll
                    print(f"populace: live export failed, trying again: {e}", file=sys.stderr)
            finish(store, logs, tail.pass_on(store, logs))
        except Exception as e:
            print(f"populace: live export failed: {e}; `populace export` writes the whole "
                  "run from its store", file=sys.stderr)
        finally:
            store.close()

    def __enter__(self) -> Follow:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
