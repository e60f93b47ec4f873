"""Whole `populace run` commands as processes: started, followed, and their workers found."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from support.paths import COUNTER, ROOT


def start_counter(store: Path, evals: Path, *flags: str, env: dict[str, str] | None = None,
                  stdout: int | None = subprocess.PIPE) -> subprocess.Popen:
    """`populace run` of the counter script in a process group of its own (so a test can
    clean up the whole run), each evaluation a line in `evals`."""
    return subprocess.Popen(
        [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", str(store),
         *flags],
        cwd=ROOT, env={**os.environ, "COUNTER_EVALS": str(evals), **(env or {})},
        start_new_session=True, stdout=stdout, stderr=subprocess.STDOUT,
    )


@contextmanager
def cleaned_up(procs: Sequence[subprocess.Popen]) -> Iterator[None]:
    """Kill what is left of each run's process group at the end, even of a failed test."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def train_externally(script: Path, url: str, workers: int, *flags: str) -> None:
    """The external executor: `populace run --workers 0` creates the run of `script` and
    waits, `workers` `populace worker` processes beside it train it; what is left of them
    is killed if the run fails."""
    command = [sys.executable, "-m", "populace.cli"]
    procs = [subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for argv in ([*command, "run", str(script), "--store", url, "--workers", "0",
                           "--quiet", *flags],
                          *([*command, "worker", "--store", url] for _ in range(workers)))]
    with cleaned_up(procs):
        outputs = [p.communicate(timeout=180)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * len(procs), outputs


def wait_for_evals(proc: subprocess.Popen, evals: Path, n: int, timeout: float = 60) -> None:
    """Return once the run's members have evaluated `n` times in all."""
    deadline = time.monotonic() + timeout
    while not evals.exists() or len(evals.read_text().splitlines()) < n:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, f"fewer than {n} evaluations after {timeout} s"
        time.sleep(0.02)


def workers_of(pid: int) -> list[int]:
    """The worker processes of the run `pid`: spawned by it, or forked by its fork server."""
    workers = []
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            workers.append(child)
        elif b"forkserver" in cmdline:
            workers += _children(child)
    return workers


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
