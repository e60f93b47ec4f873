"""Checkpoint work beside the run's own, where a core is free for it (a GPU's run): a
ready group's file written while the group is evaluated, and the files the store let go
deleted while the next segment trains. Elsewhere the same calls do the work at once.

What the store records waits for nothing less than before: the run takes a write's
result (`Pending.result`: the file in place under its hash and fsynced) before it
reports a member with it, so a report never names a file a crash could lose; a file
is deleted only after the store forgot it, and one a crash leaves undeleted is an
orphan, which the next start collects. One thread runs the jobs one at a time, in
order, so the storage never has two calls at once: the run waits for them (`drain`)
before it reads a checkpoint itself, and before it returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from populace.checkpoints import CheckpointRef, CheckpointStorage

T = TypeVar("T")


class Pending:
    """A checkpoint file being written: its ref once durable, or the write's error."""

    def __init__(self, storage: CheckpointStorage, future: Future[CheckpointRef]):
        self._storage, self._future = storage, future

    def result(self) -> CheckpointRef:
        """The file's ref, once it is in place and fsynced (the write's error, if it failed)."""
        return self._future.result()

    def discard(self) -> None:
        """The file is not wanted (nobody reports with it): wait for it and delete it, on
        the run's thread (nothing is queued behind the write: `_report` resolves each
        write before it queues anything else); a failed write leaves nothing to delete,
        and its error is nobody's concern now."""
        try:
            ref = self._future.result()
        except Exception:
            return
        self._storage.delete(ref.key)


class Beside:
    """One thread doing a run's checkpoint writes and deletions while the run goes on
    (`background`), else the run's own thread, at once."""

    def __init__(self, storage: CheckpointStorage, background: bool = True):
        self.storage, self.background = storage, background
        self._thread = ThreadPoolExecutor(max_workers=1,
                                          thread_name_prefix="populace-checkpoints")
        self._deleting: list[Future[None]] = []

    def _submit(self, job: Callable[..., T], *args: Any) -> Future[T]:
        if self.background:
            return self._thread.submit(job, *args)
        done: Future[T] = Future()  # its error raised now, as the run's own
        done.set_result(job(*args))
        return done

    def write(self, save: Callable[[Path], None]) -> Pending:
        """Start writing the file `save` writes (`CheckpointStorage.write`), after the jobs
        before it."""
        return Pending(self.storage, self._submit(self.storage.write, save))

    def delete(self, keys: Iterable[str]) -> None:
        """Delete these checkpoint files (ones the store no longer names) after the jobs
        before them; a failure is raised here, at the next call, or by `drain`."""
        under_way = []
        for future in self._deleting:  # a long run keeps only the deletions still under way
            if future.done():
                future.result()
            else:
                under_way.append(future)
        self._deleting = under_way + [self._submit(self.storage.delete, key) for key in keys]

    def drain(self) -> None:
        """Wait until every deletion is done; raise the first one that failed."""
        deleting, self._deleting = self._deleting, []
        for future in deleting:
            future.result()

    def close(self) -> None:
        """Finish the jobs (a write waits for its file), then stop the thread; raise a
        deletion's failure."""
        try:
            self.drain()
        finally:
            self._thread.shutdown(wait=True)

    def abandon(self) -> None:
        """As `close`, while an error of the run's own is being raised: the jobs finish,
        and their failures give way to it."""
        with contextlib.suppress(Exception):
            self.close()
