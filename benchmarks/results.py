"""The one file every benchmark writes its figures to, a section each."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(path: Path, heading: str, text: str) -> None:
    """Put `text` in `path` in place of the old section under `heading`; others stay."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == heading]
    if not starts:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:starts[0]]) + text + ("\n" + tail if tail else ""))


def seeds_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line: `--seeds` (0..N-1, N >= 1) and `--output`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=_at_least_one, default=5,
                        help="seeds 0..N-1 (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return int(text)


def measure(cases: Iterable[tuple[Any, ...]], run: Callable[..., R],
            line: Callable[[R], str]) -> tuple[list[R], float]:
    """`run(*case, folder)` for each case, in one temporary folder, printing `line` of each
    record as it comes; the records and the seconds they took in all."""
    began = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            records.append(run(*case, Path(folder)))
            print(line(records[-1]), flush=True)
    return records, time.perf_counter() - began


def produced_by(script: str, argv: Sequence[str], total: float) -> str:
    """The sentence that opens a section: the command, date, machine, load and duration."""
    import platform

    import torch

    command = shlex.join(["python", f"benchmarks/{script}", *argv])
    return (f"Produced by `{command}` (from the repository root, in its `.venv`) on "
            f"{datetime.date.today()}: {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPU cores shared with other work (load average "
            f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, torch "
            f"{torch.__version__}; the whole benchmark took {total:.0f} s, so wall times are "
            "indicative only.")
