"""A real PostgreSQL 15 server for tests, from Debian's packages, started on first use.

`server()` installs postgresql-15 with apt-get when it is missing (we run as
root), runs initdb in a temporary folder (as the `postgres` user when we are
root: initdb refuses root), and starts the server on 127.0.0.1 on a free port
with no Unix socket. It stops when the test session ends. `schema_url()` gives
each test a fresh schema of its own, so tests never see each other's runs.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "populace"

_server: tuple[subprocess.Popen, str] | None = None
_schemas = itertools.count()


def _install() -> None:
    if (BIN / "initdb").is_file():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"PostgreSQL 15 is not installed ({BIN}/initdb is missing): "
                           "apt-get install postgresql-15")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql-15"],
                   check=True, env=env, capture_output=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, data: str) -> None:
    proc.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data, ignore_errors=True)


def server() -> str:
    """The URL of the session's server (database `postgres`), started on first call."""
    global _server
    if _server is not None:
        return _server[1]
    _install()
    data = tempfile.mkdtemp(prefix="populace-pg-")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", data, "-U", USER, "--auth=trust",
                                 "--encoding=UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        _as_postgres([str(BIN / "postgres"), "-D", data, "-p", str(port),
                      "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                      "-c", "fsync=off", "-c", "max_connections=200"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    atexit.register(_stop, proc, data)
    url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.1)
    _server = (proc, url)
    return url


def schema_url() -> str:
    """A URL whose tables go to a new, empty schema of the session's server."""
    base = server()
    name = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{base}?options=-csearch_path%3D{name}"


def database_url(name: str) -> str:
    """A URL of a new, empty database `name` (dropped first if a test left one)."""
    base = server()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


class OwnServer:
    """A PostgreSQL server of one test's own, run by pg_ctl, so the test may restart it.

    `restart(mode)` is `pg_ctl restart -m fast` or `-m immediate`; `stop()` and `start()`
    take it away and bring it back; `drop_connections()` ends every client's connection.
    """

    def __init__(self) -> None:
        _install()
        self.data = tempfile.mkdtemp(prefix="populace-pg-own-")
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", self.data, "-U", USER,
                                     "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        self.port = _free_port()
        self.base = f"postgresql://{USER}@127.0.0.1:{self.port}"
        self.start()

    def _ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   " -c fsync=off")
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", self.data, "-o", options,
                                     "-l", os.path.join(self.data, "log"), "-w", *args]),
                       check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str) -> None:
        self._ctl("restart", "-m", mode)

    def drop_connections(self) -> int:
        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE pid <> pg_backend_pid() AND backend_type ="
                                " 'client backend'").fetchall()
        return len(rows)

    def database(self, name: str) -> str:
        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.base}/{name}"

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.data, ignore_errors=True)
