"""The function API: a training loop of the user's own, handed a `Member`.

    def train(member: populace.Member) -> None:
        torch.manual_seed(member.seed)
        model, optimizer = make_model(), torch.optim.SGD(...)
        member.register({"model": model, "optimizer": optimizer}, ignore=("batch_size",))
        while member.training:
            train_epoch(model, optimizer, member.hparams["batch_size"])
            member.report(accuracy=validate(model))

`register` restores the member's checkpoint into the objects and puts its
hparams in force, and at every ready point `report` checkpoints them,
reports, and on exploit loads the donor's state and applies the explored
hparams before the loop goes on: the loop cannot forget either. Objects are
torch objects (anything with state_dict / load_state_dict), saved and
applied by `populace.integrations.torch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from populace import stopping
from populace.space import Hparams, Space
from populace.store import MemberRow, Store
from populace.worker import ScoreNotFinite, Worker, copy_seed, member_seed

TrainFunction = Callable[["Member"], None]


class Member:
    """One member as a training function sees it: hparams, step, state and reports."""

    def __init__(self, worker: FunctionWorker, row: MemberRow):
        self._worker = worker
        self._row: MemberRow | None = self._scheduled(row)
        self._step = row.step
        self._segment_start = row.step
        self._started = time.monotonic()
        self._state: dict[str, Any] | None = None
        self._modules: Mapping[str, tuple] = {}
        self._ignore: tuple[str, ...] = ()
        self._allow_pickle = False
        self._failure: ScoreNotFinite | None = None  # a diverged segment, however the loop ends

    @property
    def id(self) -> int:
        return self._current().id

    @property
    def seed(self) -> int:
        """This member's seed, from the run's seed and its id: seed the initial weights
        and the data order with it, and a run repeats (as `Trainable.build` gets it)."""
        return member_seed(self._worker.config.seed, self._current().id)

    @property
    def hparams(self) -> dict[str, Any]:
        """The hparams in force now; read them each time, an exploit changes them."""
        return Hparams(self._current().hparams)

    @property
    def step(self) -> int:
        return self._step

    @property
    def training(self) -> bool:
        """Whether to go on: False once this member is done or the worker turns to another."""
        return self._row is not None and self._step < self._worker.config.steps

    def register(self, state: Mapping[str, Any], *,
                 modules: Mapping[str, tuple] | None = None, ignore: Iterable[str] = (),
                 allow_pickle: bool = False) -> None:
        """Hand over the objects that hold the training state; restores them and applies hparams.

        `modules` and `ignore` are those of `populace.integrations.torch.apply_hparams`:
        an hparam goes to an optimizer's param groups, to module attributes, or is
        listed in `ignore` and read from `member.hparams` by the loop itself.
        `allow_pickle` lets checkpoints holding pickled Python objects load (see
        `populace.integrations.torch.load_state`); only for checkpoints you trust.
        """
        self._state, self._modules, self._ignore = dict(state), dict(modules or {}), tuple(ignore)
        self._allow_pickle = allow_pickle
        self._begin(self._restore(self._current()))

    def report(self, metrics: float | Mapping[str, float] | None = None,
               **named: float) -> None:
        """One step done, with its metrics; at a ready point this checkpoints and reports."""
        row = self._current()
        self._registered()
        evaluated = dict(metrics) if isinstance(metrics, Mapping) else (
            metrics if metrics is not None else {})
        if isinstance(evaluated, dict):
            evaluated.update(named)
        self._step += 1
        stopping.check()
        worker = self._worker
        if not (self._step >= worker.config.segment_end(self._segment_start) or worker.ready(
                self._step - self._segment_start, time.monotonic() - self._started)):
            return
        try:
            outcome = worker.report(row, self._step, evaluated, self._save, self._started)
        except ScoreNotFinite as e:
            # the segment fails whatever the loop does next: nothing of it is stored
            self._row, self._failure = None, e
            raise
        if self._step >= worker.config.steps or not outcome.accepted or worker.stopped():
            self._row = None
            return
        claimed = worker.store.claim(worker.id, worker.config.lease_seconds, prefer=row.id)
        self._next_segment(claimed, outcome.checkpoint)

    def _next_segment(self, claimed: MemberRow | None, checkpoint: int | None) -> None:
        """Go on with the same member (restored if it exploited), or hand the worker back."""
        current = self._current()
        if claimed is None or claimed.id != current.id:
            # another member is further behind: the loop must end first, and whatever it does
            # after is not heartbeaten, so the worker claims that member again afterwards
            if claimed is not None:
                self._worker.store.release(self._worker.id, claimed.id)
            self._row = None
            return
        claimed = self._scheduled(claimed)
        if claimed.checkpoint is None or claimed.checkpoint.id != checkpoint:
            claimed = self._restore(claimed)  # exploited: the donor's state, then new hparams
        elif claimed.hparams != current.hparams:
            self._apply(claimed.hparams)  # a replayed schedule's next entry
        self._begin(claimed)

    def _begin(self, row: MemberRow) -> None:
        """Start a segment of `row` from its step."""
        self._row, self._step = row, row.step
        self._segment_start, self._started = row.step, time.monotonic()

    def _registered(self) -> dict[str, Any]:
        """The training state handed to `register` (an error before it is)."""
        if self._state is None:
            raise RuntimeError("call member.register({...}) with the training state before "
                               "member.report(...), so populace can checkpoint and restore it")
        return self._state

    def _current(self) -> MemberRow:
        if self._row is None:
            raise RuntimeError("this member has stopped training: loop on `while member.training`")
        return self._row

    def _scheduled(self, row: MemberRow) -> MemberRow:
        """The row with a replayed schedule's hparams for its step (unchanged otherwise)."""
        hparams = self._worker.config.scheduled(row.step)
        return row if hparams is None or hparams == row.hparams else replace(row, hparams=hparams)

    def _restore(self, row: MemberRow) -> MemberRow:
        """Load the row's checkpoint into the objects and apply its hparams; the row as
        it stands after (a damaged checkpoint moves it back)."""
        from populace.integrations import torch as pt  # torch is an optional extra

        row, path = self._worker.checkpoint_path(row)
        if path is not None:
            pt.load_state(path, allow_pickle=self._allow_pickle, **self._registered())
            if (seed := copy_seed(self._worker.config.seed, row)) is not None:
                pt.reseed(seed)  # a copy of its own, not the donor's twin
        self._apply(row.hparams)
        return row

    def _apply(self, hparams: dict[str, Any]) -> None:
        from populace.integrations import torch as pt

        objects = list(self._registered().values())
        pt.apply_hparams(
            hparams,
            optimizers=[o for o in objects if isinstance(o, pt.Optimizer)],
            schedulers=[o for o in objects if isinstance(o, pt.LRScheduler)],
            modules=self._modules, ignore=self._ignore,
        )

    def _save(self, path: Path) -> None:
        from populace.integrations import torch as pt

        pt.save_state(path, **self._registered())


class FunctionWorker(Worker):
    """A worker whose segments call the user's training function with a `Member`.

    Like `TorchTrainable`, it gives torch one thread per process: workers share the
    cores (a function that wants more calls torch.set_num_threads itself).
    """

    reported_by = "member.report"

    def __init__(self, store: Store, trainable: Any, space: Space):
        super().__init__(store, trainable, space)
        from populace.integrations import torch as pt  # torch is an optional extra

        pt.torch.set_num_threads(1)

    def train_segment(self, row: MemberRow) -> None:
        member = Member(self, row)
        try:
            self.trainable(member)
        except Exception:
            if member._failure is not None:  # whatever the loop raised after, NaN is why
                raise member._failure from None
            raise
        if member._failure is not None:  # the loop caught it and returned
            raise member._failure
        if member._row is not None:
            raise RuntimeError(
                f"the training function returned while member {row.id} was at step "
                f"{member.step} of {self.config.steps}: loop on `while member.training`"
            )
