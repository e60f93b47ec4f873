"""Where the tests find what they run, named once, so a test's folder can move freely."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "scripts"  # the small scripts the tests train
EXAMPLES = ROOT / "examples"
COUNTER = SCRIPTS / "counter.py"  # the script most run tests train: fast, with faults on demand
TOY = EXAMPLES / "toy.py"  # the paper's toy problem (Fig. 2)
