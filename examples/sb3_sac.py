"""Stable-Baselines3's SAC on Pendulum-v1, tuned by PBT, with its replay buffer.

    populace run examples/sb3_sac.py --store runs/sb3-pendulum.db

Each member is SB3's own SAC (two layers of 64, its entropy coefficient learned); one
populace step is 500 environment steps of `SAC.learn`, a gradient step after each.
PBT tunes the learning rate, the soft target update rate tau, the discount and the
target entropy. The checkpoint keeps the replay buffer's filled rows (up to 20,000
transitions of Pendulum, 40 bytes each: 0.8 MB), so a copy learns from its donor's experience.
The score is the mean return of 5 deterministic episodes on separate environments at
every ready point, from the same starting states for every member.
"""

from __future__ import annotations

from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from populace import Float
from populace.integrations.sb3 import SB3Trainable

space = {
    "learning_rate": Float(1e-4, 3e-3, log=True),
    "tau": Float(0.002, 0.05, log=True),
    "gamma": Float(0.9, 0.995),
    "target_entropy": Float(-3.0, -0.1),
}
config = {"population": 4, "steps": 10, "ready_steps": 2, "score": "eval_return",
          "exploit": {"name": "truncation", "fraction": 0.25},
          "explore": {"name": "perturb-or-resample"}}


class Agent(SB3Trainable):
    algorithm = SAC
    kwargs = {"buffer_size": 20_000, "learning_starts": 200, "batch_size": 128,
              "policy_kwargs": {"net_arch": [64, 64]}, "device": "cpu"}
    timesteps = 500
    evaluation = 5  # eval_return: 5 deterministic episodes, the same starts for all

    def environment(self, hparams, seed):
        return make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
