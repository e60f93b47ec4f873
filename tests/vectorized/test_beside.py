"""A vectorized run's checkpoint work beside its own, where a core is spare: the ready
group's file written while the group is evaluated, the files the store let go deleted
while the next segment trains; in the run's thread where torch takes every core. Either
way no member is reported before its file is in place and fsynced."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import populace  # noqa: E402
from populace import Constant, Float  # noqa: E402
from populace.checkpoints import LocalCheckpointStorage  # noqa: E402
from populace.space import Space  # noqa: E402
from populace.store import Status, Store, open_store  # noqa: E402
from populace.testing import EXECUTOR_CHECKS  # noqa: E402
from populace.vectorized import SGD, Dropout, Shuffled, VectorizedTrainable, layout  # noqa: E402
from populace.vectorized import run as vectorized_run  # noqa: E402
from populace.vectorized.beside import Beside  # noqa: E402
from populace.vectorized.functional import CPU_EVAL_CHUNK  # noqa: E402
from populace.vectorized.population import PARTS, Population  # noqa: E402

X = torch.randn(96, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] + X[:, 1] > 0).long()
SPACE = {"lr": Float(0.01, 0.5, log=True), "dropout": Float(0.0, 0.3)}
RUN = {"population": 4, "steps": 12, "ready_steps": 4, "executor": "vectorized",
       "progress": False}


class Small(VectorizedTrainable):
    optimizer = SGD()

    def model(self, seed):
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), Dropout("dropout"), nn.Linear(8, 2))

    def data(self):
        return Shuffled(X, Y, batch_size=16)

    def loss(self, output, batch, hparams):
        return F.cross_entropy(output, batch[1])

    def metrics(self, model):
        logits = model(X)
        return {"score": (logits.argmax(1) == Y).float().mean(),
                "loss": F.cross_entropy(logits, Y)}


class DrawingMetrics(Small):
    """Metrics that draw a random number, as a metric on random crops would."""

    def metrics(self, model):
        noise = 1e-6 * torch.rand(X.shape)
        return {"score": (model(X + noise).argmax(1) == Y).float().mean()}


@pytest.fixture(params=["beside", "in the run's thread"])
def spare(request, monkeypatch) -> bool:
    """Whether the run finds a core to spare for its checkpoint work (both ways)."""
    monkeypatch.setattr(vectorized_run, "spare_core", lambda device: request.param == "beside")
    return request.param == "beside"


@pytest.fixture
def beside(monkeypatch) -> None:
    """The run finds a core to spare for its checkpoint work (a GPU's run, or fewer torch
    threads than cores)."""
    monkeypatch.setattr(vectorized_run, "spare_core", lambda device: True)


def files(store: Store) -> set[str]:
    """The checkpoint files in the run's folder."""
    root = Path(store.config().checkpoints)
    if not root.is_absolute():
        root = Path(store.url).parent / root
    return {f"{p.parent.name}/{p.name}" for p in root.glob("??/*.ckpt")}


def checked(url: Path) -> Store:
    """The run's store, once every executor check passed on it (the caller closes it)."""
    store = open_store(url)
    for check in EXECUTOR_CHECKS:
        check(store)
    return store


@pytest.mark.parametrize("spared", [True, False], ids=["beside", "in the run's thread"])
def test_the_checkpoint_file_is_written_while_the_members_are_evaluated_where_a_core_is_spare(
        tmp_path, monkeypatch, spared):
    monkeypatch.setattr(vectorized_run, "spare_core", lambda device: spared)
    events: list[str] = []
    started = threading.Event()
    write, evaluate = LocalCheckpointStorage.write, Population.evaluate

    def logged_write(self, save):
        events.append("write")
        started.set()
        return write(self, save)

    def slow_evaluate(self, rows):
        if spared and events.count("evaluated") > 0:  # not the preflight's: it writes none
            # the file's write starts meanwhile, in the run's other thread
            assert started.wait(10), "no write began during the evaluation"
        started.clear()
        result = evaluate(self, rows)
        events.append("evaluated")
        return result

    monkeypatch.setattr(LocalCheckpointStorage, "write", logged_write)
    monkeypatch.setattr(Population, "evaluate", slow_evaluate)
    populace.run(Small, SPACE, store=tmp_path / "run.db", **RUN)
    # the preflight's own evaluation first (its file is no checkpoint), then 3 ready points;
    # where no core is spare, the file is written after, as the run's thread is free again
    assert events[1:] == (["write", "evaluated"] if spared else ["evaluated", "write"]) * 3


def test_files_the_store_lets_go_are_deleted_beside_the_training_all_by_the_end(
        tmp_path, monkeypatch, capfd, spare):
    deleted_in: list[str] = []
    delete = LocalCheckpointStorage.delete

    def noted_delete(self, key):
        deleted_in.append(threading.current_thread().name)
        delete(self, key)

    monkeypatch.setattr(LocalCheckpointStorage, "delete", noted_delete)
    populace.run(Small, SPACE, store=tmp_path / "run.db", **RUN)
    assert "no checkpoint names" not in capfd.readouterr().err, "the run's end swept none"
    assert deleted_in, "the files of earlier ready points are collected"
    assert (threading.main_thread().name in deleted_in) is not spare
    store = checked(tmp_path / "run.db")
    try:
        assert files(store) == {c.key for c in store.checkpoints()}, "nothing left behind"
    finally:
        store.close()


def test_a_member_whose_score_is_not_finite_is_not_in_the_file_and_none_is_left(tmp_path,
                                                                               capfd, spare):
    # an lr past float32's largest number makes member 1's weights infinite, its loss NaN
    space = {"lr": Float(0.01, 1e39, log=True), "dropout": Constant(0.0)}
    initial = [{"lr": lr, "dropout": 0.0} for lr in (0.1, 1e39, 0.1, 0.2)]
    populace.run(Small, space, store=tmp_path / "run.db", initial=initial, exploit="none",
                 score="loss", mode="min", **{**RUN, "steps": 8})
    assert "no checkpoint names" not in capfd.readouterr().err, "the run's end swept none"
    store = open_store(tmp_path / "run.db")
    try:
        members = {m.id: m for m in store.members()}
        assert str(members[1].status) == "failed"
        keys = {c.key for c in store.checkpoints()}
        assert files(store) == keys, "the file written for all four, discarded, is gone"
        root = Path(store.config().checkpoints)
        root = root if root.is_absolute() else Path(store.url).parent / root
        for key in keys:
            assert 1 not in layout.read(root / key).members
    finally:
        store.close()


def test_a_checkpoint_holds_the_random_state_after_the_evaluation_as_before(tmp_path,
                                                                          monkeypatch, beside):
    after: list[torch.Tensor] = []
    saved: list[torch.Tensor] = []
    evaluate, save = Population.evaluate, layout.save

    def noted_evaluate(self, rows):
        result = evaluate(self, rows)
        after.append(torch.get_rng_state())
        return result

    def noted_save(path, members, tensors, keys, steps, rng=None):
        save(path, members, tensors, keys, steps, rng)
        saved.append(layout.read(path).rng["cpu"])

    monkeypatch.setattr(Population, "evaluate", noted_evaluate)
    monkeypatch.setattr(layout, "save", noted_save)
    populace.run(DrawingMetrics, SPACE, store=tmp_path / "run.db", **RUN)
    # the preflight's file, then each ready point's: the run's check found that the
    # metrics draw, so each is written after the evaluation, none beside it
    assert len(saved) == len(after) == 4
    for state_after, state_saved in zip(after, saved, strict=True):
        assert torch.equal(state_after, state_saved)
    checked(tmp_path / "run.db").close()


def test_a_whole_population_is_saved_as_it_is_and_as_its_copy_would_be(tmp_path):
    space = Space(SPACE)
    pop = Population(Small(), space, seeds=[3, 4, 5])
    pop.hparams.set([0, 1, 2], [space.sample(np.random.default_rng(i)) for i in range(3)])
    pop.train()
    pop.take({0: 2})
    own = pop.tensors(np.arange(3))
    assert all(own[f"{part}/{name}"].data_ptr() == value.data_ptr()
               for part in PARTS for name, value in pop.parts[part].items()), "no copy"
    copies = {name: value[torch.arange(3)] for name, value in own.items()}
    rng = layout.rng_state()
    for folder, tensors in (("own", own), ("copy", copies)):
        (tmp_path / folder).mkdir()
        layout.save(tmp_path / folder / "x.ckpt", [7, 8, 9], tensors, pop.keys, pop.steps, rng)
    assert ((tmp_path / "own" / "x.ckpt").read_bytes()
            == (tmp_path / "copy" / "x.ckpt").read_bytes())
    other = pop.tensors(np.array([2, 1, 0]))["param/0.weight"]
    assert other.data_ptr() != pop.parts["param"]["0.weight"].data_ptr(), "a copy"


def test_a_run_evaluates_and_saves_its_whole_population_without_copying_it(tmp_path,
                                                                          monkeypatch, spare):
    copied_in: list[str] = []
    index = Population._index

    def noted_index(self, rows):
        copied_in.append(sys._getframe(1).f_code.co_name)
        return index(self, rows)

    monkeypatch.setattr(Population, "_index", noted_index)
    populace.run(Small, SPACE, store=tmp_path / "run.db", **RUN)
    # the members come back in the order the store hands them out (the one it went on
    # with first), yet every ready point evaluates and saves all four as they stand
    assert "evaluate" not in copied_in and "tensors" not in copied_in, copied_in
    checked(tmp_path / "run.db").close()


def test_a_checkpoint_write_that_fails_fails_the_run_as_before(tmp_path, monkeypatch, spare):
    write = LocalCheckpointStorage.write
    calls = []

    def full_disk(self, save):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write(self, save)

    monkeypatch.setattr(LocalCheckpointStorage, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        populace.run(Small, SPACE, store=tmp_path / "run.db", **RUN)
    store = open_store(tmp_path / "run.db")
    try:
        assert not [m for m in store.members() if m.status is Status.RUNNING], "released"
    finally:
        store.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("populace-checkpoints")]


def test_a_long_run_keeps_only_the_deletions_still_under_way(tmp_path):
    storage = LocalCheckpointStorage(tmp_path)
    beside = Beside(storage)
    try:
        for _ in range(50):
            ref = storage.write(lambda path: path.write_bytes(b"x"))
            beside.delete([ref.key])
            assert len(beside._deleting) <= 2, "finished deletions are let go"
    finally:
        beside.close()
    assert not list(tmp_path.glob("??/*.ckpt"))


def test_checkpoint_work_goes_beside_only_where_torch_leaves_a_core_free(monkeypatch):
    monkeypatch.setattr(vectorized_run, "cores", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert not vectorized_run.spare_core(torch.device("cpu")), "every core is torch's"
    assert vectorized_run.spare_core(torch.device("cuda", 0)), "a GPU's run leaves them"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert vectorized_run.spare_core(torch.device("cpu"))


def checked_population(kind: type[VectorizedTrainable], members: int,
                       device: str = "cpu") -> Population:
    """`members` of `kind`, checked as a run checks its population, trained two steps."""
    space = Space(SPACE)
    hparams = [space.sample(np.random.default_rng(i)) for i in range(members)]
    pop = Population(kind(), space, seeds=list(range(members)), device=device)
    pop.hparams.set(list(range(members)), hparams)
    pop.check(hparams[0])
    torch.manual_seed(0)
    for _ in range(2):
        pop.train()
    return pop


def test_a_cpu_evaluates_a_large_population_in_chunks_with_the_same_metrics():
    pop = checked_population(Small, 150)
    assert pop.functional.chunk() == CPU_EVAL_CHUNK < 150
    chunked = pop.evaluate(np.arange(150))
    pop.functional.metrics_draw = None  # as before a trial: every member in one call
    assert pop.functional.chunk() is None
    assert pop.evaluate(np.arange(150)) == chunked
    pop.functional.metrics_draw, pop.functional.device = False, torch.device("cuda")
    assert pop.functional.chunk() is None, "a GPU takes them all at once"


def test_metrics_that_draw_and_a_trainables_own_eval_chunk_are_evaluated_as_they_ask():
    assert checked_population(DrawingMetrics, 3).functional.chunk() is None

    class Chunked(Small):
        eval_chunk = 5

    assert checked_population(Chunked, 3).functional.chunk() == 5
