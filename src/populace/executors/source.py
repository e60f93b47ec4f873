"""Where a worker finds the trainable and its space: a script path or the objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from populace.script import load_script
from populace.space import Space
from populace.trainable import Trainable


@dataclass(frozen=True)
class TrainableSource:
    """A script path (re-imported in each worker process) or a picklable class and space."""

    script: Path | None = None
    trainable: type[Trainable] | None = None
    space: Space | None = None

    def load(self) -> tuple[type[Trainable], Space]:
        if self.script is not None:
            script = load_script(self.script)
            return script.trainable, script.space
        assert self.trainable is not None and self.space is not None
        return self.trainable, self.space
