"""populace: Population Based Training (Jaderberg et al., 2017, arXiv:1711.09846).

The public names are the imports at the end of this file, each written once. Type checkers
and IDEs read them as ordinary imports; at run time they are not executed (TYPE_CHECKING
is False) but read as text, and each name is imported from its module on first use
(PEP 562, as scientific Python's lazy_loader does from a stub), so `import populace` is
cheap: the `populace` command and every spawned worker process import only the modules
they use (no numpy, rich or torch for a name that does not need them). A new public name
is one more import line there, and nothing else.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing alone costs more than the rest here

__version__ = "0.1.0"


def _read_exports() -> dict[str, str]:
    """Each public name and its module, from the `from M import a, b` lines that end this
    file (plain string handling: importing `re` or `ast` would cost more than all else)."""
    with open(__file__, encoding="utf-8") as f:
        block = f.read().rpartition("\nif TYPE_CHECKING:")[2].partition("\n")[2]
    exports = {}
    for statement in block.split("from ")[1:]:
        module, _, names = statement.partition(" import ")
        for name in names.replace("(", " ").replace(")", " ").replace(",", " ").split():
            exports[name] = module.strip()
    return exports


_EXPORTS = _read_exports()  # public name -> the module that defines it
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> object:
    """Import the module behind a public name the first time it is asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'populace' has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# The public names, and nothing else, below: _read_exports reads these lines, so they
# are used though no code here names them.
# ruff: noqa: F401
if TYPE_CHECKING:
    from populace.api import run
    from populace.config import RunConfig
    from populace.errors import ConfigError, StorageFault
    from populace.function import Member
    from populace.results import RunFailed, RunResult, load_result
    from populace.snapshot import Snapshot
    from populace.space import Choice, Constant, Float, Int, Space
    from populace.strategies import (
        Keep,
        NoExploit,
        Noise,
        OwnState,
        Perturb,
        PerturbOrResample,
        Resample,
        Tournament,
        Truncation,
        TTest,
    )
    from populace.trainable import Trainable
