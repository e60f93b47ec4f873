"""The paper's toy experiment (Fig. 2): PBT beats grid search in every seed."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from support.paths import TOY

import populace
from populace.script import load_script

SEEDS = range(10)


def final_q(tmp_path: Path, seed: int, exploit: str) -> float:
    toy = load_script(TOY)
    result = populace.run(
        toy.trainable, toy.space, store=tmp_path / f"{exploit}-{seed}.db", initial=toy.initial,
        progress=False, **{**toy.config, "seed": seed, "exploit": exploit},
    )
    return result.score


def test_pbt_ends_closer_to_the_optimum_than_grid_search_in_every_seed(tmp_path):
    pbt = [final_q(tmp_path, seed, "truncation") for seed in SEEDS]
    grid = [final_q(tmp_path, seed, "none") for seed in SEEDS]
    for seed, (p, g) in enumerate(zip(pbt, grid, strict=True)):
        assert abs(1.2 - p) < abs(1.2 - g), f"seed {seed}: PBT {p:.4f}, grid {g:.4f}"
    # grid search cannot leave one coordinate: 1.2 - 0.9**2 = 0.39 at best
    assert max(grid) <= 0.39
    assert statistics.median(pbt) > 1.15


def test_seeds_change_the_explored_hparams(tmp_path):
    """Different seeds explore differently (the seed reaches the decisions)."""
    a, b = (final_q(tmp_path, seed, "truncation") for seed in (0, 1))
    assert a != pytest.approx(b, abs=1e-12)
