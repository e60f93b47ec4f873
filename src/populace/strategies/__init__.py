"""PBT's decisions as pure functions of a population snapshot and a random generator.

`exploit` picks a donor, `explore` derives new hparams, `ready` says when a
member has finished a segment. The registries map the names used in config
files and on the command line to the classes.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from populace.space import ConfigError
from populace.strategies.exploit import NoExploit, Tournament, Truncation, TTest
from populace.strategies.explore import Perturb, PerturbOrResample, Resample
from populace.strategies.ready import EverySeconds, EverySteps
from populace.strategies.snapshot import Snapshot

__all__ = [
    "EXPLOIT",
    "EXPLORE",
    "EverySeconds",
    "EverySteps",
    "NoExploit",
    "Perturb",
    "PerturbOrResample",
    "Resample",
    "Snapshot",
    "Tournament",
    "TTest",
    "Truncation",
    "describe",
    "make_exploit",
    "make_explore",
]

EXPLOIT: dict[str, type] = {
    "truncation": Truncation, "tournament": Tournament, "ttest": TTest, "none": NoExploit,
}
EXPLORE: dict[str, type] = {
    "perturb": Perturb,
    "resample": Resample,
    "perturb-or-resample": PerturbOrResample,
}


def _make(kind: str, registry: dict[str, type], name: str, params: dict[str, Any]) -> Any:
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(f"{kind} must be one of {', '.join(registry)}; got {name!r}")
    cls = registry[name]
    allowed = [f.name for f in fields(cls)]
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"{kind} {name!r} has no parameter {key!r}; allowed: {', '.join(allowed) or 'none'}"
            )
    return cls(**params)


def make_exploit(name: str, **params: Any) -> Truncation | Tournament | NoExploit:
    """The exploit strategy registered as `name`, built from config-file parameters."""
    return _make("exploit", EXPLOIT, name, params)


def make_explore(name: str, **params: Any) -> Perturb | Resample | PerturbOrResample:
    """The explore strategy registered as `name`, built from config-file parameters."""
    return _make("explore", EXPLORE, name, params)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe(strategy: Any) -> dict[str, Any]:
    """`{"name": ..., **params}` for a run's stored config; `make_*(**d)` rebuilds it."""
    for registry in (EXPLOIT, EXPLORE):
        for name, cls in registry.items():
            if type(strategy) is cls:
                params = asdict(strategy)
                return {"name": name, **{k: _plain(v) for k, v in params.items()}}
    known = ", ".join(cls.__name__ for r in (EXPLOIT, EXPLORE) for cls in r.values())
    raise ConfigError(f"strategy must be one of {known}; got {strategy!r}")
