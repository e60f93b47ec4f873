"""The one file every benchmark writes its figures to, a section each."""

from __future__ import annotations

from pathlib import Path

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
