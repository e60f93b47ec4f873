"""Stable-Baselines3 members: SB3's whole state in a checkpoint, and the explored hparams in
force after every load, read back from SB3's own logger.

The bug PBT users of RLlib hit (ray-project/ray#62173): clip_param, lambda and lr
perturbed by PBT and silently ignored after a restore, because the restored state
overwrites the config and the optimizer keeps the old lr. Here a copy's policy,
optimizers and counters are the donor's, and its next updates log the explored
learning rate and clip range (train/learning_rate, train/clip_range).
"""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from support.integrations import assert_segments_used
from support.paths import EXAMPLES

import populace.integrations.sb3 as sb3
from populace import Choice, Float, Int, run
from populace.errors import ConfigError
from populace.integrations.sb3 import SB3Trainable
from populace.script import load_script
from populace.store import Kind, open_store

SMALL = {"net_arch": [16, 16]}


class Cart(SB3Trainable):
    algorithm = PPO
    kwargs = {"n_steps": 64, "policy_kwargs": SMALL, "device": "cpu"}
    timesteps = 128  # one rollout of 2 x 64

    def environment(self, hparams, seed):
        return make_vec_env("CartPole-v1", n_envs=2, seed=seed)


class Pendulum(SB3Trainable):
    algorithm = SAC
    kwargs = {"buffer_size": 1000, "learning_starts": 50, "batch_size": 32,
              "policy_kwargs": SMALL, "device": "cpu"}
    timesteps = 100

    def environment(self, hparams, seed):
        return make_vec_env("Pendulum-v1", n_envs=1, seed=seed)


class Fresh(Pendulum):
    replay_buffer = False


PPO_HPARAMS = {"learning_rate": 1e-3, "clip_range": 0.2, "ent_coef": 0.01, "gamma": 0.99,
               "gae_lambda": 0.95, "n_epochs": 2, "batch_size": 64}
EXPLORED = {"learning_rate": 2.5e-3, "clip_range": 0.3, "ent_coef": 0.02, "gamma": 0.9,
            "gae_lambda": 0.8, "n_epochs": 3, "batch_size": 32}
SAC_HPARAMS = {"learning_rate": 1e-3, "tau": 0.01, "gamma": 0.98}


def trained(kind: type[SB3Trainable], hparams: dict, steps: int, seed: int = 1):
    member = kind()
    member.build(hparams, seed)
    for _ in range(steps):
        member.step()
    return member


def copied(kind: type[SB3Trainable], donor: SB3Trainable, own: dict, explored: dict, path):
    """What a worker does after an exploit: build the member, load the donor's
    checkpoint, reseed, apply the explored hparams."""
    donor.save(path)
    copy = kind()
    copy.build(own, seed=2)
    copy.load(path)
    copy.reseed(3)
    copy.apply(explored)
    return copy


def assert_same_state(copy: SB3Trainable, donor: SB3Trainable) -> None:
    for name, state in donor.model.get_parameters().items():
        mine = copy.model.get_parameters()[name]
        if name == "policy":
            assert all(torch.equal(mine[k], v) for k, v in state.items()), name
        else:  # an optimizer: its moments, step by step
            assert all(torch.equal(a, b) for s, t in zip(mine["state"].values(),
                                                        state["state"].values(), strict=True)
                       for a, b in zip(s.values(), t.values(), strict=True)), name
    assert copy.model.num_timesteps == donor.model.num_timesteps > 0
    assert copy.model._n_updates == donor.model._n_updates
    episodes = [[(e["r"], e["l"]) for e in m.model.ep_info_buffer] for m in (copy, donor)]
    assert episodes[0] == episodes[1]  # returns and lengths ("t" is the wall clock's)


def logged_while_stepping(member: SB3Trainable, key: str) -> set[float]:
    """Every value SB3's logger recorded under `key` during the member's next step."""
    before = len(member.recorder.dumps)
    member.step()
    values = {d[key] for d in member.recorder.dumps[before:] if key in d}
    return values | {member.logged()[key]}


def test_a_ppo_copy_has_the_donors_state_and_updates_with_its_explored_hparams(tmp_path):
    donor = trained(Cart, PPO_HPARAMS, 3)
    own = {**PPO_HPARAMS, "learning_rate": 3e-4, "clip_range": 0.1}  # before the copy
    copy = copied(Cart, donor, own, EXPLORED, tmp_path / "donor.ckpt")
    assert_same_state(copy, donor)
    updates = copy.model._n_updates

    assert logged_while_stepping(copy, "train/learning_rate") == {2.5e-3}
    assert copy.logged()["train/clip_range"] == 0.3
    assert copy.model._n_updates == updates + 3  # n_epochs passes over the rollout
    # what the next rollout's returns and advantages are computed with
    assert (copy.model.rollout_buffer.gamma, copy.model.rollout_buffer.gae_lambda) == (0.9, 0.8)
    assert {g["lr"] for g in copy.model.policy.optimizer.param_groups} == {2.5e-3}


def test_without_apply_the_explored_hparams_are_silently_lost(tmp_path, monkeypatch):
    """What the test above guards against: with the hparams' application turned off, the
    copy updates with the hparams it was built with, not the explored ones."""
    donor = trained(Cart, PPO_HPARAMS, 3)
    own = {**PPO_HPARAMS, "learning_rate": 3e-4, "clip_range": 0.1}
    copy = Cart()
    copy.build(own, seed=2)
    monkeypatch.setattr(sb3, "put", lambda *args, **kwargs: None)  # apply does nothing
    donor.save(tmp_path / "donor.ckpt")
    copy.load(tmp_path / "donor.ckpt")
    copy.apply(EXPLORED)
    assert logged_while_stepping(copy, "train/learning_rate") == {3e-4}
    assert copy.logged()["train/clip_range"] == 0.1


def test_a_sac_copy_keeps_the_donors_replay_buffer_and_learns_with_its_own_lr(tmp_path):
    donor = trained(Pendulum, SAC_HPARAMS, 2)
    explored = {"learning_rate": 4e-4, "tau": 0.05, "gamma": 0.9}
    copy = copied(Pendulum, donor, SAC_HPARAMS, explored, tmp_path / "donor.ckpt")
    assert_same_state(copy, donor)
    assert torch.equal(copy.model.log_ent_coef, donor.model.log_ent_coef)
    ours, theirs = copy.model.replay_buffer, donor.model.replay_buffer
    assert ours.pos == theirs.pos == 200
    for name in ("observations", "next_observations", "actions", "rewards", "dones"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name

    assert logged_while_stepping(copy, "train/learning_rate") == {4e-4}
    assert (copy.model.tau, copy.model.gamma) == (0.05, 0.9)
    optimizers = [copy.model.actor.optimizer, copy.model.critic.optimizer,
                  copy.model.ent_coef_optimizer]
    assert {g["lr"] for o in optimizers for g in o.param_groups} == {4e-4}


def test_without_its_replay_buffer_a_copy_gathers_learning_starts_again(tmp_path):
    donor = trained(Fresh, SAC_HPARAMS, 2)
    copy = copied(Fresh, donor, SAC_HPARAMS, SAC_HPARAMS, tmp_path / "donor.ckpt")
    assert copy.model.replay_buffer.pos == 0 and copy.model.num_timesteps == 200
    updates = copy.model._n_updates
    copy.step()  # 100 steps: 50 to gather, then one gradient step each
    assert copy.model._n_updates == updates + 50
    # a kept buffer costs its filled rows: 200 transitions of Pendulum, each two
    # observations of 3 float32, an action, a reward and two flags (40 bytes)
    trained(Pendulum, SAC_HPARAMS, 2).save(tmp_path / "kept.ckpt")
    extra = (tmp_path / "kept.ckpt").stat().st_size - (tmp_path / "donor.ckpt").stat().st_size
    assert 200 * 40 <= extra < 200 * 40 + 2000


class Small(SB3Trainable):  # CartPole for A2C and DQN, Pendulum for SAC and TD3
    kwargs = {"policy_kwargs": SMALL, "device": "cpu"}
    timesteps = 64
    env: str  # set by kind_of

    def environment(self, hparams, seed):
        return make_vec_env(self.env, n_envs=1, seed=seed)


def kind_of(algorithm):
    env = "CartPole-v1" if algorithm in (A2C, DQN) else "Pendulum-v1"
    extra = {"n_steps": 16} if algorithm is A2C else {"learning_starts": 16}
    return type(algorithm.__name__, (Small,), {"algorithm": algorithm, "env": env,
                                                "kwargs": {**Small.kwargs, **extra}})


LIVE = {
    A2C: {"learning_rate": 1e-3, "gamma": 0.95, "gae_lambda": 0.9, "ent_coef": 0.01,
          "vf_coef": 0.4, "max_grad_norm": 0.4, "alpha": 0.9, "eps": 1e-4},
    DQN: {"learning_rate": 1e-3, "gamma": 0.95, "tau": 0.5, "exploration_rate": 0.2,
          "train_freq": 2, "gradient_steps": 2, "target_update_interval": 8, "batch_size": 16},
    TD3: {"learning_rate": 1e-3, "gamma": 0.95, "tau": 0.02, "policy_delay": 3,
          "target_policy_noise": 0.1, "target_noise_clip": 0.3, "batch_size": 16},
    SAC: {"learning_rate": 1e-3, "target_entropy": -0.5, "train_freq": 2, "batch_size": 16},
}


@pytest.mark.parametrize("algorithm", [PPO, A2C, DQN, SAC, TD3], ids=lambda a: a.__name__)
def test_every_algorithm_reloaded_carries_on_bit_for_bit(algorithm, tmp_path):
    kind = Cart if algorithm is PPO else kind_of(algorithm)
    hparams = PPO_HPARAMS if algorithm is PPO else LIVE[algorithm]
    member = trained(kind, hparams, 2)
    member.save(tmp_path / "member.ckpt")
    member.step()
    again = kind()
    again.build(hparams, seed=9)  # another seed: everything must come from the file
    again.load(tmp_path / "member.ckpt")
    again.apply(hparams)
    again.step()
    assert_same_state(again, member)
    assert np.array_equal(again.model._last_obs, member.model._last_obs)


class Normalized(Cart):
    evaluation = 2

    def environment(self, hparams, seed):
        return VecNormalize(super().environment(hparams, seed), gamma=0.99)


def test_vecnormalize_statistics_travel_with_the_member(tmp_path):
    member = trained(Normalized, PPO_HPARAMS, 2)
    member.save(tmp_path / "member.ckpt")
    member.step()
    again = Normalized()
    again.build(PPO_HPARAMS, seed=9)
    again.load(tmp_path / "member.ckpt")
    again.apply(PPO_HPARAMS)
    again.step()
    assert_same_state(again, member)
    ours, theirs = again.model.get_env(), member.model.get_env()
    assert ours.obs_rms.count == theirs.obs_rms.count == pytest.approx(128 * 3 + 2)  # + resets
    assert np.array_equal(ours.obs_rms.mean, theirs.obs_rms.mean)
    assert np.array_equal(ours.ret_rms.var, theirs.ret_rms.var)
    # evaluated on separate environments through the member's statistics, frozen
    assert again.evaluate()["eval_return"] == member.evaluate()["eval_return"]
    assert ours.obs_rms.count == theirs.obs_rms.count


class Gravity(Pendulum):
    ignore = ("g",)  # read by environment

    def environment(self, hparams, seed):
        return make_vec_env("Pendulum-v1", n_envs=1, seed=seed, env_kwargs={"g": hparams["g"]})


def test_an_hparam_the_environment_reads_stays_the_copys_own(tmp_path):
    donor = trained(Gravity, {**SAC_HPARAMS, "g": 10.0}, 1)
    explored = {**SAC_HPARAMS, "g": 6.0}
    copy = copied(Gravity, donor, explored, explored, tmp_path / "donor.ckpt")
    ours, theirs = (m.model.get_env().envs[0].unwrapped for m in (copy, donor))
    assert np.array_equal(ours.state, theirs.state)  # where the pendulum is, mid-episode
    assert (ours.g, theirs.g) == (6.0, 10.0)  # the explored gravity, not the donor's


def test_every_live_hparam_lands_where_sb3_reads_it():
    dqn = trained(kind_of(DQN), LIVE[DQN], 1).model
    assert dqn.exploration_rate == 0.2 and dqn.exploration_schedule(1.0) == 0.2
    assert tuple(dqn.train_freq) == (2, dqn.train_freq.unit) and dqn.gradient_steps == 2
    a2c = trained(kind_of(A2C), LIVE[A2C], 1).model
    group = a2c.policy.optimizer.param_groups[0]
    assert (group["alpha"], group["eps"]) == (0.9, 1e-4)
    assert (a2c.rollout_buffer.gamma, a2c.rollout_buffer.gae_lambda) == (0.95, 0.9)
    td3 = trained(kind_of(TD3), LIVE[TD3], 1).model
    assert (td3.policy_delay, td3.target_policy_noise, td3.target_noise_clip) == (3, 0.1, 0.3)


def test_a_copy_draws_from_streams_of_its_own(tmp_path):
    donor = trained(Cart, PPO_HPARAMS, 2)
    donor.save(tmp_path / "donor.ckpt")
    donor.step()
    twin = copied(Cart, donor, PPO_HPARAMS, PPO_HPARAMS, tmp_path / "donor.ckpt")
    twin.step()
    assert not torch.equal(twin.model.policy.state_dict()["action_net.weight"],
                           donor.model.policy.state_dict()["action_net.weight"])
    generators = [e.unwrapped.np_random.bit_generator.state["state"]
                  for m in (twin, donor) for e in m.model.get_env().envs]
    assert len({str(g) for g in generators}) == len(generators)


@pytest.mark.parametrize(("kind", "hparams", "message"), [
    (Cart, {**PPO_HPARAMS, "n_steps": 128},
     "hparam 'n_steps': sets the rollout buffer's shape"),
    (Cart, {**PPO_HPARAMS, "momentum": 0.9},
     "hparam 'momentum' (0.9) has no place in a live PPO; it takes learning_rate, gamma"),
    (Pendulum, {"ent_coef": 0.1},
     "hparam 'ent_coef': 0.1 cannot be set on a SAC whose entropy coefficient is learned"),
    (kind_of(DQN), {"exploration_final_eps": 0.1},
     "tune 'exploration_rate' (held constant"),
])
def test_an_hparam_sb3_cannot_take_live_is_refused_by_name(kind, hparams, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kind().build(hparams, seed=0)


def test_a_step_that_is_not_whole_rollouts_is_refused():
    uneven = type("Uneven", (Cart,), {"timesteps": 100})
    with pytest.raises(ConfigError, match=r"timesteps must be a positive multiple of "
                                          r"n_steps x n_envs \(128\), got 100"):
        uneven().build(PPO_HPARAMS, seed=0)


def test_the_score_is_the_mean_of_the_last_episodes_sb3s_monitor_recorded():
    member = trained(Cart, PPO_HPARAMS, 4)
    monitors = [e.episode_returns for e in member.model.get_env().envs]
    assert sum(len(m) for m in monitors) > 10
    last = [e["r"] for e in member.model.ep_info_buffer][-10:]
    assert member.evaluate()["return"] == pytest.approx(np.mean(last))
    assert set(last) <= {r for m in monitors for r in m}


def test_the_evaluation_score_is_the_same_episodes_for_every_member():
    evaluated = type("Evaluated", (Cart,), {"evaluation": 3})
    member = trained(evaluated, PPO_HPARAMS, 1, seed=1)
    twin = evaluated()
    twin.build(PPO_HPARAMS, seed=5)  # other environments, the same weights
    twin.model.policy.load_state_dict(member.model.policy.state_dict())
    score = member.evaluate()["eval_return"]
    assert score == twin.evaluate()["eval_return"] == member.evaluate()["eval_return"] > 0


def test_a_pbt_run_updates_every_segment_with_the_hparams_in_force(tmp_path):
    store = tmp_path / "run.db"
    result = run(Cart, {"learning_rate": Float(1e-4, 3e-3, log=True),
                        "clip_range": Float(0.1, 0.3), "n_epochs": Int(1, 4),
                        "batch_size": Choice([32, 64])},
                 store=store, population=3, steps=4, ready_steps=1, executor="inline",
                 score="return", exploit="tournament", progress=False, seed=2)
    # the lr and clip range SB3 logged in each segment's last update are those populace
    # had in force, segments right after a copy of a donor with others included
    assert_segments_used(store, "train/learning_rate", "learning_rate")
    assert_segments_used(store, "train/clip_range", "clip_range")
    with closing(open_store(store)) as db:
        assert {r.metrics["timesteps"] for r in db.results() if r.step == 4} == {4 * 128.0}
        assert db.events(Kind.EXPLOIT)
    assert result.best.step == 4


@pytest.mark.parametrize("example", ["sb3_ppo.py", "sb3_sac.py"])
def test_the_examples_train_a_step(example):
    script = load_script(EXAMPLES / example)
    member = script.trainable()
    hparams = {name: dim.sample(np.random.default_rng(0)) for name, dim in script.space.items()}
    member.build(hparams, seed=0)
    member.step()
    assert np.isfinite(member.evaluate()[script.config["score"]])
