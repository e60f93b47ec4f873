"""Stable-Baselines3 members: any SB3 algorithm trained by its own `learn`, under PBT.

    class Agent(SB3Trainable):
        algorithm = PPO
        kwargs = {"n_steps": 256, "batch_size": 64}   # fixed for the run
        timesteps = 2048                              # environment steps a populace step

        def environment(self, hparams, seed):
            return make_vec_env("CartPole-v1", n_envs=8, seed=seed)

One populace step is `learn(timesteps, reset_num_timesteps=False)`. The checkpoint
is the algorithm's whole training state (`state.AlgorithmState`: policy, optimizers,
timesteps, episode statistics, every environment's state and random generator,
VecNormalize statistics, the replay buffer when `replay_buffer` is set) and the
torch / NumPy / Python random states, in one file that loads with
`torch.load(weights_only=True)`. It holds no hparam SB3 would read back: after every
load `apply` puts the member's own in force where SB3 reads them (`hparams.put`),
a shape hparam (n_steps, n_envs, buffer_size) is refused by name, and a copy reseeds
its generators and its environments' from a seed of its own.

The score is the mean return of the last `episodes` finished training episodes
(`return`, the paper's last 10), or with `evaluation = N` the mean return of N
deterministic episodes on separate environments at every ready point (`eval_return`),
the same starting states for every member.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.utils import seeding
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from populace.errors import ConfigError
from populace.integrations.sb3.hparams import put, refuse_shapes
from populace.integrations.sb3.state import AlgorithmState, environment_state, environments
from populace.integrations.torch import load_state, reseed, save_state
from populace.trainable import Trainable

__all__ = ["SB3Trainable"]


class Recorder(KVWriter):
    """SB3's logger output kept in memory: what each update logged (train/learning_rate,
    train/clip_range, losses), for the member's metrics; nothing printed."""

    def __init__(self) -> None:
        self.dumps: list[dict[str, float]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]],
              step: int = 0) -> None:
        self.dumps.append({k: float(v) for k, v in key_values.items()
                           if isinstance(v, (int, float, np.integer, np.floating))})

    def close(self) -> None:
        """Nothing to close: the records live in memory."""


class SB3Trainable(Trainable):
    """A member trained by a Stable-Baselines3 algorithm's `learn`, `timesteps` a step.

    Write `environment(hparams, seed)`: the member's training environments, a
    (wrapped) DummyVecEnv such as `make_vec_env(...)`. Set `algorithm` (PPO, A2C, DQN,
    SAC, TD3, ...), `policy` and the algorithm's fixed arguments in `kwargs`; every
    hparam goes to the algorithm (see `populace.integrations.sb3.hparams`), or is
    listed in `ignore` when `environment` reads it.
    """

    algorithm: ClassVar[type[BaseAlgorithm]]
    policy: ClassVar[str] = "MlpPolicy"
    kwargs: ClassVar[Mapping[str, Any]] = {}
    timesteps: ClassVar[int] = 2048  # environment steps a populace step, over all envs
    episodes: ClassVar[int] = 10  # `return`: the mean of this many last training episodes
    evaluation: ClassVar[int] = 0  # > 0: `eval_return` over this many separate episodes
    evaluation_seed: ClassVar[int] = 0  # the evaluation's starting states, every member's
    # keep an off-policy replay buffer in the checkpoint (its filled rows: for each
    # transition two observations, the action, the reward and two flags)
    replay_buffer: ClassVar[bool] = True
    ignore: ClassVar[tuple[str, ...]] = ()
    threads: ClassVar[int | None] = 1  # intra-op threads per process, as TorchTrainable's

    @abstractmethod
    def environment(self, hparams: Mapping[str, Any], seed: int) -> VecEnv:
        """The member's training environments (a DummyVecEnv, wrapped as you like)."""

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        refuse_shapes(hparams)  # before anything is built: listed in ignore or not
        reseed(seed)  # the initial weights
        self.hparams = dict(hparams)
        # a copy: SB3 writes into the dicts it is given (policy_kwargs gets use_sde), and
        # the class's kwargs are every member's
        self.model = self.algorithm(self.policy, self.environment(hparams, seed),
                                    seed=seed, **copy.deepcopy(dict(self.kwargs)))
        env = self.model.get_env()
        assert env is not None
        # as built (refused here if populace cannot reach it): a checkpoint keeps what changed
        self._built = environment_state(env)
        self.recorder = Recorder()
        self.model.set_logger(Logger(None, [self.recorder]))
        self._check_timesteps()
        self._eval_env: VecEnv | None = None
        self._refilled_at = 0  # where the replay buffer started empty again (not kept)
        self._learning_starts = getattr(self.model, "learning_starts", 0)
        self.apply(hparams)

    def _check_timesteps(self) -> None:
        n_envs = self.model.n_envs
        rollout = (self.model.n_steps * n_envs if isinstance(self.model, OnPolicyAlgorithm)
                   else n_envs)
        if self.timesteps <= 0 or self.timesteps % rollout:
            what = ("n_steps x n_envs" if isinstance(self.model, OnPolicyAlgorithm)
                    else "n_envs")
            raise ConfigError(
                f"timesteps must be a positive multiple of {what} ({rollout}), got "
                f"{self.timesteps}: learn collects whole rollouts, so a step of another "
                "size would train more than it says")

    def step(self) -> None:
        """`timesteps` more environment steps of SB3's own `learn`, counters kept."""
        self.model.learn(self.timesteps, reset_num_timesteps=False, log_interval=1)

    def logged(self) -> dict[str, float]:
        """What SB3's logger recorded of the latest update (`train/learning_rate`,
        `train/clip_range`, the losses): an on-policy `learn` dumps its log before it
        trains, so the last update's records are still pending in the logger."""
        last = dict(self.recorder.dumps[-1]) if self.recorder.dumps else {}
        last.update({k: float(v) for k, v in self.model.logger.name_to_value.items()
                     if isinstance(v, (int, float, np.integer, np.floating))})
        return {k: v for k, v in last.items() if k.startswith("train/")}

    def evaluate(self) -> dict[str, float]:
        """`return` (NaN before an episode has finished), `timesteps`, what SB3 logged
        last (`train/learning_rate`...) and, with `evaluation`, `eval_return`."""
        finished = [e["r"] for e in self.model.ep_info_buffer or ()][-self.episodes:]
        metrics = {**self.logged(), "timesteps": float(self.model.num_timesteps),
                   "return": float(np.mean(finished)) if finished else float("nan")}
        if self.evaluation > 0:
            metrics["eval_return"] = self._evaluation()
        return metrics

    def _evaluation(self) -> float:
        if self._eval_env is None:
            self._eval_env = self.environment(self.hparams, self.evaluation_seed)
        train, env = self.model.get_env(), self._eval_env
        if isinstance(env, VecNormalize):  # the member's statistics, frozen
            assert train is not None
            sync_envs_normalization(train, env)
            env.training, env.norm_reward = False, False
        env.seed(self.evaluation_seed)
        mean, _ = evaluate_policy(self.model, env, n_eval_episodes=self.evaluation,
                                  deterministic=True, warn=False)
        return float(np.mean(mean))  # a float: evaluate_policy's mean return

    def save(self, path: Path) -> None:
        """The algorithm's whole state (`AlgorithmState`) and the random states, one file."""
        save_state(path, algorithm=AlgorithmState(self.model, self.replay_buffer, self._built))

    def load(self, path: Path) -> None:
        """Restore what `save` wrote; `apply` then puts the member's hparams in force."""
        if self.model._last_obs is not None:
            raise RuntimeError("load follows build: this member has trained already")
        load_state(path, algorithm=AlgorithmState(self.model, self.replay_buffer, self._built))
        if isinstance(self.model, OffPolicyAlgorithm) and not self.replay_buffer:
            # an empty buffer: gather learning_starts transitions again before training
            self._refilled_at = self.model.num_timesteps
            self.model.learning_starts = self._learning_starts + self._refilled_at

    def reseed(self, seed: int) -> None:
        """A copy's own streams: torch, NumPy, Python, the action space, and every
        environment's generator (the donor's would replay its episodes)."""
        reseed(seed)
        self.model.action_space.seed(seed)
        env = self.model.get_env()
        assert env is not None
        for i, sub in enumerate(environments(env)[1]):
            sub.unwrapped.np_random, _ = seeding.np_random(seed + i)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        """Put `hparams` in force where SB3 reads them (`hparams.put`)."""
        put(self.model, hparams, self.ignore)
        self.hparams = dict(hparams)
        if isinstance(self.model, OffPolicyAlgorithm) and "learning_starts" in hparams:
            self._learning_starts = int(hparams["learning_starts"])
            self.model.learning_starts = self._learning_starts + self._refilled_at
