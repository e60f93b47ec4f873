"""A segment's beginning and hand-in: the one protocol every way of training keeps.

The paper's loop, and where each part of it is:

    while not done:
        θ ← step(θ | h)                   the way of training: Trainable.step (populace.worker),
                                          the user's loop (populace.function), one vmapped
                                          call for every member (populace.vectorized.run)
        p ← eval(θ)                       evaluate, member.report or metrics: Segments.score
        if ready(p, t, P):                Segments.ready_at: the segment ends
            h', θ' ← exploit(h, θ, p, P)   make_decide, inside Store.report (Segments.hand_in)
            if θ' ≠ θ:
                h, θ ← explore(h', θ', P)
        update P with (θ, h, p, t)         Segments.hand_in: one Store.report transaction

The three ways of training step and evaluate their own way; what a segment begins
from (the member's checkpoint, a replayed schedule's hparams, the seed a copy restarts
from), what it hands in (a finite score, a `Report`, the decision it triggers) and
which state a worker goes on with afterwards (`Held`) is written here once.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from populace.checkpoints import CheckpointDamaged, CheckpointRef
from populace.config import RunConfig
from populace.errors import ConfigError
from populace.mode import Mode
from populace.owner import run_storage
from populace.snapshot import Snapshot
from populace.space import Space
from populace.store import TRAINING, Decision, FailOutcome, MemberRow, Outcome, Report, Store
from populace.strategies import Fire, Modelled, segments_of
from populace.strategies.firedecide import fire_decide


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
    if isinstance(value, (str, bytes)):  # float("0.974") would take text for a number
        raise ConfigError(f"{source} must return a number or a dict of numbers holding the "
                          f"score; got {name}={value!r} (text): return float({value!r}), or "
                          "the number it was made from")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must return a number or a dict of numbers holding the "
                          f"score; got {name}={value!r}") from None


def make_decide(config: RunConfig, space: Space, burn_in: bool = True
                ) -> Callable[[Snapshot, int], Decision | None]:
    """exploit then explore for one member, as one pure function of the population snapshot.

    With `burn_in` False the burn-in is ignored: a failed member's replacement.
    """
    exploit, explore = config.make_exploit(), config.make_explore()
    name = config.exploit["name"]
    # PB2: it reads the population's segments too
    modelled = cast(Modelled, explore) if segments_of(explore) is not None else None
    if isinstance(exploit, Fire):  # FIRE-PBT plans more than a donor: adopt, evaluations
        return _burnt_in(config, fire_decide(exploit, explore, space, config.seed,
                                             config.explore["name"], replace=not burn_in),
                         burn_in)

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


def _burnt_in(config: RunConfig, decide: Callable[[Snapshot, int], Decision | None],
              burn_in: bool) -> Callable[[Snapshot, int], Decision | None]:
    """`decide` held back for a member before `config.burn_in`; a FIRE evaluator (group
    0) is not: its step is its last evaluation's, and an idle one would never start."""
    if not burn_in or config.burn_in == 0:
        return decide

    def held(snapshot: Snapshot, member: int) -> Decision | None:
        row = snapshot.index(member)
        evaluator = snapshot.groups is not None and snapshot.groups[row] == 0
        if not evaluator and int(snapshot.steps[row]) < config.burn_in:
            return None
        return decide(snapshot, member)

    return held


@dataclass(frozen=True)
class Segment:
    """A member's training from `member.step` (its row as the segment began: the hparams
    in force) to its next ready point."""

    member: MemberRow
    end: int  # the last step it may reach: the run's end, or a replay's next entry
    started: float  # time.monotonic() at its beginning, for ready_seconds and the Report
    # the steps inside it whose score goes into the member's curve (FIRE-PBT's `points`),
    # and the (step, score) points recorded there so far, handed in with its end's
    marks: frozenset[int] = frozenset()
    curve: list[tuple[int, float]] = field(default_factory=list, compare=False)


@dataclass(frozen=True)
class Held:
    """The state a worker still holds of a member it handed in, and the hparams in force
    on it: its next segment goes on from it instead of loading the checkpoint again."""

    member: int
    checkpoint: int | None  # the checkpoint the state is a copy of
    hparams: dict[str, Any]

    def carries(self, row: MemberRow) -> bool:
        """Whether `row` goes on from this state: the same member, at the checkpoint the
        state is (else it exploited meanwhile, or its checkpoint was moved back)."""
        checkpoint = row.checkpoint.id if row.checkpoint is not None else None
        return row.id == self.member and checkpoint == self.checkpoint


class Segments:
    """One worker's side of the protocol: how its segments begin, end and are handed in to
    the run's store, with the run's config, checkpoint storage and decisions."""

    def __init__(self, store: Store, space: Space, worker: str, reported_by: str):
        self.store, self.worker = store, worker
        self.reported_by = reported_by  # what hands in the metrics, for messages
        self.config = RunConfig.from_dict(store.config().run)
        # a server that restarts is waited for, as long as the member's lease lasts
        store.patience = self.config.lease_seconds
        self.storage = run_storage(store)
        self.ready = self.config.make_ready()
        self.points = self.config.points()  # curve points a segment records (FIRE-PBT)
        self.decide = make_decide(self.config, space)
        self.replace = (make_decide(self.config, space, burn_in=False)
                        if self.config.replace_failed else None)
        self.began = 0.0  # when the newest segment began (time.monotonic), for its timeout

    # -- beginning ---------------------------------------------------------------------

    def claim(self, prefer: int | None = None) -> MemberRow | None:
        """Lease the member furthest behind (ties: `prefer` first), or None."""
        return self.store.claim(self.worker, self.config.lease_seconds, prefer)

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
                recovered = self.store.recover(self.worker, member.id, member.checkpoint.key,
                                               str(damaged))
                if recovered is None:
                    raise LeaseLost(
                        f"member {member.id} was claimed by another worker") from damaged
                member = recovered
        return member, None

    def seed(self, member: int) -> int:
        """The member's own seed, from the run's (a fresh member is built from it)."""
        return member_seed(self.config.seed, member)

    def copy_seed(self, member: MemberRow) -> int | None:
        """The seed a copy restarts its random stream from (None: not a copy)."""
        return copy_seed(self.config.seed, member)

    def scheduled(self, member: MemberRow) -> MemberRow:
        """The row with a replayed schedule's hparams for its step (unchanged otherwise)."""
        hparams = self.config.scheduled(member.step)
        return (member if hparams is None or hparams == member.hparams
                else replace(member, hparams=hparams))

    def begin(self, member: MemberRow) -> Segment:
        """A segment of the member, restored to its row, from now: under a replayed
        schedule's hparams, up to the next ready point at most."""
        member = self.scheduled(member)
        self.began = time.monotonic()
        end = self.config.segment_end(member.step)
        return Segment(member, end, self.began, self.marks(member.step, end))

    def marks(self, start: int, end: int) -> frozenset[int]:
        """The steps of a segment from `start` whose scores its curve records before its
        end: `points` - 1 of them, evenly spaced over its steps (fewer when it is shorter
        than `points` steps); none with one point, or a ready rule of unknown length
        (the config refuses `points` above 1 with ready_seconds)."""
        steps = self.ready.segment_steps() if self.points > 1 else None
        if steps is None:
            return frozenset()
        length = min(steps, end - start)
        inside = {start + math.ceil(k * length / self.points) for k in range(1, self.points)}
        return frozenset(inside - {start + length})

    def record(self, segment: Segment, step: int,
               evaluated: float | Mapping[str, float]) -> None:
        """A curve point at `step`, one of the segment's `marks`: its score, refused as the
        segment's end is when not finite (the segment fails)."""
        score, _ = self.score(segment, step, evaluated)
        segment.curve.append((step, score))

    def ready_at(self, segment: Segment, step: int) -> bool:
        """Whether the segment ends at `step`: its last step, or the run's ready rule."""
        return step >= segment.end or self.ready(step - segment.member.step,
                                                 time.monotonic() - segment.started)

    # -- hand-in -----------------------------------------------------------------------

    def score(self, segment: Segment, step: int, evaluated: float | Mapping[str, float]
              ) -> tuple[float, dict[str, float]]:
        """The score and metrics to hand in; `ScoreNotFinite` for a diverged segment,
        before anything is written, so a diverged state is never a donor."""
        score, metrics = score_of(evaluated, self.config.score, self.reported_by)
        check_finite(score, self.config.score, segment.member.id, step)
        return score, metrics

    def hand_in(self, segment: Segment, step: int, score: float, metrics: dict[str, float],
                ref: CheckpointRef) -> Outcome:
        """Store the result with its checkpoint, and the decision it triggers, in one
        transaction; the checkpoint files it collects are the caller's to delete."""
        return self.store.report(self._report(segment, step, score, metrics, ref),
                                 self.decide, self.config.keep_checkpoints)

    def hand_in_all(self, handed: Sequence[tuple[Segment, int, float, dict[str, float]]],
                    ref: CheckpointRef) -> list[Outcome]:
        """`hand_in` for members ready together, (segment, step, score, metrics) each, their
        states in one checkpoint file: one transaction, one commit, for them all."""
        return self.store.report_all([self._report(*h, ref) for h in handed], self.decide,
                                     self.config.keep_checkpoints)

    def _report(self, segment: Segment, step: int, score: float, metrics: dict[str, float],
                ref: CheckpointRef) -> Report:
        member = segment.member
        return Report(
            member=member.id, worker=self.worker, start=member.step, step=step, score=score,
            metrics=metrics, hparams=member.hparams, key=ref.key, sha256=ref.sha256,
            bytes=ref.bytes, final=step >= self.config.steps,
            seconds=time.monotonic() - segment.started, points=tuple(segment.curve),
        )

    def report(self, segment: Segment, step: int, evaluated: float | Mapping[str, float],
               save: Callable[[Path], None]) -> Outcome:
        """Score, checkpoint and hand in one member's segment; delete what the store
        collected."""
        score, metrics = self.score(segment, step, evaluated)
        outcome = self.hand_in(segment, step, score, metrics, self.storage.write(save))
        self.collect(outcome.collect)
        return outcome

    def collect(self, keys: list[str] | set[str]) -> None:
        """Delete checkpoint files no member or lineage needs any more."""
        for key in keys:
            self.storage.delete(key)

    @staticmethod
    def held(segment: Segment, outcome: Outcome) -> Held | None:
        """The state the member goes on from, when it is the one just handed in (no
        decision, or hparams explored in place); None when it exploits (or waits to)."""
        member = segment.member
        if not outcome.own_state(member.id):
            return None
        return Held(member.id, outcome.checkpoint, member.hparams)

    def fail(self, member: int, error: str, store: Store | None = None,
             timed_out: bool = False) -> FailOutcome:
        """The member's segment failed (or `timed_out`): the store (this thread's `store`,
        when not the worker's) retries it from its checkpoint, fails it or replaces it."""
        return (store or self.store).fail(self.worker, member, error, self.config.retries,
                                          self.replace, self.decide, timed_out)

    # -- whether another segment begins ------------------------------------------------

    def finished(self) -> bool:
        """Whether no member is left to train (each one done or failed)."""
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
            if best is not None and Mode(config.mode).reached(best, config.stop_score):
                reason = f"a member scored {best:.6g}, reaching stop_score={config.stop_score:g}"
        if reason is not None:
            self.store.stop(reason)
        return reason is not None
