"""The codebase's shape, checked like behaviour: imports point down the layers that
pyproject.toml lists ([tool.importlinter]), the package type-checks ([tool.mypy]) and
the code passes its linter ([tool.ruff]), so a wrong import, a wrong type or a lint
fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

BIN = Path(sys.executable).parent


def test_imports_point_down_the_layers():
    done = subprocess.run([BIN / "lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_type_checks():
    # pyproject.toml's [tool.mypy] says what and how strictly; warm, its cache makes it quick
    done = subprocess.run([BIN / "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_passes_ruff():
    # pyproject.toml's [tool.ruff] says which rules; the folders are the project's code
    done = subprocess.run([BIN / "ruff", "check", "src", "tests", "benchmarks", "examples"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_importing_the_store_loads_no_strategy_nor_run_machinery():
    code = ("import sys, populace.store; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('populace'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    # the snapshot and the Pareto ranking it uses: the bottom layer, words every layer shares
    assert [m for m in loaded if not m.startswith("populace.store")] == [
        "populace", "populace.pareto", "populace.snapshot"]
