"""Member by member: a worker claims the member furthest behind, trains one segment of it,
hands it in, and claims again, until no member is left to train.

The paper's loop, and where each part of it is, is in `populace.segment`'s docstring;
this module is its outer loop (claim, heartbeat, failure) and its training by a
`Trainable` class.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from populace import stopping
from populace.config import RunConfig
from populace.errors import ConfigError, StorageFault
from populace.segment import Held, LeaseLost, ScoreNotFinite, Segments, member_seed, score_of
from populace.space import Hparams, Space
from populace.store import FailOutcome, MemberRow, Store, StoreError, open_store
from populace.trainable import Trainable

IDLE_POLL = 0.05  # seconds between claims while other workers hold the last members
TIMED_OUT = 124  # a worker process's exit status once its segment timed out (as timeout(1))


class Heartbeat:
    """Renews the lease of the member being trained, from a thread with its own connection.

    One thread serves a worker's whole life, so a segment costs no thread or
    connection set-up.
    """

    def __init__(self, url: str, worker: str, lease: float):
        self._url, self._worker, self._lease = url, worker, lease
        self._member: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="populace-heartbeat")
        self._thread.start()

    def watch(self, member: int | None) -> None:
        """Renew `member`'s lease from now on (None: renew nothing)."""
        with self._lock:
            self._member = member

    def _watched(self) -> list[int]:
        """The members whose leases the next beat renews."""
        with self._lock:
            return [] if self._member is None else [self._member]

    def _beat(self) -> None:
        store = open_store(self._url)
        store.patience = self._lease / 3  # the next beat tries again
        try:
            while not self._stop.wait(self._lease / 3):
                for member in self._watched():
                    try:
                        store.heartbeat(self._worker, member, self._lease)
                    except Exception as e:  # a busy or failing store: try again next beat
                        print(f"populace: heartbeat of member {member} failed: {e}",
                              file=sys.stderr)
        finally:
            store.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def timed_out() -> NoReturn:
    """End this process with TIMED_OUT, for whoever started it to start another."""
    os._exit(TIMED_OUT)


class Watchdog:
    """Ends this worker process when its segment has not reported within `timeout` seconds
    (a step that never returns: a deadlocked data loader, a stuck collective), after
    `fire` recorded it. Only a process can stop a step that never returns: the local
    executor starts a new worker process in its place.
    """

    def __init__(self, timeout: float, began: Callable[[], float],
                 fire: Callable[[int, float], None], end: Callable[[], NoReturn]):
        self._timeout, self._began, self._fire, self._end = timeout, began, fire, end
        self._member: int | None = None
        self._since = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="populace-watchdog")
        self._thread.start()

    def watch(self, member: int | None) -> None:
        """Time `member`'s segments from now on (None: time nothing)."""
        with self._lock:
            self._member, self._since = member, time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self._timeout / 10)):
            with self._lock:
                member, since = self._member, max(self._since, self._began())
            if member is not None and time.monotonic() - since > self._timeout:
                try:
                    self._fire(member, time.monotonic() - since)
                finally:
                    self._end()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Worker(ABC):
    """Trains members of one run until none is left, one segment per claim: the loop
    every member-by-member worker runs, whatever trains the segment."""

    reported_by = "evaluate"  # what hands in the metrics, for messages

    def __init__(self, store: Store, space: Space):
        self.store = store
        self.id = uuid.uuid4().hex[:12]
        self.segments = Segments(store, space, self.id, self.reported_by)
        self.config = self.segments.config
        # the state of the member last handed in, when it goes on from it: claimed first
        self.held: Held | None = None

    @abstractmethod
    def train_segment(self, member: MemberRow, held: Held | None) -> Held | None:
        """Train the claimed member to its next ready point and hand it in, going on from
        `held` when it carries the member; return the state this worker holds after (None:
        nothing to carry on with)."""

    def run(self, end: Callable[[], NoReturn] = timed_out) -> int:
        """Claim, train and report until the run is done; return the segments trained.
        `end` ends the process once a segment timed out and was recorded."""
        watching: list[Heartbeat | Watchdog] = [
            Heartbeat(self.store.url, self.id, self.config.lease_seconds)]
        if (timeout := self.config.segment_timeout) is not None:
            watching.append(Watchdog(timeout, lambda: self.segments.began, self._timed_out,
                                     end))
        try:
            return self._loop(watching)
        finally:
            for watcher in watching:
                watcher.close()

    def _timed_out(self, member: int, seconds: float) -> None:
        """Record that `member`'s segment did not report in time, from the watchdog's
        thread (and connection): a 'timeout' event, then what a raising segment gets."""
        error = (f"timeout: member {member}'s segment did not report within segment_timeout="
                 f"{self.config.segment_timeout:g} s ({seconds:.1f} s): its worker process "
                 "was ended")
        print(f"populace: {error}", file=sys.stderr, flush=True)
        store = open_store(self.store.url)
        try:
            self.segments.fail(member, error, store, timed_out=True)
        finally:
            store.close()

    def _loop(self, watching: list[Heartbeat | Watchdog]) -> int:
        segments = 0
        while True:
            stopping.check()
            if self.segments.stopped():
                return segments
            member = self.segments.claim(self.held.member if self.held else None)
            if member is None:
                if self.segments.finished():
                    return segments
                time.sleep(IDLE_POLL)
                continue
            for watcher in watching:
                watcher.watch(member.id)
            held, self.held = self.held, None  # until the segment is handed in
            try:
                self.held = self.train_segment(member, held)
            except LeaseLost:
                pass  # another worker trains it now: nothing of ours to record
            except StoreError:
                raise  # the store failed, not the member: stop; its lease expires
            except StorageFault:  # the checkpoint storage failed, not the member: stop
                self.store.release(self.id, member.id)
                raise
            except Exception as e:
                self._fail(member, e)
            except BaseException:  # interrupted: the member is not at fault
                self.store.release(self.id, member.id)
                raise
            finally:
                for watcher in watching:
                    watcher.watch(None)
            segments += 1

    def _fail(self, member: MemberRow, e: Exception) -> None:
        # a non-finite score is a reason, not a bug in the user's code: no traceback
        error = str(e) if isinstance(e, ScoreNotFinite) else traceback.format_exc()
        if self.segments.fail(member.id, error) is FailOutcome.LOST:
            # the lease was already given back (a function that raised after its last
            # report): nothing in the store to mark, so say it here
            print(f"populace: member {member.id} raised after its segment was "
                  f"reported:\n{error}", file=sys.stderr)


class TrainableWorker(Worker):
    """A worker whose segments a `Trainable` class trains: build, load, step, evaluate, save."""

    def __init__(self, store: Store, trainable: type[Trainable], space: Space):
        super().__init__(store, space)
        self.trainable = trainable
        self.live: Trainable | None = None  # the object whose state `held` names

    def train_segment(self, member: MemberRow, held: Held | None) -> Held | None:
        """Train `member` to its next ready point, evaluate, report, exploit/explore."""
        member, trainable = self.restore(member, held)
        segment = self.segments.begin(member)
        if segment.member.hparams != member.hparams:  # a replay's next entry
            trainable.apply(Hparams(segment.member.hparams))
        step = member.step
        while step < segment.end:
            trainable.step()
            step += 1
            trainable.current_step = step
            stopping.check()
            if self.segments.ready_at(segment, step):
                break
            if step in segment.marks:  # a curve point inside the segment (FIRE's points)
                self.segments.record(segment, step, trainable.evaluate())
        outcome = self.segments.report(segment, step, trainable.evaluate(), trainable.save)
        held = self.segments.held(segment, outcome)
        # the next claim goes on with it, and applies hparams explored in place; exploited
        # (or waiting to), the next claim loads the donor's state
        self.live = trainable if held is not None else None
        return held

    def restore(self, member: MemberRow, held: Held | None) -> tuple[MemberRow, Trainable]:
        """The member's trainable: the live one, when the state `held` names carries the
        member, else built and loaded. The member comes back changed when its checkpoint
        was damaged (`Segments.checkpoint_path`)."""
        live, self.live = self.live, None  # set again once the segment is handed in
        if live is not None and held is not None and held.carries(member):
            if held.hparams != member.hparams:  # explored in place
                live.apply(Hparams(member.hparams))
            return member, live
        live = None  # its memory is free before the member's own is built
        member, path = self.segments.checkpoint_path(member)
        trainable = self.trainable()
        trainable.member_id, trainable.current_step = member.id, member.step
        trainable.build(Hparams(member.hparams), self.segments.seed(member.id))
        if path is not None:
            trainable.load(path)
            if (seed := self.segments.copy_seed(member)) is not None:
                trainable.reseed(seed)  # a copy of its own, not the donor's twin
            # the checkpoint carries the donor's hparams (e.g. an optimizer's lr):
            # the member's own, explored ones must win
            trainable.apply(Hparams(member.hparams))
        return member, trainable


def preflight(trainable: type[Trainable], hparams: dict[str, Any], config: RunConfig) -> None:
    """Build, evaluate and save one member before anything is written, so a bad score
    name or a `save` that writes nothing is found now, not after a whole segment."""
    probe = trainable()
    probe.build(Hparams(hparams), member_seed(config.seed, 0))
    evaluated = probe.evaluate()
    score_of(evaluated, config.score)
    if config.score != "score" and not isinstance(evaluated, Mapping):
        print(f"populace: score={config.score!r} is not used: evaluate returns a number, "
              "which is the score itself", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.ckpt"
        probe.save(path)
        if not path.is_file() or path.stat().st_size == 0:
            beside = sorted(p.name for p in Path(folder).iterdir() if p != path)
            elsewhere = (f"; it wrote {', '.join(beside)} instead (numpy's save adds .npy "
                         "to a path: pass it an open file, open(path, 'wb'))" if beside else "")
            raise ConfigError(f"{trainable.__qualname__}.save(path) wrote nothing at the "
                              "path it was given: it must write the member's whole state "
                              f"there (one file){elsewhere}")
