"""A live dashboard: watch, explain and compare populations in the browser while they
train (`populace dashboard STORE ...`, `populace run ... --dashboard`).

`serve` runs it until interrupted; `start` runs it in a thread of this process (beside a
`populace.run` call, say) and hands back a `Dashboard` to stop it. It reads the stores
read-only (`data`), over a Starlette app (`app`) served by uvicorn; the page's charts
are Plotly.js's basic bundle, shipped in this package (`static/plotly-basic.min.js`: npm's
plotly.js-basic-dist-min 4.1.1 as published, MIT, its licence beside it): nothing is
fetched from the internet. Both need the `dashboard` extra:
`pip install 'populace[dashboard]'`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

from populace.errors import ConfigError

__all__ = ["Dashboard", "exposed", "serve", "start"]

def exposed(host: str) -> str | None:
    """The warning for a dashboard bound to `host`, None when only this machine reaches
    it (a loopback address)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (f"the dashboard listens on {host}: anyone who reaches this port reads the runs "
            "(their settings, hparams, scores and errors); it has no login")


def _uvicorn() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as e:
        raise ConfigError("the dashboard needs its extra: pip install "
                          f"'populace[dashboard]' ({e.name} is missing)") from None
    return uvicorn


class Dashboard:
    """A dashboard serving in a thread: its `url`, and `stop()`."""

    def __init__(self, stores: Sequence[str | os.PathLike[str]], host: str = "127.0.0.1",
                 port: int = 8080, poll_seconds: float = 2.0, warn: bool = True):
        uvicorn = _uvicorn()
        from populace.dashboard.app import create_app
        from populace.dashboard.data import Source

        if not stores:
            raise ConfigError("the dashboard needs at least one store")
        if warn and (warning := exposed(host)):
            warnings.warn(warning, stacklevel=3)
        self.sources = [Source(i, url) for i, url in enumerate(stores)]
        # a Host header check where the port is this machine's alone (IPv6's bracketed
        # names are not checked)
        hosts = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else None
        app = create_app(self.sources, poll_seconds, allowed_hosts=hosts)
        self._socket = _bind(host, port)
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}/"

    def run(self) -> None:
        """Serve in this thread until `stop` (or, in the main thread, Ctrl-C)."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            for source in self.sources:
                source.close()

    def start(self) -> Dashboard:
        self._thread = threading.Thread(target=self.run, name="populace-dashboard",
                                        daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"the dashboard cannot listen on {host}:{port}: {e.strerror}"
                          + (" (another program uses the port: --port another, or 0 for "
                             "any free one)" if port else "")) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def start(stores: Sequence[str | os.PathLike[str]], host: str = "127.0.0.1",
          port: int = 8080, poll_seconds: float = 2.0) -> Dashboard:
    """Serve the dashboard of `stores` in a thread of this process; `port` 0: any free
    port (the returned Dashboard's `url` says which). Warns when `host` is not a
    loopback address."""
    return Dashboard(stores, host, port, poll_seconds).start()


def serve(stores: Sequence[str | os.PathLike[str]], host: str = "127.0.0.1",
          port: int = 8080, poll_seconds: float = 2.0) -> None:
    """Serve the dashboard of `stores` until interrupted (Ctrl-C)."""
    Dashboard(stores, host, port, poll_seconds).run()
