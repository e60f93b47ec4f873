"""Where each hparam lives in a Stable-Baselines3 algorithm, and how it is put in force.

SB3 copies some hparams out of the attribute a user would set: the learning rate into
`lr_schedule` (a closure read at every update) and the optimizers' param groups, gamma
and GAE lambda into the rollout buffer, a fixed SAC entropy coefficient into a tensor,
PPO's clip range into a schedule. Setting the attribute alone is silently ignored
(ray-project/ray#62173: clip_param, lambda and lr perturbed by PBT and lost after a
restore). Each name below writes every place SB3 reads; any other name is refused, so
no hparam is dropped without a word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq
from stable_baselines3.common.utils import ConstantSchedule

from populace.errors import ConfigError
from populace.integrations.torch import NOT_HPARAMS

# hparams that set an array's shape, or the number of environments: a live member
# keeps its buffers, so they are fixed for a run (the trainable's `kwargs`)
SHAPES = {
    "n_steps": "sets the rollout buffer's shape (n_steps x n_envs) and the off-policy "
               "n-step buffer",
    "n_envs": "sets the number of environments and every buffer's shape",
    "buffer_size": "sets the replay buffer's shape",
}
# SB3 reads these through a schedule over the progress of one `learn` call, which
# restarts with every populace step: PBT's schedule is the one to tune
SCHEDULES = {
    "exploration_fraction": "exploration_rate",
    "exploration_initial_eps": "exploration_rate",
    "exploration_final_eps": "exploration_rate",
}

Setter = Callable[[BaseAlgorithm, Any], None]


def optimizers(model: BaseAlgorithm) -> list[torch.optim.Optimizer]:
    """Every optimizer the algorithm checkpoints (policy, actor, critic, entropy)."""
    found = []
    for name in model._get_torch_save_params()[0]:
        obj: Any = model
        for part in name.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.optim.Optimizer):
            found.append(obj)
    return found


def _learning_rate(model: BaseAlgorithm, value: float) -> None:
    # SB3 sets every optimizer's lr from lr_schedule at each update: both must change
    model.learning_rate = value
    model.lr_schedule = ConstantSchedule(float(value))
    for optimizer in optimizers(model):
        for group in optimizer.param_groups:
            group["lr"] = float(value)


def _gamma(model: BaseAlgorithm, value: float) -> None:
    model.gamma = value  # type: ignore[attr-defined]
    # the rollout buffer computes returns with its own copy; an n-step replay buffer too
    for buffer in (getattr(model, "rollout_buffer", None), getattr(model, "replay_buffer", None)):
        if buffer is not None and hasattr(buffer, "gamma"):
            buffer.gamma = value


def _gae_lambda(model: BaseAlgorithm, value: float) -> None:
    assert isinstance(model, OnPolicyAlgorithm)
    model.gae_lambda = value
    model.rollout_buffer.gae_lambda = value


def _schedule(name: str) -> Setter:
    def put(model: BaseAlgorithm, value: float) -> None:
        setattr(model, name, ConstantSchedule(float(value)))
    return put


def _ent_coef(model: BaseAlgorithm, value: float) -> None:
    if isinstance(model, SAC):
        if model.log_ent_coef is not None:
            raise ConfigError(
                f"hparam 'ent_coef': {value!r} cannot be set on a SAC whose entropy "
                f"coefficient is learned (ent_coef={model.ent_coef!r}); tune target_entropy, "
                "or give kwargs ent_coef=<a float> to fix it and tune that")
        model.ent_coef_tensor = torch.tensor(float(value), device=model.device)
    model.ent_coef = value  # type: ignore[attr-defined]


def _train_freq(model: BaseAlgorithm, value: int) -> None:
    assert isinstance(model, OffPolicyAlgorithm)
    unit = model.train_freq.unit if isinstance(model.train_freq, TrainFreq) else None
    model.train_freq = value
    if unit is not None:  # converted already (by _setup_model): keep its unit
        model.train_freq = TrainFreq(int(value), unit)


def _exploration_rate(model: BaseAlgorithm, value: float) -> None:
    assert isinstance(model, DQN)
    model.exploration_schedule = ConstantSchedule(float(value))
    model.exploration_rate = float(value)


def _attribute(name: str) -> Setter:
    def put(model: BaseAlgorithm, value: Any) -> None:
        setattr(model, name, value)
    return put


# hparam: (the algorithms that read it, how it is put in force)
LIVE: dict[str, tuple[tuple[type[BaseAlgorithm], ...], Setter]] = {
    "learning_rate": ((BaseAlgorithm,), _learning_rate),
    "gamma": ((BaseAlgorithm,), _gamma),
    "gae_lambda": ((OnPolicyAlgorithm,), _gae_lambda),
    "clip_range": ((PPO,), _schedule("clip_range")),
    "clip_range_vf": ((PPO,), _schedule("clip_range_vf")),
    "ent_coef": ((OnPolicyAlgorithm, SAC), _ent_coef),
    "target_entropy": ((SAC,), _attribute("target_entropy")),
    "vf_coef": ((OnPolicyAlgorithm,), _attribute("vf_coef")),
    "max_grad_norm": ((OnPolicyAlgorithm, DQN), _attribute("max_grad_norm")),
    "normalize_advantage": ((PPO, A2C), _attribute("normalize_advantage")),
    "n_epochs": ((PPO,), _attribute("n_epochs")),
    "target_kl": ((PPO,), _attribute("target_kl")),
    "batch_size": ((PPO, OffPolicyAlgorithm), _attribute("batch_size")),
    "tau": ((OffPolicyAlgorithm,), _attribute("tau")),
    "gradient_steps": ((OffPolicyAlgorithm,), _attribute("gradient_steps")),
    "learning_starts": ((OffPolicyAlgorithm,), _attribute("learning_starts")),
    "train_freq": ((OffPolicyAlgorithm,), _train_freq),
    "target_update_interval": ((DQN, SAC), _attribute("target_update_interval")),
    "exploration_rate": ((DQN,), _exploration_rate),
    "policy_delay": ((TD3,), _attribute("policy_delay")),
    "target_policy_noise": ((TD3,), _attribute("target_policy_noise")),
    "target_noise_clip": ((TD3,), _attribute("target_noise_clip")),
}


def allowed(model: BaseAlgorithm) -> list[str]:
    """The hparams a live `model` takes: its own from LIVE and its optimizers' keys."""
    own = [n for n, (kinds, _) in LIVE.items() if isinstance(model, kinds)]
    keys = {k for o in optimizers(model) for g in o.param_groups for k in g}
    return own + sorted(keys - set(NOT_HPARAMS) - {"lr"} - set(own))


def refuse_shapes(hparams: Iterable[str]) -> None:
    """Refuse, by name, an hparam that sets a buffer's shape: it is fixed for a run."""
    for name in hparams:
        if name in SHAPES:
            raise ConfigError(
                f"hparam {name!r}: {SHAPES[name]}, which a member keeps across exploits, "
                f"so PBT cannot change it; take it out of the space and give it in the "
                f"trainable's kwargs ({{{name!r}: ...}}), the same for every member")


def put(model: BaseAlgorithm, hparams: Mapping[str, Any], ignore: Iterable[str] = ()) -> None:
    """Put every hparam in force on a live `model`, over whatever a checkpoint restored.

    Names in `ignore` are left to the caller (read by its own `environment`, say).
    """
    skip = set(ignore)
    refuse_shapes(hparams)  # listed in ignore or not: the environments' count is a shape
    names = allowed(model)
    for name, value in hparams.items():
        if name in skip:
            continue
        if name in SCHEDULES and isinstance(model, DQN):
            raise ConfigError(
                f"hparam {name!r}: SB3 reads it through a schedule over one learn call, "
                f"which restarts at every populace step; tune {SCHEDULES[name]!r} (held "
                "constant, so PBT's schedule is the one it follows) instead")
        if name in LIVE and isinstance(model, LIVE[name][0]):
            LIVE[name][1](model, value)
        elif name in names:  # an optimizer's param-group key: eps, alpha, weight_decay...
            for optimizer in optimizers(model):
                for group in optimizer.param_groups:
                    if name in group:
                        group[name] = tuple(value) if isinstance(group[name], tuple) else value
        else:
            raise ConfigError(
                f"hparam {name!r} ({value!r}) has no place in a live "
                f"{type(model).__name__}; it takes {', '.join(names)}; list it in ignore "
                "if your environment reads it")
