"""PBT's decisions as pure functions of a population snapshot and a random generator.

`exploit` picks a donor, `explore` derives new hparams, `ready` says when a
member has finished a segment. The registries map the names used in config
files and on the command line to the classes.

Your own strategy follows the `Exploit` or `Explore` protocol: a function,
or a (frozen) dataclass with `__call__`, at the top level of a module that
every worker process can import. Pass the object to `populace.run`, or name
it in a config file as `"package.module:Name"` with its parameters beside
the name. `describe` turns an object into that name, which the run stores.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from typing import Any, Protocol

import numpy as np

from populace.space import ConfigError, Space
from populace.strategies.exploit import NoExploit, Tournament, Truncation, TTest
from populace.strategies.explore import (
    Keep,
    Noise,
    Perturb,
    PerturbOrResample,
    Resample,
    Rule,
)
from populace.strategies.ready import EverySeconds, EverySteps
from populace.strategies.snapshot import Snapshot

__all__ = [
    "EXPLOIT",
    "EXPLORE",
    "EverySeconds",
    "EverySteps",
    "Exploit",
    "Explore",
    "Keep",
    "NoExploit",
    "Noise",
    "Perturb",
    "PerturbOrResample",
    "Resample",
    "Rule",
    "Snapshot",
    "Tournament",
    "TTest",
    "Truncation",
    "describe",
    "make_exploit",
    "make_explore",
]


class Exploit(Protocol):
    """An exploit strategy: the donor `member_id` copies, or None to keep its own state.

    It must be pure: read `snapshot` (each member's id, step, latest score,
    hparams; `snapshot.ranking()` orders them best first, whatever the mode),
    draw randomness only from `rng`, and return another member's id. It runs
    inside the store's report transaction, so it must be quick and never
    touch files, processes or the database. An object with an int attribute
    `window` also gets each member's last `window` scores in `snapshot.recent`.
    """

    def __call__(
        self, snapshot: Snapshot, member_id: int, rng: np.random.Generator
    ) -> int | None: ...


class Explore(Protocol):
    """An explore strategy: new hparams from the (just copied) donor's hparams.

    It must be pure: return a new dict with every hparam of `space`, each
    valid for its dimension (`space.validate` passes), drawing randomness
    only from `rng`, and never mutate `hparams`. To honour per-hparam rules
    (`Float(..., explore=Noise(0.1))`), subclass `Rule` and write `mutate`.
    """

    def __call__(
        self, hparams: Mapping[str, Any], space: Space, rng: np.random.Generator
    ) -> dict[str, Any]: ...


EXPLOIT: dict[str, type] = {
    "truncation": Truncation, "tournament": Tournament, "ttest": TTest, "none": NoExploit,
}
EXPLORE: dict[str, type] = {
    "perturb": Perturb,
    "resample": Resample,
    "perturb-or-resample": PerturbOrResample,
    "noise": Noise,
    "keep": Keep,
}

# the arguments each kind is called with, to refuse a strategy of the wrong shape early
_SHAPES = {"exploit": ("snapshot", "member_id", "rng"), "explore": ("hparams", "space", "rng")}


def _build(kind: str, name: str, cls: type, params: dict[str, Any]) -> Any:
    """`cls(**params)`, refusing unknown parameters by name when `cls` is a dataclass."""
    if is_dataclass(cls):
        allowed = [f.name for f in fields(cls) if f.init]
        for key in params:
            if key not in allowed:
                raise ConfigError(f"{kind} {name!r} has no parameter {key!r}; "
                                  f"allowed: {', '.join(allowed) or 'none'}")
    try:
        return cls(**params)
    except TypeError as e:  # a required parameter is missing, or a class without fields
        raise ConfigError(f"{kind} {name!r}: {e}") from e


def _import(kind: str, path: str) -> Any:
    """The object named by "package.module:Qual.Name" or "package.module.Name"."""
    if ":" in path:
        module, _, qualname = path.partition(":")
    else:
        module, _, qualname = path.rpartition(".")
    if not module or not qualname:
        raise ConfigError(
            f"{kind} must be a dotted path like 'package.module:Name', got {path!r}"
        )
    try:
        target: Any = importlib.import_module(module)
        for attr in qualname.split("."):
            target = getattr(target, attr)
    except Exception as e:  # anything the module raises on import is the user's to see
        raise ConfigError(
            f"{kind} {path!r} cannot be imported: {type(e).__name__}: {e}. A strategy of "
            "your own must be importable as 'package.module:Name' in every worker process"
        ) from e
    return target


def _check_shape(kind: str, name: str, strategy: Any) -> None:
    """ConfigError unless `strategy` can be called the way the worker calls a `kind`."""
    shape = _SHAPES[kind]
    wanted = f"{kind}({', '.join(shape)})"
    if not callable(strategy):
        raise ConfigError(f"{kind} {name!r} must be callable as {wanted}, got {strategy!r}")
    try:
        signature = inspect.signature(strategy)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    try:
        signature.bind(*shape)
    except TypeError:
        raise ConfigError(
            f"{kind} {name!r} must be callable as {wanted}, like the built-in {kind} "
            f"strategies; its signature is {signature}"
        ) from None


def _make(kind: str, registry: dict[str, type], name: str, params: dict[str, Any]) -> Any:
    if isinstance(name, str) and name in registry:
        return _build(kind, name, registry[name], params)
    if not isinstance(name, str) or not ("." in name or ":" in name):
        raise ConfigError(
            f"{kind} must be one of {', '.join(registry)}; got {name!r}. A strategy of your "
            "own is named by its import path, 'package.module:Name'"
        )
    target = _import(kind, name)
    if inspect.isclass(target):
        strategy = _build(kind, name, target, params)
    else:
        if params:
            raise ConfigError(
                f"{kind} {name!r} is not a class, so it takes no parameters; got "
                f"{', '.join(params)}. Make it a (frozen) dataclass to give it parameters"
            )
        strategy = target
    _check_shape(kind, name, strategy)
    return strategy


def make_exploit(name: str, **params: Any) -> Exploit:
    """The exploit strategy `name` (registered, or "package.module:Name"), built from params.

    A class is called with `params`; a function is used as it is and takes none.
    """
    return _make("exploit", EXPLOIT, name, params)


def make_explore(name: str, **params: Any) -> Explore:
    """The explore strategy `name` (registered, or "package.module:Name"), built from params.

    A class is called with `params`; a function is used as it is and takes none.
    """
    return _make("explore", EXPLORE, name, params)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe(strategy: Any) -> dict[str, Any]:
    """`{"name": ..., **params}` for a run's stored config; `make_*(**d)` rebuilds it.

    A built-in gets its registered name; a strategy of your own its import path
    "module:QualName" and its dataclass fields (a function: the name alone).
    """
    for registry in (EXPLOIT, EXPLORE):
        for name, cls in registry.items():
            if type(strategy) is cls:
                params = asdict(strategy)
                return {"name": name, **{k: _plain(v) for k, v in params.items()}}
    if inspect.isclass(strategy):
        raise ConfigError(
            f"strategy must be an instance, got the class {strategy.__qualname__}; call it"
        )
    if is_dataclass(strategy):
        target: Any = type(strategy)
        params = {f.name: _plain(getattr(strategy, f.name)) for f in fields(strategy) if f.init}
    elif inspect.isfunction(strategy):
        target, params = strategy, {}
    else:
        raise ConfigError(
            "strategy must be a built-in strategy, a (frozen) dataclass instance or a "
            "function, so that a worker process can rebuild it from its import path; "
            f"got {strategy!r}"
        )
    name = f"{target.__module__}:{target.__qualname__}"
    if "<" in target.__qualname__:  # <lambda>, <locals>: no import path leads there
        raise ConfigError(
            f"strategy {name!r} must be defined at the top level of a module, so that "
            "worker processes can import it; not inside a function nor as a lambda"
        )
    if _import("strategy", name) is not target:
        raise ConfigError(
            f"strategy {name!r} does not import back as {target!r}; define it at the top "
            "level of an importable module"
        )
    try:
        json.dumps(params)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"strategy {name!r}: parameters are stored with the run, so they must be JSON "
            f"values (numbers, strings, bools, lists, dicts); got {params!r}"
        ) from e
    return {"name": name, **params}
