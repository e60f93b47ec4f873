"""The RL example (examples/rl_cartpole.py): a PPO agent that learns, scored on its last
10 episodes, whose checkpoints carry on exactly, run by populace at a tiny size."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch
from support.paths import EXAMPLES, ROOT

import populace
from populace.script import load_script
from populace.store import open_store
from populace.strategies import Snapshot, TTest
from populace.strategies.registry import make_exploit, make_explore

EXAMPLE = EXAMPLES / "rl_cartpole.py"
BENCHMARKS = ROOT / "benchmarks"
rl = load_script(EXAMPLE)
example = __import__(rl.trainable.__module__)
# a setting that learns CartPole quickly (benchmarks/RESULTS.md: "PPO learns CartPole")
GOOD = {"lr": 1e-3, "entropy": 0.01, "clip": 0.2, "gae_lambda": 0.95, "discount": 0.99,
        "rollout": 128, "env": "CartPole-v1"}


def member(hparams=GOOD, seed=0):
    m = rl.trainable()
    m.build(hparams, seed)
    return m


def test_returns_rise_over_a_few_updates():
    m = member()
    m.step()
    first = m.evaluate()["return"]
    for _ in range(4):
        m.step()
    later = m.evaluate()
    # a random CartPole policy lasts about 20 steps; 10k environment steps of PPO double it
    assert first < 50
    assert later["return"] > 2 * first + 20, (first, later)
    assert later["env_steps"] == 5 * example.STEP_FRAMES


def test_the_score_is_the_mean_of_the_last_ten_episodes_not_of_all():
    m = member()
    for _ in range(3):
        m.step()
    finished = list(m.envs.finished)
    assert len(finished) > 2 * example.LAST  # returns rise: older episodes were shorter
    got = m.evaluate()
    assert got["return"] == pytest.approx(np.mean(finished[-example.LAST:]))
    assert got["return"] != pytest.approx(np.mean(finished))
    assert got["episodes"] == len(finished) or got["episodes"] > example.KEPT


def test_episode_returns_match_each_copy_played_alone():
    """The vector env's bookkeeping against single environments seeded as its copies are."""
    envs = example.Environments("CartPole-v1", seed=7)
    actions = np.random.default_rng(0).integers(2, size=(300, example.COPIES))
    for a in actions:
        envs.step(a)
    ended = []  # (time, copy, return) from each copy played on its own
    for i in range(example.COPIES):
        env = gym.make("CartPole-v1")
        env.reset(seed=7 + i)
        total = 0.0
        for t, a in enumerate(actions[:, i]):
            _, reward, terminated, truncated, _ = env.step(int(a))
            total += reward
            if terminated or truncated:
                ended.append((t, i, total))
                total = 0.0
                env.reset()
    ended.sort()
    assert list(envs.finished) == [r for _, _, r in ended][-example.KEPT:]
    assert envs.score() == pytest.approx(np.mean([r for _, _, r in ended][-example.LAST:]))


def test_a_member_reloaded_from_its_checkpoint_carries_on_bit_for_bit(tmp_path):
    a = member()
    a.step()
    a.save(tmp_path / "a.pt")
    a.step()
    b = member(seed=99)  # other weights, environments and random state until it loads
    b.load(tmp_path / "a.pt")
    b.step()
    assert b.evaluate() == a.evaluate()
    assert list(b.envs.finished) == list(a.envs.finished)
    for x, y in zip(a.agent.state_dict().values(), b.agent.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_a_copy_reseeded_after_an_exploit_departs_from_its_donor(tmp_path):
    a = member()
    a.step()
    a.save(tmp_path / "a.pt")
    a.step()
    b = member(seed=99)
    b.load(tmp_path / "a.pt")
    b.reseed(12345)
    b.step()
    assert list(b.envs.finished) != list(a.envs.finished)


def test_the_environment_variable_selects_acrobot(monkeypatch):
    monkeypatch.setenv("POPULACE_ENV", "Acrobot-v1")
    spec = importlib.util.spec_from_file_location("rl_acrobot_test", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.space["env"].value == "Acrobot-v1"
    m = module.PPO()
    m.build({**GOOD, "env": "Acrobot-v1"}, 0)
    m.step()
    m.step()  # 512 steps per copy: each has ended an episode (Acrobot stops one at 500)
    got = m.evaluate()
    assert got["episodes"] >= example.COPIES and -500 <= got["return"] < 0


# 8 Acrobot members' scores at steps 3 and 6 (a run of seed 1): most still at -500 (no
# episode reached the goal), three climbing
ACROBOT_STEP_6 = [[-500.0, -492.7], [-472.6, -204.7], [-500.0, -500.0], [-491.0, -500.0],
                  [-500.0, -353.6], [-473.8, -485.9], [-500.0, -205.2], [-500.0, -485.3]]


def test_the_examples_exploit_copies_on_acrobots_first_scores_where_the_t_test_cannot():
    """Why the example truncates (its docstring): two ready-point scores a member give
    Welch's test no evidence, so the paper's t-test copies nobody, while truncation has
    the members still at -500 copy the ones that climb."""
    n = len(ACROBOT_STEP_6)
    snapshot = Snapshot(ids=np.arange(n), steps=np.full(n, 6),
                        scores=np.array([r[-1] for r in ACROBOT_STEP_6]), hparams=[{}] * n,
                        recent=ACROBOT_STEP_6)
    ttest = TTest(window=4)  # the example's exploit until 2026-12-06
    draws = [np.random.default_rng(seed) for seed in range(40)]
    assert all(ttest(snapshot, m, rng) is None for m in range(n) for rng in draws)
    exploit = make_exploit(**rl.config["exploit"])
    for m in (2, 3):  # at -500 at step 6: the bottom copies a member that scores better
        donors = {exploit(snapshot, m, rng) for rng in draws}
        assert None not in donors and all(snapshot.scores[d] > -500 for d in donors), donors
    for m in (1, 4, 6):  # climbing (-204.7, -353.6, -205.2): kept
        assert {exploit(snapshot, m, rng) for rng in draws} == {None}


def test_the_examples_explore_keeps_the_discount_and_lambda_off_their_bounds():
    """A factor of 0.8 or 1.2 sends a discount of 0.99 out of [0.95, 0.999] and a lambda
    of 0.95 out of [0.8, 0.99]: clipped, they would sit at a bound after one explore. The
    example gives them added noise instead, so most copies land inside, near the donor."""
    explore = make_explore(**rl.config["explore"])
    rng = np.random.default_rng(0)
    start = {**GOOD, "gae_lambda": 0.95, "discount": 0.99}
    moved = [explore(start, rl.space, rng) for _ in range(200)]
    for name, (low, high) in (("discount", (0.95, 0.999)), ("gae_lambda", (0.8, 0.99))):
        values = np.array([h[name] for h in moved])
        inside = (values > low) & (values < high)
        assert inside.mean() > 0.6, (name, values[:10])
        assert np.median(np.abs(values[inside] - start[name])) < 0.2 * (high - low)


def test_populace_runs_the_example_with_its_exploit(tmp_path):
    result = populace.run(rl.trainable, rl.space, store=tmp_path / "rl.db", script=EXAMPLE,
                          progress=False, **{**rl.config, "population": 2, "steps": 2,
                                             "ready_steps": 1, "executor": "inline"})
    store = open_store(tmp_path / "rl.db")
    try:
        assert store.config().run["exploit"] == rl.config["exploit"]
        results = store.results()
    finally:
        store.close()
    assert len(results) == 2 * 2
    assert all(r.metrics["env_steps"] == r.step * example.STEP_FRAMES for r in results)
    assert result.score == max(r.score for r in results if r.step == 2)


def rl_benchmark():
    """benchmarks/rl.py as a module (it imports its neighbours in benchmarks/)."""
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("rl_benchmark", BENCHMARKS / "rl.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_the_benchmark_pairs_seeds_and_tests_the_gap():
    """A median over noisy seeds can favour either side; the paired figures say whether
    one side is ahead seed by seed (Wilcoxon's signed-rank test)."""
    paired = rl_benchmark().paired
    pbt = [{"seed": s, "best": -90.0 - s} for s in range(10)]
    ahead = [{"seed": s, "best": -100.0 - 2 * s} for s in range(10)]
    text = paired(pbt, ahead, "best")
    assert "ahead in 10 of 10" in text and "p < 0.01" in text and "+14.5" in text
    mixed = [{"seed": s, "best": -90.0 - s + (3 if s % 2 else -3)} for s in range(10)]
    assert "ahead in 5 of 10" in paired(pbt, mixed, "best")
    assert paired(pbt[:5], ahead[:5], "best") == ""  # too few seeds for the test
    # only the seeds both ran are paired
    assert "ahead in 7 of 7" in paired(pbt, ahead[:7], "best")


def test_the_benchmark_plans_its_seeds_from_the_first_seed():
    """`--first-seed` plans seeds from it on (fresh seeds for a records file), Ray Tune on
    the first `--ray-seeds` of them, each after random search (Ray's initial members)."""
    plan = rl_benchmark().planned(32, 3, 2)
    assert [seed for seed, _ in plan] == [32, 33, 34]
    assert [("Ray Tune PBT" in methods) for _, methods in plan] == [True, True, False]
    for _, methods in plan[:2]:
        assert methods.index("random search") < methods.index("Ray Tune PBT")
    assert [seed for seed, _ in rl_benchmark().planned(0, 2, 5)] == [0, 1]


def test_learn_trains_the_seeds_from_the_first_seed(tmp_path, capsys):
    """`--learn` takes `--first-seed` as the driver does (it trained seeds 0.. before)."""
    output = tmp_path / "RESULTS.md"
    rl_benchmark().main(["--learn", "--seeds", "1", "--first-seed", "3", "--steps", "1",
                         "--output", str(output), "--records", str(tmp_path / "r.json")])
    assert capsys.readouterr().out.startswith("seed 3: ")
    assert "| seed 3 |" in output.read_text()
