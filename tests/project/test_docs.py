"""The docs run as written: every snippet in README.md and docs/, in a fresh folder.

Each file's code blocks run in order, in one folder that holds the examples. A block
whose first line is a comment naming a file (`# mystrategies.py`, `# file: run.yaml`)
is that file: it is written, for the blocks after it to use. Python blocks run as
scripts (a `test_*.py` file under pytest); YAML and TOML blocks are read as populace
reads a `--config` file; each `populace` command of a shell block runs, except those
that need what a test machine lacks (a PostgreSQL server of the user's, a Ray cluster,
a bucket, the digits run's minutes) or serve until interrupted (the dashboard), which
are parsed, so a flag that does not exist
still fails. `make` lines are the README's set-up commands, which CI runs itself, and
benchmark commands take minutes: neither runs here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import EXAMPLES, ROOT

from populace.cli import _parse, read_config_file, settings_table
from populace.config import RunConfig

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
FILE = re.compile(r"#\s*(?:file:\s*)?([\w./-]+\.(?:py|yaml|yml|toml))\s*$")
# commands that need what this machine lacks: parsed, not run
PARSED_ONLY = re.compile(r"postgresql://|s3://|--ray-address|--executor ray|digits|worker |"
                         r"benchmarks/|examples/rl_|cartpole|acrobot|vectorized|translation|"
                         r"dashboard",
                         re.I)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(path.read_text())]


def commands(script: str) -> list[str]:
    """The shell block's commands, continuation lines joined, comments dropped."""
    lines = script.replace("\\\n", " ").splitlines()
    return [line.split(" #")[0].strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def _env(folder: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "COLUMNS": "200", "PYTHONPATH": str(folder)}


def _run(argv: list[str] | str, folder: Path, shell: bool = False) -> None:
    done = subprocess.run(argv, cwd=folder, env=_env(folder), shell=shell,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_the_docs_run_as_written(doc, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # a config file may name the docs' modules
    (tmp_path / "examples").symlink_to(EXAMPLES)
    (tmp_path / "runs").mkdir()
    for i, (lang, code) in enumerate(blocks(doc)):
        first = code.splitlines()[0] if code.strip() else ""
        named = FILE.fullmatch(first.strip())
        if named:
            (tmp_path / named.group(1)).write_text(code)
        if lang in ("yaml", "toml"):
            path = tmp_path / (named.group(1) if named else f"block{i}.{lang}")
            path.write_text(code)
            RunConfig.from_dict(read_config_file(str(path)))
        elif lang == "python":
            name = named.group(1) if named else f"block{i}.py"
            (tmp_path / name).write_text(code)
            if Path(name).name.startswith("test_"):
                _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
                     tmp_path)
            else:
                _run([sys.executable, name], tmp_path)
        elif lang == "sh":
            for command in commands(code):
                words = [w for w in shlex.split(command) if w != "&"]
                program = next((w for w in words if "=" not in w), "")
                populace = next((w for w in words if w.endswith("populace")), None)
                if program == "make" or "benchmarks/" in command:
                    continue  # the set-up commands, which CI runs; benchmarks take minutes
                if populace and (PARSED_ONLY.search(command) or program != populace):
                    _parse(words[words.index(populace) + 1:])  # srun, or what is not here
                elif populace or program == "python":
                    _run(command, tmp_path, shell=True)
                else:
                    pytest.fail(f"{doc.name}: a shell command this test cannot check: "
                                f"{command!r}")


def test_the_readme_settings_table_is_the_one_the_settings_define():
    text = (ROOT / "README.md").read_text()
    begin = ("<!-- settings: written by populace.cli.settings_table(); tests/project/test_docs.py "
             "checks it -->\n")
    table = text.split(begin, 1)[1].split("<!-- end of settings -->", 1)[0]
    assert table == settings_table(), "run: python -c 'from populace.cli import " \
                                      "settings_table; print(settings_table())'"
