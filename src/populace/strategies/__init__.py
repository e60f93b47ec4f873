"""PBT's decisions as pure functions of a population snapshot and a random generator.

`exploit` picks a donor, `explore` derives new hparams, `ready` says when a
member has finished a segment. The registries map the names used in config
files and on the command line to the classes.

Your own strategy follows the `Exploit` or `Explore` protocol: a function,
or a (frozen) dataclass with `__call__`, at the top level of a module that
every worker process can import. Pass the object to `populace.run`, or name
it in a config file as `"package.module:Name"` with its parameters beside
the name. `describe` turns an object into that name, which the run stores.
An exploit strategy that reads recent scores also declares `window`
(`Windowed`); `window_of` reads it. Ready rules follow `Ready`; `READY`
names the built-ins by the unit they count (the settings `ready_steps` and
`ready_seconds`). An explore strategy that learns from the population's recent segments
(PB2) declares `segments` (`Modelled`); `segments_of` reads it, and the worker then hands
it the snapshot. FIRE-PBT (`Fire`) declares `curve` (`Curved`); `curve_of` reads it, and
its `plan` says more than a donor (`populace.strategies.firedecide`).
"""

from __future__ import annotations

from populace.snapshot import Snapshot
from populace.strategies.exploit import (
    NoExploit,
    OwnState,
    Tournament,
    Truncation,
    TTest,
    curve_of,
    window_of,
)
from populace.strategies.explore import (
    Keep,
    Noise,
    Perturb,
    PerturbOrResample,
    Resample,
    Rule,
    segments_of,
)
from populace.strategies.fire import Fire
from populace.strategies.fireplan import Plan
from populace.strategies.pb2 import PB2
from populace.strategies.protocols import Curved, Exploit, Explore, Modelled, Ready, Windowed
from populace.strategies.ready import EverySeconds, EverySteps
from populace.strategies.registry import (
    EXPLOIT,
    EXPLORE,
    READY,
    describe,
    make_exploit,
    make_explore,
    make_ready,
    space_from_dict,
    space_to_dict,
)

__all__ = [
    "EXPLOIT",
    "EXPLORE",
    "READY",
    "Curved",
    "EverySeconds",
    "EverySteps",
    "Exploit",
    "Explore",
    "Fire",
    "Keep",
    "NoExploit",
    "Modelled",
    "OwnState",
    "Noise",
    "PB2",
    "Perturb",
    "PerturbOrResample",
    "Plan",
    "Ready",
    "Resample",
    "Rule",
    "Snapshot",
    "Tournament",
    "TTest",
    "Truncation",
    "Windowed",
    "describe",
    "make_exploit",
    "make_explore",
    "make_ready",
    "segments_of",
    "space_from_dict",
    "space_to_dict",
    "curve_of",
    "window_of",
]
