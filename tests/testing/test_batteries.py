"""The batteries of populace.testing on implementations of your own: one call checks one,
and a broken one fails with a message naming it, the check and the inputs."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from support.paths import COUNTER

import populace
from populace.checkpoints import open_storage
from populace.config import RunConfig
from populace.script import load_script
from populace.space import Float, Space
from populace.store import Decision, RunRecord, open_store
from populace.testing import (
    check_checkpoints_intact,
    check_copies_from_members,
    check_executor,
    check_exploit,
    check_exploit_deterministic,
    check_exploit_pure,
    check_explore,
    check_explore_pure,
    check_same_run,
    check_storage,
)
from populace.testing.stores import check_store_create_and_read_back, run_record, train

# strategies of your own: good ones


@dataclass(frozen=True)
class CopyBest:
    """Copy the best member when it beats this one by more than `margin`."""

    margin: float = 0.0

    def __call__(self, snapshot, member_id, rng):
        best = snapshot.ranking()[0]
        row = snapshot.index(member_id)
        if not np.isfinite(snapshot.scores[best]) or best == row:
            return None
        gap = snapshot.scores[best] - snapshot.scores[row]
        if np.isfinite(gap) and (gap if snapshot.maximize else -gap) <= self.margin:
            return None
        return int(snapshot.ids[best])


def resample_one(hparams, space, rng):
    """Draw one hparam, picked at random, anew from its prior."""
    new = dict(hparams)
    name = list(space)[int(rng.integers(len(space)))]
    new[name] = space[name].sample(rng)
    return new


def halve(hparams, space, rng):
    """Halve every float: inside a space of floats in [0, 1] only."""
    return {k: v / 2 if isinstance(v, float) else v for k, v in hparams.items()}


def test_an_exploit_of_your_own_passes_with_one_call():
    check_exploit(CopyBest())
    check_exploit(CopyBest(margin=0.1))


def test_an_explore_of_your_own_passes_with_one_call():
    check_explore(resample_one)


def test_an_explore_made_for_one_space_passes_on_that_space():
    check_explore(halve, Space({"x": Float(0.0, 1.0), "y": Float(0.0, 2.0)}))
    with pytest.raises(AssertionError, match="outside the space"):
        check_explore(halve)  # on every kind of space: a log-scaled lr falls below its low


# broken ones, and what each is told


@dataclass(frozen=True)
class SortsScores:
    """Sorts the snapshot's scores in place to rank them."""

    def __call__(self, snapshot, member_id, rng):
        snapshot.scores.sort()
        return None


@dataclass(frozen=True)
class CopyWorst:
    """Copies the worst other member: a member without a score ranks last."""

    def __call__(self, snapshot, member_id, rng):
        rows = [r for r in snapshot.ranking() if snapshot.ids[r] != member_id]
        return int(snapshot.ids[rows[-1]]) if rows else None


@dataclass(frozen=True)
class NextId:
    """Takes the next id for another member's: ids need not be consecutive."""

    def __call__(self, snapshot, member_id, rng):
        return member_id + 1


@dataclass(frozen=True)
class GlobalRandom:
    """Draws from numpy's global generator, not the one it is given."""

    def __call__(self, snapshot, member_id, rng):
        others = [int(i) for i in snapshot.ids if i != member_id and np.isfinite(
            snapshot.scores[snapshot.index(int(i))])]
        return others[np.random.randint(len(others))] if others and np.random.rand() < 0.5 \
            else None


def test_an_exploit_that_changes_the_snapshot_fails_naming_what_it_changed():
    with pytest.raises(AssertionError) as info:
        check_exploit(SortsScores())
    message = str(info.value)
    assert message.startswith("exploit SortsScores() fails check_exploit_pure: it changed the "
                              "snapshot's scores")
    assert re.search(r"inputs: member \d+ of the population '[^']+' \(ids \[", message)
    assert "rng = numpy.random.default_rng(0)" in message


def test_an_exploit_that_copies_a_member_without_a_score_fails():
    with pytest.raises(AssertionError, match=r"exploit CopyWorst\(\) fails "
                       r"check_exploit_nan_never_donates: it named member \d+ as the donor, "
                       r"which has no valid score \(NaN\)"):
        check_exploit(CopyWorst())


def test_an_exploit_that_names_no_member_fails():
    with pytest.raises(AssertionError, match=r"fails check_exploit_pure: it named 101, "
                       r"which is no member of the snapshot\n  inputs: member 100 of the "
                       r"population 'one member'"):
        check_exploit(NextId())


def test_an_exploit_that_draws_from_the_global_generator_fails():
    with pytest.raises(AssertionError, match=r"fails check_exploit_deterministic: it returned "):
        check_exploit_deterministic(GlobalRandom())
    check_exploit_pure(GlobalRandom())  # each check can be run on its own


def test_an_exploit_that_raises_fails_with_the_error():
    def unsure(snapshot, member_id, rng):
        raise ValueError("no idea")

    with pytest.raises(AssertionError, match=r"exploit test_batteries:test_an_exploit_that_"
                       r".*unsure fails check_exploit_pure: it raised ValueError: no idea"):
        check_exploit(unsure)


def test_an_explore_that_changes_its_input_fails():
    def in_place(hparams, space, rng):
        hparams.update(space.sample(rng))
        return dict(hparams)

    with pytest.raises(AssertionError, match=r"fails check_explore_pure: it changed the hparams "
                       r"it was given \(lr, batch"):
        check_explore(in_place)
    with pytest.raises(AssertionError, match="check_explore_pure"):
        check_explore_pure(in_place, Space({"x": Float(0.0, 1.0)}))


def test_an_explore_that_leaves_the_bounds_fails_naming_the_hparam():
    def triple(hparams, space, rng):
        return {k: v * 3 if isinstance(v, float) else v for k, v in hparams.items()}

    with pytest.raises(AssertionError, match=r"fails check_explore_in_space: it proposed .*, "
                       r"outside the space: hparam 'x': value must be in \[0.0, 1.0\]") as info:
        check_explore(triple, Space({"x": Float(0.0, 1.0)}))
    assert "(the space given, drawn with seed 0, explored 0 times), space Space({'x': Float(" \
        in str(info.value)


def test_an_explore_that_returns_its_input_or_other_names_fails():
    with pytest.raises(AssertionError, match="it returned the dict it was given"):
        check_explore(lambda hparams, space, rng: hparams)
    with pytest.raises(AssertionError, match=r"missing \['x'\], not in the space \['y'\]"):
        check_explore(lambda hparams, space, rng: {"y": 0.5}, Space({"x": Float(0.0, 1.0)}))
    with pytest.raises(AssertionError, match="it returned None, not a dict"):
        check_explore(lambda hparams, space, rng: None)


# a checkpoint storage of your own: an fsspec file system behind a URL


class LeakyFileSystem(MemoryFileSystem):
    """memory://, except that a move copies and leaves the source behind."""

    protocol = "leaky"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("leaky://", "memory://", 1))

    def mv(self, path1, path2, **kwargs):
        self.copy(path1, path2)


@pytest.fixture
def new_url(tmp_path):
    """A function giving a fresh URL on a protocol, removed after the test."""
    roots = []

    def new(protocol: str) -> str:
        roots.append(f"populace-battery-{uuid.uuid4().hex}")
        return f"{protocol}://{roots[-1]}/ckpt"

    yield new
    fs = MemoryFileSystem()
    for root in roots:
        if fs.exists(f"/{root}"):
            fs.rm(f"/{root}", recursive=True)


def test_a_storage_at_a_url_of_your_own_passes_with_one_call(new_url, tmp_path):
    check_storage(lambda: open_storage(new_url("memory"), cache_dir=tmp_path))


def test_a_storage_that_leaves_temp_files_fails_naming_them(new_url, tmp_path):
    fsspec.register_implementation("leaky", LeakyFileSystem, clobber=True)
    with pytest.raises(AssertionError) as info:
        check_storage(lambda: open_storage(new_url("leaky"), cache_dir=tmp_path))
    message = str(info.value)
    assert message.startswith("checkpoint storage RemoteCheckpointStorage('leaky://")
    assert "fails check_storage_round_trip: the storage holds [" in message and ".tmp-" in message
    assert f"inputs: write {3 * (1 << 20) + 17} random bytes, then read them back" in message


# an executor of your own: a callable that trains the run in a store




def inline(seed: int = 0):
    def train(url: str) -> None:
        s = load_script(COUNTER)
        populace.run(s.trainable, s.space, store=url, progress=False,
                     **{**s.config, "executor": "inline", "seed": seed})

    return train


def test_an_executor_passes_with_one_call_and_its_runs_compare(tmp_path):
    first = check_executor(inline(), tmp_path / "a.db")
    check_same_run(first, check_executor(inline(), tmp_path / "b.db"))
    with pytest.raises(AssertionError, match=r"the run with seed 1 fails check_same_run: its "
                       r"members differ first at row 0: expected \(0, 'done', 20, "):
        check_same_run(first, check_executor(inline(seed=1), tmp_path / "c.db"),
                       "the run with seed 1")


def test_an_executor_that_stops_early_fails(tmp_path):
    def create_only(url: str) -> None:
        store = open_store(url)
        store.create(RunRecord(run=RunConfig(population=2, steps=8).to_dict(),
                               space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                               checkpoints=str(tmp_path / "ckpt"), trainable="counter:Counter"),
                     [{"x": 0.1}, {"x": 0.2}])
        store.close()

    with pytest.raises(AssertionError, match=r"the run in .*run.db fails check_members_done: "
                       r"every member must be done at step 8; \(member, status, step\) of the "
                       r"others: \[\(0, 'ready', 0\), \(1, 'ready', 0\)\]"):
        check_executor(create_only, tmp_path / "run.db")


def test_a_checkpoint_lost_after_training_fails_naming_it(tmp_path):
    check_executor(inline(), tmp_path / "run.db")
    store = open_store(tmp_path / "run.db")
    row = store.checkpoints()[0]
    (Path(store.config().checkpoints) / row.key).unlink()
    with pytest.raises(AssertionError, match=rf"fails check_checkpoints_intact: checkpoint "
                       rf"{row.key} is missing"):
        check_checkpoints_intact(store)
    store.close()


# a store backend: a factory opening the store called `name`


def test_a_factory_that_opens_a_new_store_for_a_known_name_fails(tmp_path):
    """A second call with the same name must reach the same store: this one never does."""
    calls = iter(range(1000))

    def forgetful(name: str):
        return open_store(tmp_path / f"{name}-{next(calls)}.db")

    with pytest.raises(AssertionError) as info:
        check_store_create_and_read_back(forgetful)
    message = str(info.value)
    assert message.startswith(f"store sqlite:///{tmp_path}/check_store_create_and_read_back-run-0"
                              ".db fails check_store_create_and_read_back: run.py:")
    assert message.endswith(": holds(s.exists())")


def test_a_copy_of_a_member_that_just_copied_keeps_the_executor_contract(tmp_path):
    """The external battery's flaky `check_copies_from_members`: with two workers racing,
    member 1 copied member 2 at step 12 right after member 2 had copied a member at step
    12 (reached by that copy, never reported by member 2). The store was right; the check
    counted only reported steps."""
    store = open_store(tmp_path / "s.db")
    store.create(run_record(population=3), [{"lr": 0.01 * (i + 1)} for i in range(3)])
    train(store, 0, 12, 0.9)
    train(store, 2, 8, 0.1, decide=lambda s, m: Decision(0, {"lr": 0.5}))
    train(store, 1, 8, 0.05, decide=lambda s, m: Decision(2, {"lr": 0.6}))
    copies = [(e.member, e.donor, e.donor_step) for e in store.events("exploit")]
    assert copies == [(2, 0, 12), (1, 2, 12)]
    check_copies_from_members(store)
    store.close()
