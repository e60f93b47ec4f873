"""The vectorized executor: one worker that holds every member's lease and trains them all
as one batched model.

It claims each member it can from the store, as any worker does, and puts the member's
slice in the state the member's row names: unchanged when the slice holds that
checkpoint already; a gather from the slice that holds it, when it is another member's
checkpoint still in memory (an exploit's copy, bit for bit); else the file, hash-checked.
Then it trains every member it holds, one vmapped call a step, and at each member's
ready point evaluates, writes one checkpoint file for the members ready together and
hands each one in (`populace.segment`: the same Snapshot, exploit and explore, events,
waits and lineage as any run). A reported member is ready again at once, and the next
claim takes it back with whatever the decision made of it.

Where the training leaves a core free (a GPU's run), the file is written while the
members are evaluated, and the files the store lets go are deleted while the next
segment trains (`beside`); either way each member is reported once its file is in place
and fsynced, as on any executor.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from populace import stopping
from populace.checkpoints import CheckpointRef
from populace.checks import whole
from populace.config import RunConfig
from populace.errors import ConfigError
from populace.segment import ScoreNotFinite, Segment, Segments, member_seed, score_of
from populace.space import Hparams, Space
from populace.store import MemberRow, Store, StoreError
from populace.vectorized import heap, layout
from populace.vectorized.beside import Beside, Pending
from populace.vectorized.population import Population
from populace.vectorized.trainable import VectorizedTrainable
from populace.worker import IDLE_POLL, Heartbeat


def device_of(name: str) -> torch.device:
    """The device the setting `device` names: 'auto' is the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} is not available here: torch {torch.__version__} "
                          "sees no CUDA GPU; use device 'cpu', or 'auto' (the GPU when there "
                          "is one)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} is not available here: this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")
    return device


def threads_for(trainable: type[VectorizedTrainable]) -> int:
    """The torch threads a vectorized run trains with: the trainable's `threads`, else one
    per core this process may run on."""
    if trainable.threads is not None:
        return whole(trainable.__name__, "threads", trainable.threads, 1, 4096)
    return cores()


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def spare_core(device: torch.device) -> bool:
    """Whether checkpoint work beside the run's own finds a core its training leaves free:
    on a GPU the cores wait for it; on the CPU only where torch takes fewer threads than
    there are cores. On a busy core it would only slow torch's threads, which wait for
    each other at every operation."""
    return device.type != "cpu" or torch.get_num_threads() < cores()


def preflight(trainable: type[VectorizedTrainable], hparams: dict[str, Any],
              config: RunConfig) -> None:
    """Build, check, evaluate and save a population of one member before anything is
    written, so a model vmap cannot run or a bad score name is found now."""
    probe, rows = trainable().build(Hparams(hparams), member_seed(config.seed, 0)), np.arange(1)
    score_of(probe.evaluate(rows)[0], config.score)
    with tempfile.TemporaryDirectory() as folder:
        layout.save(Path(folder) / "probe.ckpt", [0], probe.tensors(rows), probe.keys,
                    probe.steps)


class Holds(Enum):
    """What kind of state a member's slice of the population holds."""

    FRESH = "fresh"  # the member's state from its seed, before its first checkpoint
    CHECKPOINT = "checkpoint"  # a checkpoint's state, bit for bit
    TRAINED = "trained"  # trained on past the state it was restored to
    UNKNOWN = "unknown"  # a segment failed in it: whatever it holds is restored again


@dataclass(frozen=True)
class Slice:
    """The state a member's slice of the population holds, and which checkpoint's it is."""

    holds: Holds
    checkpoint: int | None = None  # with Holds.CHECKPOINT: the checkpoint's id

    @staticmethod
    def of(member: MemberRow) -> Slice:
        """The state the member's row names: its checkpoint's, or a fresh one's."""
        if member.checkpoint is None:
            return Slice(Holds.FRESH)
        return Slice(Holds.CHECKPOINT, member.checkpoint.id)


class Leases(Heartbeat):
    """Renews the lease of every member the run holds: the worker's heartbeat, for many
    members at once."""

    def __init__(self, url: str, worker: str, lease: float):
        self._held: set[int] = set()  # before the thread starts, which reads it
        super().__init__(url, worker, lease)

    def hold(self, members: Iterable[int]) -> None:
        with self._lock:
            self._held.update(members)

    def drop(self, member: int) -> None:
        with self._lock:
            self._held.discard(member)

    def _watched(self) -> list[int]:
        with self._lock:
            return sorted(self._held)


class VectorizedWorker:
    """A worker that trains every member it holds at once (see the module's doc)."""

    leases: Leases

    def __init__(self, store: Store, trainable: type[VectorizedTrainable], space: Space):
        self.store = store
        self.id = f"vectorized-{uuid.uuid4().hex[:12]}"
        self.segments = Segments(store, space, self.id, reported_by="metrics")
        self.config = self.segments.config
        torch.set_num_threads(threads_for(trainable))
        members = store.members()
        self.rows = {m.id: i for i, m in enumerate(members)}
        self.seeds = [member_seed(self.config.seed, m.id) for m in members]
        self.population = Population(trainable(), space, self.seeds,
                                     device_of(self.config.device))
        self.population.hparams.set(list(range(len(members))), [m.hparams for m in members])
        self.population.check(members[0].hparams)
        self.slices = [Slice(Holds.FRESH)] * len(members)
        self.held: dict[int, Segment] = {}  # by member id
        # claimed first, as a worker claims again the member it carries on with: the run
        # reports in the order one inline worker would, so it is the same run
        self.prefer: int | None = None
        self.resumed = False  # torch's random state taken from a checkpoint once

    def run(self) -> int:
        """Claim, train and report until the run is done; return the segments trained."""
        self.leases = Leases(self.store.url, self.id, self.config.lease_seconds)
        self.beside = Beside(self.segments.storage, spare_core(self.population.device))
        try:
            with heap.kept():  # each step's tensors in the memory the last one let go
                segments = self._train()
        except StoreError:
            self.beside.abandon()
            raise  # the store failed: stop; the leases expire
        except BaseException:  # interrupted: no member is at fault
            self.beside.abandon()
            for member in list(self.held):
                self.store.release(self.id, member)
            raise
        finally:
            self.leases.close()
        self.beside.close()  # the files the store let go, deleted before the run returns
        return segments

    def _train(self) -> int:
        segments, claim = 0, True
        while True:
            stopping.check()
            if claim:
                self._claim()
                claim = False
            if not self.held:
                if self.segments.finished() or self.segments.stopped():
                    return segments
                time.sleep(IDLE_POLL)  # leases of a killed run, not yet expired
                claim = True
                continue
            rows = np.array(sorted(self._row(s) for s in self.held.values()))
            try:
                self.population.train(rows)
            except Exception:  # one call trains them all: each one's segment failed
                self._fail(list(self.held.values()), traceback.format_exc())
                claim = True
                continue
            stopping.check()
            if self.segments.points > 1 and self._mark():
                claim = True  # a member failed: retried, it is claimed again
            ready = [s for s in self.held.values() if self.segments.ready_at(
                s, int(self.population.steps[self._row(s)]))]
            if ready:
                segments += self._report(ready)
                claim = True

    def _row(self, segment: Segment) -> int:
        """The segment's member's row in the population."""
        return self.rows[segment.member.id]

    # -- claim and restore -------------------------------------------------------------

    def _claim(self) -> None:
        """Claim every member the store hands out, and restore each one's slice; none once
        the run stops early (stop_score, time_budget)."""
        if self.segments.stopped():
            return
        claimed = []
        while (member := self.segments.claim(self.prefer)) is not None:
            if member.id not in self.held:  # else: its own lease, renewed late; it trains on
                claimed.append(member)
        if claimed:
            self.leases.hold(m.id for m in claimed)
            self._restore(claimed)

    def _restore(self, claimed: Sequence[MemberRow]) -> None:
        """Put each claimed member's slice in the state its row names, and its hparams in
        force (the explored ones after an exploit, never the donor's)."""
        in_memory = {s.checkpoint: row for row, s in enumerate(self.slices)
                     if s.holds is Holds.CHECKPOINT}
        copies: dict[int, int] = {}
        files: list[MemberRow] = []
        for member in claimed:
            row, want = self.rows[member.id], Slice.of(member)
            if self.slices[row] != want and want.checkpoint in in_memory:
                copies[row] = in_memory[want.checkpoint]
            elif self.slices[row] != want:
                files.append(member)
        self.population.take(copies)  # every copy reads the slices as they were
        loaded = {m.id: m for m in self._load(files)}
        segments = []
        for member in (loaded.get(m.id, m) for m in claimed):
            row = self.rows[member.id]
            seed = self.segments.copy_seed(member)
            if seed is not None and (row in copies or member.id in loaded):
                self.population.keys[row] = seed  # a copy's own data order
            self.population.steps[row] = member.step
            self.slices[row] = Slice(Holds.TRAINED)
            segments.append(self.segments.begin(member))  # a replay's entry in force
        self.held.update((s.member.id, s) for s in segments)
        self.population.hparams.set([self._row(s) for s in segments],
                                    [s.member.hparams for s in segments])

    def _load(self, members: Sequence[MemberRow]) -> list[MemberRow]:
        """Slices from checkpoint files, each file read once; a member whose file is
        damaged goes back to its previous checkpoint (`checkpoint_path`), or to its seed."""
        by_file: dict[Path, list[MemberRow]] = defaultdict(list)
        fresh: list[MemberRow] = []
        done = []
        if members:
            self.beside.drain()  # the storage does one thing at a time
        for member in members:
            member, path = self.segments.checkpoint_path(member)
            (fresh if path is None else by_file[path]).append(member)
            done.append(member)
        for path, group in by_file.items():
            saved = layout.read(path)
            rows = [self.rows[m.id] for m in group]
            at = [saved.row(m.checkpoint.member if m.checkpoint else None) for m in group]
            self.population.put(rows, {k: v[at] for k, v in saved.state.items()})
            self.population.keys[rows] = saved.keys[at]
            if not self.resumed:  # dropout masks go on from where the run left them
                saved.restore_rng()
                self.resumed = True
        self.population.fresh([self.rows[m.id] for m in fresh],
                              [self.seeds[self.rows[m.id]] for m in fresh])
        return done

    # -- report ------------------------------------------------------------------------

    def _mark(self) -> bool:
        """Record a curve point for each member at one of its segment's marks (FIRE-PBT's
        `points`), one evaluate call for them all; whether a member failed there."""
        marked = [s for s in self.held.values()
                  if int(self.population.steps[self._row(s)]) in s.marks]
        if not marked:
            return False
        try:
            evaluated = self.population.evaluate(np.array([self._row(s) for s in marked]))
        except Exception:
            self._fail(marked, traceback.format_exc())
            return True
        failed = False
        for segment, metrics in zip(marked, evaluated, strict=True):
            try:
                self.segments.record(segment, int(self.population.steps[self._row(segment)]),
                                     metrics)
            except ScoreNotFinite as e:
                self._fail([segment], str(e))
                failed = True
        return failed

    def _report(self, ready: list[Segment]) -> int:
        """Evaluate the members at their ready points, checkpoint them in one file and
        report each; a member whose score is not finite fails alone."""
        at = np.array([self._row(s) for s in ready])
        rng = layout.rng_state()
        # with a core to spare, the file of them all, written while they are evaluated:
        # the file written after, byte for byte, unless a member's score is not finite or
        # the evaluation drew a random number (then it is written again after, as it was,
        # and from then on only after: the trainable's metrics draw)
        pending = (self._write(ready, at, rng) if self.beside.background
                   and not self.population.functional.metrics_draw else None)
        try:
            evaluated = self.population.evaluate(at)
        except Exception:
            if pending is not None:
                pending.discard()
            self._fail(ready, traceback.format_exc())
            return len(ready)
        scores: dict[int, tuple[int, float, dict[str, float]] | str] = {}  # by member id
        for segment, metrics in zip(ready, evaluated, strict=True):
            step = int(self.population.steps[self._row(segment)])
            try:
                scores[segment.member.id] = (step, *self.segments.score(segment, step, metrics))
            except ScoreNotFinite as e:
                scores[segment.member.id] = str(e)  # it fails: its state is not stored
        scored = [s for s in ready if not isinstance(scores[s.member.id], str)]
        ref = self._written(scored, len(scored) == len(ready), pending, rng)
        collect: set[str] = set()
        batch: list[tuple[Segment, int, float, dict[str, float]]] = []
        for segment in ready:  # in the order one worker would report them
            outcome = scores[segment.member.id]
            if isinstance(outcome, str):
                collect.update(self._hand_in(batch, ref))  # those before it, first
                batch = []
                self._fail([segment], outcome)
            else:
                batch.append((segment, *outcome))
        collect.update(self._hand_in(batch, ref))
        if ref is not None and any(self.slices[self._row(s)].holds is Holds.CHECKPOINT
                                   for s in scored):
            collect.discard(ref.key)  # a refused report's answer, while other rows name it
        self.beside.delete(collect)
        return len(ready)

    def _written(self, scored: list[Segment], every: bool, pending: Pending | None,
                 before: dict[str, Any]) -> CheckpointRef | None:
        """The scored members' checkpoint file, in place and fsynced (None: none scored):
        the one `pending` writes when it holds just them (`every` member scored) and the
        evaluation drew no random number since `before`, else one written now."""
        after = layout.rng_state()
        functional = self.population.functional
        if not layout.same_rng(before, after):  # as the check saw, or a draw it did not meet
            functional.metrics_draw = True  # from now on whole calls, files written after
        if pending is not None and every and not functional.metrics_draw:
            return pending.result()
        if pending is not None:
            pending.discard()
        if not scored:
            return None
        return self._write(scored, np.array([self._row(s) for s in scored]), after).result()

    def _write(self, segments: Sequence[Segment], at: np.ndarray,
               rng: dict[str, Any]) -> Pending:
        """Start writing the members' checkpoint file, their state as it is now; the caller
        changes none of it until the write is done (`Pending.result` or `discard`)."""
        # the file's rows in the population's order (a member's row is looked up by its
        # id): a whole population's tensors are then written as they are, not copied
        order = np.argsort(at, kind="stable")
        at, members = at[order], [segments[i].member.id for i in order]
        tensors = self.population.tensors(at)  # here: a GPU's copied before training goes on
        keys, steps = self.population.keys[at], self.population.steps[at]
        return self.beside.write(lambda path: layout.save(path, members, tensors, keys, steps,
                                                          rng))

    def _hand_in(self, batch: list[tuple[Segment, int, float, dict[str, float]]],
                 ref: CheckpointRef | None) -> list[str]:
        """Store the members' results with their slices of the file (`ref`), and the
        decisions they trigger, in one transaction; return the checkpoint files the store
        collected."""
        collect: list[str] = []
        if not batch or ref is None:  # (no ref: nobody scored, so no batch either)
            return collect
        for (segment, *_), outcome in zip(batch, self.segments.hand_in_all(batch, ref),
                                          strict=True):
            # the slice holds the checkpoint just written, unless the lease had been lost
            written = outcome.checkpoint if outcome.accepted else None
            self.slices[self._row(segment)] = (Slice(Holds.UNKNOWN) if written is None
                                               else Slice(Holds.CHECKPOINT, written))
            # as a worker goes on with a member whose state it holds (`Segments.held`)
            held = self.segments.held(segment, outcome)
            self.prefer = held.member if held is not None else None
            self._let_go(segment)
            collect.extend(outcome.collect)
        return collect

    def _let_go(self, segment: Segment) -> None:
        """The member is reported (or failed): its lease is the store's again."""
        del self.held[segment.member.id]
        self.leases.drop(segment.member.id)

    def _fail(self, segments: Sequence[Segment], error: str) -> None:
        """Each segment failed: the store retries the member from its checkpoint, fails it
        or replaces it, as for any worker's."""
        self.prefer = None
        for segment in segments:
            self.segments.fail(segment.member.id, error)
            self.slices[self._row(segment)] = Slice(Holds.UNKNOWN)
            self._let_go(segment)
