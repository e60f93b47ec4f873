"""A stop asked from outside (SIGTERM, SIGHUP, as from systemd, Kubernetes, Slurm or
`kill`): like Ctrl-C, made reliable.

The handler raises KeyboardInterrupt wherever the signal lands, so a long step
stops at once and the worker gives its lease back. Code running at that moment
can lose the exception: an extension module being imported swallows it (seen
with numpy.random's first import, in a worker's first segment), a finaliser
prints and drops it. So the handler also leaves a mark, which the worker checks
between steps and before each claim: a lost stop costs one step, never the run.
A second signal raises nothing: it would cut short the clean-up the first began
(a run's main process stopping its worker processes). Ctrl-C (SIGINT) is marked too, so
a press that an import swallowed still stops the run (a cluster run's head, waiting on
its workers, polled on for ever), and each press raises, as Python's own handler does:
a second one is how a user cuts a stuck clean-up short.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # besides Ctrl-C's SIGINT (`_ctrl_c`)
HANDLED = (*SIGNALS, signal.SIGINT)  # every signal whose stop is marked

_asked = False
_signal = signal.SIGINT  # the last stop asked for: Ctrl-C unless a handler saw another


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _asked, _signal
    if _asked:
        return
    _asked, _signal = True, signal.Signals(signum)
    raise KeyboardInterrupt


def _ctrl_c(signum: int, frame: FrameType | None) -> None:
    global _asked, _signal
    if not _asked:
        _asked, _signal = True, signal.SIGINT
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP interrupt this process like Ctrl-C, and mark every stop."""
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)
    signal.signal(signal.SIGINT, _ctrl_c)


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP interrupt like Ctrl-C, so a run's main process stops its
    workers rather than leaving them to train on, and every stop is marked for `check`.
    After, the handlers and the mark are as they were (none, outside any run), so a run
    started again in the same Python (a notebook's cell rerun after Ctrl-C) trains. Does
    nothing outside the main thread, where no handler can be set."""
    global _asked
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    was = _asked
    stop_on_signals()
    try:
        yield
    finally:
        # a press meanwhile waits for the handlers it meets after, so none of this run's
        # is left behind, nor its mark
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, previous)
        try:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            _asked = was
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def stop_with_parent() -> None:
    """In a worker process: stop as on SIGTERM once the process that started it is gone
    (killed with -9, it could stop nobody), so no worker trains on as an orphan."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="populace-parent").start()


def exit_status() -> int:
    """A stopped command's exit status, as the shell reports a process the signal ended:
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(_signal)


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for (its first one may have been lost)."""
    if _asked:
        raise KeyboardInterrupt
