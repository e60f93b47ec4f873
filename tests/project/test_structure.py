"""The codebase's shape, checked like behaviour: imports point down the layers that
pyproject.toml lists ([tool.importlinter]), the package type-checks ([tool.mypy]) and
the code passes its linter ([tool.ruff]), so a wrong import, a wrong type or a lint
fails the suite."""

from __future__ import annotations

import ast
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
    # the snapshot and the Pareto ranking it uses, and the errors (a store's full disk is a
    # StorageFault): the bottom layer, words every layer shares
    assert [m for m in loaded if not m.startswith("populace.store")] == [
        "populace", "populace.errors", "populace.mode", "populace.pareto", "populace.snapshot"]


def test_the_public_names_import_lazily_from_their_one_list():
    # populace/__init__.py writes each public name once, as an import type checkers read;
    # at run time each is imported on first use, so `import populace` alone stays cheap
    code = ("import sys, populace; "
            "print([m for m in ('numpy', 'rich', 'torch') if m in sys.modules]); "
            "print(sorted(n for n in populace.__all__ if getattr(populace, n) is None))")
    heavy, missing = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True).stdout.splitlines()
    assert heavy == "[]" and missing == "[]"
    import populace
    from populace.snapshot import Snapshot

    assert populace.Snapshot is Snapshot  # every custom exploit takes one
    assert set(populace.__all__) <= set(dir(populace))


# a size ratchet: STYLE.md aims at about 400 lines a module and no function that scrolls
MODULE_LINES, FUNCTION_LINES = 600, 80


def _sources(folder: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / folder).rglob("*.py"))}


def test_no_module_or_function_is_over_its_size():
    over = []
    for name, text in _sources("src/populace").items():
        if len(text.splitlines()) > MODULE_LINES:
            over.append(f"{name}: {len(text.splitlines())} lines")
        over += [f"{name}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1} lines"
                 for f in ast.walk(ast.parse(text))
                 if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 and f.end_lineno - f.lineno + 1 > FUNCTION_LINES]
    assert not over, (f"over {MODULE_LINES} lines a module or {FUNCTION_LINES} a function, "
                      "split: " + "; ".join(over))


def test_no_test_imports_another_test():
    # what tests share lives in tests/support, so each test module stands on its own
    found = [f"{name}:{node.lineno} imports {dotted}" for name, text in _sources("tests").items()
             for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import | ast.ImportFrom)
             for dotted in [getattr(node, "module", None) or "", *(a.name for a in node.names)]
             if any(p.startswith("test_") or p == "conftest" for p in dotted.split("."))]
    assert not found, "import what tests share from tests/support: " + ", ".join(found)
