"""Load a user's run script: a Python file that defines a trainable and its space.

A script defines `space` (a mapping of hparam names to dimensions), exactly
one `Trainable` subclass (or names it, or a training function taking a
`populace.Member`, `trainable`), and may set `config` (a
dict of default settings, e.g. the toy's population of two) and `initial`
(the starting hparams of each member).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from populace.errors import ConfigError
from populace.space import Space
from populace.trainable import Hooks

SCRIPT_MODULE = "populace_script_"  # the prefix of a loaded script's module name
DIGEST = "__populace_digest__"  # a loaded script's attribute: the digest of its file


@dataclass(frozen=True)
class Script:
    path: Path
    trainable: type[Hooks] | Callable[..., None]
    space: Space
    config: dict[str, Any] = field(default_factory=dict)
    initial: list[dict[str, Any]] | None = None


def load_script(path: str | Path) -> Script:
    """Import the script at `path` and find what a run needs in it."""
    path = Path(path).resolve()
    if path.is_dir():
        raise ConfigError(f"script must be a Python file, got {str(path)!r} (a folder): name "
                          "the .py file that defines the trainable and its space")
    if not path.is_file():
        raise ConfigError(f"script must be a Python file, got {str(path)!r} (no such file)")
    # a stable, unique module name, so classes defined in the script pickle by reference
    name = SCRIPT_MODULE + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    digest = source_digest(path)
    if module is None or getattr(module, DIGEST, None) != digest:  # new, or edited since
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"script must be a Python file, got {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        setattr(module, DIGEST, digest)
        sys.modules[name] = module
        # the script's folder is importable, as for `python script.py`: its own modules
        # beside it (from mydata import load) need no PYTHONPATH
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except BaseException as e:
            del sys.modules[name]
            if isinstance(e, ConfigError):  # e.g. Float(1.0, 0.0): the line names the hparam
                raise ConfigError(f"{_where(e, path)}{e}") from None
            raise
    return Script(
        path=path,
        trainable=_find_trainable(module, path),
        space=Space(_attr(module, "space", path)),
        config=dict(getattr(module, "config", {}) or {}),
        initial=getattr(module, "initial", None),
    )


def source_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a script's file: a run tells an edited script by it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _where(error: BaseException, path: Path) -> str:
    """"script x.py, line 12 (the line): " for the script's own line that raised."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    if not frames:
        return f"script {path.name}: "
    return f"script {path.name}, line {frames[-1].lineno} ({(frames[-1].line or '').strip()}): "


def _attr(module: Any, name: str, path: Path) -> Any:
    if not hasattr(module, name):
        raise ConfigError(f"script {path.name} must define {name!r}")
    return getattr(module, name)


def _find_trainable(module: Any, path: Path) -> type[Hooks] | Callable[..., None]:
    if hasattr(module, "trainable"):
        if inspect.isfunction(module.trainable):
            return module.trainable
        found = [module.trainable]
    else:
        found = [
            obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Hooks) and not inspect.isabstract(obj)
            and obj.__module__ == module.__name__
        ]
    if len(found) != 1 or not (inspect.isclass(found[0]) and issubclass(found[0], Hooks)):
        names = [getattr(c, "__name__", repr(c)) for c in found]
        functions = [name for name, obj in vars(module).items() if inspect.isfunction(obj)
                     and obj.__module__ == module.__name__
                     and list(inspect.signature(obj).parameters) == ["member"]]
        hint = (f": for the training function {functions[0]}, add `trainable = {functions[0]}`"
                if functions and not names else
                ": name the one to train with `trainable = ThatClass`" if names else "")
        raise ConfigError(
            f"script {path.name} must define one Trainable subclass, or name its trainable "
            f"(`trainable = train` for a training function); found "
            f"{', '.join(names) or 'none'}{hint}"
        )
    return found[0]
