"""The local executor's worker processes, started from a fork server that imported the
run's script (and with it torch, scikit-learn...) while this process was still busy.

A spawned worker imports the script afresh, seconds for torch, after this process has
loaded it, checked it and written the store: a short run on the local executor took
twice the time of the same run inline. `start` launches multiprocessing's fork server
at once, with `populace.executors.preloaded` as its preload, which loads the script
named in the environment; each worker is then a fork of that server, with the script
already imported, and the environment of this process as it starts it (see
`populace.executors.local`). Where there is no fork server (Windows), or a worker is given GPUs
(CUDA_VISIBLE_DEVICES must be set before torch may have looked at the devices), the
workers are spawned as before.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

SCRIPT_ENV = "POPULACE_PRELOAD_SCRIPT"  # read, then cleared, by the fork server alone
_started: list[Path] = []  # the script the fork server was started with, once started


def start(script: str | os.PathLike[str]) -> None:
    """Start the fork server, importing `script` there while this process goes on (once
    a process: a later run's workers fork from the same server, and import their own
    script themselves)."""
    if _started or "forkserver" not in mp.get_all_start_methods():
        return
    from multiprocessing import forkserver  # Unix only

    mp.set_forkserver_preload(["populace.executors.preloaded"])
    os.environ[SCRIPT_ENV] = str(Path(script).resolve())
    try:
        forkserver.ensure_running()  # the server inherits the environment as it starts
    finally:
        del os.environ[SCRIPT_ENV]
    _started.append(Path(script).resolve())


def context(gpus_per_worker: float) -> ForkServerContext | SpawnContext:
    """Where worker processes come from: the fork server once `start`ed, else spawned
    (spawn, not fork: a forked child of a process that used torch threads can hang)."""
    if _started and not gpus_per_worker:
        return mp.get_context("forkserver")
    return mp.get_context("spawn")
