"""What every store check shares: its own stores, runs and reports to write, and the
assertions, which work without pytest (and under `python -O`)."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from populace.config import RunConfig
from populace.store import Outcome, Report, RunRecord, Store
from populace.store.driver import safe_url
from populace.store.exploits import Decide

# opens the store called `name`: a fresh, empty one for a new name, and a second
# connection to the same store for a name it was given before
StoreFactory = Callable[[str], Store]
T = TypeVar("T")

LR_SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}
_serial = itertools.count()


def run_record(mode: str = "max", population: int = 4, space: dict[str, Any] | None = None,
               **settings: Any) -> RunRecord:
    """The record populace.run stores, for a run of `population` members over `space`."""
    config = RunConfig(mode=mode, population=max(2, population), steps=100, **settings)
    return RunRecord(run=config.to_dict(), space=space or LR_SPACE, checkpoints="/some/dir",
                     trainable="toy:Toy", window=config.window(), segments=config.segments(),
                     curve=config.curve())


class Stores:
    """The stores one check opens, under names of its own (checks never share a store),
    closed when it ends."""

    def __init__(self, factory: StoreFactory, check: str) -> None:
        self._factory, self._check = factory, check
        self.opened: list[Store] = []

    def open(self, name: str = "run") -> Store:
        """The store `name` of this check: new, or another connection to the one opened."""
        store = self._factory(f"{self._check}-{name}")
        self.opened.append(store)
        return store

    def new(self, population: int = 4, mode: str = "max", name: str = "run") -> Store:
        """A new run of `population` members, member i with {"lr": 0.01 * (i + 1)}."""
        store = self.open(name)
        store.create(run_record(mode, population), [{"lr": 0.01 * (i + 1)}
                                                    for i in range(population)])
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


def store_check(check: Callable[[Stores], None]) -> Callable[[StoreFactory], None]:
    """`check` as a battery check: given the factory, run on stores of its own; a failure
    names the check and its first store."""

    @functools.wraps(check)
    def run(factory: StoreFactory) -> None:
        stores = Stores(factory, check.__name__)
        try:
            check(stores)
        except AssertionError as e:
            where = safe_url(stores.opened[0].url) if stores.opened else "no store"
            raise AssertionError(f"store {where} fails {check.__name__}: {e}").with_traceback(
                e.__traceback__) from None
        finally:
            stores.close()

    return run


def _line(depth: int = 2) -> str:
    """The source line that called the assertion helper, to say what failed."""
    frame = sys._getframe(depth)
    summary = traceback.extract_stack(frame, limit=1)[0]
    return f"{os.path.basename(summary.filename)}:{summary.lineno}: {(summary.line or '').strip()}"


def equal(got: Any, expected: Any, message: str | None = None) -> None:
    """AssertionError showing both values unless `got == expected`."""
    if not got == expected:
        extra = f" ({message})" if message else ""
        raise AssertionError(f"{_line()}{extra}\n  got      {got!r}\n  expected {expected!r}")


def holds(condition: object, message: str | None = None) -> None:
    """AssertionError naming the line unless `condition` is true."""
    if not condition:
        raise AssertionError(_line() + (f" ({message})" if message else ""))


def some(value: T | None) -> T:
    """`value`, which must not be None (a member's checkpoint, a claim)."""
    if value is None:
        raise AssertionError(f"{_line()}: got None")
    return value


class raises:  # noqa: N801 - used as pytest.raises is
    """A block that must raise `error`, its message matching `match` (a regex); `.value`."""

    def __init__(self, error: type[BaseException], match: str | None = None) -> None:
        self.error, self.match, self.line = error, match, _line()
        self.value: BaseException | None = None

    def __enter__(self) -> raises:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if value is None:
            raise AssertionError(f"{self.line}: {self.error.__name__} expected, nothing raised")
        if not isinstance(value, self.error):
            return False  # another error: it propagates as it is
        if self.match is not None and not re.search(self.match, str(value)):
            raise AssertionError(f"{self.line}: the {self.error.__name__} says {str(value)!r}, "
                                 f"which does not match {self.match!r}")
        self.value = value
        return True


def digest(text: str) -> str:
    """The sha256 of `text`: a checkpoint's content, made up."""
    return hashlib.sha256(text.encode()).hexdigest()


def report(
    member: int,
    worker: str,
    step: int,
    score: float | None = 1.0,
    *,
    final: bool = False,
    sha: str | None = None,
    hparams: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Report:
    """A segment's report; each gets its own checkpoint content unless `sha` is given."""
    sha = sha or digest(f"{member}:{step}:{os.getpid()}:{next(_serial)}")
    # a score of None (not finite) is reported as it is: the store must cope
    scored: dict[str, Any] = {"score": score, "loss": 0.5}
    return Report(
        member=member, worker=worker, start=max(0, step - 4), step=step, score=score,
        metrics=scored if metrics is None else metrics,
        hparams={"lr": 0.01 * (member + 1)} if hparams is None else hparams,
        key=f"{sha[:2]}/{sha}.ckpt", sha256=sha, bytes=123, final=final, seconds=0.25,
    )


def train(store: Store, member: int, step: int, score: float | None = 1.0, *,
          decide: Decide | None = None, keep: int = 10, worker: str = "w",
          **kwargs: Any) -> Outcome:
    """Claim `member` and report one segment."""
    claim_exactly(store, member, worker)
    return store.report(report(member, worker, step, score, **kwargs), decide, keep)


def claim_exactly(store: Store, member: int, worker: str = "w", lease: float = 60.0) -> None:
    """Lease `member`, whatever its step: lease the others first, then give them back."""
    others = []
    while True:
        m = store.claim(worker, lease)
        if m is None:
            raise AssertionError(f"member {member} is not claimable")
        if m.id == member:
            break
        others.append(m.id)
    for other in others:
        if not store.release(worker, other):
            raise AssertionError(f"member {other}, claimed by {worker}, was not released")
