"""`populace.run`: start or resume a run and return its result."""

from __future__ import annotations

import ast
import inspect
import math
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from populace import stopping
from populace.checkpoints import MARKER, CheckpointStorage
from populace.collect import collect, grace_for
from populace.config import RunConfig
from populace.display import Display, best_shown, members_table
from populace.display import console as make_console
from populace.errors import ConfigError
from populace.executors import TrainableSource, check_matches, execute, preflight
from populace.function import Member
from populace.mend import delete
from populace.owner import run_storage
from populace.results import RunResult, result_of
from populace.script import SCRIPT_MODULE, source_digest
from populace.space import Space
from populace.store import (
    RunRecord,
    Status,
    Store,
    beside,
    is_postgres,
    open_store,
    store_exists,
)
from populace.store.driver import safe_url
from populace.strategies import Fire, space_to_dict
from populace.trainable import Hooks

if TYPE_CHECKING:
    from rich.console import Console

# settings that may change when a run is resumed: they do not change its result
RESUMABLE = ("workers", "executor", "ray_address", "cpus_per_worker", "gpus_per_worker",
             "device", "stop_score", "time_budget", "tensorboard", "mlflow")
STOPS = ("stop_score", "time_budget")  # resumable, and read by every worker from the store


def default_checkpoints(store: str | os.PathLike[str]) -> Path:
    """Checkpoints of the store `runs/x.db` go to `runs/x.checkpoints/`."""
    return beside(store, ".checkpoints").resolve()


def checkpoint_root(checkpoints: str | os.PathLike[str] | None,
                    store: str | os.PathLike[str]) -> str:
    """Where a new run's checkpoints go, as stored: an absolute folder or an fsspec URL."""
    if checkpoints is None:
        _check_unclaimed(default_checkpoints(store), beside=True)
        return str(default_checkpoints(store))
    text = os.fspath(checkpoints)
    if "://" in text:
        return text  # remote storage: fsspec checks it at the first write
    folder = Path(text).resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"checkpoints must be a folder, got {str(folder)!r} (a file)")
    _check_unclaimed(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"checkpoint directory {str(folder)!r} is not writable: "
                          f"{str(existing)!r} does not let this user create files")
    return str(folder)


def _check_unclaimed(folder: Path, beside: bool = False) -> None:
    """Refuse, before the store is written, a folder that holds another run's checkpoints:
    another run's own, or, `beside` a new store, those of a run whose store was deleted
    by hand."""
    if not (folder / MARKER).exists():
        return
    if not beside:
        raise ConfigError(f"checkpoints {str(folder)!r} hold another run's checkpoints: "
                          "give each run a checkpoint folder of its own")
    raise ConfigError(
        f"checkpoints {str(folder)!r} hold another run's checkpoints (its store deleted by "
        f"hand?): delete that folder (rm -r {folder}) to start afresh there, or give "
        "--checkpoints another folder; `populace delete` removes a run's store and "
        "checkpoints together")


def run(
    trainable: type[Hooks] | Callable[[Member], None],
    space: Space | Mapping[str, Any],
    *,
    store: str | os.PathLike[str] = "populace.db",
    checkpoints: str | os.PathLike[str] | None = None,
    initial: Sequence[Mapping[str, Any]] | None = None,
    progress: bool = True,
    script: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    defaults: Mapping[str, Any] | None = None,
    **settings: Any,
) -> RunResult:
    """Train a population of `trainable` over `space` (settings: see `RunConfig`).

    `trainable` is a `Trainable` subclass, a `populace.vectorized.VectorizedTrainable`
    subclass (the whole population as one batched model), or a training function that
    receives a `populace.Member` (see `populace.function`).

    A store that already holds a run resumes it: the trainable and space must be
    those it started with, the settings given must agree with the stored ones,
    except those of `RESUMABLE` (where and how it trains), and `steps` may grow, to
    train a finished run on. `overwrite=True` deletes the run in `store` (its
    checkpoints too) and starts a new one. `defaults` (a script's `config`) are settings
    a new run takes where `settings` give none: a resume keeps its stored ones instead,
    unless the run never trained, when it starts again as `defaults` and `settings` say.
    """
    space = space if isinstance(space, Space) else Space(space)
    _check_guarded(settings)
    script = script if script is not None else _script_of(trainable, settings)
    _clear(store, trainable, space, {**(defaults or {}), **settings}, overwrite)
    if store_exists(store):
        db, config = _resume(store, trainable, space, settings)
    else:
        db, config = _create(store, trainable, space, {**(defaults or {}), **settings},
                             checkpoints, initial, script)
    try:
        source = (TrainableSource(script=Path(script)) if script is not None
                  else TrainableSource(trainable=trainable, space=space))
        console = make_console(quiet=not progress)
        _retry_if_edited(db, _digest(trainable, script))
        if any(m.status != Status.FAILED for m in db.members()):
            _train(db, config, source, console)
        return _summarize(db, config, console, store)  # every member failed: says what to run
    finally:
        db.close()


def _digest(trainable: Any, script: str | os.PathLike[str] | None) -> str | None:
    """The digest of the file that defines the trainable (None: it has none, as in a
    notebook), by which a run command tells that it was edited since the last one."""
    module = sys.modules.get(getattr(trainable, "__module__", ""))
    file = script if script is not None else getattr(module, "__file__", None)
    return source_digest(file) if file is not None and Path(file).is_file() else None


def _retry_if_edited(db: Store, digest: str | None) -> None:
    """Failed members train again when the script was edited since the last run command
    (the fix of what failed them, most likely); the digest is stored for the next one."""
    stored = db.meta("source")
    failed = [m.id for m in db.members() if m.status == Status.FAILED]
    if failed and digest is not None and stored is not None and digest != stored:
        db.retry_failed(failed)
        print(f"populace: the script changed since member(s) {', '.join(map(str, failed))} "
              "failed: they train again from their checkpoints", file=sys.stderr)
    db.remember_source(digest)


def _clear(store: str | os.PathLike[str], trainable: Any, space: Space,
           settings: Mapping[str, Any], overwrite: bool) -> None:
    """Delete the run in `store` when asked to, or when it never trained and what it is
    resumed with differs: a new run starts there."""
    if overwrite and store_exists(store):
        removed = delete(store)
        print(f"populace: deleted the run in {safe_url(os.fspath(store))} and its {removed} "
              "checkpoint file(s)", file=sys.stderr)
    if store_exists(store) and _untrained_and_changed(store, trainable, space, settings):
        delete(store)
        print(f"populace: the run in {safe_url(os.fspath(store))} never trained a segment "
              "and its settings or script changed since: it starts again as given now",
              file=sys.stderr)


def _resume(store: str | os.PathLike[str], trainable: Any, space: Space,
            settings: Mapping[str, Any]) -> tuple[Store, RunConfig]:
    """The run in `store`, opened to go on, once what it is resumed with agrees with it."""
    db = open_store(store)
    try:
        check_matches(db.config(), trainable, space)
        run_storage(db)  # a copy's or a missing storage refused before the run changes
        config = _resume_config(db, settings)
        db.stop(None)  # stopped early before: its stop settings are looked at afresh
        _say_leased(db)
    except BaseException:
        db.close()
        raise
    return db, config


def recorded_checkpoints(root: str, store: str | os.PathLike[str]) -> str:
    """The checkpoint folder as the store records it: relative to a SQLite store's folder
    when it lies in it (a copied or moved run folder then finds its own), else as is."""
    if is_postgres(store) or "://" in root:
        return root
    beside_store = Path(store).resolve().parent
    folder = Path(root)
    return str(folder.relative_to(beside_store)) if folder.is_relative_to(beside_store) else root


def _create(store: str | os.PathLike[str], trainable: Any, space: Space,
            settings: Mapping[str, Any], checkpoints: str | os.PathLike[str] | None,
            initial: Sequence[Mapping[str, Any]] | None, script: str | os.PathLike[str] | None
            ) -> tuple[Store, RunConfig]:
    """A new run in `store`; everything is checked before the store is written, so a
    mistake leaves nothing."""
    config = RunConfig.from_dict(settings)
    hparams = _initial(space, config, initial)
    if config.schedule:
        _check_schedule(space, config.schedule)
    preflight(trainable, hparams[0], config)
    _warn_idle(config)
    root = checkpoint_root(checkpoints, store)
    if checkpoints is None and is_postgres(store):
        print(f"populace: no --checkpoints given, so checkpoints go to {root} on "
              f"this machine ({socket.gethostname()}): a worker on another machine "
              "cannot reach them and will refuse to train; give a shared folder or an "
              "fsspec URL for a run trained from several machines", file=sys.stderr)
    db = open_store(store)
    try:
        db.create(RunRecord(
            run=config.to_dict(), space=space_to_dict(space),
            checkpoints=recorded_checkpoints(root, store),
            script=None if script is None else str(Path(script).resolve()),
            trainable=f"{trainable.__module__}:{trainable.__qualname__}",
            window=config.window(),
            segments=config.segments(),
            curve=config.curve(),
        ), hparams, groups=config.groups())
    except BaseException:
        # nothing of the run was written (create is one transaction): leave no file
        # behind that a second attempt would take for a store to resume
        db.close()
        db.driver.remove()
        raise
    return db, config


def _train(db: Store, config: RunConfig, source: TrainableSource, console: Console) -> None:
    """Train the run with the executor its config names, showing its progress."""
    storage = run_storage(db)
    _collect(db, storage)  # what a killed run left behind
    # no progress shown: no thread polling the store and redrawing a bar nobody sees,
    # waking up beside the training (a vectorized run's torch threads wait on each other)
    display = (nullcontext() if console.quiet
               else Display(db.url, config.population * config.steps, console))
    with stopping.stopped_by_signals(), display, _live(db, config):
        db.begin_session()  # the time budget counts training time, not the gaps between
        try:
            execute(db, source, config)
        finally:
            db.end_session()
    _collect(db, storage)


def _summarize(db: Store, config: RunConfig, console: Console,
               store: str | os.PathLike[str]) -> RunResult:
    """The run's result, its best members shown as a table (none with progress off:
    rendered, a table of thousands would cost a second for nothing)."""
    result = result_of(db)
    if console.quiet:
        return result
    shown = best_shown(result.members, config.mode)
    console.print(members_table(shown, score=config.score, mode=config.mode))
    if len(shown) < len(result.members):
        failed = sum(m.status == Status.FAILED for m in result.members)
        console.print(f"the best {len(shown)} of {len(result.members):,} members"
                      + (f" ({failed:,} failed)" if failed else "")
                      + f": `populace status {safe_url(os.fspath(store))}` lists every one",
                      markup=False, highlight=False, soft_wrap=True)
    return result


def _live(db: Store, config: RunConfig) -> AbstractContextManager[object]:
    """The live TensorBoard and MLflow logs the settings ask for (none: nothing to do)."""
    if config.tensorboard is None and config.mlflow is None:
        return nullcontext()
    from populace.export import Follow  # tensorboardX or mlflow only for a run that logs

    return Follow(db.url, config.tensorboard, config.mlflow)


def _collect(db: Store, storage: CheckpointStorage) -> None:
    """Remove the orphan files a killed worker left, and say so."""
    removed = collect(db, storage, grace_for(db))
    if removed:
        print(f"populace: removed {len(removed)} checkpoint file(s) no checkpoint names "
              f"(left by a killed worker) from {storage.url}", file=sys.stderr)


def _initial(space: Space, config: RunConfig,
             initial: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Each member's starting hparams: the given ones, or drawn from the prior (FIRE-PBT
    draws its sub-populations' space-filling: `Fire.initial`)."""
    if initial is None:
        rng = np.random.default_rng(config.seed)
        exploit = config.make_exploit()
        if isinstance(exploit, Fire):
            return exploit.initial(space, config.population, rng)
        return [space.sample(rng) for _ in range(config.population)]
    if len(initial) != config.population:
        raise ConfigError(
            f"initial must give hparams for each of the {config.population} members, "
            f"got {len(initial)}: give one per member, or leave initial out (a script's "
            "`initial` list too) to draw them from the space's prior"
        )
    return [space.normalize(h) for h in initial]


def _check_schedule(space: Space, entries: list[dict[str, Any]]) -> None:
    """A replayed schedule starts at step 0, rises, and holds hparams of the space."""
    steps = [e.get("step") for e in entries]
    whole = [s for s in steps if isinstance(s, int)]
    if len(whole) < len(steps) or whole[0] != 0 or whole != sorted(set(whole)):
        raise ConfigError(f"schedule steps must start at 0 and rise, got {steps}")
    for entry in entries:
        space.validate(entry["hparams"])


def _script_of(trainable: Any, settings: Mapping[str, Any]) -> Path | None:
    """The file a worker process imports `trainable` from, when it is not importable by
    its module's name: a class of a script read with `load_script`. One defined in a
    notebook or on stdin has no file at all: refused for the local executor's processes
    (inline trains in this one; Ray ships the class by value)."""
    module = sys.modules.get(getattr(trainable, "__module__", ""))
    file = getattr(module, "__file__", None)
    if module is not None and module.__name__.startswith(SCRIPT_MODULE) and file:
        return Path(file)
    in_memory = not file or file.startswith("<")  # a notebook has none, stdin "<stdin>"
    if (module is not None and module.__name__ == "__main__" and in_memory
            and settings.get("executor", "local") == "local" and settings.get("workers") != 0):
        raise ConfigError(
            f"{trainable.__qualname__} is defined in a notebook or on stdin, where worker "
            "processes cannot import it: put it in a file and pass script=that_file (or "
            "run `populace run that_file`), or train in this process with executor='inline'")
    return None


def _check_guarded(settings: Mapping[str, Any]) -> None:
    """Refuse a call at the top level of a script that the local executor's worker
    processes import: each would start the run again, and fail (a Python rule of
    processes started fresh), so say once what to do instead."""
    if settings.get("executor", "local") != "local" or settings.get("workers") == 0:
        return
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    spec = getattr(getattr(main, "__spec__", None), "name", None)
    if file is None or (spec is not None and (spec == "__main__"
                                              or spec.endswith(".__main__"))):
        return  # a notebook, stdin, or a package's __main__: workers never import it
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals.get("__name__") == "__main__"
                                     and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename != file or _guarded(file, frame.f_lineno):
        return
    raise ConfigError(
        f"populace.run is called at the top level of {Path(file).name} (line "
        f"{frame.f_lineno}), which the local executor's worker processes import: each would "
        "start the run again. Put the call under `if __name__ == \"__main__\":`, or train "
        "in this process with executor='inline'")


def _guarded(file: str, line: int) -> bool:
    """Whether `line` of the script `file` is under an `if __name__ == "__main__":`."""
    try:
        tree = ast.parse(Path(file).read_text())
    except (OSError, SyntaxError, ValueError):
        return True  # not read: nothing to say
    for node in tree.body:
        if node.lineno <= line <= (node.end_lineno or node.lineno):
            return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
    return True


def _untrained_and_changed(store: str | os.PathLike[str], trainable: Any, space: Space,
                           settings: Mapping[str, Any]) -> bool:
    """Whether the run in `store` has trained nothing (its every member failed or was
    stopped before a first report, say) while what it is resumed with differs: then
    there is nothing to keep, and refusing would leave only deleting files by hand."""
    db = open_store(store)
    try:
        if not db.exists() or db.results() or db.checkpoint_keys() or db.leased():
            return False
        try:
            check_matches(db.config(), trainable, space)
            RunConfig.from_dict({**db.config().run, **settings})
            stored = db.config().run
            return any(k not in RESUMABLE and v != stored.get(k) for k, v in
                       RunConfig.from_dict({**stored, **settings}).to_dict().items()
                       if k in settings)
        except ConfigError:
            return True
    finally:
        db.close()


def _say_leased(db: Store) -> None:
    """A resume finds members leased: by live workers elsewhere, or by workers of a run
    that was killed. Say so, and how long until they are trained again at the latest."""
    leased = db.leased()
    if leased:
        print(f"populace: member(s) {', '.join(map(str, leased))} are leased by other workers "
              f"(or by workers of a run that was killed): if those are gone, the members "
              f"are trained again once their leases expire, within "
              f"{math.ceil(max(leased.values()))} s", file=sys.stderr)


def _warn_idle(config: RunConfig) -> None:
    """Say so when a setting keeps every member from ever exploiting: the run would be
    random search without the user knowing."""
    if config.exploit["name"] == "none":
        return
    idle = [f"{name}={value} is not below steps={config.steps}" for name, value in
            (("burn_in", config.burn_in), ("ready_steps", config.ready_steps))
            if value is not None and value >= config.steps]
    if idle:
        print(f"populace: no member will ever exploit ({'; '.join(idle)}): the run is "
              "random search; lower it, or say so with --exploit none", file=sys.stderr)


def _resume_config(db: Store, settings: Mapping[str, Any]) -> RunConfig:
    """The stored config, after checking that `settings` do not contradict it; a run
    given more steps than it has is extended to them."""
    stored = db.config().run
    given = RunConfig.from_dict({**stored, **settings}).to_dict()
    for key, value in given.items():
        if key == "steps" and value > stored[key]:
            continue
        if key not in RESUMABLE and key in settings and value != stored[key]:
            more = " (steps can only grow)" if key == "steps" else ""
            raise ConfigError(
                f"{safe_url(db.url)} holds a run with {key}={stored[key]!r}; got {key}={value!r}"
                f"{more}. Use another store for a new run, or drop the setting to resume"
            )
    stops = {k: given[k] for k in STOPS if k in settings and given[k] != stored.get(k)}
    if stops:
        db.change_settings(stops)  # the workers read them from the store
    if given["steps"] > stored["steps"]:
        again = db.extend(given["steps"])
        print(f"populace: the run trains on from {stored['steps']} to {given['steps']} steps"
              f" ({len(again)} finished member(s) ready again)", file=sys.stderr)
    return RunConfig.from_dict({**db.config().run, **{k: given[k] for k in RESUMABLE}})
