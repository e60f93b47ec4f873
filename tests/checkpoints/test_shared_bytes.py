"""Checkpoints of the same bytes never lose their file while a row, or a write in flight,
needs it. Part of the store battery (parametrized over the backends by `new_store`)."""

from __future__ import annotations

import multiprocessing
import time
import traceback

from populace.checkpoints import open_storage
from populace.store import Report, open_store

MEMBERS, WORKERS, TARGET = 8, 4, 40


def _report(member, worker: str, start: int, step: int, ref) -> Report:
    return Report(member=member, worker=worker, start=start, step=step, score=1.0,
                  metrics={"score": 1.0}, hparams={"lr": 0.01}, key=ref.key,
                  sha256=ref.sha256, bytes=ref.bytes, final=step >= TARGET)


def test_a_write_in_flight_keeps_its_file_when_an_old_row_of_the_same_bytes_goes(new_store,
                                                                                  tmp_path):
    """Member 1's worker writes bytes member 0 wrote before; before member 1 reports, member
    0 moves on and its old row is collected. Named by their hash alone, both were one file,
    and that collection deleted it under member 1's report."""
    store = new_store(population=2)
    storage = open_storage(tmp_path / "ckpt")
    same = lambda path: path.write_bytes(b"a state that stopped changing")  # noqa: E731
    store.claim("a", 60.0)
    store.report(_report(0, "a", 0, 1, storage.write(same)), None, 1)
    store.claim("b", 60.0, prefer=1)
    in_flight = storage.write(same)  # member 1's checkpoint, not yet reported
    for step in (2, 3):  # member 0 goes on: keep=1 collects its row of step 1
        store.claim("a", 60.0, prefer=0)
        ref = storage.write(lambda path, step=step: path.write_bytes(b"new %d" % step))
        for key in store.report(_report(0, "a", step - 1, step, ref), None, 1).collect:
            storage.delete(key)
    assert store.report(_report(1, "b", 0, 1, in_flight), None, 1).accepted
    assert storage.verify(in_flight.key, in_flight.sha256).read_bytes().startswith(b"a state")


def _worker(url: str, root: str, worker: str, barrier, out) -> None:
    """Claim and report until every member is done, checkpoints shared by step bucket."""
    errors: list[str] = []
    try:
        store, storage = open_store(url), open_storage(root)
        barrier.wait()
        while True:
            member = store.claim(worker, 60.0)
            if member is None:
                if store.progress()["status"].get("done", 0) == MEMBERS:
                    break
                time.sleep(0.001)
                continue
            step = member.step + 1
            # the same bytes for every member within ten steps: several members write them,
            # and one member writes them ten times in a row
            ref = storage.write(lambda path, step=step: path.write_bytes(b"%d" % (step // 10)))
            outcome = store.report(_report(member.id, worker, member.step, step, ref), None, 1)
            for key in outcome.collect:
                storage.delete(key)
        store.close()
    except BaseException:
        errors.append(traceback.format_exc())
    out.put(errors)


def test_concurrent_workers_writing_the_same_bytes_lose_no_file(new_store, tmp_path):
    store = new_store(population=MEMBERS)
    root = tmp_path / "ckpt"
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store.url, str(root), f"w{i}", barrier, out))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in out.get(timeout=240)]
    for p in procs:
        p.join(timeout=60)
    assert errors == [], "\n".join(errors)
    storage = open_storage(root)
    members = store.members()
    assert [(m.status, m.step) for m in members] == [("done", TARGET)] * MEMBERS
    for row in store.checkpoints():  # every live row's file is there, and whole
        storage.verify(row.key, row.sha256)
    assert len(store.checkpoints()) == MEMBERS  # keep=1: one each, the rest collected
    assert {name for name, _ in storage.files()} == {c.key for c in store.checkpoints()}
