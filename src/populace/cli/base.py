"""What every `populace` command is: a name, a line of help, its arguments, its action."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from rich.console import Console


class Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--step 50` must not quietly mean --steps 50."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)


class Command(ABC):
    """One subcommand. The parser is assembled from every command's `add_arguments`, and
    `main` calls the chosen one's `take_action` with the parsed arguments."""

    name: ClassVar[str]
    help: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments on its own parser."""

    @abstractmethod
    def take_action(self, args: argparse.Namespace, console: Console) -> int:
        """Do the command; return the process's exit status."""
