"""Stable-Baselines3's PPO on gymnasium's classic control, tuned by PBT.

    populace run examples/sb3_ppo.py --store runs/sb3-cartpole.db
    POPULACE_ENV=Acrobot-v1 populace run examples/sb3_ppo.py --store runs/sb3-acrobot.db

Each member is SB3's own PPO (MlpPolicy, two tanh layers of 64) in 4 copies of the
environment; one populace step is 2048 environment steps of `PPO.learn` (two rollouts
of 256 steps per copy). PBT tunes the learning rate, the clip range, the entropy
coefficient, GAE lambda, the discount, the number of epochs and the minibatch size;
populace puts each one where SB3 reads it after every exploit
(`populace.integrations.sb3`). The rollout length, a buffer's shape, is fixed. The
score is the mean return of the last 10 finished training episodes. The environment
is a Constant hparam, so the store records it and a replay on the other one is
refused.
"""

from __future__ import annotations

import os

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from populace import Choice, Constant, Float, Int
from populace.integrations.sb3 import SB3Trainable

ENV = os.environ.get("POPULACE_ENV", "CartPole-v1")  # or Acrobot-v1

space = {
    "learning_rate": Float(1e-4, 3e-3, log=True),
    "clip_range": Float(0.1, 0.3),
    "ent_coef": Float(1e-4, 3e-2, log=True),
    "gae_lambda": Float(0.8, 0.99),
    "gamma": Float(0.95, 0.999),
    "n_epochs": Int(2, 10),
    "batch_size": Choice([64, 128, 256]),
    "env": Constant(ENV),
}
config = {"population": 6, "steps": 12, "ready_steps": 2, "score": "return",
          "exploit": {"name": "truncation", "fraction": 0.25},
          "explore": {"name": "perturb-or-resample"}}


class Agent(SB3Trainable):
    algorithm = PPO
    kwargs = {"n_steps": 256, "device": "cpu"}
    timesteps = 2048  # two rollouts of 4 x 256 environment steps
    ignore = ("env",)  # read by environment

    def environment(self, hparams, seed):
        return make_vec_env(hparams["env"], n_envs=4, seed=seed)
