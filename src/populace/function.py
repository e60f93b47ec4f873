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

import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from populace import stopping
from populace.config import RunConfig
from populace.errors import ConfigError, StorageFault
from populace.segment import Held, ScoreNotFinite, Segment, member_seed, score_of
from populace.space import Hparams, Space
from populace.store import MemberRow, Store
from populace.worker import Worker

TrainFunction = Callable[["Member"], None]


class Member:
    """One member as a training function sees it: hparams, step, state and reports."""

    def __init__(self, worker: FunctionWorker, row: MemberRow):
        self._worker = worker
        self._segments = worker.segments
        # None once this member stops training (done, or the worker turns to another)
        self._segment: Segment | None = self._segments.begin(row)
        self._step = row.step
        self._state: dict[str, Any] | None = None
        self._modules: Mapping[str, tuple] = {}
        self._ignore: tuple[str, ...] = ()
        self._allow_pickle = False
        self._failure: ScoreNotFinite | StorageFault | None = None  # however the loop ends

    @property
    def id(self) -> int:
        return self._current().id

    @property
    def seed(self) -> int:
        """This member's seed, from the run's seed and its id: seed the initial weights
        and the data order with it, and a run repeats (as `Trainable.build` gets it)."""
        return self._segments.seed(self._current().id)

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
        return self._segment is not None and self._step < self._segments.config.steps

    def register(self, state: Mapping[str, Any], *,
                 modules: Mapping[str, tuple] | None = None, ignore: Iterable[str] = (),
                 allow_pickle: bool = False) -> None:
        """Hand over the objects that hold the training state; restores them and applies hparams.

        An hparam goes to an optimizer's param groups, to module attributes named in
        `modules` as `TorchTrainable.modules` names them, by a name of `state`:
        `modules={"dropout": ("model", nn.Dropout, "p")}` sets `p` of every Dropout in
        `state["model"]`; or it is listed in `ignore` and read from `member.hparams` by
        the loop itself (see `populace.integrations.torch.apply_hparams`).
        `allow_pickle` lets checkpoints holding pickled Python objects load (see
        `populace.integrations.torch.load_state`); only for checkpoints you trust.
        """
        self._state, self._modules, self._ignore = dict(state), dict(modules or {}), tuple(ignore)
        self._allow_pickle = allow_pickle
        self._begin(self._restore(self._current()))

    def report(self, metrics: float | Mapping[str, float] | None = None,
               **named: float) -> None:
        """One step done, with its metrics; at a ready point this checkpoints and reports."""
        segment, segments = self._current_segment(), self._segments
        self._registered()
        evaluated = _evaluated(metrics, named)
        self._step += 1
        stopping.check()
        try:
            if not segments.ready_at(segment, self._step):
                if self._step in segment.marks:  # a curve point inside it (FIRE's points)
                    segments.record(segment, self._step, evaluated)
                return
            outcome = segments.report(segment, self._step, evaluated, self._save)
        except (ScoreNotFinite, StorageFault) as e:
            # the segment ends whatever the loop does next: nothing of it is stored
            self._segment, self._failure = None, e
            raise
        if self._step >= segments.config.steps or not outcome.accepted or segments.stopped():
            self._segment = None
            return
        claimed = segments.claim(prefer=segment.member.id)
        self._next_segment(claimed, segments.held(segment, outcome))

    def _next_segment(self, claimed: MemberRow | None, held: Held | None) -> None:
        """Go on with the same member (restored if it exploited), or hand the worker back."""
        if claimed is None or claimed.id != self._current().id:
            # another member is further behind: the loop must end first, and whatever it does
            # after is not heartbeaten, so the worker claims that member again afterwards
            if claimed is not None:
                self._worker.store.release(self._worker.id, claimed.id)
            self._segment = None
            return
        if held is None or not held.carries(claimed):
            claimed = self._restore(claimed)  # exploited: the donor's state, then new hparams
        else:
            claimed = self._segments.scheduled(claimed)
            if claimed.hparams != held.hparams:
                self._apply(claimed.hparams)  # a replayed schedule's next entry
        self._begin(claimed)

    def _begin(self, row: MemberRow) -> None:
        """Start a segment of `row` from its step."""
        self._segment, self._step = self._segments.begin(row), row.step

    def _registered(self) -> dict[str, Any]:
        """The training state handed to `register` (an error before it is)."""
        if self._state is None:
            raise RuntimeError("call member.register({...}) with the training state before "
                               "member.report(...), so populace can checkpoint and restore it")
        return self._state

    def _current_segment(self) -> Segment:
        if self._segment is None:
            raise RuntimeError("this member has stopped training: loop on `while member.training`")
        return self._segment

    def _current(self) -> MemberRow:
        """The member's row as its segment began (the hparams in force)."""
        return self._current_segment().member

    def _restore(self, row: MemberRow) -> MemberRow:
        """Load the row's checkpoint into the objects and apply its hparams (a replayed
        schedule's for its step); the row as it stands after (a damaged checkpoint moves
        it back)."""
        from populace.integrations import torch as pt  # torch is an optional extra

        row, path = self._segments.checkpoint_path(row)
        if path is not None:
            pt.load_state(path, allow_pickle=self._allow_pickle, **self._registered())
            if (seed := self._segments.copy_seed(row)) is not None:
                pt.reseed(seed)  # a copy of its own, not the donor's twin
        row = self._segments.scheduled(row)
        self._apply(row.hparams)
        return row

    def _apply(self, hparams: dict[str, Any]) -> None:
        apply_registered(self._registered(), hparams, self._modules, self._ignore)

    def _save(self, path: Path) -> None:
        from populace.integrations import torch as pt

        pt.save_state(path, **self._registered())


class _Checked(BaseException):
    """Ends a training function's preflight at its first report: a BaseException, so
    that a loop's own `except Exception` around `member.report` cannot go on past it."""


class ProbeMember:
    """Member 0 as a training function's preflight sees it: `register` applies its
    hparams, the first `report` is checked for the score and saved, and the function
    stops there. Nothing is written to the run."""

    id = 0
    step = 0
    training = True

    def __init__(self, hparams: dict[str, Any], config: RunConfig):
        self.hparams = Hparams(hparams)
        self.seed = member_seed(config.seed, 0)
        self._config = config
        self._state: dict[str, Any] | None = None

    def register(self, state: Mapping[str, Any], *,
                 modules: Mapping[str, tuple] | None = None, ignore: Iterable[str] = (),
                 allow_pickle: bool = False) -> None:
        """As `Member.register`: the hparams go to their targets now."""
        self._state = dict(state)
        apply_registered(self._state, self.hparams, dict(modules or {}), tuple(ignore))

    def report(self, metrics: float | Mapping[str, float] | None = None,
               **named: float) -> None:
        """As `Member.report` at a ready point, then the end of the preflight."""
        if self._state is None:
            raise ConfigError("call member.register({...}) with the training state before "
                              "member.report(...), so populace can checkpoint and restore it")
        score_of(_evaluated(metrics, named), self._config.score, "member.report")
        from populace.integrations import torch as pt

        with tempfile.TemporaryDirectory() as folder:
            pt.save_state(Path(folder) / "probe.ckpt", **self._state)
        raise _Checked


def preflight(train: TrainFunction, hparams: dict[str, Any], config: RunConfig) -> None:
    """Run a training function as member 0 up to its first report, before anything is
    written, so a mistake every member would make (an hparam with no target, a score
    never reported, no `register`) is refused now rather than by every member in turn."""
    from populace.integrations import torch as pt  # torch is an optional extra

    threads = pt.torch.get_num_threads()
    pt.torch.set_num_threads(1)  # as a worker gives it (`FunctionWorker`)
    try:
        train(ProbeMember(hparams, config))  # type: ignore[arg-type]
    except _Checked:
        return
    finally:
        pt.torch.set_num_threads(threads)
    name = getattr(train, "__qualname__", repr(train))
    raise ConfigError(f"the training function {name} returned without calling "
                      "member.report: loop on `while member.training`, reporting each step")


def _evaluated(metrics: float | Mapping[str, float] | None, named: Mapping[str, float]
               ) -> float | dict[str, float]:
    """What `member.report(metrics, **named)` hands in: a number, or one dict of both."""
    if metrics is not None and not isinstance(metrics, Mapping):
        return metrics
    return {**(metrics or {}), **named}


def apply_registered(state: Mapping[str, Any], hparams: Mapping[str, Any],
                     modules: Mapping[str, tuple], ignore: tuple[str, ...]) -> None:
    """Put `hparams` in force on the registered objects: optimizers, LR schedulers, and
    the modules of `modules` (each named by its key in `state`, or given itself)."""
    from populace.integrations import torch as pt  # torch is an optional extra

    objects = list(state.values())
    pt.apply_hparams(
        hparams,
        optimizers=[o for o in objects if isinstance(o, pt.Optimizer)],
        schedulers=[o for o in objects if isinstance(o, pt.LRScheduler)],
        modules={name: (_module(state, name, root), kind, attr)
                 for name, (root, kind, attr) in modules.items()},
        ignore=ignore,
    )


def _module(state: Mapping[str, Any], hparam: str, root: Any) -> Any:
    """The module that `modules[hparam]` names: a key of `state`, or the module itself."""
    if not isinstance(root, str):
        return root
    if root not in state:
        raise ConfigError(f"modules[{hparam!r}] names {root!r}, which is not in the state "
                          f"given to register ({', '.join(map(repr, state))})")
    return state[root]


class FunctionWorker(Worker):
    """A worker whose segments call the user's training function with a `Member`.

    Like `TorchTrainable`, it gives torch one thread per process: workers share the
    cores (a function that wants more calls torch.set_num_threads itself).
    """

    reported_by = "member.report"

    def __init__(self, store: Store, train: TrainFunction, space: Space):
        super().__init__(store, space)
        self.train = train
        from populace.integrations import torch as pt  # torch is an optional extra

        pt.torch.set_num_threads(1)

    def train_segment(self, row: MemberRow, held: Held | None) -> None:
        """Call the training function with the member; it trains segments of it until
        `member.training` turns False, so nothing is held after it returns."""
        member = Member(self, row)
        try:
            self.train(member)
        except Exception:
            if member._failure is not None:  # whatever the loop raised after, NaN is why
                raise member._failure from None
            raise
        if member._failure is not None:  # the loop caught it and returned
            raise member._failure
        if member._segment is not None:
            raise RuntimeError(
                f"the training function returned while member {row.id} was at step "
                f"{member.step} of {self.config.steps}: loop on `while member.training`"
            )
