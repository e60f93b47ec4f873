"""Executors run workers: `inline` in this process, `local` in a pool of processes."""

from __future__ import annotations

from populace.executors.inline import run_inline
from populace.executors.local import run_local
from populace.executors.source import TrainableSource

__all__ = ["TrainableSource", "run_inline", "run_local"]
