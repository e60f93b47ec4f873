"""A run's settings from the command line: the flags of `populace run`, layered over the
script's `config` dict and a `--config` YAML or TOML file, weakest first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from populace.config import strategy_spec
from populace.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# flags that set a RunConfig field directly
FIELDS = ("population", "workers", "steps", "seed", "ready_steps", "ready_seconds", "mode",
          "score", "objectives", "executor", "keep_checkpoints", "burn_in", "synch", "ray_address",
          "cpus_per_worker", "gpus_per_worker", "device", "stop_score", "time_budget",
          "segment_timeout", "tensorboard", "mlflow")
READY = {"ready_steps", "ready_seconds"}
# flags that set a strategy's parameters rather than a setting of their own name
STRATEGY_FLAGS = {"exploit": ("fraction", "window", "significance"),
                  "explore": ("factors", "resample_probability", "noise_scale")}
OFF = "off"  # a stop setting turned off on a resume


def number_or_off(text: str) -> float | str:
    """A flag's number, or `off`."""
    if text == OFF:
        return OFF
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or off, got {text!r}") from None


def objectives(text: str) -> dict[str, str]:
    """`accuracy:max,width:min` as {"accuracy": "max", "width": "min"} (RunConfig checks
    the names and directions)."""
    pairs = [item.rpartition(":") for item in text.split(",")]
    if any(not name or not sep for name, sep, _ in pairs):
        raise argparse.ArgumentTypeError(
            f"--objectives must be metric:max or metric:min pairs, comma separated, got {text!r}")
    return {name: mode for name, _, mode in pairs}


def read_config_file(path: str) -> dict[str, Any]:
    """Settings from a YAML or TOML file (parsed as data: nothing in it is executed)."""
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror}") from e
    try:
        if file.suffix == ".toml":
            data = tomllib.loads(text.decode("utf-8"))
        elif file.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file must end in .yaml, .yml or .toml, got {path!r}")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config file {path!r} is not valid: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of settings")
    return data


def _strategy(settings: dict[str, Any], kind: str, name: str | None,
              params: dict[str, Any]) -> None:
    """Merge a strategy name and its flags into settings[kind] (a name or a dict)."""
    current = settings.get(kind)
    spec = {} if current is None else strategy_spec(kind, current)
    if name is not None and name != spec.get("name"):
        spec = {"name": name}
    spec.update({k: v for k, v in params.items() if v is not None})
    if spec:
        settings[kind] = spec


def _factors(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as e:
        raise ConfigError(f"factors must be numbers separated by commas, got {text!r}") from e


def settings_from(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """The run's settings: script defaults, then the config file, then the flags."""
    flags = {name: None if getattr(args, name) == OFF else getattr(args, name)
             for name in FIELDS if getattr(args, name) is not None}
    settings = dict(defaults)
    for layer in (read_config_file(args.config) if args.config else {}, flags):
        if READY & set(layer):  # a ready rule replaces the weaker layer's, of either kind
            for key in READY:
                settings.pop(key, None)
        settings.update(layer)
    _strategy(settings, "exploit", args.exploit, {
        "fraction": args.fraction, "window": args.window, "significance": args.significance,
    })
    _strategy(settings, "explore", args.explore, {
        "factors": _factors(args.factors), "probability": args.resample_probability,
        "scale": args.noise_scale,
    })
    explore = settings.get("explore")
    if (args.explore == "noise" and isinstance(explore, dict) and "scale" not in explore):
        raise ConfigError("--explore noise needs --noise-scale, the standard deviation of "
                          "the noise added to each hparam (e.g. --noise-scale 0.1)")
    return settings
