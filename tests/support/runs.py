"""Running a script the way the tests of whole runs do."""

from __future__ import annotations

from pathlib import Path

import populace
from populace.script import load_script


def run_script(script: Path, store: Path, **settings):
    """populace.run on the script's trainable, space and initial hparams, `settings` over
    its config, with no progress line."""
    s = load_script(script)
    return populace.run(
        s.trainable, s.space, store=store, initial=s.initial, script=script, progress=False,
        **{**s.config, **settings},
    )
