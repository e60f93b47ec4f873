"""The paper's loop, one member segment at a time.

    while not done:
        θ ← step(θ | h)                  train_segment: step until ready
        p ← eval(θ)                      train_segment: evaluate
        if ready(p, t, P):               the segment ends at a ready point
            h', θ' ← exploit(h, θ, p, P)  decide, inside the store's report transaction
            if θ' ≠ θ:
                h, θ ← explore(h', θ', P)
        update P with (θ, h, p, t)        Store.report

A worker pulls: it claims the member furthest behind, trains one segment,
reports, and claims again, until no member is left to train.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from populace import stopping
from populace.checkpoints import CheckpointDamaged, CheckpointStorage, open_storage
from populace.config import RunConfig
from populace.errors import ConfigError
from populace.snapshot import Snapshot
from populace.space import Hparams, Space
from populace.store import (
    TRAINING,
    Decision,
    FailOutcome,
    MemberRow,
    Outcome,
    Report,
    Store,
    StoreError,
    open_store,
)
from populace.strategies import Modelled, segments_of
from populace.trainable import Trainable

IDLE_POLL = 0.05  # seconds between claims while other workers hold the last members


class LeaseLost(RuntimeError):
    """The member was claimed by another worker while this one handled it."""


class ScoreNotFinite(ValueError):
    """A segment ended with a NaN or infinite score: it fails like training that raises.

    Its result and checkpoint are not stored; the member is retried from its
    last checkpoint up to `retries` times, then failed (or replaced).
    """


def check_finite(score: float, name: str, member: int, step: int) -> None:
    """Refuse a score that is NaN or infinite, naming the step it was reached at."""
    if not math.isfinite(score):
        raise ScoreNotFinite(f"score is {score} at step {step} (metric {name!r} of member "
                             f"{member}): not a finite number")


def member_seed(seed: int, member: int) -> int:
    """A member's own seed, independent of every other member's."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def copy_seed(seed: int, member: MemberRow) -> int | None:
    """The seed a member's random stream restarts from when its checkpoint is another
    member's (a copy), one for each copy it makes; None for its own checkpoint, whose
    random state it goes on with (a resumed member repeats its own draws)."""
    checkpoint = member.checkpoint
    if checkpoint is None or checkpoint.member == member.id:
        return None
    words = [seed, member.id, checkpoint.step, member.generation, 1]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def score_of(metrics: float | Mapping[str, float], name: str, source: str = "evaluate"
             ) -> tuple[float, dict[str, float]]:
    """The score and the metrics dict from what `evaluate` (or `member.report`) gave."""
    if metrics is None:
        raise ConfigError(f"{source} returned None: it must return the score (a number) or "
                          f"a dict of metrics holding it ({name!r})")
    if isinstance(metrics, Mapping):
        if name not in metrics:
            hint = (f"; set score={sorted(metrics)[0]!r} (--score) to rank by it"
                    if len(metrics) == 1 else "")
            raise ConfigError(
                f"score {name!r} is not among the metrics {source} returned: "
                f"{sorted(metrics)}{hint}"
            )
        values = {k: _number(source, k, v) for k, v in metrics.items()}
        return values[name], values
    return _number(source, name, metrics), {name: _number(source, name, metrics)}


def _number(source: str, name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must return a number or a dict of numbers holding the "
                          f"score; got {name}={value!r}") from None


def run_storage(store: Store) -> CheckpointStorage:
    """The run's checkpoint storage, marked as the run's when the run has trained nothing
    yet (a new run, or one stopped before its first checkpoint), checked when it has: a
    folder that is not mounted here is not a run whose checkpoints all broke."""
    storage = open_storage(store.config().checkpoints)
    run = store.meta("run")
    if not store.checkpoint_keys() and not store.results():
        storage.mark(run)
    storage.check(run)
    return storage


def make_decide(config: RunConfig, space: Space, burn_in: bool = True
                ) -> Callable[[Snapshot, int], Decision | None]:
    """exploit then explore for one member, as one pure function of the population snapshot.

    With `burn_in` False the burn-in is ignored: a failed member's replacement.
    """
    exploit, explore = config.make_exploit(), config.make_explore()
    name = config.exploit["name"]
    # PB2: it reads the population's segments too
    modelled = cast(Modelled, explore) if segments_of(explore) is not None else None

    def decide(snapshot: Snapshot, member: int) -> Decision | None:
        step = int(snapshot.steps[snapshot.index(member)])
        if burn_in and step < config.burn_in:  # still a donor, not yet a copier
            return None
        rng = np.random.default_rng([config.seed, member, step])
        # members at other steps are compared at this member's step (Snapshot.aligned)
        donor = exploit(snapshot.aligned(member), member, rng)
        if donor is None:
            return None
        donor = int(donor)  # a user's strategy may hand back a numpy integer
        if donor not in snapshot.ids:
            raise ValueError(f"exploit {name!r} chose member {donor} as the donor of member "
                             f"{member}: a donor must be a member of the population still "
                             f"training, one of {sorted(snapshot.ids.tolist())}")
        copied = snapshot.hparams[snapshot.index(donor)]
        hparams = (explore(copied, space, rng) if modelled is None else
                   modelled(copied, space, rng, snapshot=snapshot, member=member, donor=donor))
        # a user's explore must stay inside the declared space, in plain Python values
        return Decision(donor, space.normalize(hparams),
                        strategy=f"{name}+{config.explore['name']}")

    return decide


@dataclass
class Live:
    """The trainable a worker holds, and which checkpoint it is the state of."""

    member: int
    trainable: Trainable
    checkpoint: int | None
    hparams: dict[str, Any]


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


class Worker:
    """Trains members of one run until none is left, one segment per claim."""

    reported_by = "evaluate"  # what hands in the metrics, for messages

    def __init__(self, store: Store, trainable: Any, space: Space):
        self.store = store
        self.trainable = trainable  # a Trainable class here, a function in FunctionWorker
        self.space = space
        record = store.config()
        self.config = RunConfig.from_dict(record.run)
        # a server that restarts is waited for, as long as the member's lease lasts
        store.patience = self.config.lease_seconds
        self.storage = run_storage(store)
        self.ready = self.config.make_ready()
        self.decide = make_decide(self.config, space)
        self.replace = (make_decide(self.config, space, burn_in=False)
                        if self.config.replace_failed else None)
        self.id = uuid.uuid4().hex[:12]
        self.live: Live | None = None

    def run(self) -> int:
        """Claim, train and report until the run is done; return the segments trained."""
        heartbeat = Heartbeat(self.store.url, self.id, self.config.lease_seconds)
        try:
            return self._loop(heartbeat)
        finally:
            heartbeat.close()

    def _loop(self, heartbeat: Heartbeat) -> int:
        segments = 0
        while True:
            stopping.check()
            if self.stopped():
                return segments
            prefer = self.live.member if self.live else None
            member = self.store.claim(self.id, self.config.lease_seconds, prefer)
            if member is None:
                if self._finished():
                    return segments
                time.sleep(IDLE_POLL)
                continue
            heartbeat.watch(member.id)
            try:
                self.train_segment(member)
            except LeaseLost:
                self.live = None  # another worker trains it now: nothing of ours to record
            except StoreError:
                raise  # the store failed, not the member: stop; its lease expires
            except Exception as e:
                self.live = None
                # a non-finite score is a reason, not a bug in the user's code: no traceback
                error = str(e) if isinstance(e, ScoreNotFinite) else traceback.format_exc()
                if self.store.fail(self.id, member.id, error, self.config.retries,
                                   self.replace, self.decide) is FailOutcome.LOST:
                    # the lease was already given back (a function that raised after its
                    # last report): nothing in the store to mark, so say it here
                    print(f"populace: member {member.id} raised after its segment was "
                          f"reported:\n{error}", file=sys.stderr)
            except BaseException:  # interrupted: the member is not at fault
                self.store.release(self.id, member.id)
                raise
            finally:
                heartbeat.watch(None)
            segments += 1

    def _finished(self) -> bool:
        status = self.store.progress()["status"]
        return not any(status.get(s) for s in TRAINING)

    def stopped(self) -> bool:
        """Whether the run stops early: a member's score reached `stop_score`, or the
        run's `time_budget` is spent (the first worker to see it marks the run), or
        another worker marked it so."""
        config = self.config
        if config.stop_score is None and config.time_budget is None:
            return False  # the usual run: no store read per claim
        if self.store.meta("stopped") is not None:
            return True
        reason = None
        if config.time_budget is not None:
            spent = self.store.trained_seconds()
            if spent >= config.time_budget:
                reason = f"time_budget of {config.time_budget:g} s spent ({spent:.0f} s)"
        if reason is None and config.stop_score is not None:
            best = self.store.progress()["best"]
            if best is not None and (best >= config.stop_score if config.mode == "max"
                                     else best <= config.stop_score):
                reason = f"a member scored {best:.6g}, reaching stop_score={config.stop_score:g}"
        if reason is not None:
            self.store.stop(reason)
        return reason is not None

    def train_segment(self, member: MemberRow) -> None:
        """Train `member` to its next ready point, evaluate, report, exploit/explore."""
        member, trainable = self.restore(member)
        scheduled = self.config.scheduled(member.step)
        if scheduled is not None and scheduled != member.hparams:  # a replay's next entry
            trainable.apply(Hparams(scheduled))
            member = replace(member, hparams=scheduled)
        started = time.monotonic()
        step, end = member.step, self.config.segment_end(member.step)
        while step < end:
            trainable.step()
            step += 1
            trainable.current_step = step
            stopping.check()
            if self.ready(step - member.step, time.monotonic() - started):
                break
        outcome = self.report(member, step, trainable.evaluate(), trainable.save, started)
        if outcome.own_state(member.id):
            # the next claim goes on with it, and applies hparams explored in place
            self.live = Live(member.id, trainable, outcome.checkpoint, member.hparams)
        else:
            self.live = None  # exploited (or waiting to): the next claim loads the donor's state

    def restore(self, member: MemberRow) -> tuple[MemberRow, Trainable]:
        """The member's trainable: the live one when unchanged, else built and loaded.

        The member comes back changed when its checkpoint was damaged (see
        `checkpoint_path`).
        """
        live = self.live
        checkpoint = member.checkpoint.id if member.checkpoint else None
        if live is not None and live.member == member.id and live.checkpoint == checkpoint:
            if live.hparams != member.hparams:  # explored in place
                live.trainable.apply(Hparams(member.hparams))
                self.live = replace(live, hparams=member.hparams)
            return member, live.trainable
        self.live = None
        member, path = self.checkpoint_path(member)
        trainable = self.trainable()
        trainable.member_id, trainable.current_step = member.id, member.step
        trainable.build(Hparams(member.hparams), member_seed(self.config.seed, member.id))
        if path is not None:
            trainable.load(path)
            if (seed := copy_seed(self.config.seed, member)) is not None:
                trainable.reseed(seed)  # a copy of its own, not the donor's twin
            # the checkpoint carries the donor's hparams (e.g. an optimizer's lr):
            # the member's own, explored ones must win
            trainable.apply(Hparams(member.hparams))
        return member, trainable

    def checkpoint_path(self, member: MemberRow) -> tuple[MemberRow, Path | None]:
        """The member's checkpoint as a local file (fetched from remote storage), its hash
        checked; None for a fresh member.

        A damaged or missing file puts the member back on its previous good
        checkpoint (or a fresh start), recorded in the store, and the run goes on.
        """
        while member.checkpoint is not None:
            try:
                return member, self.storage.fetch(member.checkpoint.key,
                                                  member.checkpoint.sha256)
            except CheckpointDamaged as damaged:
                print(f"populace: member {member.id}: {damaged}; going back to its previous "
                      "checkpoint", file=sys.stderr)
                recovered = self.store.recover(self.id, member.id, member.checkpoint.key,
                                               str(damaged))
                if recovered is None:
                    raise LeaseLost(
                        f"member {member.id} was claimed by another worker") from damaged
                member = recovered
        return member, None

    def report(self, member: MemberRow, step: int, evaluated: float | Mapping[str, float],
               save: Callable[[Path], None], started: float) -> Outcome:
        """Checkpoint, then store the result and the decision it triggers in one transaction.

        A score that is not finite raises `ScoreNotFinite` before anything is
        written: the segment fails, so a diverged state is never a donor.
        """
        score, metrics = score_of(evaluated, self.config.score, self.reported_by)
        check_finite(score, self.config.score, member.id, step)
        ref = self.storage.write(save)
        report = Report(
            member=member.id, worker=self.id, start=member.step, step=step,
            score=score, metrics=metrics,
            hparams=member.hparams, key=ref.key, sha256=ref.sha256, bytes=ref.bytes,
            final=step >= self.config.steps, seconds=time.monotonic() - started,
        )
        outcome = self.store.report(report, self.decide, self.config.keep_checkpoints)
        for key in outcome.collect:
            self.storage.delete(key)
        return outcome
