"""Strategies and ready rules by name: the registries of built-ins, building one from a
stored description, and `describe`, which turns a strategy object into that description."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields, is_dataclass
from typing import Any, cast

from populace.errors import ConfigError
from populace.space import Space, dimension_from_dict
from populace.strategies.exploit import NoExploit, OwnState, Tournament, Truncation, TTest
from populace.strategies.explore import Keep, Noise, Perturb, PerturbOrResample, Resample
from populace.strategies.fire import Fire
from populace.strategies.pb2 import PB2
from populace.strategies.protocols import Exploit, Explore, Ready
from populace.strategies.ready import EverySeconds, EverySteps

EXPLOIT: dict[str, type] = {
    "truncation": Truncation, "tournament": Tournament, "ttest": TTest, "none": NoExploit,
    "own": OwnState, "fire": Fire,
}
EXPLORE: dict[str, type] = {
    "perturb": Perturb,
    "resample": Resample,
    "perturb-or-resample": PerturbOrResample,
    "noise": Noise,
    "keep": Keep,
    "pb2": PB2,
}
# the explores a dimension can take as its own rule: those that move one value (`mutate`)
RULES: dict[str, type] = {name: cls for name, cls in EXPLORE.items() if hasattr(cls, "mutate")}
# a ready rule by the unit it counts, as the settings ready_steps and ready_seconds name it
READY: dict[str, type] = {"steps": EverySteps, "seconds": EverySeconds}

# the arguments each kind is called with, to refuse a strategy of the wrong shape early
_SHAPES = {"exploit": ("snapshot", "member_id", "rng"), "explore": ("hparams", "space", "rng"),
           "ready": ("steps_since", "seconds_since")}


def _build(kind: str, name: str, cls: type, params: dict[str, Any]) -> Any:
    """`cls(**params)`, refusing unknown parameters by name when `cls` is a dataclass."""
    if is_dataclass(cls):
        allowed = [f.name for f in fields(cls) if f.init]
        for key in params:
            if key not in allowed:
                raise ConfigError(f"{kind} {name!r} has no parameter {key!r}; " + (
                    f"allowed: {', '.join(allowed)}" if allowed else "it takes no parameters"))
    if is_dataclass(cls):
        missing = [f.name for f in fields(cls) if f.init and f.name not in params
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ConfigError(f"{kind} {name!r}: needs the parameter(s) {', '.join(missing)}, "
                              f'e.g. {{"name": "{name}", "{missing[0]}": ...}} in a config '
                              "file")
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
            "your own must be importable as 'package.module:Name' in every worker process "
            "(a module beside your script: run with PYTHONPATH=. or install it)"
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
    return cast(Exploit, _make("exploit", EXPLOIT, name, params))


def make_explore(name: str, **params: Any) -> Explore:
    """The explore strategy `name` (registered, or "package.module:Name"), built from params.

    A class is called with `params`; a function is used as it is and takes none.
    """
    return cast(Explore, _make("explore", EXPLORE, name, params))


def make_ready(name: str, **params: Any) -> Ready:
    """The ready rule `name` (registered, or "package.module:Name"), built from params.

    `make_ready("steps", steps=10)` is `EverySteps(10)`. A rule of your own follows
    `Ready`: a (frozen) dataclass with `__call__` and `segment_steps`.
    """
    return cast(Ready, _make("ready", READY, name, params))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe(strategy: Any) -> dict[str, Any]:
    """`{"name": ..., **params}` for a run's stored config; `make_*(**d)` rebuilds it.

    A built-in gets its registered name; a strategy of your own its import path
    "module:QualName" and its dataclass fields (a function: the name alone).
    """
    builtin = {cls: name for registry in (EXPLOIT, EXPLORE) for name, cls in registry.items()}
    if type(strategy) in builtin:
        params = asdict(strategy)
        return {"name": builtin[type(strategy)], **{k: _plain(v) for k, v in params.items()}}
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


def rule_from_spec(spec: Any) -> Any:
    """The explore rule a config entry names: "keep" or {"name": "noise", "scale": 0.1}."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(
            f"explore must be a rule name or a mapping with a 'name', got explore={spec!r}"
        )
    params = dict(spec)
    return _make("explore", RULES, params.pop("name"), params)


def space_to_dict(space: Space) -> dict[str, dict[str, Any]]:
    """The space as stored with a run: each dimension's `to_dict`, and its own rule."""
    out = {}
    for name, dim in space.items():
        d = dim.to_dict()
        if dim.explore is not None:
            d["explore"] = describe(dim.explore)
        out[name] = d
    return out


def space_from_dict(d: Mapping[str, Mapping[str, Any]]) -> Space:
    """The space `space_to_dict` stored, or a config file's section, rules built by name."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"space must be a mapping of hparam name to dimension, got {d!r}")
    dims = {}
    for name, spec in d.items():
        try:
            if isinstance(spec, Mapping) and spec.get("explore") is not None:
                spec = {**spec, "explore": rule_from_spec(spec["explore"])}
            dims[name] = dimension_from_dict(spec)
        except ConfigError as e:
            raise ConfigError(f"hparam {name!r}: {e}") from None
    return Space(dims)
