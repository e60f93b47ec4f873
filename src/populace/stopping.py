"""A stop asked from outside (SIGTERM, as from Slurm or `kill`): like Ctrl-C, made reliable.

The handler raises KeyboardInterrupt wherever the signal lands, so a long step
stops at once and the worker gives its lease back. Code running at that moment
can lose the exception: an extension module being imported swallows it (seen
with numpy.random's first import, in a worker's first segment), a finaliser
prints and drops it. So the handler also leaves a mark, which the worker checks
between steps and before each claim: a lost stop costs one step, never the run.
"""

from __future__ import annotations

import signal

_asked = False


def _interrupt(signum: int, frame: object) -> None:
    global _asked
    _asked = True
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM interrupt this process like Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for (its first one may have been lost)."""
    if _asked:
        raise KeyboardInterrupt
