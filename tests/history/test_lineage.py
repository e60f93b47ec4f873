"""Lineage and schedule: the history of a member's weights and the hparams it followed.

When member m copies donor d, m's weights are d's as of that moment, so m's
history is d's history up to the copy, then m's own (paper, section 3: the
result of PBT is a schedule of hyperparameters, not one setting).
"""

from __future__ import annotations

import hashlib
import itertools

from populace.lineage import ScheduleEntry, lineage, schedule
from populace.store import Decision, Report, Store
from populace.store.records import Event, Result


class History:
    """Results and events written by hand, with ids in the order they happen.

    Each result writes checkpoint id = its own id and starts from the member's
    checkpoint of the moment, as the store records them.
    """

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.events: list[Event] = []
        self._ids = itertools.count(1)
        self._holds: dict[int, int] = {}  # member -> the checkpoint it would start from

    def result(self, member: int, step: int, lr: float) -> Result:
        rid = next(self._ids)
        r = Result(rid, member, step, 0.5, {}, {"lr": lr}, 1.0, 0.0, step - 10, rid,
                   self._holds.get(member))
        self._holds[member] = rid
        self.results.append(r)
        return r

    def exploit(self, member: int, donor: int, trigger: Result, donor_step: int,
                after: float) -> Event:
        """`member` copies `donor`'s checkpoint (at `donor_step`) on reporting `trigger`."""
        self._holds[member] = self._holds[donor]
        e = Event(next(self._ids), "exploit", member, donor, trigger.step, donor_step,
                  trigger.hparams, {"lr": after}, "truncation", 0.0, None, trigger.id)
        self.events.append(e)
        return e

    def holds(self, member: int) -> int | None:
        return self._holds.get(member)

    def other(self, kind: str, member: int, step: int) -> None:
        self.events.append(Event(next(self._ids), kind, member, None, step, None, None, None,
                                 "", 0.0, "detail"))

    def path(self, member: int) -> list[tuple[int, int]]:
        """(member, step) along `member`'s lineage."""
        return [(r.member, r.step) for r in lineage(self.holds(member), self.results)]


def test_without_exploits_a_lineage_is_the_members_own_results():
    h = History()
    for step in (10, 20, 30):
        for m in (0, 1):
            h.result(m, step, 0.1 * (m + 1))
    h.other("failed", 1, 30)
    h.other("refused", 0, 30)
    assert h.path(0) == [(0, 10), (0, 20), (0, 30)]
    assert h.path(1) == [(1, 10), (1, 20), (1, 30)]
    assert lineage(h.holds(2), h.results) == []  # never reported


def test_one_exploit_takes_the_donors_past_then_the_members_own():
    h = History()
    h.result(0, 10, 0.1)
    h.result(1, 10, 0.2)
    h.result(0, 20, 0.1)
    trigger = h.result(1, 20, 0.2)
    h.exploit(1, 0, trigger, donor_step=20, after=0.12)
    h.result(0, 30, 0.1)  # the donor trains on: not part of member 1's past
    h.result(1, 30, 0.12)
    h.result(1, 40, 0.12)
    assert h.path(1) == [(0, 10), (0, 20), (1, 30), (1, 40)]
    assert h.path(0) == [(0, 10), (0, 20), (0, 30)]  # the donor's lineage is unchanged


def test_a_chain_of_exploits_follows_each_donor_back():
    # A (0) copies B (1), who had copied C (2) and trained since
    h = History()
    h.result(2, 10, 0.3)
    h.result(1, 10, 0.2)
    h.result(2, 20, 0.3)
    b_trigger = h.result(1, 20, 0.2)
    h.exploit(1, 2, b_trigger, donor_step=20, after=0.33)
    h.result(0, 10, 0.1)
    h.result(2, 30, 0.3)
    h.result(1, 30, 0.33)
    h.result(0, 20, 0.1)
    h.result(1, 40, 0.33)
    a_trigger = h.result(0, 30, 0.1)
    h.exploit(0, 1, a_trigger, donor_step=40, after=0.4)
    h.result(0, 50, 0.4)
    assert h.path(0) == [(2, 10), (2, 20), (1, 30), (1, 40), (0, 50)]
    assert h.path(1) == [(2, 10), (2, 20), (1, 30), (1, 40)]
    assert schedule(lineage(h.holds(0), h.results)) == [
        ScheduleEntry(0, {"lr": 0.3}, 2),
        ScheduleEntry(20, {"lr": 0.33}, 1),
        ScheduleEntry(40, {"lr": 0.4}, 0),
    ]


def test_a_donor_exploited_again_after_the_copy_keeps_its_earlier_past():
    # B (1) copies A (0); later A copies C (2): B's past still runs through A's own results
    h = History()
    h.result(0, 10, 0.1)
    h.result(2, 10, 0.3)
    b_trigger = h.result(1, 10, 0.2)
    h.exploit(1, 0, b_trigger, donor_step=10, after=0.11)
    h.result(2, 20, 0.3)
    a_trigger = h.result(0, 20, 0.1)
    h.exploit(0, 2, a_trigger, donor_step=20, after=0.31)
    h.result(1, 20, 0.11)
    h.result(0, 30, 0.31)
    assert h.path(1) == [(0, 10), (1, 20)]
    assert h.path(0) == [(2, 10), (2, 20), (0, 30)]


def test_a_member_exploited_twice_keeps_only_the_latest_copy():
    h = History()
    h.result(1, 10, 0.2)
    h.result(2, 10, 0.3)
    first = h.result(0, 10, 0.1)
    h.exploit(0, 1, first, donor_step=10, after=0.22)
    h.result(1, 20, 0.2)
    h.result(2, 20, 0.3)
    second = h.result(0, 20, 0.22)
    h.exploit(0, 2, second, donor_step=20, after=0.33)
    h.result(0, 30, 0.33)
    assert h.path(0) == [(2, 10), (2, 20), (0, 30)]


def test_a_donor_that_had_just_been_exploited_passes_on_what_it_copied():
    # B (1) copies C (2) and, before B trains again, A (0) copies B: A holds C's weights
    h = History()
    h.result(2, 10, 0.3)
    h.result(2, 20, 0.3)
    b_trigger = h.result(1, 10, 0.2)
    h.exploit(1, 2, b_trigger, donor_step=20, after=0.33)
    a_trigger = h.result(0, 10, 0.1)
    h.exploit(0, 1, a_trigger, donor_step=20, after=0.44)
    h.result(2, 30, 0.3)  # C trains on after the copies: not A's past
    h.result(0, 30, 0.44)
    assert h.path(0) == [(2, 10), (2, 20), (0, 30)]
    assert schedule(lineage(h.holds(0), h.results)) == [
        ScheduleEntry(0, {"lr": 0.3}, 2),
        ScheduleEntry(20, {"lr": 0.44}, 0),
    ]


def test_a_member_that_exploited_and_has_not_reported_since_has_the_donors_past():
    h = History()
    h.result(0, 10, 0.1)
    h.result(0, 20, 0.1)
    trigger = h.result(1, 10, 0.2)
    h.exploit(1, 0, trigger, donor_step=20, after=0.5)
    assert h.path(1) == [(0, 10), (0, 20)]


def _results(*rows: tuple[int, int, dict]) -> list[Result]:
    return [Result(i, member, step, None, {}, hp, 0.0, 0.0, step - 10)
            for i, (member, step, hp) in enumerate(rows, 1)]


def test_schedule_starts_at_zero_and_compresses_equal_consecutive_hparams():
    path = _results((0, 10, {"lr": 0.1}), (0, 20, {"lr": 0.1}), (3, 30, {"lr": 0.2}),
                    (3, 40, {"lr": 0.2}), (3, 50, {"lr": 0.2}), (5, 60, {"lr": 0.1}))
    assert schedule(path) == [
        ScheduleEntry(0, {"lr": 0.1}, 0),
        ScheduleEntry(20, {"lr": 0.2}, 3),  # in force from the end of the previous segment
        ScheduleEntry(50, {"lr": 0.1}, 5),  # equal to an earlier entry, but not consecutive
    ]


def test_schedule_of_one_setting_and_of_nothing():
    assert schedule(_results((0, 10, {"lr": 0.1, "m": 0.9}), (0, 20, {"m": 0.9, "lr": 0.1}))) == [
        ScheduleEntry(0, {"lr": 0.1, "m": 0.9}, 0)]
    assert schedule([]) == []


# -- on a real store ---------------------------------------------------------------

_serial = itertools.count()


def _report(store: Store, member: int, step: int, score: float,
            copy: tuple[int, float] | None = None) -> None:
    """Claim `member` and report it at `step`; with copy=(donor, lr), exploit donor."""
    taken = []
    while (m := store.claim("w", 60.0, prefer=member)) is not None and m.id != member:
        taken.append(m.id)
    assert m is not None, f"member {member} is not claimable"
    for other in taken:
        store.release("w", other)
    sha = hashlib.sha256(f"{next(_serial)}".encode()).hexdigest()
    decide = None if copy is None else (lambda s, _m: Decision(copy[0], {"lr": copy[1]}, "t"))
    outcome = store.report(Report(member, "w", m.step, step, score, {"score": score}, m.hparams,
                                  f"{sha[:2]}/{sha}.ckpt", sha, 1, False), decide, 2)
    assert outcome.accepted
    assert (outcome.decision is None) == (copy is None)


def test_lineage_from_a_real_store(new_store):
    store = new_store(population=3)  # lr 0.01, 0.02, 0.03
    _report(store, 0, 10, 0.9)
    _report(store, 1, 10, 0.5)
    _report(store, 2, 10, 0.1)
    _report(store, 0, 20, 0.95)
    _report(store, 2, 20, 0.2, copy=(0, 0.5))  # member 2 now holds member 0's step 20
    _report(store, 1, 20, 0.6)
    assert store.members()[2].step == 20
    _report(store, 2, 30, 0.99)
    _report(store, 0, 30, 0.97)
    _report(store, 1, 30, 0.4, copy=(2, 0.7))  # member 1 copies member 2's step 30
    _report(store, 1, 40, 0.8)

    results = store.results()
    path = lineage(store.members()[1].checkpoint.id, results)
    assert [(r.member, r.step) for r in path] == [(0, 10), (0, 20), (2, 30), (1, 40)]
    assert [(r.member, r.step) for r in lineage(store.members()[2].checkpoint.id, results)] == [
        (0, 10), (0, 20), (2, 30)]
    assert [(r.member, r.step) for r in lineage(store.members()[0].checkpoint.id, results)] == [
        (0, 10), (0, 20), (0, 30)]
    assert schedule(path) == [
        ScheduleEntry(0, {"lr": 0.01}, 0),
        ScheduleEntry(20, {"lr": 0.5}, 2),
        ScheduleEntry(30, {"lr": 0.7}, 1),
    ]
