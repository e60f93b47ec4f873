"""`Snapshot.place` and `Snapshot.best`: one member's place and the top k without a sort of
the whole population, exactly as the full ranking gives them (ties by id, missing scores
last), so truncation decides as it did when it sorted everyone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from populace.snapshot import Snapshot
from populace.strategies.exploit import Truncation

# few distinct values, so that ties and missing scores are common
_SCORE = st.sampled_from([0.1, 0.5, 0.5, 0.9, -2.0, float("nan"), float("inf")])


def _snapshot(scores: list[float], maximize: bool, shuffle: int) -> Snapshot:
    ids = np.random.default_rng(shuffle).permutation(len(scores) * 3)[:len(scores)]
    return Snapshot(ids=ids.astype(np.int64), steps=np.zeros(len(scores), np.int64),
                    scores=np.array(scores, float), hparams=[{}] * len(scores),
                    maximize=maximize)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SCORE, min_size=1, max_size=40), st.booleans(), st.integers(0, 99))
def test_place_and_best_agree_with_the_ranking(scores, maximize, shuffle):
    snapshot = _snapshot(scores, maximize, shuffle)
    ranking = snapshot.ranking()
    for row in range(len(snapshot)):
        assert snapshot.place(row) == int(np.flatnonzero(ranking == row)[0])
    for k in range(len(snapshot) + 2):
        assert snapshot.best(k).tolist() == ranking[:k].tolist()


def test_best_breaks_a_tie_at_the_cut_by_id():
    snapshot = Snapshot(ids=np.array([7, 3, 5, 1]), steps=np.zeros(4, np.int64),
                        scores=np.array([0.5, 0.9, 0.5, 0.5]), hparams=[{}] * 4)
    assert snapshot.best(2).tolist() == [1, 3]  # 0.9 (id 3), then id 1 of the three at 0.5
    assert [snapshot.place(r) for r in range(4)] == [3, 0, 2, 1]


def test_places_with_several_objectives_follow_the_pareto_ranking():
    objectives = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    snapshot = Snapshot(ids=np.arange(4), steps=np.zeros(4, np.int64),
                        scores=objectives[:, 0], hparams=[{}] * 4, objectives=objectives)
    ranking = snapshot.ranking()
    assert [snapshot.place(r) for r in range(4)] == [
        int(np.flatnonzero(ranking == r)[0]) for r in range(4)]
    assert snapshot.place(3) == 3 and snapshot.best(3).tolist() == ranking[:3].tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(_SCORE, min_size=2, max_size=30), st.booleans(), st.integers(0, 99),
       st.sampled_from([0.1, 0.2, 0.25, 0.5]))
def test_truncation_decides_as_with_the_full_ranking(scores, maximize, shuffle, fraction):
    """The donor truncation picks is the one the sorted population gave it (before places)."""
    snapshot = _snapshot(scores, maximize, shuffle)
    n, valid = len(snapshot), snapshot.valid()
    k = min(int(np.ceil(round(fraction * n, 9))), n // 2)
    ranking = snapshot.ranking()
    for row in range(n):
        member = int(snapshot.ids[row])
        got = Truncation(fraction)(snapshot, member, np.random.default_rng(row))
        if valid.sum() == 0 or (valid[row] and (k == 0 or row not in ranking[n - k:])):
            assert got is None
        else:
            top = ranking[:max(1, min(k, int(valid.sum())))]
            assert got == int(snapshot.ids[np.random.default_rng(row).choice(top)])
