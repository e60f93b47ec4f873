"""Imported by the local executor's fork server alone (see `populace.executors.forkserver`):
loads the run's script there, so that each worker forked from it starts with it."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

import populace.executors.source  # noqa: F401  a worker's own imports
from populace.executors.forkserver import SCRIPT_ENV
from populace.script import load_script

_script = os.environ.pop(SCRIPT_ENV, None)  # not passed on to the workers' children
if _script is not None:
    # any error of the script's is the worker's to report, when it loads it again
    with contextlib.suppress(BaseException):
        load_script(_script)
    if "torch" in sys.modules:
        # torch imports its compiler (seconds) at a process's first optimizer: here once,
        # not in each worker at its first member
        with contextlib.suppress(BaseException):
            importlib.import_module("torch._dynamo")
