"""Store calls made again while the server is unavailable."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from populace.store.driver import StoreError, StoreUnavailable, safe_url

T = TypeVar("T")


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """Make a store call again on a fresh connection while the server is unavailable.

    Backoff is exponential with jitter (tenacity), for up to the store's `patience`
    seconds (a worker sets it to the run's lease: past that its member is someone
    else's anyway); then StoreError names the store, its password hidden. Every
    store call is one transaction, so a call that failed changed nothing, or (a
    commit whose answer was lost) is recognised when it is made again.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)  # the hot path: no retry machinery
        except StoreUnavailable:
            pass
        import tenacity

        try:
            for attempt in tenacity.Retrying(
                    retry=tenacity.retry_if_exception_type(StoreUnavailable),
                    wait=tenacity.wait_exponential(multiplier=0.05, max=2.0)
                    + tenacity.wait_random(0, 0.05),
                    stop=tenacity.stop_after_delay(self.patience), reraise=True):
                with attempt:
                    return method(self, *args, **kwargs)
        except StoreUnavailable as e:
            raise StoreError(f"cannot reach the store {safe_url(self.url)} for "
                             f"{self.patience:g} s: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    return call
