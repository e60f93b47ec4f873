"""A framework's own training loop, run in a thread that stops where populace steps.

Lightning's `Trainer.fit` and Transformers' `Trainer.train` own their loops: they
restore a checkpoint, build optimizers and schedulers, and train to the end. To
train such a loop one populace step at a time, the loop runs in a thread and a
callback of the framework calls `pause()` at each step's end (an epoch, N batches);
the member's `step` resumes it and waits for the next pause. Between two steps the
loop is stopped inside its callback, where the framework itself saves checkpoints,
so the member's `save`, `evaluate` and `apply` run on a quiet, consistent state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Stopped(BaseException):
    """Raised at a pause in the loop's thread to end a loop no member needs any more.

    A BaseException, so a framework's `except Exception` handlers let it through.
    """


_GO, _STOP, _FINISHED = object(), object(), object()


class Paused:
    """A loop in its own thread, advanced from one `pause()` to the next."""

    def __init__(self) -> None:
        self._go: queue.Queue[object] = queue.Queue()
        self._back: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.finished = False

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, loop: Callable[[], object]) -> None:
        """Run `loop` in a thread until its first pause (or its end, or its error)."""
        self._thread = threading.Thread(target=self._run, args=(loop,), daemon=True,
                                        name="populace-loop")
        self._thread.start()
        self._wait()

    def resume(self) -> None:
        """Let the loop go on to its next pause; raise what it raised."""
        if self.finished:
            raise RuntimeError("the training loop has ended: it has no step left to train")
        self._go.put(_GO)
        self._wait()

    def pause(self) -> None:
        """In the loop's thread: hand control back, and wait to be resumed (or stopped)."""
        self._back.put(None)
        if self._go.get() is _STOP:
            raise Stopped

    def stop(self) -> None:
        """End a paused loop (the member is done with it), so its thread and memory go."""
        if self._thread is not None and self._thread.is_alive() and not self.finished:
            self._go.put(_STOP)
            self._thread.join()

    def _run(self, loop: Callable[[], object]) -> None:
        try:
            loop()
        except Stopped:
            return
        except BaseException as e:  # handed to the member's thread, which raises it
            self._back.put(e)
            return
        self._back.put(_FINISHED)

    def _wait(self) -> None:
        answer = self._back.get()
        if answer is _FINISHED:
            self.finished = True
        elif isinstance(answer, BaseException):
            self.finished = True
            raise answer
