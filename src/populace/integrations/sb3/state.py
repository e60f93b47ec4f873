"""A Stable-Baselines3 algorithm's whole training state, as tensors and plain values.

`AlgorithmState` is one object `populace.integrations.torch.save_state` checkpoints: the
policy and every optimizer (SB3's own `get_parameters`), its torch variables (SAC's
learned entropy coefficient), the counters (`num_timesteps`, updates, episodes), the
episode statistics the score reads, the observation SB3 acts on next, the state of every
environment and of its wrappers (physics, time limit, Monitor, random generator), the
VecNormalize statistics and, when kept, the replay buffer's filled rows. The file holds
no hparam but the optimizers' param groups, which `put` writes over after every load.
It loads with `torch.load(weights_only=True)`: no pickled code runs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from populace.errors import ConfigError

COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_n_calls",
            "_current_progress_remaining")
REPLAY = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _encode(value: Any) -> tuple[bool, Any]:
    """(True, a value `weights_only` loads) for plain data; (False, None) for the rest."""
    if isinstance(value, np.generic):  # first: np.float64 is a float, and pickles as numpy
        return True, value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return True, {"ndarray": torch.from_numpy(value.copy())}
    if isinstance(value, np.random.Generator):
        return True, {"generator": value.bit_generator.state}
    if isinstance(value, RunningMeanStd):
        return True, {"rms": [_encode(v)[1] for v in (value.mean, value.var, value.count)]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v) for v in value]
        if all(ok and not isinstance(v, dict) for ok, v in items):
            return True, type(value)(v for _, v in items)
    return False, None


def _decode(value: Any, live: Any) -> Any:
    """The value `_encode` wrote, restored onto (or in place of) the `live` one."""
    if isinstance(value, dict) and "ndarray" in value:
        return value["ndarray"].numpy().copy()
    if isinstance(value, dict) and "generator" in value:
        state = value["generator"]
        if not isinstance(live, np.random.Generator):  # not drawn from yet on this side
            live = np.random.Generator(getattr(np.random, state["bit_generator"])())
        live.bit_generator.state = state
        return live
    if isinstance(value, dict) and "rms" in value:
        live.mean, live.var, live.count = (_decode(v, None) for v in value["rms"])
        return live
    return value


def plain_state(obj: Any) -> dict[str, Any]:
    """Every attribute of `obj` that is plain data: numbers, arrays, random generators."""
    state = {}
    for name, value in vars(obj).items():
        ok, encoded = _encode(value)
        if ok:
            state[name] = encoded
    return state


def load_plain_state(obj: Any, state: dict[str, Any]) -> None:
    for name, value in state.items():
        setattr(obj, name, _decode(value, getattr(obj, name, None)))


def environments(env: VecEnv) -> tuple[list[Any], list[Any]]:
    """(the vec-env wrappers from the outside in, the environments inside), for a
    `DummyVecEnv`, the one whose environments this process holds."""
    wrappers: list[Any] = []
    while isinstance(env, VecEnvWrapper):
        wrappers.append(env)
        env = env.venv
    if not isinstance(env, DummyVecEnv):
        raise ConfigError(
            f"environment: a {type(env).__name__}, whose environments live in other "
            "processes where populace cannot checkpoint them; return a DummyVecEnv "
            "(make_vec_env(..., vec_env_cls=DummyVecEnv), the default), wrapped as you like")
    return wrappers, list(env.envs)


def _chain(env: Any) -> list[Any]:
    """A gymnasium environment and every wrapper around it, outermost first."""
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def environment_state(env: VecEnv) -> dict[str, Any]:
    """The plain state of every vec-env wrapper and of every layer of each environment."""
    wrappers, envs = environments(env)
    return {"wrappers": [plain_state(w) for w in wrappers],
            "envs": [[plain_state(layer) for layer in _chain(sub)] for sub in envs]}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and not isinstance(a, (torch.Tensor, dict)) and a == b


def _changed(now: dict[str, Any], built: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in now.items() if k not in built or not _same(v, built[k])}


class AlgorithmState:
    """An SB3 algorithm as one object with `state_dict` and `load_state_dict`.

    Of the environments it keeps what changed since they were built (`built`, from
    `environment_state`): positions, time-limit counts, Monitor's returns, generators.
    What has not changed, such as a constant an hparam set when `environment` built it
    (Pendulum's `g`), stays the loading member's own, so a copy keeps its explored value.
    """

    def __init__(self, model: BaseAlgorithm, replay_buffer: bool,
                 built: dict[str, Any]) -> None:
        # only an off-policy algorithm has a replay buffer to keep
        self.model, self.built = model, built
        self.replay_buffer = replay_buffer and isinstance(model, OffPolicyAlgorithm)

    def state_dict(self) -> dict[str, Any]:
        model = self.model
        assert model.env is not None
        now, built = environment_state(model.env), self.built
        return {
            "parameters": model.get_parameters(),
            "variables": {n: getattr(model, n).detach().clone()
                          for n in model._get_torch_save_params()[1]},
            "counters": {n: getattr(model, n) for n in COUNTERS if hasattr(model, n)},
            "episodes": [{k: float(v) for k, v in e.items()} for e in model.ep_info_buffer or ()],
            "successes": [float(s) for s in model.ep_success_buffer or ()],
            "last": {n: _encode(getattr(model, n))[1] for n in
                     ("_last_obs", "_last_episode_starts", "_last_original_obs")},
            "action_space": _encode(model.action_space.np_random)[1],
            "wrappers": [_changed(w, b) for w, b in zip(now["wrappers"], built["wrappers"],
                                                        strict=True)],
            "envs": [[_changed(layer, b) for layer, b in zip(chain, chain_built, strict=True)]
                     for chain, chain_built in zip(now["envs"], built["envs"], strict=True)],
            "replay": self._replay() if self.replay_buffer else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = self.model
        assert model.env is not None
        model.set_parameters(state["parameters"], exact_match=True, device=model.device)
        with torch.no_grad():  # in place: the entropy optimizer holds these very tensors
            for name, value in state["variables"].items():
                getattr(model, name).copy_(value)
        for name, value in state["counters"].items():
            setattr(model, name, value)
        window = model._stats_window_size
        model.ep_info_buffer = deque(state["episodes"], maxlen=window)
        model.ep_success_buffer = deque(state["successes"], maxlen=window)
        for name, value in state["last"].items():
            setattr(model, name, _decode(value, None))
        _decode(state["action_space"], model.action_space.np_random)
        wrappers, envs = environments(model.env)
        for wrapper, saved in zip(wrappers, state["wrappers"], strict=True):
            load_plain_state(wrapper, saved)
        for env, chain in zip(envs, state["envs"], strict=True):
            for layer, saved in zip(_chain(env), chain, strict=True):
                load_plain_state(layer, saved)
        if state["replay"] is not None:
            self._load_replay(state["replay"])

    def _buffer(self) -> ReplayBuffer:
        model = self.model
        assert isinstance(model, OffPolicyAlgorithm)
        buffer = model.replay_buffer
        if type(buffer) is not ReplayBuffer:
            raise ConfigError(f"replay_buffer: True, but populace checkpoints only a plain "
                              f"ReplayBuffer, not a {type(buffer).__name__}; set "
                              "replay_buffer = False")
        return buffer

    def _replay(self) -> dict[str, Any]:
        buffer = self._buffer()
        rows = buffer.buffer_size if buffer.full else buffer.pos  # only the filled rows
        arrays = {n: torch.from_numpy(getattr(buffer, n)[:rows].copy()) for n in REPLAY
                  if isinstance(getattr(buffer, n, None), np.ndarray)}
        return {"pos": buffer.pos, "full": buffer.full, "arrays": arrays}

    def _load_replay(self, saved: dict[str, Any]) -> None:
        buffer = self._buffer()
        for name, rows in saved["arrays"].items():
            getattr(buffer, name)[:len(rows)] = rows.numpy()
        buffer.pos, buffer.full = saved["pos"], saved["full"]
