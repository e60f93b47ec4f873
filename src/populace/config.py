"""A run's settings: checked in full before anything starts, stored in the run."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from populace.checks import flag, is_real, number, one_of, refused, text, whole
from populace.errors import ConfigError
from populace.strategies import (
    EXPLOIT,
    EXPLORE,
    Exploit,
    Explore,
    Fire,
    Ready,
    curve_of,
    describe,
    make_exploit,
    make_explore,
    make_ready,
    segments_of,
    window_of,
)

MODES = ("max", "min")
INTERNAL = {"schedule"}  # set by `populace replay`, not by a user
EXECUTORS = ("inline", "local", "ray", "vectorized")
# executor vectorized: where the population's tensors live (auto: the GPU when there is one)
DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")

# The largest value of each size setting, checked before anything is allocated: a larger
# one is a typo (an extra zero, a pasted number), and would otherwise start drawing hparams,
# writing rows or spawning processes until the machine runs out of memory.
BOUNDS: dict[str, int | float] = {
    # every report ranks the whole population from its rows: at 10,000 members a decision
    # reads 10,000 rows (about 15 ms), and the run's store holds that many member rows
    "population": 10_000,
    # a member's step counter and the results it writes (steps / ready_steps rows each)
    "steps": 10**9,
    "ready_steps": 10**9,
    "burn_in": 10**9,
    # one process (or Ray task) and two store connections each
    "workers": 1024,
    "seed": 2**63 - 1,  # a 64-bit integer, as every store and numpy's seeding take it
    "keep_checkpoints": 1000,  # checkpoint files kept per member
    "retries": 1000,
    "ready_seconds": 7 * 86_400,  # a week
    "time_budget": 365 * 86_400,  # a year
    "lease_seconds": 86_400,  # a day: a dead worker's member waits this long at most
    "segment_timeout": 7 * 86_400,  # a week
    "cpus_per_worker": 1024,
    "gpus_per_worker": 1024,
}


# What each setting means, for the README's table (`populace.cli.settings_table` writes it,
# tests/project/test_docs.py holds the README to it): the default as shown when the field's own
# default does not say it, and what is allowed; {max} is the setting's bound in BOUNDS.
DOCS: dict[str, tuple[str | None, str]] = {
    "population": (None, "2 to {max}"),
    "workers": ("CPU cores", "0 to {max} (a population may be larger); 0: only "
                             "`populace worker`s train"),
    "steps": (None, "1 to {max}, per member"),
    "seed": (None, "0 to 2^63 - 1"),
    "exploit": ("truncation", "truncation (fraction in (0, 0.5], 0.2), tournament, ttest "
                              "(window 10, at most 1,000; significance 0.05), none, own "
                              "(each member explores its own hparams, copying no one), fire "
                              "(FIRE-PBT: sub-populations and evaluators, "
                              "docs/strategies/fire.md), `package.module:Name`"),
    "explore": ("perturb", "perturb (factors 0.8,1.2, at most 64), resample, "
                           "perturb-or-resample (probability 0.25), noise (scale), keep, "
                           "pb2 (segments 16, at most 100; the `pb2` extra), "
                           "`package.module:Name`"),
    "ready_steps": ("steps / 10", "1 to {max}: exploit/explore every this many steps"),
    "ready_seconds": ("off", "(0, {max}] (a week): instead of ready_steps, every this "
                             "many seconds"),
    "burn_in": (None, "0 to {max}: steps before a member's first exploit (it still donates)"),
    "synch": ("off", "every member reaches the ready point, then all are decided against "
                     "one snapshot (default: asynchronous, see below)"),
    "mode": (None, "max, min"),
    "score": (None, "a metric `evaluate` returns (or `member.report` gives)"),
    "objectives": ("off", "two or more metrics and their directions, `accuracy:max,width:min`"
                          ": exploit ranks by Pareto front, then crowding distance"),
    "executor": (None, "local (processes), inline (this process), ray (Ray tasks), "
                       "vectorized (one batched model, see below)"),
    "ray_address": ("start a cluster", "executor ray: a Ray address (`auto`, "
                                       "`ray://host:10001`)"),
    "cpus_per_worker": (None, "executor ray: (0, {max}]"),
    "gpus_per_worker": (None, "local and ray: [0, {max}]; 0.5 puts two workers on a GPU"),
    "device": (None, "executor vectorized: auto, cpu, cuda, cuda:N, mps"),
    "keep_checkpoints": (None, "1 to {max}, newest kept per member"),
    "lease_seconds": (None, "1 to {max} (a day): how long a silent worker keeps its member"),
    "segment_timeout": ("off", "(0, {max}] (a week): a segment that has not reported "
                               "within it is stopped and handled as one that raised; not "
                               "with executor inline or vectorized"),
    "retries": (None, "0 to {max}: a segment that raised or scored NaN/inf is trained "
                      "again this many times"),
    "replace_failed": (None, "a member that failed copies a healthy one instead of stopping"),
    "stop_score": ("off", "stop the run once a member's score reaches it (in the run's mode)"),
    "time_budget": ("off", "(0, {max}]: stop the run once it has trained this many "
                           "seconds (over every run command, not the time between them)"),
    "tensorboard": ("off", "a folder: live TensorBoard logs, one per member (`populace "
                           "export` writes them for any run)"),
    "mlflow": ("off", "a tracking URI, a folder for an `mlflow.db`, or `beside` (runs/x.mlflow"
                      ".db): a live MLflow run, one nested run per member"),
}


def _sized(name: str, value: Any, low: int) -> int:
    """`value` as an int from `low` to the setting's bound in BOUNDS."""
    return whole(None, name, value, low, int(BOUNDS[name]))


def _positive(name: str, value: Any) -> float:
    """`value` as a float in (0, the setting's bound in BOUNDS]."""
    return number(None, name, value, low=0, open_low=True, high=BOUNDS[name])


@dataclass
class RunConfig:
    """Everything that defines a run except the trainable and its space.

    Strategies are given as `{"name": ..., **params}` dicts (or built-in names);
    `exploit()` and `explore()` build the strategy objects.
    """

    population: int = 8
    steps: int = 100
    # worker processes or Ray tasks; 0: none here, `populace worker` processes train
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    exploit: dict[str, Any] = field(default_factory=lambda: {"name": "truncation"})
    explore: dict[str, Any] = field(default_factory=lambda: {"name": "perturb"})
    ready_steps: int | None = None  # default: ten ready points per member
    ready_seconds: float | None = None
    mode: str = "max"
    score: str = "score"
    # a multi-objective run: each metric ranked and its direction, {"accuracy": "max",
    # "width": "min"}; the first is the score shown where one number is shown
    objectives: dict[str, str] | None = None
    executor: str = "local"
    ray_address: str | None = None  # executor ray: the cluster to join (None: start one here)
    cpus_per_worker: float = 1.0  # executor ray: resources each worker task asks for
    gpus_per_worker: float = 0.0  # local and ray; fractions let several share one GPU
    device: str = "auto"  # executor vectorized: cpu, cuda, cuda:N, mps, or auto
    burn_in: int = 0  # steps a member trains before its first exploit
    synch: bool = False  # decide the whole population at once, generation by generation
    keep_checkpoints: int = 2
    lease_seconds: float = 60.0
    # a segment (claim to report) that takes longer is stopped, its worker process ended
    segment_timeout: float | None = None
    retries: int = 0  # times a segment that raised or scored NaN/inf is trained again
    replace_failed: bool = False  # a failed member copies a healthy one instead of stopping
    # stop early: once a member's score reaches stop_score (in the run's mode), or once
    # the run has trained time_budget seconds (run commands' time, not the gaps between)
    stop_score: float | None = None
    time_budget: float | None = None
    # live logs of the run as it trains (populace.export): a TensorBoard folder, an MLflow URI
    tensorboard: str | None = None
    mlflow: str | None = None
    # a replay's hparam schedule, [{"step": s, "hparams": {...}}, ...]: one member
    # trains from scratch following it, no exploit
    schedule: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.exploit = strategy_spec("exploit", self.exploit)
        self.explore = strategy_spec("explore", self.explore)
        self.validate()

    def validate(self) -> None:
        """Refuse any invalid setting, naming the field, the value and what is allowed.

        Each value is stored as checked: numpy ints as ints, int seconds as floats.
        """
        self._validate_sizes()
        self._validate_flags()
        self._validate_workers()
        self._validate_ready()
        self.mode = one_of(None, "mode", self.mode, MODES)
        self.score = text(None, "score", self.score, "the name of a metric")
        self._validate_objectives()
        exploit = self.make_exploit()  # built, so a bad parameter or window is refused now
        window_of(exploit)
        if curve_of(exploit) is not None and isinstance(exploit, Fire):
            exploit.layout(self.population)  # too small a population for its sub-populations
            if exploit.points > 1 and self.ready_seconds is not None:
                raise ConfigError(
                    f"exploit fire: points={exploit.points} spreads curve points evenly over "
                    "a segment, which needs its length in steps: use ready_steps, or "
                    f"points=1 (and budget >= 7) with ready_seconds={self.ready_seconds:g}")
        segments_of(self.make_explore())  # a bad segments window too
        self._validate_logs()

    def _validate_sizes(self) -> None:
        if self.schedule is None:
            self.population = _sized("population", self.population, 2)
        elif self.population != 1 or self.exploit["name"] != "none" or not self.schedule:
            raise ConfigError(
                f"a schedule is replayed by one member with exploit none, got population="
                f"{self.population}, exploit={self.exploit['name']!r}, "
                f"{len(self.schedule)} schedule entries"
            )
        self.steps = _sized("steps", self.steps, 1)
        self.workers = _sized("workers", self.workers, 0)
        self.seed = _sized("seed", self.seed, 0)
        self.keep_checkpoints = _sized("keep_checkpoints", self.keep_checkpoints, 1)
        self.burn_in = _sized("burn_in", self.burn_in, 0)
        self.retries = _sized("retries", self.retries, 0)

    def _validate_flags(self) -> None:
        self.replace_failed = flag(None, "replace_failed", self.replace_failed)
        self.synch = flag(None, "synch", self.synch)
        if self.synch and self.ready_seconds is not None:
            raise ConfigError(
                f"synch needs ready_steps (a generation ends at the same step for every "
                f"member), got ready_seconds={self.ready_seconds}"
            )

    def _validate_workers(self) -> None:
        """Where and how members train: the executor, its workers and their leases."""
        self.executor = one_of(None, "executor", self.executor, EXECUTORS)
        if self.workers == 0 and self.executor in ("inline", "vectorized"):
            raise ConfigError("workers=0 (train only in `populace worker` processes) needs "
                              f"executor local or ray, got executor={self.executor!r}")
        self.lease_seconds = _positive("lease_seconds", self.lease_seconds)
        if self.lease_seconds < 1:
            # renewed every third of it: shorter leases are stolen from healthy workers
            raise refused(None, "lease_seconds", ">= 1", self.lease_seconds)
        if self.segment_timeout is not None:
            self.segment_timeout = _positive("segment_timeout", self.segment_timeout)
            if self.executor in ("inline", "vectorized"):
                raise ConfigError(f"segment_timeout stops a segment by ending its worker "
                                  f"process: executor {self.executor} trains in this process, "
                                  "which cannot end itself; use executor local")
        if self.ray_address is not None:
            self.ray_address = text(None, "ray_address", self.ray_address,
                                    "a Ray cluster address such as 'ray://host:10001' or 'auto'")
        self.cpus_per_worker = _positive("cpus_per_worker", self.cpus_per_worker)
        # fractions let several workers share one GPU; 0: none
        self.gpus_per_worker = number(None, "gpus_per_worker", self.gpus_per_worker,
                                      low=0, high=BOUNDS["gpus_per_worker"])
        if not (isinstance(self.device, str) and DEVICE.fullmatch(self.device)):
            raise refused(None, "device", "one of auto, cpu, cuda, cuda:N (a GPU's index), mps",
                          self.device, sep=";")

    def _validate_ready(self) -> None:
        if self.ready_steps is not None and self.ready_seconds is not None:
            raise ConfigError(
                f"give ready_steps or ready_seconds, not both; got ready_steps="
                f"{self.ready_steps}, ready_seconds={self.ready_seconds}"
            )
        if self.ready_steps is not None:
            self.ready_steps = _sized("ready_steps", self.ready_steps, 1)
        if self.ready_seconds is not None:
            self.ready_seconds = _positive("ready_seconds", self.ready_seconds)
        if self.stop_score is not None:
            if not is_real(self.stop_score) or not math.isfinite(self.stop_score):
                raise refused(None, "stop_score", "a finite number", self.stop_score)
            self.stop_score = float(self.stop_score)
        if self.time_budget is not None:
            self.time_budget = _positive("time_budget", self.time_budget)

    def _validate_objectives(self) -> None:
        """Several metrics ranked at once: each named, each max or min; then the first is
        the score and its direction the mode."""
        if self.objectives is None:
            return
        allowed = "a mapping of two or more metric names to max or min"
        if not isinstance(self.objectives, dict) or len(self.objectives) < 2:
            raise refused(None, "objectives", allowed, self.objectives)
        self.objectives = {text(None, "objectives", name, "the name of a metric"):
                           one_of(None, f"objectives[{name!r}]", mode, MODES)
                           for name, mode in self.objectives.items()}
        if self.exploit["name"] == "ttest":
            raise ConfigError("exploit ttest compares one score's recent values: with "
                              "objectives, use truncation or tournament (they rank by "
                              "Pareto front)")
        self.score, self.mode = next(iter(self.objectives.items()))

    def _validate_logs(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard = text(None, "tensorboard", self.tensorboard, "a folder")
        if self.mlflow is not None:
            self.mlflow = text(None, "mlflow", self.mlflow, "an MLflow tracking URI, a folder "
                               "or 'beside'")

    def make_exploit(self) -> Exploit:
        params = dict(self.exploit)
        return make_exploit(params.pop("name"), **params)

    def make_explore(self) -> Explore:
        params = dict(self.explore)
        return make_explore(params.pop("name"), **params)

    def window(self) -> int:
        """How many recent scores per member the exploit strategy reads (0: none)."""
        return window_of(self.make_exploit()) or 0

    def curve(self) -> int:
        """How many curve points per member the exploit strategy reads (0: none; FIRE-PBT)."""
        return curve_of(self.make_exploit()) or 0

    def points(self) -> int:
        """How many curve points a segment records (1: its end's; above 1 only for
        FIRE-PBT's `points`)."""
        exploit = self.make_exploit()
        return exploit.points if isinstance(exploit, Fire) else 1

    def groups(self) -> list[int] | None:
        """FIRE-PBT's layout, for `Store.create`: each member's sub-population, 1..n, or 0
        for an evaluator; None for every other exploit (one population)."""
        exploit = self.make_exploit()
        if not isinstance(exploit, Fire):
            return None
        return [int(g) for g in exploit.layout(self.population).groups]

    def segments(self) -> int:
        """How many recent segments per member the explore strategy reads (0: none)."""
        return segments_of(self.make_explore()) or 0

    def scheduled(self, step: int) -> dict[str, Any] | None:
        """The replayed schedule's hparams in force from `step` on (None: not a replay)."""
        if not self.schedule:
            return None
        hparams: dict[str, Any] = [e for e in self.schedule if e["step"] <= step][-1]["hparams"]
        return hparams

    def segment_end(self, step: int) -> int:
        """The last step a segment from `step` may reach: the end, or a replay's next entry."""
        changes: list[int] = [e["step"] for e in self.schedule or () if e["step"] > step]
        return min([self.steps, *changes])

    def make_ready(self) -> Ready:
        """The rule ready_seconds or ready_steps names; by default, ten segments a member."""
        if self.ready_seconds is not None:
            return make_ready("seconds", seconds=self.ready_seconds)
        return make_ready("steps", steps=self.ready_steps or max(1, self.steps // 10))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a config file's or a store's mapping; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting {unknown[0]!r}{_hint(unknown[0])}; allowed: "
                f"{', '.join(sorted(known - INTERNAL))}"
            )
        return cls(**data)


def _hint(key: str) -> str:
    """Where a setting that is not one belongs: a strategy's parameter, or a ready rule."""
    if key == "ready":
        return " (ready_steps or ready_seconds)"
    param = key.rsplit("_", 1)[-1]  # noise_scale, resample_probability: the flags' names
    for kind, registry in (("exploit", EXPLOIT), ("explore", EXPLORE)):
        for name, strategy in registry.items():
            if is_dataclass(strategy) and param in {f.name for f in fields(strategy)}:
                return (f" ({param} is a parameter of {kind} {name!r}: {kind}: "
                        f"{{name: {name}, {param}: ...}})")
    return ""


def strategy_spec(kind: str, value: Any) -> dict[str, Any]:
    """A strategy as stored: `{"name": ..., **params}` from a name, such a dict, or an object."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(f"{kind} needs a 'name', got {dict(value)!r}")
        return dict(value)
    return describe(value)  # a strategy object; anything else is refused there
